"""Batch yamux WINDOW_UPDATE frames the way go-yamux does (py-libp2p 0.8 sends one per read).

py-libp2p's ``YamuxStream._auto_tune_and_send_window_update`` runs after every read of a stream
and, through its "partial slack" branch, answers any consumed byte with a WINDOW_UPDATE frame. For
our request/response traffic that is one extra yamux frame, Noise message and ``send()`` per
message on each side, often more than one (a Gemma swarm client sent 4,608 window updates for
3,259 data writes over 40 tokens). go-yamux only sends an update once half of the receive window
has been consumed (``GrowTo`` hysteresis); a sender never stalls, since half the window is still
open when the update leaves.

:func:`install` replaces that one method with the go-yamux rule, keeping py-libp2p's window
auto-tuning (``_apply_autotune_epoch``). It checks that the helpers it relies on exist first and
leaves py-libp2p untouched (with a log line) if they do not, so an upgrade of py-libp2p cannot
break a host, only lose the optimisation.
"""

from __future__ import annotations

import logging
from typing import Any

from libp2p.stream_muxer.yamux import yamux as _yamux

log = logging.getLogger(__name__)

_NEEDED = ("_auto_tune_and_send_window_update", "_grow_threshold", "_grow_to_delta", "_apply_autotune_epoch",
           "send_window_update")
_installed = False


async def _send_window_update_batched(self: Any, *, bytes_read: int = 0) -> None:
    """Grow the receive window back only once half of it (the hysteresis threshold) is consumed."""
    total = 0
    async with self.window_lock:
        buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
        consumed = self.target_recv_window - (self.recv_window + buffered)   # read and not yet granted
        if consumed > 0 and consumed >= self._grow_threshold():
            total = self._grow_to_delta(buffered) + self._apply_autotune_epoch(buffered)
        self._pending_recv_release = 0       # py-libp2p's own batching counter: the window covers it
    if total > 0:
        await self.send_window_update(total, skip_lock=True)


def install() -> bool:
    """Use the batched rule in every yamux stream of this process; True if it is in place."""
    global _installed
    if _installed:
        return True
    cls = getattr(_yamux, "YamuxStream", None)
    if cls is None or not all(hasattr(cls, name) for name in _NEEDED):
        log.info("py-libp2p's yamux changed: WINDOW_UPDATE batching not installed")
        return False
    cls._auto_tune_and_send_window_update = _send_window_update_batched
    _installed = True
    return True
