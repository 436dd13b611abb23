"""The daemons that share this one's database, as ``GET /daemon/nodes`` lists them: a
part of :class:`~._daemon.Daemon`."""

from __future__ import annotations

from .._version import __version__
from ..config import Settings
from ..models import DaemonState, NodeInfo
from ..scheduling import Clock, Scheduler
from ._fleet import FleetMember
from ._supervisor import Supervisor


class NodeReads:
    """The nodes (mixed into :class:`~._daemon.Daemon`)."""

    settings: Settings
    _clock: Clock
    _scheduler: Scheduler
    _supervisor: Supervisor
    _fleet: FleetMember | None
    started_at: float
    """When this daemon was opened (epoch seconds)."""

    async def nodes(self) -> list[NodeInfo]:
        """Every daemon on the database, by node name: on PostgreSQL, the fleet's (as their
        last heartbeats left them; this one as it is now); else this daemon alone."""
        me = NodeInfo(
            node=self.settings.node_name,
            state=self._supervisor.state,
            running_count=self._scheduler.running_count,
            last_heartbeat=self._clock.now(),
            started_at=self.started_at,
            version=__version__,
            alive=True,
            this=True,
        )
        if self._fleet is None:
            return [me]
        lease = self.settings.lease_seconds
        found = [
            NodeInfo(
                node=row.node,
                state=DaemonState(row.state),
                running_count=row.running_count,
                last_heartbeat=row.heartbeat,
                started_at=row.started_at,
                version=row.version,
                alive=row.silent_seconds < lease and row.state != DaemonState.STOPPED,
                this=False,
            )
            for row in await self._fleet.nodes()
            if row.node != me.node
        ]
        return sorted([me, *found], key=lambda node: node.node)
