"""The web examples answer real HTTP requests on a loopback port.

FastAPI (``examples/fastapi_app.py``) runs under uvicorn with the runtime in
its lifespan; Flask (``examples/flask_app.py``) runs under werkzeug's server
with a `perdure.SyncClient`, while a ``perdure worker`` process runs the
orchestrations, as a Flask user deploys it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from _examples_support import EXAMPLES, load
from werkzeug.serving import make_server

WAIT = 20


@contextmanager
def fastapi_served(storage_url: str) -> Iterator[str]:
    """The FastAPI example on a free port, its runtime in the lifespan."""
    app = load("fastapi_app").create_app(storage_url)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "uvicorn did not start"
            thread.join(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True  # the lifespan then closes the runtime
        thread.join(WAIT)
    assert not thread.is_alive()


@contextmanager
def flask_served(storage_url: str) -> Iterator[str]:
    """The Flask example on a free port, with a ``perdure worker`` process."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "perdure", "worker", "flask_app", "--db", storage_url],
        cwd=EXAMPLES,
        stdout=subprocess.PIPE,
        text=True,
    )
    # Started (signal handlers installed) once it says it runs: a SIGTERM
    # before that killed it (-15) instead of stopping it, which failed CI.
    assert worker.stdout is not None
    assert "running" in worker.stdout.readline()
    app = load("flask_app").create_app(storage_url)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT)
        app.extensions["perdure"].close()
        worker.terminate()  # SIGTERM: the worker stops gracefully
        assert worker.wait(WAIT) == 0
        worker.stdout.close()


@pytest.fixture(params=["fastapi", "flask"])
def base_url(request: pytest.FixtureRequest, storage_url: str) -> Iterator[str]:
    served = fastapi_served if request.param == "fastapi" else flask_served
    with served(storage_url) as url:
        yield url


def _place(http: httpx.Client, order: dict[str, Any]) -> str:
    created = http.post("/orders", json=order)
    assert created.status_code == 202, created.text
    order_id: str = created.json()["id"]
    assert created.headers["Location"] == f"/orders/{order_id}"
    return order_id


def test_an_order_completes_and_returns_its_receipt(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=WAIT + 10) as http:
        order_id = _place(http, {"customer": "ann", "items": ["book", "pen"]})
        # Without ?wait the answer is immediate, whatever the progress.
        now = http.get(f"/orders/{order_id}")
        assert now.status_code == 200
        assert now.json()["status"] in ("Running", "Completed")
        done = http.get(f"/orders/{order_id}", params={"wait": WAIT}).json()
    assert done == {
        "id": order_id,
        "status": "Completed",
        "receipt": {
            "customer": "ann",
            "lines": {"book": 1200, "pen": 150},
            "total_cents": 1350,
        },
        "error": None,
    }


def test_a_failed_order_reports_its_error(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=WAIT + 10) as http:
        order_id = _place(http, {"customer": "bob", "items": ["book", "piano"]})
        done = http.get(f"/orders/{order_id}", params={"wait": WAIT}).json()
    assert done["status"] == "Failed" and done["receipt"] is None
    assert "no such item: 'piano'" in done["error"]


def test_unknown_orders_and_bad_requests(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=WAIT + 10) as http:
        assert http.get("/orders/nope").status_code == 404
        assert http.get("/orders/nope", params={"wait": 1}).status_code == 404
        bad = http.post("/orders", json={"items": ["book"]})
    assert bad.status_code in (400, 422)  # Flask's and FastAPI's "invalid body"
