"""The command line's manners: ``-V``, ``help``, usage errors in two lines, completion
scripts that complete in the real shells, the man page, and passwords off the command line.

Parser behaviour runs in-process through ``main()``. The completion scripts run in bash
(``COMP_WORDS``/``COMP_CWORD`` and the completion function), in zsh (an interactive zsh on a
pseudo-terminal, driven by ``zsh/zpty``, a Tab typed) and in fish (``complete -C``); task
ids and the passwords need a daemon: one ``omnimind serve`` for the module.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pty
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnimind_trio._version import __version__
from omnimind_trio.cli._bash import bash_script
from omnimind_trio.cli._parser import build_parser
from omnimind_trio.cli._password import VISIBLE_WARNING, read_password_file, resolve_auth
from omnimind_trio.cli._spec import commands
from omnimind_trio.cli._usage import UsageError, parse, walk

from .conftest import SLEEP_WINDOW
from .test_cli import Ran, clean_env, cli  # noqa: F401 (clean_env: an autouse fixture)
from .test_process import Served, free_port, launch

USER = "manners-user"
PASS = "manners-pass-1234"
PROGRAM = str(Path(sys.executable).with_name("omnimind"))
"""The installed entry point, which the scripts call back for task ids."""
TASK_IDS = ("alpha", "beta.two", "gamma-3")
"""Added to the module's daemon, beside its own database_optimization."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One daemon with three tasks (LOW: they never run here)."""
    root = tmp_path_factory.mktemp("manners")
    home, workspace = root / "home", root / "home" / "workspace"
    workspace.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIMIND_")}
    env.update(
        OMNIMIND_HOME=str(home),
        OMNIMIND_WORKSPACE=str(workspace),
        OMNIMIND_DASHBOARD_USER=USER,
        OMNIMIND_DASHBOARD_PASS=PASS,
        OMNIMIND_SLEEP_WINDOW=SLEEP_WINDOW,
    )
    daemon = launch(home, env, workspace=workspace, credentials=(USER, PASS))
    try:
        daemon.wait_serving()
        client = daemon.client()
        for task_id in TASK_IDS:
            body = {"task_id": task_id, "name": task_id, "description": "", "priority": "LOW"}
            body["code"] = "def execute():\n    return 1\n"
            client.post("/daemon/tasks/add", json=body).raise_for_status()
        yield daemon
    finally:
        daemon.kill_all()


@pytest.fixture(scope="module")
def ids(served: Served) -> list[str]:
    """Every task id of the module's daemon, sorted: the added ones and its own."""
    tasks = served.client().get("/daemon/tasks").json()["tasks"]
    found = sorted(task["task_id"] for task in tasks)
    assert set(TASK_IDS) < set(found)
    return found


def shell_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIMIND_")}
    env.update(extra)
    return env


# -- version, help and usage errors ----------------------------------------------------------


def test_version_with_V_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("-V", "--version"):
        assert cli(capsys, flag) == Ran(0, f"omnimind {__version__}\n", "")


def test_help_is_what_dash_dash_help_prints(capsys: pytest.CaptureFixture[str]) -> None:
    for words in ([], ["add"], ["tasks"], ["credentials"], ["credentials", "rotate"]):
        helped = cli(capsys, "help", *words)
        dashed = cli(capsys, *words, "--help")
        assert helped.code == dashed.code == 0
        assert helped.out == dashed.out and helped.out.startswith("usage: omnimind")
        assert helped.err == ""
    assert "--priority {CRITICAL,HIGH,MEDIUM,LOW}" in cli(capsys, "help", "add").out


def test_help_of_an_unknown_command_is_one_line_naming_the_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ran = cli(capsys, "help", "frobnicate")
    assert (ran.code, ran.out) == (2, "")
    assert ran.err.count("\n") == 1
    assert "'frobnicate'" in ran.err and "serve, status, tasks, add" in ran.err
    ran = cli(capsys, "help", "credentials", "spin")
    assert ran.code == 2 and ran.err.count("\n") == 1
    assert "'spin'" in ran.err and "(choose from rotate)" in ran.err


