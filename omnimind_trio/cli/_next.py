"""``omnimind next EXPR``: when a cron expression fires, like ``systemd-analyze calendar``.

Computed here, without a daemon, by the code the scheduler uses (so the preview is what
the daemon will do, DST nights included).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

from ..models import check_cron, check_timezone, cron_fields
from ..scheduling import calendar


def preview(args: argparse.Namespace) -> int:
    """Print the next ``args.iterations`` times of ``args.expression``. Raises
    ValueError for an expression or a zone that is not valid."""
    check_cron(args.expression)
    if args.timezone is not None:
        check_timezone(args.timezone)
    tz = calendar.zone(args.timezone)
    now = time.time()
    times = calendar.cron_after(args.expression, now, tz, args.iterations)
    zone_name = args.timezone or getattr(tz, "key", None) or str(tz)
    if args.json:
        print(
            json.dumps(
                {
                    "expression": args.expression,
                    "normalized": cron_fields(args.expression),
                    "timezone": zone_name,
                    "upcoming": [_iso(moment) for moment in times],
                }
            )
        )
        return 0
    lines = [
        ("Original form", args.expression),
        ("Normalized form", cron_fields(args.expression)),
        ("In words", calendar.describe_cron(args.expression)),
        ("Time zone", zone_name),
    ]
    for index, moment in enumerate(times):
        local = datetime.fromtimestamp(moment, tz)
        label = "Next elapse" if index == 0 else f"Iter. #{index + 1}"
        lines.append((label, local.strftime("%a %Y-%m-%d %H:%M:%S %Z")))
        if index == 0:
            lines.append(
                (
                    "(in UTC)",
                    datetime.fromtimestamp(moment, UTC).strftime("%a %Y-%m-%d %H:%M:%S UTC"),
                )
            )
            lines.append(("From now", _left(moment - now)))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label:>{width}}: {value}")
    return 0


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _left(seconds: float) -> str:
    """``4h 37min left``, ``2 days 3h left``, ``59s left``."""
    seconds = max(0, round(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} day" + ("s" if days > 1 else ""))
    if hours:
        parts.append(f"{hours}h")
    if minutes and not days:
        parts.append(f"{minutes}min")
    if not parts:
        parts.append(f"{secs}s")
    return " ".join(parts) + " left"
