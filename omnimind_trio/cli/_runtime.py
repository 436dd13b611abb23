"""The runtime file: where the running daemon of this user listens, and its home.

``omnimind serve`` writes it once its socket is bound and removes it when it exits; the
client commands read it when neither ``--url`` nor ``OMNIMIND_URL`` is given, so ``cd /tmp
&& omnimind status`` finds the daemon and its credentials. It lives at
``$XDG_RUNTIME_DIR/omnimind/daemon.json`` (a per-user directory on a tmpfs, gone at logout),
else at ``$XDG_STATE_HOME/omnimind/daemon.json`` (``~/.local/state``). The directory is
0700 and the file 0600, written atomically.

One file per user: the daemon started last owns it. A daemon removes it only if it still
names that daemon, and a reader ignores a file whose process is gone (a daemon killed with
SIGKILL cannot remove it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__package__)  # the subpackage: a stable name for operators


@dataclass(frozen=True)
class RuntimeInfo:
    url: str
    """The API's base URL (``http://127.0.0.1:8000``; ``https://`` with TLS)."""
    home: str
    """The daemon's home: its ``config/dashboard_auth.json`` holds the credentials."""
    pid: int


def runtime_path(environ: Mapping[str, str] = os.environ) -> Path:
    """Where this user's runtime file is (``environ``'s XDG directories)."""
    runtime_dir = environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and Path(runtime_dir).is_absolute():
        return Path(runtime_dir) / "omnimind" / "daemon.json"
    state = environ.get("XDG_STATE_HOME")
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local/state"
    return base / "omnimind" / "daemon.json"


def write_runtime(info: RuntimeInfo, path: Path) -> None:
    """Write ``info`` to ``path``: mode 0600 from the first byte, then renamed into place."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.parent.stat().st_mode & 0o077:
        path.parent.chmod(0o700)  # made by someone (or some umask) more generous: ours
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(info), handle)
            handle.write("\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_runtime(path: Path) -> RuntimeInfo | None:
    """The daemon ``path`` names, if the file is ours and that daemon still runs; else None."""
    try:
        with path.open(encoding="utf-8") as handle:
            if os.fstat(handle.fileno()).st_uid != os.getuid():
                return None  # planted by someone else: not to be trusted
            data = json.load(handle)
        info = RuntimeInfo(url=str(data["url"]), home=str(data["home"]), pid=int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info if _alive(info.pid) else None


def find_daemon(environ: Mapping[str, str] = os.environ) -> RuntimeInfo | None:
    """The running daemon this user's runtime file names, unless ``OMNIMIND_HOME`` names
    another home (then the file describes some other daemon)."""
    info = read_runtime(runtime_path(environ))
    home = environ.get("OMNIMIND_HOME")
    if info is None or (home and Path(home).resolve() != Path(info.home)):
        return None
    return info


def locate(url: str | None, default: str, environ: Mapping[str, str]) -> tuple[str, Path | None]:
    """The daemon a client command talks to, and its home (for its credentials file):
    ``url`` (``--url``, ``OMNIMIND_URL``) when given, else the daemon this user's runtime
    file announces, else ``default``. The announced daemon's home comes with it, also when
    ``url`` names that daemon."""
    found = find_daemon(environ)
    if found is not None and url and url.rstrip("/") != found.url.rstrip("/"):
        found = None
    return url or (found.url if found else default), Path(found.home) if found else None


def remove_runtime(path: Path, pid: int, handing_back: RuntimeInfo | None = None) -> None:
    """Remove ``path`` if it still names ``pid`` (a daemon started later owns it else), or
    name ``handing_back`` in it again, the daemon it named before, if that one still runs."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("pid") != pid:
            return
        if handing_back is not None and handing_back.pid != pid and _alive(handing_back.pid):
            write_runtime(handing_back, path)
        else:
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def local_url(url: str) -> str:
    """``url`` with a wildcard address (``0.0.0.0``, ``::``, as hypercorn reports them) made
    the loopback address it also serves: clients connect to an address, not to "any"."""
    for wildcard, loopback in (("//0.0.0.0:", "//127.0.0.1:"), ("//[::]:", "//[::1]:")):
        url = url.replace(wildcard, loopback, 1)
    return url


@contextlib.contextmanager
def announced(urls: list[str], home: Path, path: Path | None = None) -> Iterator[None]:
    """The runtime file exists, naming this process, while the block runs."""
    path = path or runtime_path()
    pid = os.getpid()
    # A daemon of this user already announced keeps being found once this one has gone.
    previous = read_runtime(path)
    try:
        write_runtime(RuntimeInfo(url=local_url(urls[0]), home=str(home.resolve()), pid=pid), path)
    except OSError as exc:  # the CLI will need --url; the daemon works all the same
        log.warning("cannot write the runtime file %s: %s", path, exc)
    try:
        yield
    finally:
        remove_runtime(path, pid, handing_back=previous)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, but not ours: still not a stale file
    return True
