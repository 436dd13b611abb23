"""Opening the executor: its fork server started (and the cgroup base of its runs, where
one is delegated); closed with every child killed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..exceptions import ExecutorError
from . import _cgroups
from ._forkserver import Executor, log


@asynccontextmanager
async def open_executor(python: str, *, cgroup_key: str | None = None) -> AsyncIterator[Executor]:
    """Start the fork server under ``python``; on exit, stop it and kill every child.

    With ``cgroup_key`` (the daemon's database path) and a delegated cgroup v2 subtree,
    each run gets a cgroup; those an earlier daemon left on that key are killed first.

    Error handling: raises ExecutorError when ``python`` cannot start the fork server.
    """
    # cgroupfs reads, writes and a bounded wait for killed cgroups to empty: in a thread.
    base, swept = await trio.to_thread.run_sync(_cgroups.open_base, cgroup_key)
    if swept:
        log.warning("killed what was left of %d run(s) of an earlier daemon", swept)
    log.info("runs are contained by %s", f"cgroups under {base}" if base else "subreapers")
    executor = Executor(python, base)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(executor._serve)
            try:
                yield executor
            finally:
                executor._closing = True
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # A worker that never started is one plain error for the caller, not a group.
        failed, rest = group.split(ExecutorError)
        if rest is None and failed is not None:
            raise _first_leaf(failed) from None
        raise
    finally:
        if base is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_cgroups.close_base, base)


def _first_leaf(group: BaseExceptionGroup[ExecutorError]) -> ExecutorError:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
