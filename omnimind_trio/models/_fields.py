"""The types of the task fields that hold more than a number or a word: a cron expression,
a time zone, environment variables, the notification settings.

Each is an annotated type whose validators give the one-sentence messages the API answers
with (``cron: ...``); :class:`~._task.TaskSpec` declares the fields with them.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

CRON_MACROS: Final = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
"""Vixie cron's macros, as the five fields they stand for (``@reboot`` has no meaning for
a daemon that keeps its schedule across restarts)."""


def cron_fields(expression: str) -> str:
    """The five fields of an expression (a macro expanded)."""
    text = expression.strip()
    return CRON_MACROS.get(text.lower(), text)


def check_cron(expression: str) -> str:
    """A five-field cron expression or a macro; raises ValueError saying what is wrong."""
    fields = cron_fields(expression)
    if fields.startswith("@"):
        raise ValueError(f"unknown macro {expression.strip()!r} (known: {', '.join(CRON_MACROS)})")
    if len(fields.split()) != 5:
        raise ValueError(
            f"{expression!r} has {len(fields.split())} fields; cron takes five "
            "(minute hour day-of-month month day-of-week) or a macro such as @daily"
        )
    try:
        next(CronSim(fields, datetime(2000, 1, 1, tzinfo=UTC)))
    except CronSimError as exc:
        raise ValueError(f"{expression!r}: {exc}") from None
    except StopIteration:  # cronsim looked 50 years ahead
        raise ValueError(f"{expression!r} never matches a date") from None
    return expression.strip()


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder: OSError
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Paris)") from None
    return name


ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_ENV_ENTRIES: Final = 100
MAX_ENV_VALUE_BYTES: Final = 32 * 1024
DAEMON_PREFIX: Final = "OMNIMIND_"
"""The daemon's own variables (``OMNIMIND_WORKSPACE`` is set for every run): a task's
``env`` or ``secrets`` may not name one, so what the daemon sets is what the task sees."""
MIN_SECRET_CHARS: Final = 4
"""A secret's value is masked wherever it appears in output: a shorter one would mask
every occurrence of a common string (``***`` for each ``a``) and hide nothing."""


def check_environment(values: dict[str, str]) -> dict[str, str]:
    if len(values) > MAX_ENV_ENTRIES:
        raise ValueError(f"at most {MAX_ENV_ENTRIES} variables")
    for name, value in values.items():
        if not ENV_NAME.match(name):
            raise ValueError(
                f"{name!r} is not a variable name (letters, digits and _, not first a digit)"
            )
        if name.startswith(DAEMON_PREFIX):
            raise ValueError(
                f"{name}: names starting with {DAEMON_PREFIX} are the daemon's own "
                "(it sets OMNIMIND_WORKSPACE for every run)"
            )
        if "\0" in value:
            raise ValueError(f"the value of {name} holds a NUL character")
        if len(value.encode("utf-8", "surrogatepass")) > MAX_ENV_VALUE_BYTES:
            raise ValueError(f"the value of {name} is over {MAX_ENV_VALUE_BYTES} bytes")
    return values


def check_secrets(values: dict[str, str]) -> dict[str, str]:
    """Secrets are variables too; each value must be long enough to be masked."""
    for name, value in values.items():
        if len(value) < MIN_SECRET_CHARS:
            raise ValueError(
                f"the value of {name} is shorter than {MIN_SECRET_CHARS} characters: too short "
                "to be masked in output (a value that is not secret goes in env)"
            )
    return values


def check_python(path: str) -> str:
    """Syntax only (absolute); that it runs and is 3.8+ is checked when the task is added."""
    if not os.path.isabs(path):
        raise ValueError(f"{path!r} is not an absolute path")
    return path


def check_webhook(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    return url


NODE_NAME_PATTERN: Final = r"^[A-Za-z0-9._-]{1,64}$"
"""A daemon's name among the daemons that share one database (``OMNIMIND_NODE_NAME``), as
a task's ``machines`` names it."""
NODE_NAME_RULE: Final = "1 to 64 letters, digits, '.', '_' or '-'"


def check_node_name(name: str) -> str:
    if not re.fullmatch(NODE_NAME_PATTERN, name):
        raise ValueError(f"{name!r} is not a node name: {NODE_NAME_RULE}")
    return name


Cron = Annotated[str, Field(max_length=200), AfterValidator(check_cron)]
TimeZoneName = Annotated[str, Field(max_length=64), AfterValidator(check_timezone)]
Environment = Annotated[dict[str, str], AfterValidator(check_environment)]
Secrets = Annotated[
    dict[str, str], AfterValidator(check_environment), AfterValidator(check_secrets)
]
PythonPath = Annotated[str, Field(max_length=4096), AfterValidator(check_python)]
NodeName = Annotated[str, Field(pattern=NODE_NAME_PATTERN)]
WebhookUrl = Annotated[str, Field(max_length=2048), AfterValidator(check_webhook)]


class NotifyEvent(StrEnum):
    """What a notification is sent for."""

    FAILURE = "failure"
    """A run that did not succeed (failed, timed out, killed, interrupted)."""
    RECOVERY = "recovery"
    """The first success after a failure."""
    SUCCESS = "success"
    """Every successful run."""


class NotifySpec(BaseModel):
    """A task's ``notify``: when to tell, and where (a webhook, the desktop). A model, not
    a dataclass like :class:`~._task.TaskSpec`: a strict body accepts a JSON object for a
    model, while a strict dataclass field would take only an instance."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    on: Annotated[
        tuple[Annotated[NotifyEvent, Field(strict=False)], ...],  # read from its word
        Field(
            strict=False,  # a JSON array of the words
            min_length=1,
            description="failure, recovery and/or success",
        ),
    ] = (NotifyEvent.FAILURE, NotifyEvent.RECOVERY)
    webhook: Annotated[WebhookUrl | None, Field(description="POST a JSON body to this URL")] = None
    desktop: Annotated[bool, Field(description="Show a desktop notification (session D-Bus)")] = (
        False
    )

    def wants(self, event: NotifyEvent) -> bool:
        return event in self.on


class Conditions(BaseModel):
    """A task's ``conditions``: each one set true must hold for a run to start, and a run
    admitted under them is frozen, cancelled or let run (``on_busy``) when one stops
    holding. False (the default) asks nothing."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    user_away: bool = Field(
        default=False, description="Run only while the person is away from keyboard and mouse"
    )
    on_ac_power: bool = Field(default=False, description="Run only on mains power")
    unmetered_network: bool = Field(
        default=False, description="Run only on a network connection that is not metered"
    )

    @property
    def required(self) -> tuple[str, ...]:
        """The names of the conditions asked for, in declaration order."""
        return tuple(name for name in CONDITION_NAMES if getattr(self, name))


CONDITION_NAMES: Final = tuple(Conditions.model_fields)
"""Every condition a task may ask for (``user_away``, ``on_ac_power``, ``unmetered_network``)."""
