"""A cgroup per execution, where a cgroup v2 subtree is delegated to the daemon.

Under systemd with ``Delegate=yes`` (or wherever the daemon's own cgroup v2 directory is
writable), the daemon makes one directory for its runs (:func:`runs_base`, named after its
database so two daemons on one machine never share it) and each run's keeper moves itself
into a cgroup of its own below it (:func:`enter`) before it forks the task's process. Every
process of the run is then in that cgroup, whatever it does (``setsid``, double forks, even
re-parenting): :func:`kill` freezes it (``cgroup.freeze``) and kills it (``cgroup.kill``),
and :func:`remove` deletes it once it is empty. Without a delegated subtree (cgroup v1, or
a v2 directory the daemon cannot write), :func:`runs_base` is None and containment rests on
the keeper being a subreaper (``_containment.py``).

Standard library only: the keeper runs this under the task interpreter.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time

EMPTY_SECONDS = 1.0
"""How long :func:`remove` waits for a killed cgroup to empty."""


def _own_cgroup() -> str | None:
    """The directory of this process's cgroup v2, or None (no unified hierarchy)."""
    try:
        with open("/proc/self/cgroup") as file:
            path = next((line[3:].strip() for line in file if line.startswith("0::")), None)
        if path is None:
            return None
        with open("/proc/self/mountinfo") as file:
            mount = next(
                (
                    line.split()[4]
                    for line in file
                    if line.split(" - ", 1)[-1].startswith("cgroup2 ")
                ),
                None,
            )
    except OSError:
        return None
    if mount is None:
        return None
    directory = os.path.join(mount, path.lstrip("/"))
    return directory if os.path.isfile(os.path.join(directory, "cgroup.procs")) else None


def runs_base(database: str) -> str | None:
    """The directory under which this daemon's runs get their cgroups (created), or None
    when no writable cgroup v2 subtree with ``cgroup.kill`` is delegated to us."""
    own = _own_cgroup()
    if own is None or not os.access(own, os.W_OK):
        return None
    name = "omnimind-" + hashlib.sha256(os.path.realpath(database).encode()).hexdigest()[:12]
    base = os.path.join(own, name)
    try:
        os.makedirs(base, exist_ok=True)
    except OSError:
        return None
    if not os.path.exists(os.path.join(base, "cgroup.kill")):  # a kernel before 5.14
        with contextlib.suppress(OSError):
            os.rmdir(base)
        return None
    return base


def enter(path: str | None) -> bool:
    """In the keeper: create the cgroup ``path`` and move this process into it."""
    if not path:
        return False
    try:
        os.mkdir(path)
        with open(os.path.join(path, "cgroup.procs"), "w") as file:
            file.write("0")
    except OSError:
        return False
    return True


def _write(path: str, name: str, value: str) -> None:
    with contextlib.suppress(OSError), open(os.path.join(path, name), "w") as file:
        file.write(value)


def populated(path: str) -> bool:
    try:
        with open(os.path.join(path, "cgroup.events")) as file:
            return "populated 1" in file.read()
    except OSError:
        return False


def kill(path: str) -> None:
    """Freeze, then kill, every process in the cgroup ``path`` (and below)."""
    if os.path.isdir(path):
        _write(path, "cgroup.freeze", "1")
        _write(path, "cgroup.kill", "1")


def remove(path: str) -> None:
    """Kill what is left in the cgroup ``path``, wait (boundedly) for it to empty, and
    delete it."""
    if not os.path.isdir(path):
        return
    deadline = time.monotonic() + EMPTY_SECONDS
    if populated(path):
        kill(path)
        while populated(path) and time.monotonic() < deadline:
            time.sleep(0.001)
    with contextlib.suppress(OSError):
        os.rmdir(path)


def sweep(base: str) -> int:
    """Kill and remove every run cgroup under ``base`` (left by an earlier daemon on the
    same database); returns how many there were."""
    count = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(base):
            if entry.is_dir():
                remove(entry.path)
                count += 1
    return count


def open_base(database: str | None) -> tuple[str | None, int]:
    """The daemon's base for run cgroups (None: no delegated subtree, or no ``database``),
    and how many runs an earlier daemon on the same database left there (now killed)."""
    base = None if database is None else runs_base(database)
    return base, 0 if base is None else sweep(base)


def close_base(base: str) -> None:
    """When the daemon closes: kill and remove what is left under ``base``, and ``base``."""
    sweep(base)
    with contextlib.suppress(OSError):
        os.rmdir(base)
