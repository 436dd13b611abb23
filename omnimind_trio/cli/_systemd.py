"""systemd's notify protocol for ``omnimind serve``: ready, status, stopping, watchdog.

The protocol (``sd_notify(3)``) is one datagram of ``KEY=value`` lines sent to the Unix
socket named by ``$NOTIFY_SOCKET``; a leading ``@`` names Linux's abstract namespace. The
standard library's socket speaks it; without ``$NOTIFY_SOCKET`` nothing here runs at all.

- ``READY=1`` once the API is bound and the scheduler runs;
- ``STATUS=working, 12 tasks, 1 running, 0 pending``, sent again when it reads differently;
- ``STOPPING=1`` when the first SIGTERM/SIGINT begins the stop;
- ``WATCHDOG=1`` every half of ``$WATCHDOG_USEC`` (when ``$WATCHDOG_PID`` is unset or names
  this process), on evidence of progress only, so that systemd restarts a wedged daemon:

  * the event loop's: the pings come from a task that sleeps to a fixed grid. A loop that
    is blocked runs it not at all; a tick that runs more than one interval late (the loop
    was stalled) sends nothing;
  * the scheduler's: each tick wakes the scheduler and notes its pass count; the next
    tick pings only if the count has moved since, and so on at every tick. While the
    daemon is stopped (``POST /daemon/stop``) there is no scheduler to ask: the event loop
    is the evidence.

Error handling: a send that fails (no listener, a full queue) is logged once, at WARNING,
and never raises: the daemon goes on without systemd rather than stop for it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, MutableMapping

import trio

from ..daemon import Daemon

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators

STATUS_COALESCE_SECONDS = 0.25
"""After a change, wait this long before the next STATUS, so a burst sends one."""


class Notifier:
    """One datagram socket to systemd's notify socket; :meth:`send` never raises."""

    def __init__(self, address: str) -> None:
        self.address = address
        # "@name" is the abstract socket "\0name"; sendto takes it as bytes.
        self._target = b"\0" + os.fsencode(address[1:]) if address[0] == "@" else address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # A full receive queue must not block the event loop: a dropped message is better.
        self._socket.setblocking(False)
        self._failed = False

    def send(self, *fields: str) -> bool:
        """Send ``fields`` (``"READY=1"``...) as one datagram; False if it failed."""
        try:
            self._socket.sendto("\n".join(fields).encode(), self._target)
        except OSError as error:
            if not self._failed:
                self._failed = True
                log.warning(
                    "cannot notify systemd at %s (%s); further failures are not logged",
                    self.address,
                    error,
                )
            return False
        return True

    def close(self) -> None:
        self._socket.close()


class Watchdog:
    """Decides each tick whether the daemon has shown progress, and pings if it has."""

    def __init__(
        self,
        notifier: Notifier,
        interval: float,
        scheduler_pass: Callable[[], int | None],
    ) -> None:
        self.interval = interval
        self._notifier = notifier
        self._scheduler_pass = scheduler_pass
        self._asked: tuple[int, float] | None = None
        """The scheduler's pass count when it was last woken, and when."""
        self._silent = False

    async def run(self) -> None:
        """Tick on a fixed grid of ``interval`` seconds, for ever."""
        due = trio.current_time()
        while True:
            now = trio.current_time()
            self.tick(late=now - due, now=now)
            due += self.interval
            if due <= now:  # after a stall, a new grid from now; missed ticks are not made up
                due = now + self.interval
            await trio.sleep_until(due)

    def tick(self, *, late: float, now: float) -> bool:
        """Ping if the loop ran this tick on time and the scheduler, if it runs, made a
        pass since the previous tick woke it. Returns whether it pinged."""
        passes = self._scheduler_pass()  # wakes the scheduler: the next tick checks it
        if late > self.interval:
            return self._withhold(f"the event loop was stalled for {late:.1f} s")
        if passes is None:  # stopped: nothing to ask but the event loop
            self._asked = None
        elif self._asked is None or passes > self._asked[0]:
            self._asked = (passes, now)
        else:
            stuck = now - self._asked[1]
            return self._withhold(f"the scheduler has made no pass for {stuck:.1f} s")
        if self._silent:
            self._silent = False
            log.warning("the daemon makes progress again: watchdog pings resume")
        return self._notifier.send("WATCHDOG=1")

    def _withhold(self, why: str) -> bool:
        if not self._silent:
            self._silent = True
            log.error("%s: no watchdog ping, systemd will restart the daemon", why)
        return False


def status_line(daemon: Daemon) -> str:
    """What ``systemctl status`` shows: ``working, 12 tasks, 1 running, 0 pending``."""
    status = daemon.status()
    tasks = status.tasks_registered
    line = (
        f"{status.state.value}, {tasks} task{'' if tasks == 1 else 's'}, "
        f"{daemon.executions_running} running, {status.tasks_pending} pending"
    )
    error = daemon.error
    return line if error is None else f"{line}: {error}"


def watchdog_interval(environ: MutableMapping[str, str]) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds, if the watchdog is on and meant for us."""
    usec, pid = environ.get("WATCHDOG_USEC"), environ.get("WATCHDOG_PID")
    try:
        if not usec or int(usec) <= 0 or (pid and int(pid) != os.getpid()):
            return None
        return int(usec) / 2e6
    except ValueError:
        log.warning("ignoring a malformed WATCHDOG_USEC=%r / WATCHDOG_PID=%r", usec, pid)
        return None


class Systemd:
    """The link to systemd of one ``omnimind serve``; see the module's docstring."""

    def __init__(self, notifier: Notifier, watchdog_interval: float | None) -> None:
        self.notifier = notifier
        self.watchdog_interval = watchdog_interval
        self._last_status: str | None = None

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str]) -> Systemd | None:
        """The link ``$NOTIFY_SOCKET`` asks for, or None. The variables are removed from
        ``environ``, as ``sd_notify``'s ``unset_environment`` does, so that task processes
        (which inherit the daemon's environment) do not talk to systemd in our name."""
        address = environ.pop("NOTIFY_SOCKET", "")
        interval = watchdog_interval(environ)
        environ.pop("WATCHDOG_USEC", None)
        environ.pop("WATCHDOG_PID", None)
        if not address.startswith(("/", "@")):
            if address:
                log.warning("ignoring NOTIFY_SOCKET=%r: not a Unix socket address", address)
            return None
        try:
            notifier = Notifier(address)
        except OSError as error:  # no AF_UNIX here (a sandbox): run without systemd
            log.warning("cannot open a socket to notify systemd: %s", error)
            return None
        return cls(notifier, interval)

    def ready(self, daemon: Daemon) -> None:
        self._last_status = status_line(daemon)
        self.notifier.send("READY=1", f"STATUS={self._last_status}")

    def stopping(self) -> None:
        self.notifier.send("STOPPING=1")

    async def run(self, daemon: Daemon) -> None:
        """Keep STATUS current and, if asked, feed the watchdog, until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                if self.watchdog_interval is not None:
                    watchdog = Watchdog(
                        self.notifier, self.watchdog_interval, daemon.scheduler_pass
                    )
                    nursery.start_soon(watchdog.run)
                nursery.start_soon(self._publish_status, daemon)
        finally:
            self.notifier.close()

    async def _publish_status(self, daemon: Daemon) -> None:
        while True:
            await daemon.wait_changed()
            await trio.sleep(STATUS_COALESCE_SECONDS)
            line = status_line(daemon)
            if line != self._last_status:
                self._last_status = line
                self.notifier.send(f"STATUS={line}")
