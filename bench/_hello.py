"""A bare hello-world QuartTrio app on hypercorn's trio worker, configured exactly as
``omnimind serve`` configures it: the baseline of figure D.

``python -m bench._hello PORT`` serves the bare app. ``python -m bench._hello PORT shielded``
serves it wrapped in the product's ``ShieldedSend`` (its fix for hypercorn's keep-alive
bookkeeping being cancelled by quart-trio), as ``omnimind serve`` wraps its own app: the
difference between the two baselines is the cost of that fix.
"""

from __future__ import annotations

import sys
from typing import Any

import trio
from hypercorn.trio import serve
from quart_trio import QuartTrio

from omnimind_trio import server as product_server
from omnimind_trio.config import Settings

app = QuartTrio("hello")


@app.get("/daemon/status")
async def status() -> dict[str, Any]:
    return {"hello": "world"}


def main() -> None:
    settings = Settings(host="127.0.0.1", port=int(sys.argv[1]))
    served: Any = app
    if sys.argv[2:] == ["shielded"]:
        served = product_server.ShieldedSend(app)  # type: ignore[attr-defined]
    trio.run(serve, served, product_server.hypercorn_config(settings))


if __name__ == "__main__":
    main()
