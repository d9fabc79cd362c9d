// Shared declarations of rpctrace's symbol test modules (tools/build_symbol_testdata.py).
// These are stand-ins written for rpctrace's tests, not Microsoft code: freestanding C++ (no CRT,
// no Windows headers) that a real toolchain (clang + lld-link) turns into MSVC-compatible
// PE32/PE32+ DLLs with PDBs.  Function placement and image size are set by the build script
// (RTT_PAD_* and RTT_RESERVE) so the functions sit at the RVAs rpctrace.synth uses.
#pragma once

typedef long HRESULT;
typedef unsigned long DWORD;
typedef unsigned short WCHAR;

#define S_OK ((HRESULT)0)
#define E_INVALIDARG ((HRESULT)0x80070057L)
#define E_ACCESSDENIED ((HRESULT)0x80070005L)
#define RTT_EXPORT extern "C" __declspec(dllexport)
#define RTT_STR2(x) #x
#define RTT_STR(x) RTT_STR2(x)
// A block of code bytes of a given size that the build script grows or shrinks until the next
// function lands at its RVA (int3 filler, as linkers pad between functions).
#define RTT_PAD(fn, size) \
    extern "C" __attribute__((naked, used, noinline)) void fn(void) { __asm__(".fill " RTT_STR(size) ", 1, 0xcc"); }
// Straight-line code of a given size inside a function (a stand-in for the body of the real
// function, which is much larger than what these modules need to do).
#define RTT_BODY(size) __asm__ volatile(".fill " RTT_STR(size) ", 1, 0x90")

#ifndef RTT_RESERVE
#define RTT_RESERVE 4096
#endif
