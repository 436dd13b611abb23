"""The package's one front door, and what its entry points import."""

import subprocess
import sys

import omnimind_trio


def test_all_is_sorted_and_every_name_exists() -> None:
    names = [name for name in omnimind_trio.__all__ if name != "__version__"]
    assert names == sorted(names)
    for name in omnimind_trio.__all__:
        assert hasattr(omnimind_trio, name), name


def test_embedding_api_is_exported() -> None:
    assert callable(omnimind_trio.open_daemon)
    assert omnimind_trio.Settings().port == 8000
    assert omnimind_trio.Settings().host == "127.0.0.1"


def imported_by(code: str, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` a fresh interpreter has imported after running ``code``."""
    probe = f"import sys\n{code}\nprint(*[n for n in {names!r} if n in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.split()


def test_the_front_door_imports_neither_the_http_api_nor_the_command_line() -> None:
    heavy = ("quart", "hypercorn", "httpx", "trio_websocket", "omnimind_trio.cli")
    assert imported_by("import omnimind_trio", heavy) == []


def test_serving_leaves_the_client_side_of_the_command_line_unimported() -> None:
    """``omnimind serve`` needs neither the REST client (httpx), the WebSocket follower
    (trio-websocket) nor the rendering: about 5 MB of its idle RSS (bench B2)."""
    serve_path = (
        "from omnimind_trio.cli import _main, _serve\n"
        "_main.build_parser().parse_args(['serve'])\n"
        "from omnimind_trio.http import create_app, serve_http"
    )
    client_side = (
        "httpx",
        "trio_websocket",
        "omnimind_trio.cli._client",
        "omnimind_trio.cli._render",
    )
    assert imported_by(serve_path, client_side) == []
