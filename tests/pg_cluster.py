"""A throwaway PostgreSQL cluster for the tests: ``initdb`` in a temporary folder, a server
on a Unix socket (and, asked for, a free TCP port of the loopback address), stopped and
deleted at the end.

The PostgreSQL store's tests use it (``tests/test_store_contract.py``,
``tests/test_postgres.py``). Where PostgreSQL is not installed, they are skipped, saying
so: ``.ci/run`` installs Debian's ``postgresql``. PostgreSQL refuses to run as root: as
root, the cluster runs as ``nobody`` (``setpriv``), its folder owned by that user.

Roles: ``postgres`` (the superuser, for the tests' own changes), ``omnimind`` (what a
daemon connects as: an ordinary role owning its database, as docs/operations.md sets it
up), both without a password on the socket; and ``omnimind_pw``, whose password is
:data:`PASSWORD` (scram-sha-256), for the tests of a wrong password.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

PASSWORD = "pw-s3cret-Z"
"""The password of the role ``omnimind_pw``."""

HBA = """\
local all omnimind_pw scram-sha-256
local all all trust
host all omnimind_pw 127.0.0.1/32 scram-sha-256
host all all 127.0.0.1/32 trust
"""

SERVER_OPTIONS = "-c max_connections=80"
FAST_OPTIONS = " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
"""Durability off: a throwaway cluster, it only makes the tests faster (not the bench's)."""


def binaries() -> Path | None:
    """The folder of ``initdb``, ``pg_ctl`` and ``postgres``: on PATH, or Debian's
    ``/usr/lib/postgresql/<version>/bin`` (the newest); None when PostgreSQL is missing."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name.split(".")[0]),
    )
    return Path(versions[-1]).parent if versions else None


def missing() -> str | None:
    """Why no cluster can be started here, or None."""
    if binaries() is None:
        return (
            "PostgreSQL is missing (no initdb on PATH nor in /usr/lib/postgresql/*/bin):"
            " install Debian's postgresql (.ci/run does)"
        )
    if os.geteuid() == 0 and not shutil.which("setpriv"):
        return "PostgreSQL refuses to run as root, and setpriv (to run it as nobody) is missing"
    return None


class Cluster:
    """A running throwaway cluster. :meth:`database` makes a new, empty database."""

    def __init__(self, *, durable: bool = False, tcp: bool = False) -> None:
        """``durable``: PostgreSQL's defaults (a flushed WAL at each commit), as a server
        in use has them; else durability off, for speed. ``tcp``: it listens on a free port
        of 127.0.0.1 too (:meth:`tcp_url`); else on its socket only (``.s.PGSQL.5432``)."""
        bin_dir = binaries()
        self.options = SERVER_OPTIONS + ("" if durable else FAST_OPTIONS)
        self.options += " -c listen_addresses=" + ("127.0.0.1" if tcp else "''")
        assert bin_dir is not None, missing()
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="omnimind-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"
        self._prefix: list[str] = []
        self._env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        self._names = itertools.count(1)
        self.running = False
        self.socket_dir.mkdir()
        self.port = 5432
        if tcp:
            with socket.socket() as probe:  # a free port (a moment's race, as any test has)
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        if os.geteuid() == 0:  # as nobody, who owns the folder
            user = pwd.getpwnam("nobody")
            for path in (self.root, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
            self._prefix = [
                "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
                "--",
            ]  # fmt: skip
        self._run(
            "initdb", "--pgdata", str(self.data), "--username=postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        (self.data / "pg_hba.conf").write_text(HBA)
        self.start()
        with self.admin() as db:
            db.execute("CREATE ROLE omnimind LOGIN")
            db.execute(f"CREATE ROLE omnimind_pw LOGIN PASSWORD '{PASSWORD}'")

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self._prefix, str(self.bin / program), *args],
            env=self._env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({done.returncode}):\n"
                + done.stdout.decode(errors="replace")
                + done.stderr.decode(errors="replace")
                + log[-3000:]
            )

    def start(self) -> None:
        options = f"-k {self.socket_dir} -p {self.port} {self.options}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate``: as a crash would, every connection cut)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        self.running = False

    def url(self, database: str, user: str = "omnimind", password: str | None = None) -> str:
        """The libpq URL of ``database`` on this cluster's socket."""
        secret = f":{password}" if password is not None else ""
        return f"postgresql://{user}{secret}@/{database}?host={self.socket_dir}&port={self.port}"

    def tcp_url(self, database: str, user: str = "omnimind") -> str:
        """The libpq URL of ``database`` over TCP on the loopback address."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def admin(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection (autocommit)."""
        return psycopg.connect(self.url(database, user="postgres"), autocommit=True)

    def database(self, owner: str = "omnimind") -> str:
        """A new, empty database owned by ``owner``; returns its name."""
        name = f"t{os.getpid()}_{next(self._names)}"
        with self.admin() as db:
            db.execute(f"CREATE DATABASE {name} OWNER {owner}")
        return name

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            if self.running:
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def cluster(*, durable: bool = False, tcp: bool = False) -> Iterator[Cluster]:
    started = Cluster(durable=durable, tcp=tcp)
    try:
        yield started
    finally:
        started.close()