def test_an_invalid_choice_is_two_lines_quoting_what_was_typed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ran = cli(capsys, "add", "f.py", "--id", "r2", "--priority", "urgent")
    assert (ran.code, ran.out) == (2, "")
    assert ran.err.splitlines() == [
        "omnimind add: error: argument --priority: invalid choice: 'urgent' "
        "(choose from CRITICAL, HIGH, MEDIUM, LOW)",
        "see 'omnimind help add'",
    ]
    ran = cli(capsys, "edit", "r2", "--on-busy", "Sleep")
    assert ran.code == 2
    assert "invalid choice: 'Sleep' (choose from freeze, continue, cancel)" in ran.err


def test_choices_are_case_insensitive_on_input() -> None:
    parser = build_parser()
    args = parse(parser, ["add", "f.py", "--id", "x", "--priority", "high", "--on-busy", "CANCEL"])
    assert (args.priority, args.on_busy) == ("HIGH", "cancel")
    assert parse(parser, ["serve", "--log-level", "debug"]).log_level == "DEBUG"
    assert parse(parser, ["completion", "BASH"]).shell == "bash"


def test_every_usage_error_is_at_most_two_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # never contacted: usage is checked first
    cases = {
        (): "the following arguments are required: COMMAND",
        ("frobnicate",): "invalid choice: 'frobnicate' (choose from serve, status,",
        ("add", "f.py"): "the following arguments are required: --id",
        ("add", "f.py", "--id", "x", "--frob"): "unrecognized arguments: --frob",
        ("add", "f.py", "--id", "x", "--url", url): "--url is an option of omnimind itself",
        ("tasks", "--limit", "many"): "argument --limit: invalid int value: 'many'",
        ("next", "@daily", "-n", "0"): "must be 1 to 1000, not 0",
        ("serve", "--log-format", "xml"): "invalid choice: 'xml' (choose from text, json)",
        ("credentials", "rotate", "--viewer", "--no-viewer"): "not allowed with argument",
        ("--url", "localhost:8000", "status"): "--url must be an http:// or https:// URL",
        ("--url", url, "add", str(tmp_path / "none.py"), "--id", "x"): "cannot read",
        ("--url", url, "--user", "u", "status"): "--user needs its password",
        ("completion",): "completion needs a SHELL: bash, zsh or fish",
        ("next", "61 * * * *"): "Bad minute",
        ("--user", "u", "--password", "-pw", "status"): "is written --option=VALUE",
    }
    for args, expected in cases.items():
        ran = cli(capsys, *args)
        assert (ran.code, ran.out) == (2, ""), args
        lines = ran.err.splitlines()
        assert 1 <= len(lines) <= 2 and expected in lines[0], (args, ran.err)
        assert lines[0].startswith("omnimind"), args
        if len(lines) == 2:
            assert re.fullmatch(r"see 'omnimind help( [a-z]+)*'", lines[1]), args


# -- completion: bash ------------------------------------------------------------------------


