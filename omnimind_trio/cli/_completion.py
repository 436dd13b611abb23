"""``omnimind completion bash|zsh|fish``: completion scripts generated from the parser.

:func:`commands` reads the parser (the one description of the command line) into
:class:`Command` records; each shell's script is written from them, so a new option or
choice completes without anyone editing a script. Task ids come from the running daemon:
the scripts call ``omnimind completion --task-ids``, which prints them one per line, or
nothing when no daemon answers within :data:`TASK_IDS_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ._parser import DEFAULT_URL
from ._password import resolve_auth
from ._runtime import find_daemon
from ._usage import UsageError, walk

TASK_IDS_TIMEOUT_SECONDS: Final = 1.0
"""A completion that waits longer than this feels broken: then it offers no ids."""

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
                    (name, _first_clause(a.help or ""))
                    for a in action._choices_actions
                    for name in [a.dest]
                )
            elif action.option_strings:
                options.append(_option(action))
            else:
                positionals.append(_positional(action))
        found.append(Command(path, text, tuple(options), tuple(positionals), children))
    for command in found:  # what goes into the scripts unquoted
        for word in (*command.path, *(n for n, _ in command.subcommands)):
            assert WORD.fullmatch(word), word
        for option in command.options:
            assert all(WORD.fullmatch(w) for w in (*option.flags, *option.choices)), option
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
    text = re.split(r"[;(]|: |\. ", text.replace("`", ""), maxsplit=1)[0]
    return " ".join(text.split()).rstrip(",. ")


# -- the command ---------------------------------------------------------------------------


def completion(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``omnimind completion SHELL`` prints the script; ``--task-ids`` the daemon's ids."""
    if args.task_ids:
        for task_id in task_ids(args, os.environ):
            print(task_id)
        return 0
    if args.shell is None:
        raise UsageError("completion needs a SHELL: bash, zsh or fish")
    from ._shells import fish_script, zsh_script

    write = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}[args.shell]
    sys.stdout.write(write(commands(parser)))
    return 0


def task_ids(args: argparse.Namespace, environ: Mapping[str, str]) -> list[str]:
    """The ids of the tasks of the daemon ``args`` (``--url``, ``--cacert``) or the runtime
    file name, with the credentials of the environment or its file; none when anything
    fails: a completion has nowhere to report it."""
    from ._client import ClientError, OmniMindClient

    try:
        found = None if args.url else find_daemon(environ)
        url = args.url or (found.url if found else DEFAULT_URL)
        auth = resolve_auth(None, None, environ, home=Path(found.home) if found else None)
        with OmniMindClient(
            url, auth=auth, cacert=args.cacert, timeout_seconds=TASK_IDS_TIMEOUT_SECONDS
        ) as client:
            tasks = client.list_tasks(sort="task_id")["tasks"]
        return [str(task["task_id"]) for task in tasks]
    except (ClientError, UsageError, OSError, ValueError, KeyError, TypeError):
        return []


# -- bash ------------------------------------------------------------------------------------


def bash_script(found: list[Command]) -> str:
    """A bash function completing the command line (bash 4+; no bash-completion needed)."""

    def cases(rows: dict[str, list[str]]) -> str:
        return "\n".join(
            f"        {' | '.join(_bash_quote(k) for k in keys)}) {body} ;;"
            for body, keys in rows.items()
        )

    takes_value: list[str] = []
    values: dict[str, list[str]] = {}
    places: dict[str, list[str]] = {}
    for command in found:
        for option in command.options:
            if option.takes_value:
                keys = [f"{command.key}|{flag}" for flag in option.flags]
                takes_value += keys
                body = _BASH_KINDS.get(option.kind, "")
                if option.kind == "choice":
                    body = f"_omnimind_choices {' '.join(option.choices)}"
                if body:
                    values.setdefault(body, []).extend(keys)
        for index, positional in enumerate(command.positionals):
            body = _BASH_KINDS.get(positional.kind, "")
            if positional.kind == "choice":
                body = f"_omnimind_choices {' '.join(positional.choices)}"
            if positional.kind == "command":
                body = f"_omnimind_choices {' '.join(n for n, _ in found[0].subcommands)}"
            if body:
                # A repeated one (help's COMMAND...) matches any position: it is the first.
                assert index == 0 or not positional.repeats, command
                key = f"{command.key}|" + ("*" if positional.repeats else str(index))
                places.setdefault(body, []).append(key)
    options: dict[str, list[str]] = {}
    subs: dict[str, list[str]] = {}
    for command in found:
        flags = " ".join(flag for option in command.options for flag in option.flags)
        options.setdefault(f'words="{flags}"', []).append(command.key)
        if command.subcommands:
            names = " ".join(name for name, _ in command.subcommands)
            subs.setdefault(f'words="{names}"', []).append(command.key)
    return (
        _BASH.replace("@OPTIONS@", cases(options))
        .replace("@SUBCOMMANDS@", cases(subs))
        .replace("@TAKES_VALUE@", cases({"return 0": takes_value}))
        .replace("@VALUES@", cases(values))
        .replace("@POSITIONALS@", cases(places))
    )


