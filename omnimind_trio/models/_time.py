"""Instants: epoch seconds inside, ISO-8601 UTC strings in JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer, WithJsonSchema


def iso_utc(epoch: float | None, *, millis: bool = False) -> str | None:
    """``2025-11-19T02:30:00Z``: ISO-8601, UTC, whole seconds as the API document shows
    (with ``millis``, ``.123`` before the ``Z``)."""
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_seconds(epoch: float) -> str | None:
    return iso_utc(epoch)


def _iso_millis(epoch: float) -> str | None:
    return iso_utc(epoch, millis=True)


_DATE_TIME = WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization")

Instant = Annotated[float, PlainSerializer(_iso_seconds, when_used="json"), _DATE_TIME]
"""Epoch seconds; ``2025-11-19T02:30:00Z`` in JSON (the API document's task times)."""
PreciseInstant = Annotated[float, PlainSerializer(_iso_millis, when_used="json"), _DATE_TIME]
"""Epoch seconds; ``2025-11-19T02:30:00.123Z`` in JSON (execution times)."""
Measure = Annotated[float, PlainSerializer(lambda value: round(value, 4), when_used="json")]
"""A measured quantity (seconds, megabytes), rounded to 4 decimals in JSON."""
