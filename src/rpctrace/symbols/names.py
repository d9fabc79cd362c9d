"""Function names the way debuggers print them: ``CSubEndpointDevice::SetRegValue``.

A PDB gives names in three spellings, and a debugger shows all three the same way:

* functions of the module symbols (private PDBs): symbolic formats them with their argument
  list, ``CSubEndpointDevice::SetRegValue(unsigned short const*)``; the list is dropped;
* public symbols of C++ functions (Microsoft's stripped PDBs): MSVC-decorated,
  ``?SetRegValue@CSubEndpointDevice@@QEAAJPEBG@Z``; they are undecorated with LLVM's Microsoft
  demangler (through ``pydemumble``, BSD) and reduced to the qualified name - without access,
  return type, calling convention and arguments, as WinDbg's ``k`` prints them;
* public symbols of C functions on 32-bit x86: ``_Name@12`` (stdcall), ``@Name@8`` (fastcall),
  ``_Name`` (cdecl) become ``Name``.

Names come from files of unknown origin: inputs longer than :data:`MAX_DEMANGLE` are not
demangled, and results are cached in a bounded table.
"""

from __future__ import annotations

import re
from functools import lru_cache

MAX_DEMANGLE = 1024
_X86_STDCALL = re.compile(r"^[_@]([A-Za-z_$?][\w$?@]*?)@\d+$")
_X86_CDECL = re.compile(r"^_([A-Za-z_$][\w$]*)$")
_CALLING_CONVENTIONS = ("__cdecl", "__stdcall", "__fastcall", "__thiscall", "__vectorcall", "__clrcall",
                        "__pascal", "__regcall", "__swift_1", "__swift_2", "__swift_3", "__swift_4")
_PREFIXES = ("public: ", "private: ", "protected: ", "[thunk]:", "static ", "virtual ", "extern \"C\" ")
_TRAILING = (" const", " volatile", " &&", " &", " __ptr64", " __restrict", " __unaligned", " noexcept")


def _demangler():
    try:
        from pydemumble import demangle
    except ImportError:  # pragma: no cover - the dependency is declared; a broken install shows raw names
        return None
    return demangle


@lru_cache(maxsize=65536)
def display_name(raw: str, arch: str = "x86_64", from_publics: bool = False) -> str:
    """The name a debugger shows for ``raw`` (see the module docstring)."""
    name = raw.strip()
    if not name:
        return raw
    if name.startswith("?") and len(name) <= MAX_DEMANGLE:
        demangle = _demangler()
        if demangle is not None:
            try:
                text = demangle(name)
            except Exception:
                text = name
            if text and text != name:
                text = text.replace(" deleting dtor'", " deleting destructor'")
                reduced = function_name(text)
                return reduced or text
        return name
    if from_publics and arch == "x86":
        m = _X86_STDCALL.match(name) or _X86_CDECL.match(name)
        if m:
            return m.group(1)
    return strip_arguments(name)


def strip_arguments(name: str) -> str:
    """``A::f(int, char*) const`` -> ``A::f``; ``A::operator()(int)`` -> ``A::operator()``."""
    text = name.rstrip()
    changed = True
    while changed:
        changed = False
        for q in _TRAILING:
            if text.endswith(q):
                text = text[: -len(q)].rstrip()
                changed = True
    if not text.endswith(")"):
        return name
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        c = text[i]
        if c == ")":
            depth += 1
        elif c == "(":
            depth -= 1
            if depth == 0:
                head = text[:i].rstrip()
                return head if head else name
    return name


def function_name(signature: str) -> str:
    """The qualified name inside a demangled signature (``public: long __cdecl A::f(int)`` ->
    ``A::f``); the signature itself when it has no recognisable name."""
    text = signature.strip()
    for p in _PREFIXES:
        while text.startswith(p):
            text = text[len(p):].lstrip()
    text = strip_arguments(text)
    # the name follows the calling convention, outside any template argument list
    tokens = _top_level_split(text)
    for i, tok in enumerate(tokens):
        if tok in _CALLING_CONVENTIONS and i + 1 < len(tokens):
            return " ".join(tokens[i + 1:])
    if len(tokens) > 1:  # data: "int A::count", "struct X const A::y"
        last = tokens[-1].lstrip("*&")
        if any(ch.isalnum() or ch == "_" for ch in last):
            return last
    return text


def _top_level_split(text: str) -> list[str]:
    """Split on spaces that are not inside ``<>``, ``()`` or quotes."""
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    quote = False
    for ch in text:
        if ch == "`":
            quote = True
        elif ch == "'" and quote:
            quote = False
        elif not quote and ch in "<(":
            depth += 1
        elif not quote and ch in ">)" and depth:
            depth -= 1
        if ch == " " and depth == 0 and not quote:
            if cur:
                out.append("".join(cur))
                cur = []
            continue
        cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out
