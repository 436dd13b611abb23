"""The ``omnimind`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import trio
from pydantic import ValidationError

from . import __version__
from .config import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnimind", description="A local background-task daemon with a REST API."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the daemon and its HTTP API")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000)")
    serve.add_argument(
        "--no-autostart",
        action="store_true",
        help="serve the API with the daemon stopped (start it with POST /daemon/start)",
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"omnimind: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    from .server import serve

    try:
        trio.run(lambda: serve(settings, autostart=not args.no_autostart))
    except OSError as exc:
        print(f"omnimind: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"omnimind: {exc}", file=sys.stderr)
        return 1
    return 0
