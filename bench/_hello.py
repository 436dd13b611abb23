"""A bare hello-world QuartTrio app on hypercorn's trio worker, configured exactly as
``omnimind serve`` configures it: the baseline of figure D.

``python -m bench._hello PORT`` serves the bare app with hypercorn's own connection class.
``python -m bench._hello PORT fixed`` serves it as ``omnimind serve`` serves its own app:
through ``server.serve_http``, with the product's connection class
(``omnimind_trio.http._connection``: the keep-alive timer as a moving deadline, the
close shielded). The difference between the two baselines is what that class changes.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import trio
from hypercorn.trio import serve
from quart_trio import QuartTrio

from omnimind_trio import http as product_server
from omnimind_trio.config import Settings

app = QuartTrio("hello")


@app.get("/daemon/status")
async def status() -> dict[str, Any]:
    return {"hello": "world"}


def main() -> None:
    settings = Settings(host="127.0.0.1", port=int(sys.argv[1]))
    config = product_server.hypercorn_config(settings)
    if sys.argv[2:] == ["fixed"]:
        trio.run(
            partial(product_server.serve_http, app, config, shutdown_trigger=trio.sleep_forever)
        )
    else:
        trio.run(serve, app, config)


if __name__ == "__main__":
    main()