def _bash_quote(key: str) -> str:
    """A case pattern matching ``key`` literally, but for a trailing ``*`` (any index)."""
    star = key.endswith("*")
    return f'"{key.removesuffix("*")}"' + ("*" if star else "")


_BASH_KINDS: Final = {
    "file": "_omnimind_files",
    "dir": "_omnimind_files -d",
    "task": "_omnimind_tasks",
}

_BASH: Final = r"""# bash completion for omnimind, generated by `omnimind completion bash`.
# Install: eval "$(omnimind completion bash)" in ~/.bashrc, or save it as
# ~/.local/share/bash-completion/completions/omnimind.

_omnimind_options() { # the options of command $1
    local words=""
    case $1 in
@OPTIONS@
    esac
    printf '%s\n' "$words"
}

_omnimind_subcommands() { # the commands under command $1
    local words=""
    case $1 in
@SUBCOMMANDS@
    esac
    printf '%s\n' "$words"
}

_omnimind_takes_value() { # does option $2 of command $1 take a value?
    case "$1|$2" in
@TAKES_VALUE@
    esac
    return 1
}

_omnimind_choices() { # the words given that start with $value, in any case
    local word
    for word in "$@"; do
        [[ ${word,,} == "${value,,}"* ]] && COMPREPLY+=("$word")
    done
}

_omnimind_files() {
    compopt -o filenames 2>/dev/null
    local IFS=$'\n'
    COMPREPLY+=($(compgen "${1:--f}" -- "$value"))
}

_omnimind_tasks() { # the running daemon's task ids (none if it does not answer)
    local IFS=$'\n'
    COMPREPLY+=($(compgen -W "$("$prog" "${daemon[@]}" completion --task-ids 2>/dev/null)" \
        -- "$value"))
}

_omnimind_value() { # complete $value, the value of option $2 of command $1
    case "$1|$2" in
@VALUES@
    esac
}

_omnimind_positional() { # complete $value, argument $2 (from 0) of command $1
    case "$1|$2" in
@POSITIONALS@
    esac
}

_omnimind() {
    COMPREPLY=()
    # bash splits words at = and : (COMP_WORDBREAKS): glue --opt=value and URLs back.
    local -a words=()
    local i w cword=0 glue=0
    for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
        w=${COMP_WORDS[i]}
        if ((i > 0)) && [[ $w == [=:] || $glue == 1 ]]; then
            words[${#words[@]}-1]+=$w
            [[ $w == [=:] ]] && glue=1 || glue=0
        else
            words+=("$w")
            glue=0
        fi
        ((i == COMP_CWORD)) && cword=$((${#words[@]} - 1))
    done
    local prog=${words[0]/#\~/$HOME} path="" position=0 option="" value=${words[cword]}
    local -a daemon=() # --url and --cacert, for the task ids
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        if [[ -n $option ]]; then
            [[ -z $path && ($option == --url || $option == --cacert) ]] && daemon+=("$option" "$w")
            option=""
        elif [[ $w == -?* ]]; then
            [[ $w != *=* ]] && _omnimind_takes_value "$path" "$w" && option=$w
            [[ -z $path && ($w == --url=* || $w == --cacert=*) ]] && daemon+=("$w")
        elif [[ " $(_omnimind_subcommands "$path") " == *" $w "* ]]; then
            path=${path:+$path }$w
            position=0
        else
            ((position++))
        fi
    done
    if [[ -z $option && $value == -*=* ]] && _omnimind_takes_value "$path" "${value%%=*}"; then
        option=${value%%=*}
        value=${value#*=}
    fi
    if [[ -n $option ]]; then
        _omnimind_value "$path" "$option"
    elif [[ $value == -* ]]; then
        local IFS=$' \t\n'
        COMPREPLY=($(compgen -W "$(_omnimind_options "$path")" -- "$value"))
    elif [[ -n $(_omnimind_subcommands "$path") ]]; then
        local IFS=$' \t\n'
        COMPREPLY=($(compgen -W "$(_omnimind_subcommands "$path")" -- "$value"))
    else
        _omnimind_positional "$path" "$position"
    fi
    # bash replaces only what follows the word's last = or : (my:file.py): drop the rest.
    local typed=${COMP_WORDS[COMP_CWORD]}
    [[ $typed == [=:] ]] && typed=""
    if [[ $value == *"$typed" && -n ${value%"$typed"} ]]; then
        for i in "${!COMPREPLY[@]}"; do
            COMPREPLY[i]=${COMPREPLY[i]#"${value%"$typed"}"}
        done
    fi
}

complete -F _omnimind omnimind
"""
