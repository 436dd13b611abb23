"""The daemons that share one database, each known by its node name
(``OMNIMIND_NODE_NAME``): what ``GET /daemon/nodes`` lists."""

from __future__ import annotations

from pydantic import Field

from ._enums import DaemonState
from ._time import Instant
from ._views import Response


class NodeInfo(Response):
    """One daemon: the one record of a node, whoever lists it."""

    node: str = Field(description="Its node name (OMNIMIND_NODE_NAME)")
    state: DaemonState = Field(description="Its state, as its own status says it")
    running_count: int = Field(description="The executions it runs now, frozen ones included")
    last_heartbeat: Instant = Field(description="When it last said it was alive")
    started_at: Instant = Field(description="When it started (its process)")
    version: str = Field(description="Its omnimind version")
    alive: bool = Field(
        description="Whether it said so within the lease (OMNIMIND_LEASE_SECONDS): false"
        " for a daemon stopped, killed or cut off from the database"
    )
    this: bool = Field(description="Whether it is the daemon that answered")


class NodeList(Response):
    """``GET /daemon/nodes``."""

    nodes: list[NodeInfo] = Field(description="By node name")
