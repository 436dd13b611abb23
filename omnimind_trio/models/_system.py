"""Measurements of the machine: its load, and what task conditions depend on (the
person's presence, the power supply, the network)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Final


@dataclass(frozen=True, slots=True)
class SystemMetrics:
    """One load sample. ``cpu_percent`` is the whole machine; ``external_cpu_percent``
    leaves out the daemon and its task processes and is what the gates judge."""

    cpu_percent: float
    memory_percent: float
    external_cpu_percent: float


@dataclass(frozen=True, slots=True)
class Reading:
    """One measurement of the person or the machine's surroundings, and where it came from.

    ``value`` is None when it is unknown (no source works); ``detail`` then says why (the
    sources tried and what each answered)."""

    value: float | bool | None
    source: str | None = None
    """The source that answered: ``mutter``, ``screensaver``, ``logind``, ``command``;
    ``sysfs``, ``psutil``; ``networkmanager``."""
    detail: str | None = None

    @property
    def known(self) -> bool:
        return self.value is not None


UNKNOWN = Reading(None, None, "not measured yet")


@dataclass(frozen=True, slots=True)
class Surroundings:
    """One sample of what a task's ``conditions`` depend on. Each field's ``doc`` is its
    description in the API, the OpenAPI document and ``/metrics`` (``omnimind_<name>``)."""

    user_idle_seconds: Reading = field(
        default=UNKNOWN,
        metadata={"doc": "Seconds since the person last used keyboard or mouse."},
    )
    on_ac_power: Reading = field(
        default=UNKNOWN, metadata={"doc": "1 on mains power (or with no battery), 0 on battery."}
    )
    network_metered: Reading = field(
        default=UNKNOWN, metadata={"doc": "1 on a metered network connection, else 0."}
    )


MEASUREMENTS: Final = {f.name: str(f.metadata["doc"]) for f in fields(Surroundings)}
"""Each measurement of :class:`Surroundings` and its description."""
