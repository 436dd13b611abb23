"""The trivial task, as an importable function for the peers (APScheduler, RQ workers)."""

import time


def trivial() -> float:
    """Return the wall time at entry, like the ``execute()`` of the other figures."""
    return time.time()
