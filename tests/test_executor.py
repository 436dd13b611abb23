"""The fork-server executor with real child processes: every way task code can end."""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

from omnimind_trio.exceptions import ExecutorError
from omnimind_trio.execution import Executor, Job, RunResult, classify, open_executor
from omnimind_trio.models import Outcome

from .conftest import assert_gone

pytestmark = pytest.mark.slow


@pytest.fixture
async def executor() -> AsyncIterator[Executor]:
    async with open_executor(sys.executable) as running:
        yield running


async def run(executor: Executor, code: str, tmp_path: Path, **limits: object) -> tuple:
    job = Job(code=code, filename="<task t>", cwd=str(tmp_path), **limits)  # type: ignore[arg-type]
    result = await executor.run(job)
    outcome, reason, value = classify(result, job)
    return outcome, reason, value, result


CASES = [
    ("def execute():\n    return {'a': 1}", Outcome.SUCCEEDED, None, {"a": 1}),
    ("def execute():\n    pass", Outcome.SUCCEEDED, None, None),
    (
        "async def execute():\n    import asyncio\n    await asyncio.sleep(0.01)\n"
        "    return {'status': 'completed'}",
        Outcome.SUCCEEDED,
        None,
        {"status": "completed"},
    ),
    (
        "def execute():\n    return {1, 2}",
        Outcome.FAILED,
        "execute() returned a value that is not JSON: Object of type set is not JSON serializable",
        None,
    ),
    (
        "def execute():\n    return float('nan')",
        Outcome.FAILED,
        "execute() returned a value that is not JSON: Out of range float values are not JSON",
        None,
    ),
    ("def execute():\n    1 / 0", Outcome.FAILED, "ZeroDivisionError: division by zero", None),
    ("def execute():\n    import sys\n    sys.exit(3)", Outcome.FAILED, "SystemExit: 3", None),
    ("def execute():\n    raise KeyboardInterrupt", Outcome.FAILED, "KeyboardInterrupt", None),
    (
        "def execute():\n    import os\n    os._exit(0)",
        Outcome.FAILED,
        "the process exited with status 0 before execute() returned",
        None,
    ),
    (
        "def execute():\n    import ctypes\n    ctypes.string_at(0)",
        Outcome.KILLED,
        "killed by signal 11 (SIGSEGV)",
        None,
    ),
    (
        "def execute():\n    return execute()",
        Outcome.FAILED,
        "RecursionError: maximum recursion depth exceeded",
        None,
    ),
    ("execute = 42", Outcome.FAILED, "TypeError: 'execute' is not callable", None),
    (
        "def execute():\n    import sys\n    return sys.stdin.read()",
        Outcome.SUCCEEDED,
        None,
        "",
    ),
]


@pytest.mark.parametrize(("code", "outcome", "reason", "value"), CASES)
async def test_each_ending_is_classified(
    executor: Executor,
    tmp_path: Path,
    code: str,
    outcome: Outcome,
    reason: str | None,
    value: object,
) -> None:
    got_outcome, got_reason, got_value, _ = await run(executor, code, tmp_path)
    assert got_outcome is outcome
    if reason is None:
        assert got_reason is None
    else:
        assert got_reason is not None and got_reason.startswith(reason)
    assert got_value == value


def test_a_run_whose_child_never_started_is_a_failure_that_says_why() -> None:
    job = Job(code="def execute():\n    pass", filename="t", cwd="/")
    why = "the task worker could not start the execution: fork: [Errno 11] try again"
    assert classify(RunResult(error=why), job) == (Outcome.FAILED, why, None)


async def test_traceback_points_at_the_users_code(executor: Executor, tmp_path: Path) -> None:
    _, reason, _, _ = await run(
        executor, "def execute():\n    x = 1\n    raise ValueError('bad')", tmp_path
    )
    assert reason is not None
    assert 'File "<task t>", line 3, in execute' in reason
    assert "_worker.py" not in reason


async def test_output_is_captured_and_capped_head_and_tail(
    executor: Executor, tmp_path: Path
) -> None:
    code = (
        "def execute():\n    import sys\n    print('FIRST')\n"
        "    sys.stdout.write('x' * 1_000_000)\n    print('LAST')\n"
        "    print('oops', file=sys.stderr)\n    return 1"
    )
    outcome, _, _, result = await run(executor, code, tmp_path, max_output_bytes=4096)
    assert outcome is Outcome.SUCCEEDED
    assert result.stdout.startswith("FIRST\n")
    assert result.stdout.endswith("LAST\n")
    assert "bytes truncated ...]" in result.stdout
    assert len(result.stdout) < 4096 + 100
    assert result.stderr == "oops\n"


