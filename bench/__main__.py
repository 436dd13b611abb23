"""``python -m bench``: run the benchmark sections, print one table, write results.json.

Exit status: 0 when every figure with a target meets it or misses it by at most 10 %,
1 when any misses by more (or a section crashed), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import psutil

from .common import TOLERANCE, Figure, Mode

SECTIONS = {
    "A": ("executor", "Executor latency and throughput (issue 3)"),
    "B": ("footprint", "Idle footprint (issue 6.1)"),
    "C": ("scale", "Scale (issue 6.2)"),
    "D": ("api", "API throughput (issue 6.3)"),
    "E": ("accuracy", "Scheduling accuracy (issue 6.4)"),
    "F": ("peers", "Peers: APScheduler 3, RQ (issue 6.5)"),
    "G": ("stop", "Stop (issue 6.6)"),
    "H": ("websocket", "Live updates over the WebSocket (issue 4)"),
    "I": ("soak", "Soak: memory and descriptors over many executions (issue 11)"),
    "J": ("load", "Load: 50 clients of mixed reads and writes (issue 11)"),
    "K": ("output", "Live output: a task printing flat out for 3 s (issue 12)"),
    "L": ("dashboard", "Dashboard in Chromium: first rows, live rows, output, idle CPU (issue 12)"),
    "M": ("calendar", "Calendar schedules: cron lateness, fake and real clock (issue 13)"),
    "N": ("notify", "Notifications: webhook delivery after a run's end (issue 13)"),
    "O": ("sensors", "Sensors: the per-sample cost of each source (issue 14)"),
    "P": ("conditions", "Conditions: a task frozen when the person comes back (issue 14)"),
    "Q": ("stores", "Stores: SQLite and PostgreSQL side by side (issue 15)"),
    "R": (
        "fleet",
        "Fleet: claims per second with three daemons, takeover after kill -9 (issue 15)",
    ),
}
RESULTS = Path(__file__).with_name("results.json")
BUSY_PERCENT = 15
"""Above this share of the machine used by other processes, the table carries a warning."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--full", action="store_true", help="larger sizes and 60 s footprint windows"
    )
    parser.add_argument(
        "--only",
        default="".join(SECTIONS),
        help="sections to run, e.g. --only AD (default: all of A-R)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="results JSON path")
    args = parser.parse_args(argv)
    wanted = [s for s in args.only.upper() if s in SECTIONS]
    if not wanted:
        parser.error(f"--only takes letters among {''.join(SECTIONS)}")
    mode = Mode.full() if args.full else Mode.quick()

    started = time.perf_counter()
    figures: list[Figure] = []
    crashed: list[str] = []
    background: dict[str, float] = {}
    for letter in wanted:
        module_name, title = SECTIONS[letter]
        print(f"[{letter}] {title} ...", file=sys.stderr, flush=True)
        section_start = time.perf_counter()
        meter = BackgroundMeter()
        try:
            module = importlib.import_module(f"bench.{module_name}")
            figures.extend(module.run(mode))
        except Exception:
            traceback.print_exc()
            crashed.append(letter)
            figures.append(
                Figure(letter, f"{title}: section crashed", "", [], crashed=True, note="see log")
            )
        background[letter] = meter.percent()
        elapsed = time.perf_counter() - section_start
        print(
            f"[{letter}] done in {elapsed:.1f} s; other processes used"
            f" {background[letter]:.0f} % of the machine meanwhile",
            file=sys.stderr,
            flush=True,
        )
    total = time.perf_counter() - started

    meta = machine(mode, total)
    meta["background_cpu_percent"] = {k: round(v, 1) for k, v in background.items()}
    print(render(figures, meta))
    args.output.write_text(
        json.dumps({"meta": meta, "figures": [f.to_json() for f in figures]}, indent=2) + "\n"
    )
    failed = [f for f in figures if f.status == "FAIL"]
    if failed or crashed:
        ids = ", ".join(f.id for f in failed)
        print(f"\nFAILED: {ids} (more than {TOLERANCE:.0%} past the target)", file=sys.stderr)
        return 1
    return 0


class BackgroundMeter:
    """CPU used by processes that are not this benchmark's, as a percent of the machine.

    The machine's busy time (``psutil.cpu_times``) minus this process's own CPU and that of
    its reaped descendants (every server, worker and generator the sections start is
    waited for, and each reaps its own children, so their time ends up here)."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.busy = self._busy()
        self.ours = self._ours()

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    @staticmethod
    def _ours() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def percent(self) -> float:
        wall = time.perf_counter() - self.wall
        other = (self._busy() - self.busy) - (self._ours() - self.ours)
        return max(0.0, 100.0 * other / (wall * (psutil.cpu_count() or 1)))


def machine(mode: Mode, total: float) -> dict[str, object]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": mode.name,
        "repeats": mode.repeats,
        "api_repeats": mode.api_repeats,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "seconds": round(total, 1),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "x":
        return f"{value:.2f}x"
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".rstrip()


def render(figures: list[Figure], meta: dict[str, object]) -> str:
    header = (
        f"omnimind-trio benchmarks - {meta['mode']} mode, median of {meta['repeats']} runs"
        f" ({meta['api_repeats']} for D)"
        f" - {meta['date']} - {meta['cores']} cores, {meta['memory_gib']} GiB,"
        f" Python {meta['python']} - {meta['seconds']} s"
    )
    rows = [("ID", "Figure", "Median", "Runs", "Target", "Status")]
    for f in figures:
        runs = " / ".join(fmt(r, "x" if f.unit == "x" else "") for r in f.runs)
        target = "" if f.target is None else f"{f.target[0]} {fmt(f.target[1], f.unit)}"
        rows.append((f.id, f.name, fmt(f.median, f.unit), runs, target, f.status))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = [header, ""]
    for index, row in enumerate(rows):
        cells = [cell.ljust(widths[i]) if i < 5 else cell for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"{f.id}: {f.note}" for f in figures if f.note]
    if notes:
        lines += ["", "Notes:", *(f"  {n}" for n in notes)]
    background = meta.get("background_cpu_percent")
    if isinstance(background, dict) and background:
        shares = ", ".join(f"{k} {v:.0f} %" for k, v in background.items())
        lines += [
            "",
            f"Other processes' CPU during each section (share of all {meta['cores']} cores):"
            f" {shares}.",
        ]
        if max(background.values()) > BUSY_PERCENT:
            lines.append(
                f"WARNING: other processes used more than {BUSY_PERCENT} % of the machine"
                " during some sections: the figures of those sections are lower bounds of"
                " what the product does on a quiet machine."
            )
    lines += [
        "",
        "PASS meets the target; MISS misses it by at most 10 % (exit 0); FAIL misses it by"
        " more (exit 1); INFO has no target; N/A could not be measured.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
