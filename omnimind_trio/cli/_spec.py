"""The command line as completion scripts need it, read from the parser.

:func:`commands` turns the parser (the one description of the command line) into
:class:`Command` records; each shell's script is written from them (``_bash``, ``_zsh``,
``_fish``), so a new command, option or choice completes without anyone editing a script.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Final

from ._usage import walk

WORD: Final = re.compile(r"[A-Za-z0-9_.,=+@%/:-]+")
"""What a command, option or choice may be spelt with: nothing a shell would interpret."""


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    help: str
    takes_value: bool
    kind: str
    """What its value completes with: "choice", "file", "dir", "task", or "" (nothing)."""
    choices: tuple[str, ...] = ()
    metavar: str = ""
    repeats: bool = False


@dataclass(frozen=True)
class Positional:
    name: str
    kind: str
    """"file", "task", "command" (the program's commands), "choice" or "" (nothing)."""
    choices: tuple[str, ...]
    optional: bool
    repeats: bool


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    """The words naming it: () for the program itself, ("credentials", "rotate")."""
    help: str
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]
    subcommands: tuple[tuple[str, str], ...]
    """(name, one-line help) of the commands under it."""

    @property
    def key(self) -> str:
        return " ".join(self.path)


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """Every command of ``parser``, the program itself first, as the scripts need them."""
    found = []
    for path, sub, text in walk(parser):
        options, positionals = [], []
        children: tuple[tuple[str, str], ...] = ()
        for action in sub._actions:
            if action.help == argparse.SUPPRESS:
                continue
            if isinstance(action, argparse._SubParsersAction):
                children = tuple(
                    (a.dest, _first_clause(a.help or "")) for a in action._choices_actions
                )
            elif action.option_strings:
                options.append(_option(action))
            else:
                positionals.append(_positional(action))
        found.append(Command(path, text, tuple(options), tuple(positionals), children))
    for command in found:  # what goes into the scripts unquoted
        names = [*command.path, *(name for name, _ in command.subcommands)]
        names += [word for o in command.options for word in (*o.flags, *o.choices)]
        names += [choice for p in command.positionals for choice in p.choices]
        for word in names:
            if not WORD.fullmatch(word):
                raise ValueError(f"{word!r} cannot go into a completion script unquoted")
    return found


def _option(action: argparse.Action) -> Option:
    takes_value = action.nargs != 0
    choices = tuple(str(c) for c in action.choices or ())
    metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    return Option(
        flags=tuple(action.option_strings),
        help=_first_clause(action.help or ""),
        takes_value=takes_value,
        kind=_kind(action.dest, metavar, choices) if takes_value else "",
        choices=choices,
        metavar=metavar if takes_value else "",
        repeats=isinstance(action, argparse._AppendAction),  # extend is one
    )


def _positional(action: argparse.Action) -> Positional:
    choices = tuple(str(c) for c in action.choices or ())
    metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
    kind = "command" if action.dest == "topic" else _kind(action.dest, metavar, choices)
    return Positional(
        name=metavar,
        kind=kind,
        choices=choices,
        optional=action.nargs in ("?", "*"),
        repeats=action.nargs in ("*", "+"),
    )


def _kind(dest: str, metavar: str, choices: tuple[str, ...]) -> str:
    if choices:
        return "choice"
    if metavar.startswith("TASK_ID") or dest == "after":
        return "task"
    if "FILE" in metavar or dest == "python":
        return "file"
    if dest == "home":
        return "dir"
    return ""


def _first_clause(text: str) -> str:
    """A help text cut for a completion menu: its first clause, without markup."""
    text = re.split(r"[;(]|: |(?<!e\.g)\. ", text.replace("`", ""), maxsplit=1)[0]
    return " ".join(text.split()).rstrip(",. ")
