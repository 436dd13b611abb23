"""Per-task policies that need no scheduler state: what a run does when its gate closes
(``on_busy``), and how long a failed run waits before its retry."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from ..models import OnBusy, Outcome
from ._conditions import LOST_WORDS, ConditionState
from ._entry import Notify, TaskEntry
from ._gates import GateSet
from ._running import Running
from ._slots import Slots


def apply_on_busy(
    active: Iterable[tuple[TaskEntry, Running]],
    gates: GateSet,
    conditions: ConditionState,
    slots: Slots,
    now: float,
    notify: Notify,
) -> None:
    """Freeze, cancel or let run the executions whose gate closed or whose task's
    conditions stopped holding; thaw the ones for which both hold again. Runs admitted
    without a gate (CRITICAL, run-now, forced) are left alone by the gates, and run-now and
    forced runs by the conditions too. A frozen run gives its slot back and thaws only
    once it has one again (this pass comes before any new run starts)."""
    for entry, run in active:
        why = _stopped_by(entry, run, gates, conditions)
        policy = entry.spec.on_busy
        if why is None or (policy is OnBusy.CONTINUE and run.frozen):
            if run.frozen and not run.holds_slot:
                if slots.full(critical=run.critical_slot):
                    continue  # frozen until a slot is free
                slots.take(run)
            if run.thaw(now):
                notify("execution_thawed", entry, run)
            continue
        if policy is OnBusy.FREEZE and entry.function is None:
            if run.freeze(now, why):
                notify("execution_frozen", entry, run)
            slots.give_back(run)
        elif policy is OnBusy.CANCEL:
            run.cancel(f"{why} (on_busy=cancel)")


def _stopped_by(
    entry: TaskEntry, run: Running, gates: GateSet, conditions: ConditionState
) -> str | None:
    """Why ``run`` may not go on now, in words; None when it may."""
    priority = entry.spec.priority
    if run.gated and not gates.is_open(priority):
        gate = gates.closed_reason(priority) or "its gate closed"
        return f"the machine became busy: {gate}"
    if run.conditional:
        failing = conditions.failing(entry.spec.conditions)
        if failing is not None:
            return f"{LOST_WORDS[failing]} (condition {failing})"
    return None


@dataclass(frozen=True)
class Backoff:
    """Seconds before retry ``attempt`` (1, 2, ...): exponential from ``base_seconds``,
    capped at ``max_seconds``, with jitter (uniform between half and all of it), so failing
    tasks do not retry in lockstep."""

    base_seconds: float
    max_seconds: float
    rng: random.Random

    def __call__(self, attempt: int) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        return float(ceiling * self.rng.uniform(0.5, 1.0))


RETRY_OUTCOMES = frozenset({Outcome.FAILED, Outcome.TIMED_OUT, Outcome.KILLED})


def retry_follows(entry: TaskEntry, run: Running, outcome: Outcome | None) -> bool:
    """Whether :func:`settle_retry` will schedule a retry after this run (asked before it
    settles: a failure with a retry to come is not notified)."""
    return (
        outcome in RETRY_OUTCOMES
        and run.cancel_reason is None
        and entry.retry_attempt < entry.spec.max_retries
    )


def settle_retry(
    entry: TaskEntry, run: Running, outcome: Outcome | None, backoff: Backoff, now: float
) -> None:
    """``max_retries``, once a run has ended: schedule the next retry, or reset the count
    (a success; retries used up). A cancelled run is not retried."""
    if retry_follows(entry, run, outcome):
        entry.retry_attempt += 1
        entry.retry_at = now + backoff(entry.retry_attempt)
    elif outcome is not None:
        entry.retry_attempt, entry.retry_at = 0, None
