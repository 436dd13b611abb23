"""Report files under the workspace that were not modified for a long time.

Report only: this task never deletes, moves or changes anything.
Suggested: priority LOW (it walks the whole tree), repeat_hours 24.

Environment:
  OMNIMIND_WORKSPACE   set by the daemon; the tree to walk
  OLD_FILES_DAYS       optional, default 180: "old" means not modified for this many days
  OLD_FILES_TOP        optional, default 20: how many of the largest old files to list
"""

import heapq
import os
import time

SKIP_DIRS = {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__"}


def execute():
    root = os.environ.get("OMNIMIND_WORKSPACE", os.getcwd())
    days = float(os.environ.get("OLD_FILES_DAYS", "180"))
    top = int(os.environ.get("OLD_FILES_TOP", "20"))
    cutoff = time.time() - days * 86400

    scanned = old_count = old_bytes = unreadable = 0
    largest = []  # min-heap of (size, path), at most `top` long

    def on_error(_error):
        nonlocal unreadable
        unreadable += 1

    for directory, subdirs, files in os.walk(root, onerror=on_error):
        subdirs[:] = [d for d in subdirs if d not in SKIP_DIRS]
        for name in files:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)  # symbolic links are not followed
            except OSError:
                unreadable += 1
                continue
            scanned += 1
            if info.st_mtime >= cutoff:
                continue
            old_count += 1
            old_bytes += info.st_size
            item = (info.st_size, os.path.relpath(path, root))
            if len(largest) < top:
                heapq.heappush(largest, item)
            elif top:
                heapq.heappushpop(largest, item)

    return {
        "status": "completed",
        "root": root,
        "older_than_days": days,
        "files_scanned": scanned,
        "old_files": old_count,
        "old_mb": round(old_bytes / 1e6, 2),
        "unreadable": unreadable,
        "largest_old_files": [
            {"path": path, "mb": round(size / 1e6, 2)}
            for size, path in sorted(largest, reverse=True)
        ],
    }