def bash_complete(script: str, *words: str, env: dict[str, str] | None = None) -> list[str]:
    """What bash's completion function offers for ``words`` (the last is being typed), as
    bash splits them (``=`` and ``:`` are words of their own)."""
    split = [piece for word in words for piece in re.split(r"([=:])", word) if piece] + (
        [""] if words[-1] == "" else []
    )
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in split)
    program = f"""
        {script}
        COMP_WORDS=({quoted})
        COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
        _omnimind
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        env=env or shell_env(),
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


@pytest.fixture(scope="module")
def bash_completion() -> str:
    return bash_script(commands(build_parser()))


def test_bash_completes_commands_options_and_choices(bash_completion: str, tmp_path: Path) -> None:
    def complete(*words: str) -> list[str]:
        return bash_complete(bash_completion, PROGRAM, *words)

    assert complete("ad") == ["add"]
    assert complete("re") == ["resume"]
    assert "completion" in complete("")
    assert complete("add", "f.py", "--prio") == ["--priority"]
    assert complete("--pass") == ["--password-file", "--password"]
    assert complete("add", "f.py", "--priority", "") == ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    assert complete("add", "f.py", "--priority", "h") == ["HIGH"]  # any case
    assert complete("add", "f.py", "--priority=") == ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    assert complete("add", "f.py", "--priority=m") == ["MEDIUM"]
    # The global options before the command are skipped, with their values (a URL too).
    assert complete("--url", "http://127.0.0.1:1", "--json", "edit", "x", "--on-busy", "c") == [
        "continue",
        "cancel",
    ]
    assert complete("credentials", "") == ["rotate"]
    assert complete("credentials", "rotate", "--v") == ["--viewer"]
    assert complete("completion", "") == ["bash", "zsh", "fish"]
    assert complete("serve", "--log-format", "") == ["text", "json"]
    assert complete("help", "cr") == ["credentials"]
    # File names where a file is wanted, a colon in one included.
    (tmp_path / "my:job.py").write_text("")
    (tmp_path / "myfiles").mkdir()
    assert sorted(complete("add", str(tmp_path / "my"))) == [
        str(tmp_path / "my:job.py"),
        str(tmp_path / "myfiles"),
    ]
    assert complete("add", str(tmp_path / "my:j")) == ["job.py"]  # bash replaces after the ':'
    assert complete("credentials", "rotate", "--home", str(tmp_path / "m")) == [
        str(tmp_path / "myfiles")
    ]


def test_a_new_option_completes_without_editing_a_script() -> None:
    """The scripts are written from the parser: an option added to it completes."""
    parser = build_parser()
    add = dict((p, sub) for p, sub, _ in walk(parser))[("add",)]
    add.add_argument("--colour", choices=["red", "green"], help="a colour")
    script = bash_script(commands(parser))
    assert bash_complete(script, PROGRAM, "add", "f.py", "--col") == ["--colour"]
    assert bash_complete(script, PROGRAM, "add", "f.py", "--colour", "") == ["red", "green"]


@pytest.mark.slow
def test_bash_completes_task_ids_from_the_running_daemon(
    bash_completion: str, served: Served, ids: list[str]
) -> None:
    env = shell_env(OMNIMIND_DASHBOARD_USER=USER, OMNIMIND_DASHBOARD_PASS=PASS)

    def complete(*words: str) -> list[str]:
        return bash_complete(bash_completion, PROGRAM, "--url", served.url, *words, env=env)

    assert complete("show", "") == ids
    assert complete("run", "b") == ["beta.two"]
    assert complete("logs", "g") == ["gamma-3"]
    assert complete("edit", "alpha", "--after", "") == ids
    assert complete("add", "task.py", "--id", "") == []  # a new id: none of the existing
    # No daemon answering: no ids, and no error on the screen.
    dead = f"http://127.0.0.1:{free_port()}"
    assert bash_complete(bash_completion, PROGRAM, "--url", dead, "show", "", env=env) == []


@pytest.mark.slow
def test_task_ids_helper(
    capsys: pytest.CaptureFixture[str], served: Served, ids: list[str]
) -> None:
    os.environ.update(OMNIMIND_DASHBOARD_USER=USER, OMNIMIND_DASHBOARD_PASS=PASS)
    # --url given, else the daemon this user runs (its runtime file).
    assert cli(capsys, "--url", served.url, "completion", "--task-ids") == Ran(
        0, "".join(f"{task_id}\n" for task_id in ids), ""
    )
    assert cli(capsys, "completion", "--task-ids").out.split() == ids
    del os.environ["OMNIMIND_DASHBOARD_PASS"]  # refused (401): nothing, quietly
    assert cli(capsys, "--url", served.url, "completion", "--task-ids") == Ran(0, "", "")


def test_task_ids_helper_gives_up_quickly_on_a_daemon_that_does_not_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as mute:  # connections are accepted by the kernel, never answered
        mute.bind(("127.0.0.1", 0))
        mute.listen(8)
        url = f"http://127.0.0.1:{mute.getsockname()[1]}"
        started = time.monotonic()
        ran = cli(capsys, "--url", url, "completion", "--task-ids")
        elapsed = time.monotonic() - started
    assert ran == Ran(0, "", "")
    assert elapsed < 3.0


# -- completion: zsh and fish ----------------------------------------------------------------

ZSH_DRIVER = r"""
# zsh -f driver.zsh SCRIPT LINE: the matches an interactive zsh offers when Tab is typed
# after LINE, one per line (compadd is wrapped to print what it adds).
zmodload zsh/zpty
zpty shell zsh -f -i
zpty -w shell "PROMPT= ; autoload -U compinit; compinit -u -D"
zpty -w shell "source ${(q)1}"
zpty -w shell 'm=MATCH; compadd() {
    if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
    local -a hits; builtin compadd -A hits "$@"; print -rl -- ${^hits/#/$m=}
    builtin compadd "$@"; }'
