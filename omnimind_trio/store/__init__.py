"""Persistence: task definitions, counters and execution history, behind one Protocol.

``Store`` is the contract; ``open_store(location)`` picks the backend: a path is a
SQLite file (``SQLiteStore``, the default), ``memory://`` a ``MemoryStore``, a
``postgresql://`` URL a PostgreSQL database (``_postgres.PostgresStore``: not exported
here, so that psycopg is imported only when it is used). Imports: models, exceptions.
"""

from ._fleet import Claim, Fleet, NodeRow, Occurrence, occurrence
from ._memory import MemoryStore, open_memory_store
from ._open import MEMORY_URL, check_store, default_node_name, is_url, open_store
from ._protocol import INTERRUPTED_REASON, RunProcess, Store, StoredTask
from ._sqlite import SQLiteStore, open_sqlite_store

__all__ = [
    "INTERRUPTED_REASON",
    "MEMORY_URL",
    "Claim",
    "Fleet",
    "MemoryStore",
    "NodeRow",
    "Occurrence",
    "RunProcess",
    "SQLiteStore",
    "Store",
    "StoredTask",
    "check_store",
    "default_node_name",
    "is_url",
    "occurrence",
    "open_memory_store",
    "open_sqlite_store",
    "open_store",
]