async def test_result_over_the_cap_is_a_failure(executor: Executor, tmp_path: Path) -> None:
    outcome, reason, _, _ = await run(
        executor, "def execute():\n    return 'x' * 100_000", tmp_path, max_result_bytes=10_000
    )
    assert outcome is Outcome.FAILED
    assert reason == "the result is larger than 10000 bytes"


async def test_timeout_kills_the_whole_process_group(executor: Executor, tmp_path: Path) -> None:
    code = (
        "def execute():\n    import signal, subprocess, time\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    child = subprocess.Popen(['sleep', '300'])\n"
        f"    open({str(tmp_path / 'pid')!r}, 'w').write(str(child.pid))\n"
        "    while True:\n        pass"
    )
    with trio.fail_after(5):
        outcome, reason, _, result = await run(executor, code, tmp_path, timeout_seconds=0.5)
    assert outcome is Outcome.TIMED_OUT
    assert reason == "timed out after 0.5 s"
    assert result.cpu_seconds is None or result.cpu_seconds > 0.1
    assert_gone(int((tmp_path / "pid").read_text()))


async def test_grandchildren_left_behind_are_killed(executor: Executor, tmp_path: Path) -> None:
    code = (
        "def execute():\n    import subprocess\n"
        "    child = subprocess.Popen(['sleep', '300'])\n"
        "    return child.pid"
    )
    outcome, _, pid, _ = await run(executor, code, tmp_path)
    assert outcome is Outcome.SUCCEEDED
    await trio.sleep(0.05)
    assert_gone(pid)


async def test_cancelling_the_scope_kills_and_says_so(executor: Executor, tmp_path: Path) -> None:
    job = Job(
        code="def execute():\n    import time\n    time.sleep(300)", filename="t", cwd=str(tmp_path)
    )
    scope = trio.CancelScope()
    pids: list[int] = []
    async with trio.open_nursery() as nursery:

        async def trigger() -> None:
            await trio.sleep(0.2)
            scope.cancel()

        nursery.start_soon(trigger)
        with trio.fail_after(3):
            result = await executor.run(job, scope=scope, on_started=pids.append)
    assert result.ended_by == "cancel"
    assert classify(result, job)[0] is Outcome.CANCELLED
    assert_gone(pids[0])


async def test_the_scopes_deadline_can_move_while_it_runs(
    executor: Executor, tmp_path: Path
) -> None:
    job = Job(
        code="def execute():\n    import time\n    time.sleep(300)", filename="t", cwd=str(tmp_path)
    )
    scope = trio.CancelScope()
    async with trio.open_nursery() as nursery:

        async def limit() -> None:
            await trio.sleep(0.2)
            scope.deadline = trio.current_time() + 0.1

        nursery.start_soon(limit)
        with trio.fail_after(3):
            result = await executor.run(job, scope=scope)
    assert result.ended_by == "timeout"


async def test_outer_cancellation_kills_the_child(executor: Executor, tmp_path: Path) -> None:
    job = Job(
        code="def execute():\n    import time\n    time.sleep(300)", filename="t", cwd=str(tmp_path)
    )
    pids: list[int] = []
    with trio.move_on_after(0.3):
        await executor.run(job, on_started=pids.append)
    await trio.sleep(0.05)
    assert_gone(pids[0])


async def test_memory_limit(executor: Executor, tmp_path: Path) -> None:
    code = "def execute():\n    block = bytearray(512 * 1024 * 1024)\n    return len(block)"
    outcome, reason, _, _ = await run(executor, code, tmp_path, max_memory_mb=256)
    assert outcome is Outcome.FAILED
    assert reason is not None and reason.startswith("MemoryError (memory limit of 256 MB)")


async def test_cpu_time_limit(executor: Executor, tmp_path: Path) -> None:
    with trio.fail_after(10):
        outcome, reason, _, _ = await run(
            executor, "def execute():\n    while True:\n        pass", tmp_path, max_cpu_seconds=1
        )
    assert outcome is Outcome.KILLED
    assert reason == "CPU time limit of 1 s exceeded"


async def test_closing_stdout_and_stderr_is_harmless(executor: Executor, tmp_path: Path) -> None:
    code = "def execute():\n    import os\n    os.close(1)\n    os.close(2)\n    return 'ok'"
    outcome, _, value, _ = await run(executor, code, tmp_path)
    assert (outcome, value) == (Outcome.SUCCEEDED, "ok")


