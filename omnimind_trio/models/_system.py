"""A measurement of the machine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SystemMetrics:
    """One load sample. ``cpu_percent`` is the whole machine; ``external_cpu_percent``
    leaves out the daemon and its task processes and is what the gates judge."""

    cpu_percent: float
    memory_percent: float
    external_cpu_percent: float
