"""Log output of ``omnimind serve``: a line for people, or one JSON object per line.

Fields passed with ``extra=`` (``task_id``, ``execution_id``, ...) are kept in both
formats: appended as ``key=value`` to a text line, as top-level keys of a JSON line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, TextIO

LOG_FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Every attribute a plain LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a log call added with ``extra=``, in the order they were set."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _RECORD_ATTRIBUTES and not key.startswith("_")
    }


class TextFormatter(logging.Formatter):
    """``2025-11-19 02:30:00,123 INFO omnimind_trio.daemon: message task_id=x``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        extras = record_extras(record)
        if extras:
            line += " " + " ".join(f"{key}={value}" for key, value in extras.items())
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line::

        {"timestamp": "2025-11-19T02:30:00.123Z", "level": "INFO",
         "logger": "omnimind_trio.daemon", "event": "...", "task_id": "backup"}

    ``traceback`` is added when the record carries ``exc_info``, ``stack`` when it
    carries ``stack_info``. Extra values that JSON cannot hold are written as ``str()``.
    The standard fields win over an ``extra`` field of the same name.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            **record_extras(record),
            "timestamp": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["traceback"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def make_formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``"text"`` or ``"json"``; ValueError for anything else."""
    if log_format == "text":
        return TextFormatter()
    if log_format == "json":
        return JsonFormatter()
    raise ValueError(f"unknown log format {log_format!r} (one of: {', '.join(LOG_FORMATS)})")


def configure_logging(
    level: int | str = "INFO", log_format: str = "text", stream: TextIO | None = None
) -> None:
    """Send the root logger's records to ``stream`` (default stderr) in ``log_format``.

    Like :func:`logging.basicConfig`, it does nothing when the root logger already has
    handlers (an embedding program's own logging setup wins).
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler])


def _iso_utc(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
