"""The inbox door's 202, written by the inbox writer's thread as soon as the commit ends.

A stored activity's answer used to wait for the event loop twice after its commit: once
to hear of the commit from the writer's thread, once more for the request's task to wake
and write the 202. On a busy loop each wait is an iteration of 1–4 ms, and at 32
requests in flight that round trip, not the CPU, bounds how many activities a second the
inbox takes (docs/performance.md, session 21). So the door hands the writer an
``EarlyAnswer`` with each row; the writer's thread calls it right after the commit (never
before, never for a row it refused) and it writes the 202 straight to the socket. The
event loop's part — the access log, the next request on the connection — follows as
before; it writes only what the thread could not (usually nothing).

Two rules keep this safe:

- **Only the connection it belongs to.** The writer's thread writes to a file descriptor
  number; once the event loop closes the socket, the kernel may give that number to the
  next connection accepted. ``SocketGuard`` is shut (under its lock) in the door's
  ``connection_lost``, which asyncio calls before it closes the socket, and when the door
  hands the connection to aiohttp; a write after that writes nothing.
- **Nothing else in between.** The door offers an early answer only while the
  connection's write buffer is empty and it serves that one request (it takes the next
  only after this one's task ends), so no other bytes can be queued for the socket
  before or beside the 202. A partial write leaves the rest to the event loop, which
  writes it next, before anything else.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from time import time as wall_clock


class SocketGuard:
    """A connection's socket as the writer's thread may write to it: until ``shut``."""

    __slots__ = ("_fd", "_lock", "_open")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._open = True

    @property
    def fd(self) -> int:
        return self._fd

    def write(self, data: bytes) -> int:
        """Write without blocking; how many bytes went out (0 once shut, if the socket's
        buffer is full, or if the peer has left: the event loop's write meets that too)."""
        with self._lock:  # shut() waits for a write in progress, so the fd cannot be reused under it
            if not self._open:
                return 0
            try:
                return os.write(self._fd, data)  # the socket is non-blocking (asyncio's)
            except OSError:
                return 0

    def shut(self) -> None:
        """From now on ``write`` writes nothing (call before the socket is closed)."""
        with self._lock:
            self._open = False


class EarlyAnswer:
    """One request's 202, written from the writer's thread (``__call__``); the event loop
    then writes ``rest()`` if ``begun``."""

    __slots__ = ("_guard", "_encode", "_data", "_sent")

    def __init__(self, guard: SocketGuard, encode: Callable[[int], bytes]) -> None:
        self._guard = guard
        self._encode = encode  # the 202's bytes for a wall-clock second (its Date field)
        self._data = b""
        self._sent = 0

    def __call__(self) -> None:
        """The row is committed: write the 202 (on the writer's thread)."""
        self._data = self._encode(int(wall_clock()))
        self._sent = self._guard.write(self._data)

    @property
    def begun(self) -> bool:
        """Some of the 202 went out: the request's answer is this 202, whatever follows."""
        return self._sent > 0

    def rest(self) -> bytes:
        """What the writer's thread did not write of the 202."""
        return self._data[self._sent:]
