"""Disk usage of the file system that holds the workspace.

Suggested: priority HIGH, repeat_hours 1. Fails (so it shows up in failure_count) when
the disk is fuller than DISK_USAGE_FAIL_PERCENT, default 90, counted as df counts its
Use%: used / (used + available), root's reserved blocks left out. ``free_gb`` is df's
Avail, what users may still write.

Environment (the daemon's environment reaches every task):
  OMNIMIND_WORKSPACE       set by the daemon; the path whose file system is measured
  DISK_USAGE_PATHS         optional, extra paths to measure, separated by os.pathsep (":")
  DISK_USAGE_FAIL_PERCENT  optional, default 90
"""

import os
import shutil


def _measure(path):
    """df's figures for the file system holding ``path``. ``used_percent`` is df's Use%,
    used / (used + available): root's reserved blocks (often 5 % on ext4) count in neither,
    so 100 means no space left for users. (df rounds it up to a whole number.)"""
    usage = shutil.disk_usage(path)  # total, used, and free: what users may still write
    usable = usage.used + usage.free
    return {
        "path": path,
        "total_gb": round(usage.total / 1e9, 2),
        "used_gb": round(usage.used / 1e9, 2),
        "free_gb": round(usage.free / 1e9, 2),
        "used_percent": round(100.0 * usage.used / usable, 1) if usable else 0.0,
    }


def execute():
    workspace = os.environ.get("OMNIMIND_WORKSPACE", os.getcwd())
    extra = [p for p in os.environ.get("DISK_USAGE_PATHS", "").split(os.pathsep) if p]
    limit = float(os.environ.get("DISK_USAGE_FAIL_PERCENT", "90"))
    disks = [_measure(path) for path in [workspace, *extra]]
    full = [d["path"] for d in disks if d["used_percent"] > limit]
    if full:
        # An exception makes the run count as a failure, with this message as its reason.
        raise RuntimeError(f"disk usage above {limit:g} % for: {', '.join(full)}")
    return {"status": "completed", "fail_percent": limit, "disks": disks}
