"""Scheduling: which task runs when.

The scheduler (due heap, ready queues, slots, policies), the admission gates and sleep
window, the load monitor that feeds them, and the wall clock. It runs executions through a
runner it is given and knows nothing of processes, the store or HTTP. Imports: models,
exceptions.
"""

from . import _calendar as calendar
from ._clock import Clock, SystemClock, TrioWallClock, deadline_for
from ._conditions import ConditionMonitor, ConditionState
from ._entry import InProcessFunction, TaskEntry
from ._gates import Gate, GateSet, SleepWindow, parse_weekdays
from ._load import FakeSource, LoadMonitor, MetricsSource, PsutilSource
from ._machines import runs_on
from ._policies import retry_follows
from ._requests import check as check_run_now
from ._running import NotClaimed, Running
from ._scheduler import OVERLAP_SKIPPED, Scheduler

__all__ = [
    "OVERLAP_SKIPPED",
    "Clock",
    "ConditionMonitor",
    "ConditionState",
    "FakeSource",
    "Gate",
    "GateSet",
    "InProcessFunction",
    "LoadMonitor",
    "MetricsSource",
    "NotClaimed",
    "PsutilSource",
    "Running",
    "Scheduler",
    "SleepWindow",
    "SystemClock",
    "TaskEntry",
    "TrioWallClock",
    "calendar",
    "check_run_now",
    "deadline_for",
    "parse_weekdays",
    "retry_follows",
    "runs_on",
]
