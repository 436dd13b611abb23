"""The fleet's contract: what daemons sharing one database ask of it beyond the store.

A backend whose database several daemons can share (PostgreSQL) gives its store a
``fleet`` (:class:`Fleet`); the others give None, and their daemon runs alone.

Every run of a task is an *occurrence*, named by its registration and what makes it one (its
due time, a retry's time, a run-now request's id): :func:`occurrence`. Daemons that find the
same occurrence due each try to claim it; the database's unique key lets one win, and only
the winner writes a start record. A claim is a lease: its daemon renews it with every
heartbeat, and a claim not renewed for ``lease_seconds`` (its daemon died, or lost the
database) is taken over by another daemon, which runs the occurrence again under a new
``claim_id`` and ``attempt``. A run is executed at least once and claimed by one daemon at a
time; a daemon whose claim was taken over writes nothing more of its run (fencing: its
final record is written only while its ``claim_id`` and ``attempt`` are the claim's).
Times of leases and heartbeats are the database server's (``now()``), never a machine's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..models import ExecutionRecord
from ._records import StoredTask

CHANNEL = "omnimind"
"""The LISTEN/NOTIFY channel the daemons of a fleet tell each other their changes on."""


def occurrence(registration_id: str, key: str) -> str:
    """The unique name of one run of a registration (``key``: :attr:`Occurrence.key`)."""
    return f"{registration_id} {key}"


@dataclass(frozen=True, slots=True)
class Occurrence:
    """What makes a run one run of its task, the same on every daemon of a fleet.

    - ``due``: a schedule's (or a catch-up's) due time ``at``, which must still be the
      task's stored ``next_due`` when it is claimed;
    - ``retry``: a retry's time ``at``, which must still be its stored ``retry_at``;
    - ``request``: a run-now request's (or a run after its upstream tasks') execution id,
      which only one daemon has: nothing stored to match.

    Matching what is stored makes the database, not a daemon's memory, say which run is
    due: a daemon that missed a change (asleep, cut off) cannot run an old one again."""

    kind: Literal["due", "retry", "request"]
    at: float = 0.0
    request: str = ""

    @property
    def key(self) -> str:
        return f"request {self.request}" if self.kind == "request" else f"{self.kind} {self.at!r}"


@dataclass(frozen=True, slots=True)
class Claim:
    """A daemon's claim on an occurrence: what its fenced writes name."""

    occurrence: str
    task_id: str
    registration_id: str
    trigger: str
    scheduled_at: float
    node: str
    claim_id: str
    attempt: int
    execution_id: str


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A daemon of the fleet as its last heartbeat left it."""

    node: str
    state: str
    running_count: int
    version: str
    started_at: float
    heartbeat: float
    """Epoch seconds of its last heartbeat (the server's clock)."""
    silent_seconds: float
    """How long ago that was, by the server's clock."""


class Fleet(Protocol):
    """Claims, leases, heartbeats and change notices of the daemons sharing a database."""

    node: str
    """This daemon's name in the fleet (``OMNIMIND_NODE_NAME``)."""

    async def claim(
        self,
        record: ExecutionRecord,
        run: Occurrence,
        *,
        last_execution: float,
        next_due: float | None,
    ) -> Claim | None:
        """Claim the occurrence ``run`` of the record's registration for this daemon and,
        in the same transaction, write ``record`` (its start) and set the task's
        ``last_execution`` and (but for a retry, whose ``retry_at`` is cleared)
        ``next_due``. None, writing nothing: another daemon claimed it first, or it is no
        longer what the task's stored schedule says is due (see :class:`Occurrence`)."""
        ...

    async def claim_skip(self, record: ExecutionRecord, run: Occurrence) -> bool:
        """Claim the occurrence ``run`` as done and write ``record`` (a skipped run), once
        for the fleet: False, writing nothing, when another daemon claimed it or it is no
        longer due."""
        ...

    async def start_claimed(self, record: ExecutionRecord, claim: Claim) -> bool:
        """Write the start record of a run this daemon took over (``claim``), while the
        claim is still its own: False, writing nothing, when it is not."""
        ...

    async def finish(
        self, record: ExecutionRecord, claim: Claim | None, *, release: bool = False
    ) -> bool:
        """Write the final record and add its outcome to the task's counters (in the
        database, so the counts of several daemons add up), and mark the claim finished,
        while it is still this daemon's (``claim_id`` and ``attempt``). False, writing
        nothing: another daemon took the occurrence over. ``claim`` None: a run without
        one (a run-now request run while the database could not be reached).
        ``release``: the run was cut short by this daemon's stop: its claim's lease ends
        now instead, so that another daemon takes the occurrence over at once."""
        ...

    async def heartbeat(
        self,
        *,
        state: str,
        running_count: int,
        version: str,
        started_at: float,
        holding: Collection[str],
    ) -> set[str]:
        """Say this daemon is alive (its row of ``nodes``), renew the leases of the claims
        ``holding`` names (the ``claim_id`` of its runs in flight and of those it took over
        and has yet to start) and end the leases of its other unfinished claims (lost
        track of: the fleet takes them over). Returns which of ``holding`` it still
        holds."""
        ...

    async def take_over(self, registration_ids: Collection[str], limit: int) -> list[Claim]:
        """Claim for this daemon at most ``limit`` occurrences of ``registration_ids``
        whose lease ran out; each one's last record, if still ``running``, is closed as
        ``interrupted``. Claims of registrations no longer stored are closed the same way
        and never run again."""
        ...

    async def release_mine(self) -> int:
        """At start: end the leases of this daemon's unfinished claims (left by a crash),
        so that the fleet takes them over at once. Returns how many."""
        ...

    async def nodes(self) -> list[NodeRow]:
        """Every daemon that has used the database, by name."""
        ...

    async def load_task(self, task_id: str) -> StoredTask | None:
        """The task stored under ``task_id`` now, or None."""
        ...

    async def forget_claims(self, older_than_seconds: float) -> int:
        """Delete the finished claims made longer ago than that (retention)."""
        ...

    async def listen(self, deliver: Callable[[dict[str, Any]], None]) -> None:
        """Call ``deliver(notice)`` for every change notice another daemon sends (a dict:
        ``{"node": ..., "task": ...}``, with ``"execution"`` and ``"event"`` for a run's
        start and end), and ``deliver({"resync": True})`` whenever notices may have been
        missed (at start, after the connection was lost). Runs until cancelled."""
        ...
