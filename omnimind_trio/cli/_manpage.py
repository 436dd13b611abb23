"""``omnimind man``: the manual page, in roff (man(7)), written from the parser.

Every command with its synopsis and options comes from the parser, the environment and
the exit statuses from the tables beside it (``_parser.ENVIRONMENT``, ``EXIT_STATUS``), the
daemon's settings from :class:`~omnimind_trio.config.Settings`: a new option is in the
manual without anyone writing it there.
"""

from __future__ import annotations

import argparse
from typing import Final

from .._version import __version__
from ..config import Settings
from ._parser import ENVIRONMENT, EXIT_STATUS
from ._usage import walk

SERVE_EXIT_STATUS: Final = (
    "omnimind serve exits with 0 after a clean stop (SIGTERM, SIGINT), 1 when it cannot "
    "start (the port is taken, another daemon uses the database) and 2 for invalid settings."
)


def manpage(parser: argparse.ArgumentParser) -> str:
    """The whole program's manual page: synopsis, every command and option, environment,
    files and exit status."""
    lines = [
        f'.TH OMNIMIND 1 "" "omnimind {__version__}" "User Commands"',
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
            *_arguments(sub),
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


def _arguments(parser: argparse.ArgumentParser) -> list[str]:
    """A tagged paragraph per option and argument (the hidden ones left out)."""
    lines = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        lines += [".TP", _tag(action), _text((action.help or "").replace("%%", "%"))]
    return lines


def _tag(action: argparse.Action) -> str:
    if action.choices:
        value = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        value = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    if not action.option_strings:
        return f"\\fI{_escape(value)}\\fR"
    flags = ", ".join(f"\\fB{_escape(flag)}\\fR" for flag in action.option_strings)
    return flags if action.nargs == 0 else f"{flags} \\fI{_escape(value)}\\fR"


def _escape(text: str) -> str:
    """``text`` for roff: backslashes, and hyphens as the minus sign options are typed with."""
    return text.replace("\\", "\\e").replace("-", "\\-")


def _text(text: str) -> str:
    """A paragraph's text line: backslashes escaped, a leading dot or quote made literal."""
    text = " ".join(text.replace("\\", "\\e").split())
    return "\\&" + text if text.startswith((".", "'")) else text
