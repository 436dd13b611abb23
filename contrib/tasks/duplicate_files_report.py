"""Find duplicate files under the workspace (same size, then same SHA-256).

An async task: the tree walk and the hashing run in worker threads, a few files at a time,
driven by asyncio. Report only: this task never deletes anything.
Suggested: priority LOW, repeat_hours 24 (hashing reads every candidate file in full).

Environment:
  OMNIMIND_WORKSPACE      set by the daemon; the tree to walk
  DUPLICATES_MIN_BYTES    optional, default 1048576: smaller files are ignored
  DUPLICATES_PARALLEL     optional, default 4: files hashed at once
  DUPLICATES_TOP          optional, default 20: how many groups to list (most wasted first)
"""

import asyncio
import hashlib
import os
import stat
from collections import defaultdict

SKIP_DIRS = {".git", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__"}


def _same_size_files(root, min_bytes):
    """Regular files (no symbolic links) of at least min_bytes that share their size
    with another one: (relative path, size) pairs. A file's other names (hard links) are
    left out, as fdupes does: they take no space of their own."""
    by_size = defaultdict(list)
    seen = set()  # (device, inode) of the files listed
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in SKIP_DIRS]
        for name in files:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and info.st_size >= min_bytes:
                if (info.st_dev, info.st_ino) in seen:
                    continue
                seen.add((info.st_dev, info.st_ino))
                by_size[info.st_size].append(os.path.relpath(path, root))
    return [(path, size) for size, paths in by_size.items() if len(paths) > 1 for path in paths]


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def execute():
    root = os.environ.get("OMNIMIND_WORKSPACE", os.getcwd())
    min_bytes = int(os.environ.get("DUPLICATES_MIN_BYTES", str(1 << 20)))
    parallel = int(os.environ.get("DUPLICATES_PARALLEL", "4"))
    top = int(os.environ.get("DUPLICATES_TOP", "20"))

    candidates = await asyncio.to_thread(_same_size_files, root, min_bytes)
    limit = asyncio.Semaphore(parallel)
    unreadable = 0

    async def hash_one(path, size):
        nonlocal unreadable
        async with limit:
            try:
                digest = await asyncio.to_thread(_sha256, os.path.join(root, path))
            except OSError:
                unreadable += 1
                return None
        return digest, size, path

    groups = defaultdict(list)
    for item in await asyncio.gather(*(hash_one(path, size) for path, size in candidates)):
        if item is not None:
            digest, size, path = item
            groups[digest, size].append(path)

    duplicates = [
        {
            "sha256": digest,
            "size_mb": round(size / 1e6, 2),
            "wasted_mb": round(size * (len(paths) - 1) / 1e6, 2),
            "paths": sorted(paths),
        }
        for (digest, size), paths in groups.items()
        if len(paths) > 1
    ]
    duplicates.sort(key=lambda group: group["wasted_mb"], reverse=True)
    return {
        "status": "completed",
        "root": root,
        "files_hashed": len(candidates),
        "unreadable": unreadable,
        "duplicate_groups": len(duplicates),
        "wasted_mb": round(sum(group["wasted_mb"] for group in duplicates), 2),
        "groups": duplicates[:top],
    }
