"""The network capture reader: pcap/pcapng -> normalized ``net.*`` events (docs/events.md).

The container (:mod:`.pcap`) gives the frames; :class:`~.decoder.FrameDecoder` (link/IP/TCP,
SMB named pipes, DCE/RPC: the decoder packet events in ETW traces go through too, see
:mod:`.etw`) turns them into events.

Damage has two levels.  Damage to the container (a truncated record, a hostile length) ends
reading: everything decoded before it is given out, then :class:`~rpctrace.errors.InputError`
names the file, the frame and the byte offset (with ``keep_going`` the reader stops there
without raising and counts it).  Damage inside the traffic is counted and skipped by the
decoder (:class:`~.decoder.NetStats`, ``net.damage`` events).

Events are emitted in capture order; each one's ``ts`` is the time of the frame that completed
it (a request's: the frame where its first fragment began).
"""

from __future__ import annotations

import os
from typing import Iterator

from rpctrace.errors import InputError
from rpctrace.model import Event
from rpctrace.sources.base import Reader
from rpctrace.sources.net.decoder import EVENT_IDS, MAX_DAMAGE_KEPT, NET_PROVIDER, FrameDecoder, NetStats
from rpctrace.sources.net.pcap import iter_frames
from rpctrace.sources.net.tcp import Limits

__all__ = ["NetReader", "NetStats", "NET_PROVIDER", "EVENT_IDS", "MAX_DAMAGE_KEPT"]


class NetReader(Reader):
    """Reads one capture file; ``events()`` yields its ``net.*`` events (see module docstring)."""

    def __init__(self, path: str | os.PathLike[str], keep_going: bool = False, limits: Limits = Limits()) -> None:
        super().__init__(path, keep_going)
        self.limits = limits
        self.stats = NetStats(path=self.path)
        self._open()

    # -- reading ---------------------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        """Every event of the capture, in capture order."""
        decoder = FrameDecoder(self.limits, self.stats)
        decode = decoder.frame
        failure: InputError | None = None
        try:
            for frame in iter_frames(self.path, self._view if self._view is not None else b""):
                out = decode(frame.number, frame.ts, frame.linktype, frame.data)
                if out:
                    yield from out
        except InputError as exc:
            failure = exc
        yield from decoder.finish()
        self.stats.end(failure, self.keep_going)