async def test_task_runs_in_the_workspace_with_its_environment(
    executor: Executor, tmp_path: Path
) -> None:
    job = Job(
        code=(
            "def execute():\n    import os\n"
            "    return [os.getcwd(), os.environ['OMNIMIND_WORKSPACE']]"
        ),
        filename="t",
        cwd=str(tmp_path),
        env={"OMNIMIND_WORKSPACE": str(tmp_path)},
    )
    result = await executor.run(job)
    assert classify(result, job)[2] == [str(tmp_path), str(tmp_path)]


async def test_each_run_is_a_fresh_process(executor: Executor, tmp_path: Path) -> None:
    code = (
        "import builtins\nbuiltins.counter = getattr(builtins, 'counter', 0) + 1\n"
        "def execute():\n    import os\n    return [builtins.counter, os.getpid()]"
    )
    first = (await run(executor, code, tmp_path))[2]
    second = (await run(executor, code, tmp_path))[2]
    assert first[0] == second[0] == 1
    assert first[1] != second[1]


async def test_killing_the_fork_server_spares_the_runs_in_flight_and_it_comes_back(
    executor: Executor, tmp_path: Path
) -> None:
    # The fork server is the parent of the run's keeper, the task's parent.
    killer = (
        "def execute():\n    import os, signal, time\n"
        "    stat = open(f'/proc/{os.getppid()}/stat').read()\n"
        "    os.kill(int(stat.rsplit(')', 1)[1].split()[1]), signal.SIGKILL)\n"
        "    time.sleep(0.3)\n    return 'killer'"
    )
    bystander = "def execute():\n    import time\n    time.sleep(1)\n    return 'bystander'"
    crasher = "def execute():\n    import time, ctypes\n    time.sleep(1)\n    ctypes.string_at(0)"
    outcomes: dict[str, tuple] = {}

    async def one(name: str, code: str) -> None:
        outcomes[name] = await run(executor, code, tmp_path)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "bystander", bystander)
            nursery.start_soon(one, "crasher", crasher)
            await trio.sleep(0.2)
            nursery.start_soon(one, "killer", killer)
    assert outcomes["bystander"][:3] == (Outcome.SUCCEEDED, None, "bystander")
    assert outcomes["killer"][:3] == (Outcome.SUCCEEDED, None, "killer")
    outcome, reason, _, _ = outcomes["crasher"]
    assert outcome is Outcome.FAILED
    assert reason is not None and "the task worker process died" in reason
    with trio.fail_after(5):
        outcome, _, value, _ = await run(executor, "def execute():\n    return 7", tmp_path)
    assert (outcome, value) == (Outcome.SUCCEEDED, 7)
    assert executor.restarts == 1


async def test_many_runs_at_once(executor: Executor, tmp_path: Path) -> None:
    results: list[object] = []

    async def one(i: int) -> None:
        results.append((await run(executor, f"def execute():\n    return {i}", tmp_path))[2])

    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(one, i)
    assert sorted(results) == list(range(50))  # type: ignore[type-var]


PY312 = Path(os.path.expanduser("~/.pyenv/versions/3.12.1/bin/python3.12"))


async def test_tasks_can_import_installed_packages_but_not_our_modules(
    executor: Executor, tmp_path: Path
) -> None:
    code = (
        "def execute():\n    import psutil\n    try:\n        import scheduler\n"
        "    except ImportError:\n        return psutil.__name__\n    return 'leaked'"
    )
    assert (await run(executor, code, tmp_path))[2] == "psutil"


@pytest.mark.skipif(not PY312.exists(), reason="needs a Python 3.12 interpreter")
async def test_a_312_task_interpreter_checks_and_runs_312_code(tmp_path: Path) -> None:
    code = (
        "type Pair = tuple[int, int]\n"
        "def execute():\n    import sys\n    return list(sys.version_info[:2])"
    )
    async with open_executor(str(PY312)) as executor:
        assert await executor.check_code(code) is None
        problem = await executor.check_code("def execute(:")
        assert problem == "Syntax error in code at line 1: invalid syntax"
        outcome, _, value, _ = await run(executor, code, tmp_path)
    assert (outcome, value) == (Outcome.SUCCEEDED, [3, 12])


async def test_tasks_run_with_the_requested_niceness(executor: Executor, tmp_path: Path) -> None:
    code = "def execute():\n    import os\n    return os.nice(0)"
    base = (await run(executor, code, tmp_path))[2]
    assert (await run(executor, code, tmp_path, nice=10))[2] == min(19, base + 10)


