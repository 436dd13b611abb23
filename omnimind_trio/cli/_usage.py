"""How the ``omnimind`` parser answers a mistake, and the walk over its commands.

A usage error is two lines on stderr: what is wrong, as typed, then where the help is::

    omnimind add: error: argument --priority: invalid choice: 'urgent' (choose from ...)
    see 'omnimind help add'

``omnimind help``, the completion scripts and the man page all read the parser through
:func:`subcommands` and :func:`walk`: the parser is the one description of the command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

PROGRAM = "omnimind"


class UsageError(Exception):
    """The command line itself is wrong (exit status 2), found after parsing: one line."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and a hint, not the whole usage."""

    def error(self, message: str) -> NoReturn:
        if message.endswith(": expected one argument"):
            # argparse reads a value that begins with '-' (a password, say) as an option.
            message += " (a value that begins with '-' is written --option=VALUE)"
        self.exit(2, f"{self.prog}: error: {message}\n{help_hint(self.prog)}\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # The choices without Python's quotes; the value as typed (see choice()).
        if action.choices is not None and value not in action.choices:
            listed = ", ".join(map(str, action.choices))
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r} (choose from {listed})"
            )


def help_hint(prog: str) -> str:
    """``see 'omnimind help add'`` for the parser named ``omnimind add``."""
    return f"see '{PROGRAM} help{prog.removeprefix(PROGRAM)}'"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """``parser``'s commands in their order: name -> (its parser, its one-line help)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return {name: (sub, helps.get(name, "")) for name, sub in action.choices.items()}
    return {}


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = (), text: str = ""
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str]]:
    """Every command under ``parser``, the program itself first: (the words naming it, its
    parser, its one-line help)."""
    yield path, parser, text
    for name, (sub, help_text) in subcommands(parser).items():
        yield from walk(sub, (*path, name), help_text)


def chosen(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``args`` were parsed by."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None)
            if isinstance(name, str) and name in action.choices:
                return chosen(action.choices[name], args)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, but an unknown option is reported by the command it was given
    to (``omnimind add: error: unrecognized arguments: --frob``), hinting at its help."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        message = f"unrecognized arguments: {' '.join(extra)}"
        ours = {flag for action in parser._actions for flag in action.option_strings}
        misplaced = [word for word in extra if word.partition("=")[0] in ours]
        if misplaced:
            flag = misplaced[0].partition("=")[0]
            message += f" ({flag} is an option of {PROGRAM} itself: give it before the command)"
        chosen(parser, args).error(message)
    return args


def print_help(parser: argparse.ArgumentParser, words: Sequence[str]) -> int:
    """``omnimind help [COMMAND...]``: the help ``omnimind COMMAND --help`` prints, on
    stdout; an unknown command is one line on stderr naming the choices (exit status 2)."""
    for depth, word in enumerate(words):
        commands = subcommands(parser)
        if word not in commands:
            where = " ".join((PROGRAM, *words[:depth]))
            what = "command" if depth == 0 else f"'{where}' command"
            print(
                f"{PROGRAM} help: error: unknown {what} {word!r} "
                f"(choose from {', '.join(commands) or 'none: it has no commands'})",
                file=sys.stderr,
            )
            return 2
        parser = commands[word][0]
    parser.print_help(sys.stdout)
    return 0


def settings_problems(exc: Any, options: dict[str, str]) -> list[str]:
    """A pydantic ``ValidationError`` of the settings as one line per problem, each naming
    what the user set: the command-line option (``options``: field name to option) or the
    ``OMNIMIND_*`` variable, with the value, then what is wrong, without pydantic's type
    codes and links."""
    lines = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:  # a rule between settings: its message names them
            lines.append(message)
            continue
        name = str(error["loc"][0])
        where = options.get(name) or f"OMNIMIND_{name.upper()}"
        lines.append(f"{where}={error['input']!r}: {message}")
    return lines
