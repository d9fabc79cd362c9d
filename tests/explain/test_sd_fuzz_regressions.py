"""Inputs found by benchmarks/fuzz.py that made the SDDL parser or the hive reader crash, kept
small and hand-made.  Each test names the fuzz finding it reproduces."""

from __future__ import annotations

import struct

import pytest
from hive_samples import unpack

from rpctrace.security import SecurityDescriptorError, parse_sddl, to_sddl
from rpctrace.sources.hive import Hive, HiveError


@pytest.mark.parametrize("rights", ["\u00b2", "1\u00b2", "\u0663", "\uff11"])
def test_sddl_rights_in_non_ascii_digits(rights):
    """Fuzz finding (sddl): ``str.isdigit()`` is true for "²", so the rights field went to
    ``int(text, 10)`` and raised ValueError; Unicode decimal digits ("٣") were read as numbers."""
    with pytest.raises(SecurityDescriptorError, match="right") as info:
        parse_sddl(f"D:(A;;{rights};;;WD)")
    assert "\n" not in str(info.value)


def test_sddl_decimal_rights_still_read():
    sd = parse_sddl("D:(A;;1179817;;;WD)(A;;0x1F01FF;;;SY)")
    assert [a.mask for a in sd.dacl.aces] == [1179817, 0x1F01FF]
    assert to_sddl(sd) == "D:(A;;0x1200a9;;;WD)(A;;FA;;;SY)"


def test_hive_whose_first_bin_holds_no_cell(tmp_path):
    """Fuzz finding (hive): regipy's RegistryHive() calls next() on the root bin's cells and a bin
    whose size leaves no room for a cell raised StopIteration through Hive()."""
    data = bytearray(unpack("SECURITY", tmp_path).read_bytes())
    struct.pack_into("<I", data, 4096 + 8, 0x20)  # the first hbin's size: just its own header
    path = tmp_path / "no-cell.hive"
    path.write_bytes(bytes(data))
    with pytest.raises(HiveError, match="holds no allocated cell") as info:
        Hive(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_hive_open_error_is_one_line(tmp_path):
    """Fuzz finding (hive): a hive cut right after its first bin header made regipy raise a
    construct StreamError whose message spans two lines, copied as is into the HiveError."""
    data = unpack("SECURITY", tmp_path).read_bytes()
    path = tmp_path / "cut.hive"
    path.write_bytes(data[:4096 + 32])
    with pytest.raises(HiveError, match="regipy cannot open the hive") as info:
        Hive(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
