"""The daemon: the supervisor node of the nursery tree and the facade everything else
calls (the HTTP API, the CLI's server, embedders). It composes scheduling, execution and
the store; the modules here take data, never the :class:`Daemon` itself.

Imports: models, exceptions, config, scheduling, execution, store.
"""

from ._daemon import Daemon
from ._open import check_database, open_daemon
from ._registry import unknown_upstream, waited_on

__all__ = ["Daemon", "check_database", "open_daemon", "unknown_upstream", "waited_on"]
