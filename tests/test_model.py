"""``ticks_to_iso``: the per-second cached formatter writes exactly what the datetime-based one
it replaced wrote, for every integer (clamping included)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpctrace import model
from rpctrace.model import iso_to_ticks, ticks_to_iso

_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)
_MAX = (dt.datetime(9999, 12, 31, tzinfo=dt.timezone.utc) - _EPOCH) // dt.timedelta(microseconds=1) * 10


def reference_ticks_to_iso(ticks: int) -> str:
    """The implementation ticks_to_iso had before it cached (datetime + strftime per call)."""
    if ticks < 0:
        ticks = 0
    elif ticks > _MAX:
        ticks = _MAX
    micro, rest = divmod(ticks, 10)
    stamp = _EPOCH + dt.timedelta(microseconds=micro)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond:06d}{rest}Z"


#: 2019-04-17T18:40:00Z, where real traces live
_TYPICAL = 132_000_000_000_000_000

ticks = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),  # anything a hostile file can hold, and more
    st.integers(min_value=0, max_value=_MAX + 10**8),  # the range datetime shows, and past its end
    st.integers(min_value=_TYPICAL - 10**11, max_value=_TYPICAL + 10**11),  # hours around a trace
    st.sampled_from([0, 1, 9_999_999, 10_000_000, _MAX - 1, _MAX, _MAX + 1, -1]),
)


@settings(max_examples=2000, deadline=None)
@given(ticks)
def test_ticks_to_iso_matches_datetime_reference(value):
    assert ticks_to_iso(value) == reference_ticks_to_iso(value)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=_MAX), min_size=1, max_size=40))
def test_ticks_to_iso_matches_reference_when_the_second_cache_refills(values):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model, "_second_texts", {})
        mp.setattr(model, "_SECOND_TEXTS_MAX", 3)  # a tiny bound: the cache clears every few calls
        for value in values:
            assert ticks_to_iso(value) == reference_ticks_to_iso(value)
        assert len(model._second_texts) <= 3


@pytest.mark.parametrize(
    "value, text",
    [
        (0, "1601-01-01T00:00:00.0000000Z"),
        (-5, "1601-01-01T00:00:00.0000000Z"),  # clamped
        (2**64 - 1, "9999-12-31T00:00:00.0000000Z"),  # clamped
        (132_000_000_000_001_234, "2019-04-17T18:40:00.0001234Z"),
    ],
)
def test_ticks_to_iso_known_values(value, text):
    assert ticks_to_iso(value) == text


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=0, max_value=_MAX))
def test_iso_round_trip(value):
    assert iso_to_ticks(ticks_to_iso(value)) == value
