"""Settings: one frozen, validated object, read from ``OMNIMIND_*`` environment variables."""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .models import NotifyEvent, NotifySpec, check_node_name, check_timezone, check_webhook
from .scheduling import SleepWindow, parse_weekdays
from .sensors import IDLE_SOURCES
from .store import default_node_name, is_url


class Settings(BaseSettings):
    """Everything the daemon can be told. Units are in the names.

    Every field can be set from the environment as ``OMNIMIND_<FIELD>`` (upper case).
    Unknown ``OMNIMIND_*`` variables are ignored (the environment is shared with
    tasks), but unknown keyword arguments are an error.
    """

    model_config = SettingsConfigDict(
        env_prefix="OMNIMIND_",
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        allow_inf_nan=False,  # OMNIMIND_TIMEOUT_SECONDS=nan: "must be a finite number"
    )

    home: Path = Field(default_factory=Path.cwd)
    """Holds ``config/dashboard_auth.json`` and the database."""
    workspace: Path = Field(default_factory=Path.cwd)
    """The tasks' working directory, reported as ``workspace`` in the status."""
    database: Path | str | None = None
    """Where tasks and history are kept: the path of a SQLite file (default
    ``<home>/omnimind.db``), a ``postgresql://`` URL (libpq's syntax; one daemon per
    database), or ``memory://`` for a store in the daemon's memory that is gone when it
    stops (tests, embedders)."""

    # Several daemons on one database (docs/configuration.md, "Several machines")
    node_name: str = Field(default_factory=default_node_name, validate_default=True)
    """This daemon's name among the daemons that share one database: what a task's
    ``machines`` names and its runs' records carry as ``node``. Default: the host name up
    to its first dot."""
    lease_seconds: Annotated[float, Field(ge=5, le=3600)] = 30.0
    """On PostgreSQL, how long a daemon's claim on a run lasts without a heartbeat before
    another daemon takes the run over."""

    @field_validator("node_name")
    @classmethod
    def _check_node_name(cls, value: str) -> str:
        try:
            return check_node_name(value)
        except ValueError as exc:
            raise ValueError(f"{exc} (by default the host name, up to its first dot)") from None

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024

    # Browsers (http/_origins.py): which pages may call the API, under which host names
    allowed_origins: str = ""
    """Comma-separated origins (``http://host:port``) whose pages may call the API from a
    browser (CORS). Same-origin calls and clients that send no ``Origin`` are always allowed.
    Stored in the form browsers send (lower case, no default port, no trailing slash)."""
    allowed_hosts: str = ""
    """Comma-separated host names the API answers to (the ``Host`` header; any port), beside
    localhost, 127.0.0.1, [::1], ``host`` and the address a request arrived on; ``*``: any
    name (no defence against DNS rebinding). Other names get 421."""

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: str) -> str:
        origins = []
        for entry in filter(None, (e.strip().rstrip("/").lower() for e in value.split(","))):
            match = re.fullmatch(
                r"(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?", entry
            )
            if match is None:
                raise ValueError(
                    f"{entry!r} is not an origin: scheme://host[:port], like http://localhost:3000"
                )
            default = {"http": "80", "https": "443"}[match[1]]
            origins.append(entry if match[3] != default else entry.rpartition(":")[0])
        return ",".join(origins)

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: str) -> str:
        names = [e.strip().lower() for e in value.split(",") if e.strip()]
        for name in names:
            if name != "*" and not re.fullmatch(r"[a-z0-9.-]+", name) and not _is_ip(name):
                raise ValueError(
                    f"{name!r} is not a host name: a name or address without scheme or port"
                )
        return ",".join(names)

    http_connection_fix: bool = True
    """Serve HTTP connections with omnimind's fix of hypercorn's keep-alive timer and close
    (:mod:`omnimind_trio.http._connection`); false: with hypercorn's own class."""

    # Transport security (docs/operations.md, "HTTPS")
    tls_certfile: Path | None = None
    """PEM certificate (with its chain) to serve HTTPS and WSS with; needs ``tls_keyfile``."""
    tls_keyfile: Path | None = None
    """PEM private key of ``tls_certfile``."""
    allow_plain_http: bool = False
    """Serve plain HTTP on an address that is not loopback. Refused by default: the
    credentials would cross the network in clear text."""

    dashboard_user: str | None = None
    dashboard_pass: str | None = None

    # Read-only credential and failed-authentication throttling
    viewer_user: str | None = None
    """A read-only credential (with ``viewer_pass``): GET routes, /metrics, the WebSocket."""
    viewer_pass: str | None = None
    auth_failure_limit: Annotated[int, Field(ge=0, le=1000)] = 10
    """Failed authentication attempts one client address may make in 60 s before it gets
    429 until its window clears; 0 turns the throttling off."""

    # Executions
    task_python: str = sys.executable
    """Interpreter that runs task code (point it at a Python 3.12+ for 3.12 syntax)."""
    max_concurrent: Annotated[int, Field(ge=1)] = 2
    """Executions of HIGH, MEDIUM and LOW tasks running at once."""
    max_concurrent_critical: Annotated[int, Field(ge=1)] = 8
    """CRITICAL executions running at once, on top of ``max_concurrent``."""
    timeout_seconds: Annotated[float, Field(gt=0)] = 3600.0
    max_memory_mb: Annotated[int, Field(ge=0)] = 4096
    """Address-space cap of a task process (RLIMIT_AS); 0 means none."""
    max_cpu_seconds: Annotated[int, Field(ge=0)] = 0
    """CPU-time cap of a task process (RLIMIT_CPU); 0 means none (the timeout still holds)."""
    task_nice: Annotated[int, Field(ge=0, le=19)] = 10
    """Niceness added to HIGH, MEDIUM and LOW task processes (CRITICAL runs at 0), so the
    user's own programs win the CPU when both want it."""
    max_output_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    """Captured stdout and stderr, each, in the execution record; head and tail are kept."""
    max_log_bytes: Annotated[int, Field(ge=0)] = 10 * 1024 * 1024
    """A run's whole output (both streams) in its log file ``<home>/logs/<id>.log``; head
    and tail are kept; 0 keeps no log files."""
    max_result_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024
    max_code_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024

    # Containment (issue 11): every process of a run ends with the run
    task_cgroups: bool = True
    """Give each execution a cgroup of its own (killed with ``cgroup.kill``) where a cgroup
    v2 subtree is delegated to the daemon (systemd ``Delegate=yes``); without one, or when
    false, a run's processes are contained by its subreaper keeper alone."""

    # Load gates
    sample_seconds: Annotated[float, Field(gt=0)] = 1.0
    idle_cpu_percent: Annotated[float, Field(gt=0, le=100)] = 20.0
    low_activity_cpu_percent: Annotated[float, Field(gt=0, le=100)] = 50.0
    gate_open_seconds: Annotated[float, Field(ge=0)] = 5.0
    gate_close_seconds: Annotated[float, Field(ge=0)] = 3.0
    sleep_window: str = "00:00-06:00"
    """``HH:MM-HH:MM`` local time; may wrap midnight."""
    sleep_weekdays: str | None = None
    """Days on which the sleep window starts: ``mon-fri``, ``sat,sun``...; default every day."""
    timezone: str | None = None
    """IANA name for the sleep window and cron tasks without their own; default: local."""

    # Task conditions (docs/configuration.md, "Conditions"): presence, power, network
    away_seconds: Annotated[float, Field(ge=0)] = 180.0
    """The person counts as away after this long without keyboard or mouse input."""
    user_idle_sources: str = ",".join(IDLE_SOURCES)
    """Where the person's idle time is read, tried in this order: GNOME's Mutter
    IdleMonitor, the freedesktop ScreenSaver, logind's idle hint, ``user_idle_command``."""
    user_idle_command: str | None = None
    """A command that prints the idle time in milliseconds (``xprintidle``, a script)."""
    power_supply_dir: Path = Path("/sys/class/power_supply")
    """Where the kernel lists the power supplies (psutil is asked when it cannot tell)."""
    condition_sample_seconds: Annotated[float, Field(gt=0)] = 0.5
    """How often presence, power and network are measured: a task that runs while the
    person is away is frozen within this long of their return."""

    @field_validator("user_idle_sources")
    @classmethod
    def _check_idle_sources(cls, value: str) -> str:
        words = [w.strip().lower() for w in value.split(",") if w.strip()]
        known = IDLE_SOURCES
        for word in words:
            if word not in known:
                raise ValueError(f"unknown source {word!r} (known: {', '.join(known)})")
        return ",".join(dict.fromkeys(words))

    @field_validator("user_idle_command", mode="before")
    @classmethod
    def _check_idle_command(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None  # OMNIMIND_USER_IDLE_COMMAND= (empty): none
        return value

    # Policies
    missed_grace_seconds: Annotated[float, Field(ge=0)] = 300.0
    """A repeating run this late is 'missed' (daemon down, machine asleep): on_missed applies."""
    retry_base_seconds: Annotated[float, Field(gt=0)] = 30.0
    """First retry delay; doubled at each retry, with jitter, up to retry_max_seconds."""
    retry_max_seconds: Annotated[float, Field(gt=0)] = 3600.0

    # History
    history_max_per_task: Annotated[int, Field(ge=1)] = 1000
    history_max_days: Annotated[float, Field(gt=0)] = 30.0

    # Notifications (docs/operations.md, "Notifications"): for tasks without ``notify``
    notify_webhook: str | None = None
    """URL every task without its own ``notify`` reports to (a JSON POST); none by
    default. A task's ``notify`` replaces these defaults."""
    notify_on: str = ",".join(NotifySpec.model_fields["on"].default)  # a task's default
    """Comma-separated events those tasks report: ``failure``, ``recovery``, ``success``."""

    @field_validator("notify_webhook", mode="before")
    @classmethod
    def _check_notify_webhook(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None  # OMNIMIND_NOTIFY_WEBHOOK= (empty): none
        return check_webhook(value.strip()) if isinstance(value, str) else value

    @field_validator("notify_on")
    @classmethod
    def _check_notify_on(cls, value: str) -> str:
        words = [w.strip().lower() for w in value.split(",") if w.strip()]
        known = [e.value for e in NotifyEvent]
        for word in words:
            if word not in known:
                raise ValueError(f"unknown event {word!r} (known: {', '.join(known)})")
        if not words:
            raise ValueError(f"give at least one event among {', '.join(known)}")
        return ",".join(dict.fromkeys(words))

    @property
    def notify_defaults(self) -> NotifySpec | None:
        """The ``notify`` of tasks without their own: None without ``notify_webhook``."""
        if self.notify_webhook is None:
            return None
        events = tuple(NotifyEvent(word) for word in self.notify_on.split(","))
        return NotifySpec(on=events, webhook=self.notify_webhook)

    ws_buffer_messages: Annotated[int, Field(ge=1)] = 256
    """Messages a WebSocket subscriber may fall behind before it is disconnected."""

    stop_grace_seconds: Annotated[float, Field(gt=0)] = 1.5

    @model_validator(mode="after")
    def _check_viewer(self) -> Settings:
        if bool(self.viewer_user) != bool(self.viewer_pass):
            raise ValueError("OMNIMIND_VIEWER_USER and OMNIMIND_VIEWER_PASS go together")
        return self

    @field_validator("sleep_window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        SleepWindow.parse(value)
        return value

    @field_validator("sleep_weekdays")
    @classmethod
    def _check_weekdays(cls, value: str | None) -> str | None:
        if value is not None:
            parse_weekdays(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)  # as a task's timezone

    @model_validator(mode="after")
    def _check_tls_pair(self) -> Settings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError(
                "tls_certfile and tls_keyfile go together: give both (HTTPS) or neither"
            )
        return self

    @property
    def tls(self) -> bool:
        """Whether the API is served over TLS (HTTPS, WSS)."""
        return self.tls_certfile is not None

    @property
    def window(self) -> SleepWindow:
        return SleepWindow.parse(self.sleep_window, self.timezone, self.sleep_weekdays)

    @property
    def database_location(self) -> Path | str:
        """What ``open_store`` is given: ``database``, or ``<home>/omnimind.db``."""
        return self.database if self.database is not None else self.home / "omnimind.db"

    @property
    def logs_dir(self) -> Path:
        """Where each run's log file is kept."""
        return self.home / "logs"

    @property
    def database_path(self) -> Path:
        """The SQLite file. Raises ValueError when ``database`` is not a file (``memory://``)."""
        if is_url(self.database_location):
            raise ValueError(f"the database {self.database} is not a file")
        return Path(self.database_location)

    @property
    def auth_file(self) -> Path:
        return self.home / "config" / "dashboard_auth.json"


def _is_ip(name: str) -> bool:
    """Whether ``name`` is an IP address (IPv6 with or without brackets)."""
    try:
        ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return True
