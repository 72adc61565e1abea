r"""A Flask app that starts orchestrations, with `perdure.SyncClient`.

``POST /orders`` starts a ``PlaceOrder`` instance and answers at once (202
with the instance id); ``GET /orders/<id>`` reports its status and, once it
completed, the receipt, decoded as a dataclass by
``wait_for_orchestration(..., result_type=Receipt)``. ``?wait=N`` holds the
request up to N seconds for the order to finish.

A WSGI app has no event loop, so it talks to perdure through a
`perdure.SyncClient`: the `perdure.Client` methods, blocking, safe to share
between the server's threads. The orchestrations run elsewhere, in a worker
process that hosts this module's ``ORCHESTRATIONS`` and ``ACTIVITIES``; the
web process only starts and reads instances.

Serve it (from ``examples/``, two terminals)::

    export PERDURE_DB=sqlite:///orders.db
    perdure worker flask_app
    flask --app flask_app run
    curl localhost:5000/orders -H 'content-type: application/json' \
         -d '{"customer": "ann", "items": ["book", "pen"]}'
    curl 'localhost:5000/orders/<id>?wait=10'

Run the demo: ``python examples/flask_app.py`` starts a ``perdure worker``
process and the app on a free port, places an order over HTTP, prints the
receipt and stops both.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from flask import Flask, abort, current_app, request
from werkzeug.serving import make_server

import perdure
from perdure import ActivityContext, OrchestrationContext

PRICES = {"book": 1200, "pen": 150, "lamp": 3400}


@dataclasses.dataclass(frozen=True)
class Order:
    """What a customer asks for."""

    customer: str
    items: list[str]


@dataclasses.dataclass(frozen=True)
class Receipt:
    """What the orchestration returns: its output, decoded by the client."""

    customer: str
    lines: dict[str, int]
    total_cents: int


@perdure.activity
def price(ctx: ActivityContext, item: str) -> int:
    """Look an item's price up (the side effect: a catalogue service)."""
    if item not in PRICES:
        raise perdure.NonRetryableError(f"no such item: {item!r}")
    return PRICES[item]


@perdure.orchestration(name="PlaceOrder")
async def place_order(ctx: OrchestrationContext, order: Order) -> Receipt:
    """Price every item at once, then total them."""
    prices = await ctx.join([ctx.schedule_activity(price, i) for i in order.items])
    lines = dict(zip(order.items, prices, strict=True))
    return Receipt(customer=order.customer, lines=lines, total_cents=sum(prices))


#: What ``perdure worker flask_app`` hosts.
ORCHESTRATIONS = [place_order]
ACTIVITIES = [price]


def create_app(db_url: str | None = None) -> Flask:
    """The app, with a `perdure.SyncClient` on *db_url* (or ``$PERDURE_DB``).

    The client lives as long as the process (it is closed at exit); close
    it sooner with ``app.extensions["perdure"].close()``.
    """
    app = Flask(__name__)
    url = db_url or os.environ.get("PERDURE_DB", "sqlite:///orders.db")
    app.extensions["perdure"] = perdure.SyncClient(url)

    @app.post("/orders")
    def create_order() -> tuple[dict[str, str], int, dict[str, str]]:
        body = request.get_json()
        try:
            order = Order(customer=str(body["customer"]), items=list(body["items"]))
        except (KeyError, TypeError):
            abort(400, "expected {'customer': str, 'items': [str, ...]}")
        order_id = f"order-{uuid.uuid4().hex[:12]}"
        client().start_orchestration(order_id, place_order, order)
        return {"id": order_id}, 202, {"Location": f"/orders/{order_id}"}

    @app.get("/orders/<order_id>")
    def get_order(order_id: str) -> dict[str, Any]:
        wait = min(request.args.get("wait", 0.0, type=float), 30.0)
        try:
            state = client().wait_for_orchestration(
                order_id, timeout=wait, result_type=Receipt
            )
        except perdure.InstanceNotFound:
            abort(404, f"no order {order_id!r}")
        except TimeoutError:  # still running: say so
            running = client().get_status(order_id)
            if running is None:
                abort(404, f"no order {order_id!r}")
            return {"id": order_id, "status": running.status}
        done = state.status == "Completed"
        receipt = dataclasses.asdict(state.output) if done else None
        error = state.error.message if state.error else None
        return {
            "id": order_id,
            "status": state.status,
            "receipt": receipt,
            "error": error,
        }

    return app


def client() -> perdure.SyncClient:
    """The app's client (in a request)."""
    sync_client: perdure.SyncClient = current_app.extensions["perdure"]
    return sync_client


def demo(db_url: str) -> Any:
    """Run a worker process and the app, place an order, return the answer."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "perdure", "worker", "flask_app", "--db", db_url],
        cwd=Path(__file__).parent,
    )
    app = create_app(db_url)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        order = json.dumps({"customer": "ann", "items": ["book", "pen"]}).encode()
        post = urllib.request.Request(
            f"{base}/orders", order, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(post) as created:
            order_id = json.load(created)["id"]
        with urllib.request.urlopen(f"{base}/orders/{order_id}?wait=20") as answer:
            return json.load(answer)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        app.extensions["perdure"].close()
        worker.send_signal(signal.SIGTERM)  # a graceful stop
        worker.wait()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(demo(f"sqlite:///{tmp}/orders.db"))


if __name__ == "__main__":
    main()