async def test_an_interpreter_that_cannot_run_the_worker_is_a_clear_error() -> None:
    with pytest.raises(ExecutorError, match="could not start the task worker"):
        async with open_executor("/bin/false"):
            pass  # pragma: no cover


async def test_the_first_run_after_start_costs_a_fork_not_an_interpreter_start(
    tmp_path: Path,
) -> None:
    async with open_executor(sys.executable) as executor:
        assert executor.worker_python is not None  # it said it was ready
        started = trio.current_time()
        await run(executor, "def execute():\n    return 1", tmp_path)
        # A cold interpreter start takes 25-85 ms here; a fork a few.
        assert trio.current_time() - started < 0.5


async def test_timeout_and_cancel_hold_even_before_the_child_starts(
    executor: Executor, tmp_path: Path
) -> None:
    assert executor.worker_pid is not None
    os.kill(executor.worker_pid, signal.SIGSTOP)  # a stuck worker: no child will start
    try:
        job = Job(code="def execute():\n    return 1", filename="t", cwd=str(tmp_path),
                  timeout_seconds=0.3)  # fmt: skip
        with trio.fail_after(3):
            result = await executor.run(job)
        assert classify(result, job)[0] is Outcome.TIMED_OUT
        cancelled = trio.CancelScope()
        cancelled.cancel()
        with trio.fail_after(3):
            result = await executor.run(job, scope=cancelled)
        assert classify(result, job)[0] is Outcome.CANCELLED
    finally:
        os.kill(executor.worker_pid, signal.SIGCONT)
    with trio.fail_after(5):
        assert (await run(executor, "def execute():\n    return 2", tmp_path))[2] == 2


async def test_a_worker_that_dies_before_the_child_starts_loses_no_run(
    executor: Executor, tmp_path: Path
) -> None:
    # The request is in the worker's socket, but no child was forked: nothing ran, so the
    # run is sent again to the next worker instead of failing.
    assert executor.worker_pid is not None
    os.kill(executor.worker_pid, signal.SIGSTOP)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            outcomes: list[tuple] = []

            async def one() -> None:
                outcomes.append(await run(executor, "def execute():\n    return 3", tmp_path))

            nursery.start_soon(one)
            await trio.testing.wait_all_tasks_blocked()  # the request has been sent
            os.kill(executor.worker_pid, signal.SIGKILL)
    assert outcomes[0][:3] == (Outcome.SUCCEEDED, None, 3)
    assert executor.restarts == 1


async def test_a_child_that_kills_its_worker_first_thing_still_reports(
    executor: Executor, tmp_path: Path
) -> None:
    # The child runs no task code before the daemon knows its pid, so it is watched to its
    # end even when its first act is to kill the worker (the flaky test's race).
    killer = (
        "def execute():\n    import os, signal\n"
        "    stat = open(f'/proc/{os.getppid()}/stat').read()\n"  # the keeper's parent
        "    os.kill(int(stat.rsplit(')', 1)[1].split()[1]), signal.SIGKILL)\n"
        "    return 'killer'"
    )
    with trio.fail_after(10):
        for _ in range(4):
            outcome, reason, value, result = await run(executor, killer, tmp_path)
            assert (outcome, reason, value) == (Outcome.SUCCEEDED, None, "killer")
            assert result.worker_died
        assert (await run(executor, "def execute():\n    return 5", tmp_path))[2] == 5
    assert executor.restarts == 4


async def test_a_child_that_cannot_be_watched_is_killed_with_its_worker(
    executor: Executor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fd_to_spare(pid: int, flags: int = 0) -> int:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(os, "pidfd_open", no_fd_to_spare)
    pids: list[int] = []
    started = trio.Event()
    job = Job(
        code="def execute():\n    import time\n    time.sleep(300)", filename="t", cwd=str(tmp_path)
    )
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            results: list[RunResult] = []

            async def one() -> None:
                def attach(pid: int) -> None:
                    pids.append(pid)
                    started.set()

                results.append(await executor.run(job, on_started=attach))

            nursery.start_soon(one)
            await started.wait()
            assert executor.worker_pid is not None
            os.kill(executor.worker_pid, signal.SIGKILL)
    outcome, reason, _ = classify(results[0], job)
    assert outcome is Outcome.FAILED
    assert reason is not None and reason.startswith("the task worker process died")
    assert_gone(pids[0])
