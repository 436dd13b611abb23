"""Back up a SQLite database with SQLite's online backup API, then check the copy.

Safe while other processes write to the database (WAL or not): the backup API copies a
consistent snapshot. Each run writes <dir>/<name>-<UTC timestamp>.db, runs
``PRAGMA integrity_check`` on the copy, and keeps the newest SQLITE_BACKUP_KEEP copies
(only files this task wrote, recognised by their name, are ever removed).
Suggested: priority LOW, repeat_hours 24.

Environment (required: set it where the daemon runs, e.g. Environment= in the unit):
  SQLITE_BACKUP_SOURCE   the database file to back up
  SQLITE_BACKUP_DIR      optional, default <workspace>/backups
  SQLITE_BACKUP_KEEP     optional, default 7; 0 keeps every copy
"""

import os
import re
import sqlite3
import time
from pathlib import Path


def execute():
    source = os.environ.get("SQLITE_BACKUP_SOURCE")
    if not source:
        raise RuntimeError("set SQLITE_BACKUP_SOURCE to the database file to back up")
    if not os.path.isfile(source):
        raise FileNotFoundError(f"no such database: {source}")
    workspace = os.environ.get("OMNIMIND_WORKSPACE", os.getcwd())
    target_dir = os.environ.get("SQLITE_BACKUP_DIR", os.path.join(workspace, "backups"))
    keep = int(os.environ.get("SQLITE_BACKUP_KEEP", "7"))
    os.makedirs(target_dir, exist_ok=True)

    stem = os.path.splitext(os.path.basename(source))[0]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = os.path.join(target_dir, f"{stem}-{stamp}.db")
    partial = target + ".partial"

    started = time.monotonic()
    # Read-only, by URI: a path's "?", "#" and "%" are escaped by as_uri(), else SQLite
    # would read them as the URI's query or fragment and open another file.
    src = sqlite3.connect(Path(source).absolute().as_uri() + "?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dst.close()
    finally:
        src.close()
    if check != "ok":
        os.remove(partial)
        raise RuntimeError(f"integrity check of the copy failed: {check}")
    os.replace(partial, target)  # a copy only gets its final name once it is complete

    pattern = re.compile(re.escape(stem) + r"-\d{8}T\d{6}Z\.db")
    copies = sorted(name for name in os.listdir(target_dir) if pattern.fullmatch(name))
    removed = copies[:-keep] if keep > 0 else []
    for name in removed:
        os.remove(os.path.join(target_dir, name))

    return {
        "status": "completed",
        "source": source,
        "backup": target,
        "size_mb": round(os.path.getsize(target) / 1e6, 3),
        "seconds": round(time.monotonic() - started, 3),
        "kept": len(copies) - len(removed),
        "removed": removed,
    }
