"""Why a task is not running, and when it should: the words and the data the API shows."""

from __future__ import annotations

from typing import Any

from ..models import Priority, Trigger
from ._conditions import ConditionState
from ._entry import TaskEntry
from ._gates import GateSet
from ._machines import elsewhere, runs_on
from ._slots import Slots


def explain(
    entry: TaskEntry,
    gates: GateSet,
    conditions: ConditionState,
    slots: Slots,
    now: float,
    node: str,
) -> dict[str, Any] | None:
    """Why ``entry`` is not running at ``now`` on the daemon named ``node`` and when it is
    expected to, as data; None when it runs. ``reason`` is one of frozen, paused, machine,
    done, scheduled, upstream, backoff, gate, condition, slot, catch_up, starting;
    ``detail`` says it in words."""
    if entry.runs:
        if all(run.frozen for run in entry.runs):
            failing = conditions.failing(entry.spec.conditions)
            if not gates.is_open(entry.spec.priority):
                closed = gates.explain(entry.spec.priority, now)
                detail = "frozen until the machine is free again: " + closed["detail"]
            elif failing is not None:
                closed = conditions.explain(failing)
                detail = "frozen until " + closed["detail"].removeprefix("waiting for ")
            else:  # its slot went to another run while it was frozen
                used, limit = slots.use(critical=entry.runs[-1].critical_slot)
                closed = {"in_use": used, "limit": limit}
                detail = f"frozen until a slot is free to thaw it ({used} of {limit} in use)"
            return {"reason": "frozen", **closed, "detail": detail, "expected_start": None}
        return None
    if entry.paused:
        return {"reason": "paused", "detail": "paused until resumed"}
    if not runs_on(entry.spec, node):
        return {
            "reason": "machine",
            "detail": elsewhere(entry.spec, node),
            "machines": list(entry.spec.machines or ()),
            "node": node,
            "expected_start": None,
        }
    if entry.ready_since is None:
        if entry.retry_at is not None and (
            entry.next_due is None or entry.retry_at <= entry.next_due
        ):
            return {
                "reason": "backoff",
                "detail": f"retry {entry.retry_attempt} of {entry.spec.max_retries} "
                "after a failed run",
                "until": entry.retry_at,
                "expected_start": entry.retry_at,
            }
        if entry.spec.after is not None and entry.next_due is None:
            missing = [
                task_id for task_id in entry.spec.after if task_id not in entry.upstream_done
            ]
            return {
                "reason": "upstream",
                "detail": "waiting for a succeeded run of "
                + ", ".join(missing)
                + " (since its own last start)",
                "upstream": missing,
                "expected_start": None,
            }
        if entry.next_due is None:
            return {"reason": "done", "detail": "a one-shot task that has run"}
        return {
            "reason": "scheduled",
            "detail": "not due yet",
            "until": entry.next_due,
            "expected_start": _expected_start(entry, gates, entry.next_due),
        }
    priority = entry.spec.priority
    if not entry.bypasses_gates and not gates.is_open(priority):
        why = gates.explain(priority, now)
        run_by = entry.forced_at
        return {
            "reason": "gate",
            **why,
            "run_by": run_by,
            "expected_start": _expected_start(entry, gates, now),
        }
    failing = (
        None if entry.bypasses_gates else conditions.failing(entry.spec.conditions, starting=True)
    )
    if failing is not None:
        return {
            "reason": "condition",
            **conditions.explain(failing),
            "run_by": entry.forced_at,
            "expected_start": entry.forced_at,
        }
    if entry.ready_trigger is Trigger.CATCH_UP and slots.catch_up_running:
        return {
            "reason": "catch_up",
            "detail": "catch-ups of missed runs go one at a time; another is running",
            "expected_start": None,
        }
    used, limit = slots.use(critical=priority is Priority.CRITICAL)
    if used >= limit:
        return {
            "reason": "slot",
            "detail": f"waiting for a free slot ({used} of {limit} in use)",
            "in_use": used,
            "limit": limit,
            "expected_start": None,
        }
    return {"reason": "starting", "detail": "starting", "expected_start": now}


def _expected_start(entry: TaskEntry, gates: GateSet, earliest: float) -> float | None:
    """When the task should start, if the gates can say: the sleep window's next
    opening for LOW, else unknown (None) while a load gate is closed."""
    priority = entry.spec.priority
    if priority is Priority.CRITICAL or gates.is_open(priority):
        return earliest
    forced = entry.forced_at
    if priority is Priority.LOW:
        opening = gates.window.next_start(earliest)
        return min(opening, forced) if forced is not None else opening
    return forced
