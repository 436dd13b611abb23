"""``omnimind man``: the manual page, in roff (man(7)), written from the parser.

Every command with its synopsis and options comes from the parser, the exit statuses from
``_parser.EXIT_STATUS``, the daemon's settings from :class:`~omnimind_trio.config.Settings`:
a new option is in the manual without anyone writing it there.
"""

from __future__ import annotations

import argparse
import re
from typing import Final

from .._version import __version__
from ..config import Settings
from ._parser import EXIT_STATUS
from ._usage import walk

ENVIRONMENT: Final = (
    ("OMNIMIND_URL", "the daemon's base URL, when --url is not given"),
    ("OMNIMIND_CACERT", "the PEM file of the CA to trust, when --cacert is not given"),
    (
        "OMNIMIND_DASHBOARD_USER",
        "with OMNIMIND_DASHBOARD_PASS: the credentials, when --user is not given",
    ),
    ("OMNIMIND_DASHBOARD_PASS", "the password that goes with OMNIMIND_DASHBOARD_USER"),
    (
        "OMNIMIND_HOME",
        "the daemon's home: its config/dashboard_auth.json holds the credentials (default: "
        "the home of the daemon this user runs, from its runtime file, else the current "
        "directory); for serve and credentials rotate, the home itself",
    ),
    ("OMNIMIND_TIMEZONE", "the time zone of next (and of the daemon)"),
    (
        "XDG_RUNTIME_DIR",
        "the runtime file is $XDG_RUNTIME_DIR/omnimind/daemon.json (else "
        "$XDG_STATE_HOME/omnimind/daemon.json, by default under ~/.local/state): the URL "
        "and home of the daemon this user runs",
    ),
)
"""The environment variables the client commands read; ``serve`` reads every setting as
``OMNIMIND_<SETTING>`` too (docs/configuration.md)."""

SERVE_EXIT_STATUS: Final = (
    "omnimind serve exits with 0 after a clean stop (SIGTERM, SIGINT), 1 when it cannot "
    "start (the port is taken, another daemon uses the database) and 2 for invalid settings."
)


def manpage(parser: argparse.ArgumentParser) -> str:
    """The whole program's manual page: synopsis, every command and option, environment,
    files and exit status."""
    lines = [
        f'.TH OMNIMIND 1 "" "omnimind {__version__}" "User Commands"',
        ".nh",  # no hyphenation: options are copied from it
        ".ad l",
        ".SH NAME",
        "omnimind \\- a local background-task daemon and its command line",
        ".SH SYNOPSIS",
        _synopsis(parser),
        ".br",
        "\\fBomnimind help\\fR [\\fICOMMAND\\fR]",
        ".SH DESCRIPTION",
        _text(parser.description or ""),
        ".PP",
        _text(
            "The options below come before the command; --json is accepted after it too. "
            "omnimind COMMAND --help, or omnimind help COMMAND, describes one command."
        ),
        ".SH OPTIONS",
        *_arguments(parser),
        ".SH COMMANDS",
    ]
    for path, sub, text in walk(parser):
        if not path:
            continue
        lines += [
            f'.SS "{_escape(" ".join(path))}"',
            _synopsis(sub),
            ".PP",
            _text(sub.description or text),
            *_arguments(sub, with_help=False),
        ]
    settings = ", ".join(f"OMNIMIND_{name.upper()}" for name in Settings.model_fields)
    lines += [
        ".SH ENVIRONMENT",
        *(
            line
            for name, meaning in ENVIRONMENT
            for line in (".TP", f"\\fB{name}\\fR", _text(meaning))
        ),
        ".PP",
        _text(
            "omnimind serve reads its settings from the environment: "
            f"{settings} (docs/configuration.md describes each)."
        ),
        ".SH FILES",
        ".TP",
        "\\fI$OMNIMIND_HOME/config/dashboard_auth.json\\fR",
        _text(
            "the credentials the daemon generates on its first start (mode 0600); the client "
            "commands read them from there when no other credentials are given"
        ),
        ".TP",
        "\\fI$XDG_RUNTIME_DIR/omnimind/daemon.json\\fR",
        _text("the URL and home of the daemon this user runs, while it runs"),
        ".SH EXIT STATUS",
        *(
            line
            for code, meaning in EXIT_STATUS
            for line in (".TP", f"\\fB{code}\\fR", _text(meaning))
        ),
        ".PP",
        _text(SERVE_EXIT_STATUS),
        ".SH SEE ALSO",
        _text(
            "The documentation in the source tree: README.md, docs/cli.md (this command), "
            "docs/api.md (the REST API), docs/configuration.md, docs/operations.md."
        ),
    ]
    return "\n".join(lines) + "\n"


def _synopsis(parser: argparse.ArgumentParser) -> str:
    """The parser's usage on one line (roff fills it), its program name in bold."""
    formatter = argparse.HelpFormatter(prog=parser.prog, width=1_000_000)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, "")
    usage = formatter.format_help().strip()
    rest = usage.removeprefix(parser.prog)
    return f"\\fB{_escape(parser.prog)}\\fR{_escape(rest)}"


def _arguments(parser: argparse.ArgumentParser, *, with_help: bool = True) -> list[str]:
    """A tagged paragraph per argument, then per option (the hidden ones left out, and
    ``--help`` but for the program's)."""
    lines = []
    actions = sorted(parser._actions, key=lambda action: bool(action.option_strings))
    for action in actions:
        if (
            action.help == argparse.SUPPRESS
            or isinstance(action, argparse._SubParsersAction)
            or (isinstance(action, argparse._HelpAction) and not with_help)
        ):
            continue
        lines += [".TP", _tag(action), _text((action.help or "").replace("%%", "%"))]
    return lines


def _tag(action: argparse.Action) -> str:
    if isinstance(action.metavar, str):
        value = action.metavar
    elif action.choices:
        value = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        value = action.dest.upper()
    if not action.option_strings:
        return f"\\fI{_escape(value)}\\fR"
    flags = ", ".join(f"\\fB{_escape(flag)}\\fR" for flag in action.option_strings)
    return flags if action.nargs == 0 else f"{flags} \\fI{_escape(value)}\\fR"


def _escape(text: str) -> str:
    """``text`` for roff: backslashes, and hyphens as the minus sign options are typed with."""
    return text.replace("\\", "\\e").replace("-", "\\-")


def _text(text: str) -> str:
    """A paragraph's text line: backslashes escaped, `commands` in bold, a leading dot or
    quote made literal."""
    text = " ".join(text.replace("\\", "\\e").split())
    text = re.sub(r"`([^`]+)`", lambda m: f"\\fB{_escape(m[1])}\\fR", text)
    return "\\&" + text if text.startswith((".", "'")) else text
