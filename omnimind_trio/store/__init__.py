"""Persistence: task definitions, counters and execution history. Imports: models,
exceptions."""

from ._schema import StoredTask
from ._sqlite import Store, open_store

__all__ = ["Store", "StoredTask", "open_store"]
