"""Persistence: task definitions, counters and execution history. Imports: models,
exceptions."""

from ._sqlite import Store, StoredTask, open_store

__all__ = ["Store", "StoredTask", "open_store"]
