"""Trace.module_map: one map per process, rebuilt when the process's images or the kernel's change."""

from __future__ import annotations

from rpctrace.trace.model import ImageInfo, Trace

KERNEL_BASE = 0xFFFFF80000000000


def _trace() -> Trace:
    trace = Trace([])
    trace.images = {0: [ImageInfo(KERNEL_BASE, 0x100000, r"\SystemRoot\system32\ntoskrnl.exe")],
                    100: [ImageInfo(0x7FF800000000, 0x10000, r"C:\Windows\System32\rpcrt4.dll")]}
    return trace


def test_a_process_without_images_keeps_its_map():
    trace = _trace()
    assert trace.module_map(555) is trace.module_map(555)
    assert trace.frame(555, KERNEL_BASE + 0x10).text == "ntoskrnl+0x10"  # the kernel's modules still


def test_a_process_map_sees_kernel_modules_added_after_its_first_lookup():
    trace = _trace()
    afd = KERNEL_BASE + 0x1000000
    assert trace.image_for(100, afd + 0x10) is None
    trace.images[0] = trace.images[0] + [ImageInfo(afd, 0x1000, r"\SystemRoot\system32\drivers\afd.sys")]
    assert trace.frame(100, afd + 0x10).text == "afd+0x10"
    assert trace.frame(100, afd + 0x10).klass == "kernel"


def test_a_process_that_gains_images_gets_a_new_map():
    trace = _trace()
    assert trace.frame(555, 0x10010).text == "0x10010"
    trace.images[555] = [ImageInfo(0x10000, 0x1000, r"C:\a.exe")]
    assert trace.frame(555, 0x10010).text == "a+0x10"
