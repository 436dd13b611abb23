"""The daemons that share this one's database, as ``GET /daemon/nodes`` lists them: a
part of :class:`~._daemon.Daemon`."""

from __future__ import annotations

from .._version import __version__
from ..config import Settings
from ..models import NodeInfo
from ..scheduling import Clock, Scheduler
from ._supervisor import Supervisor


class NodeReads:
    """The nodes (mixed into :class:`~._daemon.Daemon`)."""

    settings: Settings
    _clock: Clock
    _scheduler: Scheduler
    _supervisor: Supervisor
    started_at: float
    """When this daemon was opened (epoch seconds)."""

    async def nodes(self) -> list[NodeInfo]:
        """Every daemon on the database, by node name. One store per daemon for now (the
        database is its own): this daemon alone, alive as it answers."""
        return [
            NodeInfo(
                node=self.settings.node_name,
                state=self._supervisor.state,
                running_count=self._scheduler.running_count,
                last_heartbeat=self._clock.now(),
                started_at=self.started_at,
                version=__version__,
                this=True,
            )
        ]