zpty -w shell 'comppostfuncs=( finish ); finish() { print -r -- $m=END; exit }'
zpty -w shell "bindkey '^I' complete-word"
zpty -w -n shell "$2"$'\t'
local out line
zpty -r -m shell out '*MATCH=END*'
for line in ${(f)out//$'\r'/}; do
    [[ $line == *MATCH=END* ]] && break
    [[ $line == *MATCH=* ]] && print -r -- ${line##*MATCH=}
done
zpty -d shell
"""


def need(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} is not installed (apt-get install {shell})")
    return path


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("completion")
    found = {}
    for shell in ("bash", "zsh", "fish"):
        out = subprocess.run(
            [PROGRAM, "completion", shell], capture_output=True, text=True, check=True
        ).stdout
        found[shell] = root / f"omnimind.{shell}"
        found[shell].write_text(out)
    (root / "driver.zsh").write_text(ZSH_DRIVER)
    return found


def test_every_script_names_every_command_and_option(scripts: dict[str, Path]) -> None:
    for shell, path in scripts.items():
        text = path.read_text()
        for command in commands(build_parser()):
            for name, _ in command.subcommands:
                assert re.search(rf"\b{name}\b", text), (shell, name)
            for option in command.options:
                for flag in option.flags:
                    spelt = flag.lstrip("-") if shell == "fish" else flag
                    assert spelt in text, (shell, flag)
                for choice in option.choices:
                    assert choice in text, (shell, choice)
        assert "completion --task-ids" in text, shell


def test_bash_zsh_and_fish_accept_their_scripts(scripts: dict[str, Path]) -> None:
    assert subprocess.run(["bash", "-n", scripts["bash"]]).returncode == 0
    for shell in ("zsh", "fish"):
        done = subprocess.run([need(shell), "-n", scripts[shell]], capture_output=True, text=True)
        assert (done.returncode, done.stderr) == (0, ""), shell


def zsh_complete(
    scripts: dict[str, Path], line: str, env: dict[str, str] | None = None
) -> list[str]:
    done = subprocess.run(
        [need("zsh"), "-f", scripts["zsh"].with_name("driver.zsh"), scripts["zsh"], line],
        capture_output=True,
        text=True,
        timeout=30,
        env=env or shell_env(),
        cwd=scripts["zsh"].parent,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def fish_complete(
    scripts: dict[str, Path], line: str, env: dict[str, str] | None = None
) -> list[str]:
    done = subprocess.run(
        [need("fish"), "--no-config", "-c", f"source {scripts['fish']}; complete -C {line!r}"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env or shell_env(),
    )
    assert done.returncode == 0, done.stderr
    return [row.split("\t")[0] for row in done.stdout.splitlines()]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_complete_commands_options_and_choices(
    scripts: dict[str, Path], shell: str
) -> None:
    complete = zsh_complete if shell == "zsh" else fish_complete

    def offered(line: str) -> set[str]:
        return set(complete(scripts, f"{PROGRAM} {line}"))

    assert offered("ad") == {"add"}
    assert offered("add f.py --prio") == {"--priority"}
    assert offered("add f.py --priority ") == {"CRITICAL", "HIGH", "MEDIUM", "LOW"}
    assert offered("--url http://127.0.0.1:1 edit x --on-busy ") == {"freeze", "continue", "cancel"}
    assert offered("credentials ") == {"rotate"}
    assert {"--viewer", "--no-viewer", "--home"} <= offered("credentials rotate --")
    assert offered("completion ") == {"bash", "zsh", "fish"}


@pytest.mark.slow
@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_complete_task_ids(
    scripts: dict[str, Path], served: Served, ids: list[str], shell: str
) -> None:
    complete = zsh_complete if shell == "zsh" else fish_complete
    env = shell_env(OMNIMIND_DASHBOARD_USER=USER, OMNIMIND_DASHBOARD_PASS=PASS)
    line = f"{PROGRAM} --url {served.url} show "
    assert sorted(complete(scripts, line, env)) == ids
    dead = f"{PROGRAM} --url http://127.0.0.1:{free_port()} show "
    assert complete(scripts, dead, env) == []


# -- the man page ----------------------------------------------------------------------------


def test_man_page_renders_with_every_command_and_option(capsys: pytest.CaptureFixture[str]) -> None:
    ran = cli(capsys, "man")
    assert ran.code == 0 and ran.err == ""
    assert ran.out.startswith(".TH OMNIMIND 1 ")
    groff = shutil.which("groff")
    if groff is None:
        pytest.skip("groff is not installed (apt-get install groff-base)")
    rendered = subprocess.run(
        [groff, "-man", "-Tutf8", "-ww", "-P-c", "-P-b", "-P-u"],
        input=ran.out,
        capture_output=True,
        text=True,
        check=True,
    )
    assert rendered.stderr == ""  # -ww: every warning
    text = rendered.stdout.replace("\u2010", "-").replace("\u2212", "-")
    sections = re.findall(r"^   (\S.*)$", text, re.MULTILINE)  # .SS headings
    parser = build_parser()
    assert sections == [" ".join(path) for path, _, _ in walk(parser) if path]
    for heading in ("SYNOPSIS", "OPTIONS", "COMMANDS", "ENVIRONMENT", "EXIT STATUS"):
        assert re.search(rf"^{heading}$", text, re.MULTILINE), heading
    for _, sub, _ in walk(parser):
        for action in sub._actions:
            for flag in action.option_strings:
                if action.help != argparse.SUPPRESS:
                    assert flag in text, flag
    for name in ("OMNIMIND_URL", "OMNIMIND_CACERT", "OMNIMIND_HOME", "OMNIMIND_PORT"):
        assert name in text
    man = shutil.which("man")
    if man is not None:  # what a person types
        shown = subprocess.run(
            [man, "-l", "-"],
            input=ran.out,
            capture_output=True,
            text=True,
            env=shell_env(MANPAGER="cat"),
        )
        assert shown.returncode == 0 and "omnimind credentials rotate" in shown.stdout


# -- passwords off the command line ----------------------------------------------------------


def test_read_password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def stored(content: bytes) -> str:
        path = tmp_path / "pw"
        path.write_bytes(content)
        return read_password_file(str(path))

    assert stored(b"s3cret\n") == "s3cret"  # one trailing newline dropped
    assert stored(b"s3cret\r\n") == "s3cret"
    assert stored(b" spaced s3cret ") == " spaced s3cret "  # nothing else
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from-stdin\n")))
    assert read_password_file("-") == "from-stdin"
    refused = {
        b"": "the password file {} is empty",
        b"\n": "the password file {} is empty",
        b"one\ntwo\n": "the password file {} holds more than one line",
        b"\xff\xfe": "the password file {} is not UTF-8 text",
        b"x" * 5000: "the password file {} is over 4096 bytes",
    }
    for content, message in refused.items():
        with pytest.raises(UsageError) as caught:
            stored(content)
        assert str(caught.value) == message.format(tmp_path / "pw")
    with pytest.raises(
        UsageError, match=r"^cannot read the password file /nonexistent/pw: No such"
    ):
        read_password_file("/nonexistent/pw")
    with pytest.raises(UsageError, match=r"cannot read the password file .*: Is a directory"):
        read_password_file(str(tmp_path))


def test_resolve_auth_with_password_file_and_prompt(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    asked: list[str] = []

    def prompt(user: str) -> str:
        asked.append(user)
        return "typed"

    env = {"OMNIMIND_DASHBOARD_USER": "env-user", "OMNIMIND_DASHBOARD_PASS": "env-pass"}
    assert resolve_auth("u", None, env, password_file=str(pw), prompt=prompt) == ("u", "from-file")
    assert resolve_auth("u", "given", env, prompt=prompt) == ("u", "given")
    assert resolve_auth("u", None, env, prompt=prompt) == ("u", "typed")
    assert asked == ["u"]  # asked only when nothing else gives the password
    assert resolve_auth(None, None, env, prompt=prompt) == ("env-user", "env-pass")
    errors = [
        (
            {"user": "u", "password": "p", "password_file": str(pw)},
            "give --password or --password-file, not both",
        ),
        ({"user": None, "password_file": str(pw)}, "--password-file needs --user"),
        ({"user": None, "password": "p"}, "--password needs --user"),
        (
            {"user": "u"},
            "--user needs its password: --password-file FILE (- for standard input), "
            "or run on a terminal to be asked for it",
        ),
    ]
    for given, message in errors:
        kwargs = {"password": None, **given}
        with pytest.raises(UsageError) as caught:
            resolve_auth(kwargs.pop("user"), kwargs.pop("password"), env, **kwargs)
        assert str(caught.value) == message


def test_password_usage_errors_exit_2_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # never contacted
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    cases = {
        ("--user", "u", "--password-file", str(tmp_path / "missing"), "status"): (
            f"omnimind: cannot read the password file {tmp_path / 'missing'}: "
            "No such file or directory"
        ),
        ("--user", "u", "--password", "p", "--password-file", str(pw), "status"): (
            "omnimind: give --password or --password-file, not both"
        ),
        ("--password-file", str(pw), "status"): "omnimind: --password-file needs --user",
        ("--user", "u", "--password-file", "-", "add", "-", "--id", "x"): (
            "omnimind: standard input cannot hold both the password and the code or batch"
        ),
    }
    for args, message in cases.items():
        ran = cli(capsys, "--url", url, *args)
        assert (ran.code, ran.out, ran.err) == (2, "", message + "\n"), args


@pytest.mark.slow
def test_password_file_and_stdin_against_the_daemon(
    capsys: pytest.CaptureFixture[str], served: Served, tmp_path: Path
) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASS + "\n")
    ran = cli(
        capsys, "--url", served.url, "--user", USER, "--password-file", str(pw), "--json", "status"
    )
    assert (ran.code, ran.err) == (0, "")
    assert json.loads(ran.out)["tasks_registered"] >= len(TASK_IDS)
    pw.write_text("wrong\n")
    ran = cli(capsys, "--url", served.url, "--user", USER, "--password-file", str(pw), "status")
    assert ran.code == 1 and "(HTTP 401)" in ran.err
    done = subprocess.run(
        [PROGRAM, "--url", served.url, "--user", USER, "--password-file", "-", "show", "alpha"],
        input=PASS + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        env=shell_env(),
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert "task id:" in done.stdout and "alpha" in done.stdout


@pytest.mark.slow
def test_password_on_the_command_line_works_and_warns(
    capsys: pytest.CaptureFixture[str], served: Served
) -> None:
    ran = cli(capsys, "--url", served.url, "--user", USER, "--password", PASS, "status")
    assert ran.code == 0
    assert ran.err == VISIBLE_WARNING + "\n"
    assert "visible to other users" in VISIBLE_WARNING and "--password-file" in VISIBLE_WARNING


def read_terminal(controller: int, until: bytes | None, timeout: float = 30.0) -> bytes:
    """What the program on the pty writes, until ``until`` has come and the line ends with
    ``:`` (a prompt), or (None) until it closes the terminal."""
    seen = b""
    deadline = time.monotonic() + timeout
    while until is None or until not in seen or not seen.rstrip().endswith(b":"):
        ready, _, _ = select.select([controller], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"waited {timeout} s for {until!r}; the terminal shows {seen!r}"
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the program closed the terminal
            chunk = b""
        if not chunk:
            assert until is None, f"the terminal closed before {until!r}: {seen!r}"
            return seen
        seen += chunk
    return seen


@pytest.mark.slow
def test_user_alone_on_a_terminal_asks_for_the_password(served: Served) -> None:
    """On a pseudo-terminal, ``--user`` alone prompts, reads the password without echoing
    it, and the command goes on with it."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [PROGRAM, "--url", served.url, "--user", USER, "status"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=shell_env(),
        start_new_session=True,  # no controlling terminal: getpass uses stdin, the pty
    )
    os.close(terminal)
    try:
        seen = read_terminal(controller, until=b"Password for")
        assert seen.decode().strip() == f"Password for {USER} at {served.url}:"
        os.write(controller, PASS.encode() + b"\n")
        seen += read_terminal(controller, until=None)
        assert proc.wait(timeout=30) == 0, seen
    finally:
        os.close(controller)
        proc.kill()
        proc.wait()
    shown = seen.decode()
    assert "state:" in shown and PASS not in shown  # not echoed
