"""The ``omnimind`` command: argparse commands, the REST client, the live follower, the
rendering for people, and ``omnimind serve`` (the process root of the nursery tree).
"""

from ._main import main

__all__ = ["main"]
