"""Log output of ``omnimind serve``: a line for people, or one JSON object per line.

Fields passed with ``extra=`` (``task_id``, ``execution_id``, ...) are kept in both
formats: appended as ``key=value`` to a text line, as top-level keys of a JSON line. A
multi-line field (a failed run's ``traceback``) is kept whole in JSON only, so a text
record stays one line per run.

Under systemd, when stderr is the journal (``$JOURNAL_STREAM``), every line starts with
its syslog priority (``<4>`` for WARNING, as ``sd-daemon.h`` defines it), so the journal
files it at that level: ``journalctl -p warning`` shows the failed runs.
"""

from __future__ import annotations

import json
import logging
import os
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
    """``2025-11-19 02:30:00,123 INFO omnimind_trio.daemon: message task_id=x``.

    A value with a space, a quote or an ``=`` is written as a JSON string
    (``reason="ValueError: boom"``); a multi-line one is left to the JSON format.
    """

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        pairs = [
            f"{key}={_text_value(value)}"
            for key, value in record_extras(record).items()
            if not (isinstance(value, str) and "\n" in value)
        ]
        if pairs:
            line += " " + " ".join(pairs)
        return line


def _text_value(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "='):
        return json.dumps(text, ensure_ascii=False)
    return text


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


class JournalPriorityFormatter(logging.Formatter):
    """Another formatter's output with each line prefixed by the record's syslog priority
    (``<3>`` ERROR, ``<4>`` WARNING, ``<6>`` INFO, ``<7>`` DEBUG), which journald reads
    from a service's stderr and strips (``SyslogLevelPrefix=``, on by default)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in self.inner.format(record).split("\n"))


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a logging level (CRITICAL 2, ERROR 3, WARNING 4, INFO 6,
    DEBUG 7)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    return 6 if levelno >= logging.INFO else 7


def is_journal(stream: TextIO) -> bool:
    """Whether ``stream`` is the journal's stream for this service: systemd sets
    ``$JOURNAL_STREAM`` to ``<device>:<inode>`` of the stream it connects (it is inherited,
    so it counts only when it names this very file)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # no file behind it (tests, StringIO)
        return False
    return expected == f"{status.st_dev}:{status.st_ino}"


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
    """Send the root logger's records to ``stream`` (default stderr) in ``log_format``,
    each line prefixed with its syslog priority when ``stream`` is the journal.

    Like :func:`logging.basicConfig`, it does nothing when the root logger already has
    handlers (an embedding program's own logging setup wins).
    """
    stream = stream if stream is not None else sys.stderr
    formatter = make_formatter(log_format)
    if is_journal(stream):
        formatter = JournalPriorityFormatter(formatter)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=[handler])


def _iso_utc(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
