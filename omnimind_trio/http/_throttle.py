"""Failed authentication attempts per client address, so a password cannot be guessed as
fast as the server answers.

An address that failed ``limit`` times within the last ``window_seconds`` is refused (429)
until the oldest of those failures is ``window_seconds`` old: a sliding window, so a
guesser gets at most ``limit`` tries a minute, however it spaces them. Refused requests are
not failures (no password was checked), so hammering does not extend the lock. A success
does not reset the count: otherwise anyone sharing the address (every local process shares
127.0.0.1) could guess between a legitimate client's successful polls.

Memory is bounded: at most ``limit`` timestamps for each of at most ``max_addresses``
addresses, the least recently failing forgotten first (and entries whose failures have all
aged out dropped as they reach the front). IPv6 addresses count by their /64: one host
usually has a whole /64 to pick addresses from.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict, deque
from collections.abc import Callable

import trio

WINDOW_SECONDS = 60.0
MAX_ADDRESSES = 4096


def client_key(address: str) -> str:
    """What failures are counted by: the address, or its /64 for an IPv6 address."""
    if ":" not in address:
        return address  # IPv4 as the server wrote it (parsing costs tens of microseconds)
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address  # "<local>" (no client address, as in tests), a Unix socket...
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


class FailureThrottle:
    """Counts failures by client address; :meth:`retry_after` says whether one is locked.

    ``clock`` gives the time in seconds (monotonic); by default Trio's, so a test's
    ``MockClock`` drives it. A ``limit`` of 0 turns the throttling off.
    """

    def __init__(
        self,
        limit: int,
        *,
        window_seconds: float = WINDOW_SECONDS,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self.max_addresses = max_addresses
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        """Per key, the times of its latest failures (at most ``limit``); the least
        recently failing key first."""

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until ``address`` may try again; None if it may now."""
        if not self._failures:  # the usual case, on every request: nothing to look up
            return None
        times = self._failures.get(client_key(address))
        if times is None or len(times) < self.limit:
            return None
        remaining = times[0] + self.window_seconds - self._clock()
        return math.ceil(remaining) if remaining > 0 else None

    def record(self, address: str) -> bool:
        """Count a failure of ``address``; True when it has now reached the limit."""
        if self.limit == 0:
            return False
        now = self._clock()
        key = client_key(address)
        times = self._failures.pop(key, None)
        if times is None:
            times = deque(maxlen=self.limit)
        times.append(now)
        self._failures[key] = times
        self._forget(now)
        return len(times) == self.limit and times[0] > now - self.window_seconds

    def _forget(self, now: float) -> None:
        """Drop keys whose every failure has aged out, and the least recent over the cap."""
        while self._failures:
            _, oldest_key_times = next(iter(self._failures.items()))
            if oldest_key_times[-1] > now - self.window_seconds:
                break
            self._failures.popitem(last=False)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)

    def __len__(self) -> int:
        """How many keys are tracked."""
        return len(self._failures)
