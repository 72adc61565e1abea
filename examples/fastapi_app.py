r"""A FastAPI app that starts orchestrations and reports their progress.

``POST /orders`` starts a ``PlaceOrder`` instance and answers at once (202
with the instance id); ``GET /orders/{id}`` reports its status and, once it
completed, the receipt, decoded as a pydantic model by
``wait_for_orchestration(..., result_type=Receipt)``. ``?wait=N`` holds the
request up to N seconds for the order to finish.

The runtime runs in the web process: the app's lifespan opens a
`perdure.Runtime` on startup and closes it (gracefully) on shutdown, and the
routes use its ``rt.client``. Every worker process of the server runs one
runtime, and they share the work through the database.

Serve it (from ``examples/``)::

    PERDURE_DB=sqlite:///orders.db uvicorn fastapi_app:app
    curl localhost:8000/orders -H 'content-type: application/json' \
         -d '{"customer": "ann", "items": ["book", "pen"]}'
    curl 'localhost:8000/orders/<id>?wait=10'

Run the demo: ``python examples/fastapi_app.py`` serves the app on a free
port, places an order over HTTP, prints the receipt and stops.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request, Response, status
from pydantic import BaseModel

import perdure
from perdure import ActivityContext, OrchestrationContext

PRICES = {"book": 1200, "pen": 150, "lamp": 3400}


class Order(BaseModel):
    """What a customer asks for."""

    customer: str
    items: list[str]


class Receipt(BaseModel):
    """What the orchestration returns: its output, decoded by the client."""

    customer: str
    lines: dict[str, int]
    total_cents: int


class OrderStatus(BaseModel):
    """The answer of ``GET /orders/{id}``."""

    id: str
    status: perdure.InstanceStatus
    receipt: Receipt | None = None
    error: str | None = None


@perdure.activity
async def price(ctx: ActivityContext, item: str) -> int:
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


def runtime_client(request: Request) -> perdure.Client:
    """The client of the runtime the lifespan opened (a FastAPI dependency)."""
    runtime: perdure.Runtime = request.app.state.runtime
    return runtime.client


ClientDep = Annotated[perdure.Client, Depends(runtime_client)]


def create_app(db_url: str) -> FastAPI:
    """The app, with a runtime on *db_url* for as long as it serves."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with perdure.Runtime(
            db_url, orchestrations=[place_order], activities=[price]
        ) as rt:
            app.state.runtime = rt
            yield

    app = FastAPI(title="orders", lifespan=lifespan)

    @app.post("/orders", status_code=status.HTTP_202_ACCEPTED)
    async def create_order(
        order: Order, client: ClientDep, response: Response
    ) -> dict[str, str]:
        order_id = f"order-{uuid.uuid4().hex[:12]}"
        await client.start_orchestration(order_id, place_order, order)
        response.headers["Location"] = f"/orders/{order_id}"
        return {"id": order_id}

    @app.get("/orders/{order_id}")
    async def get_order(
        order_id: str, client: ClientDep, wait: float = 0.0
    ) -> OrderStatus:
        try:
            state = await client.wait_for_orchestration(
                order_id, timeout=min(wait, 30.0), result_type=Receipt
            )
        except perdure.InstanceNotFound:
            raise HTTPException(404, f"no order {order_id!r}") from None
        except TimeoutError:  # still running: say so
            running = await client.get_status(order_id)
            if running is None:
                raise HTTPException(404, f"no order {order_id!r}") from None
            return OrderStatus(id=order_id, status=running.status)
        return OrderStatus(
            id=order_id,
            status=state.status,
            receipt=state.output,
            error=state.error.message if state.error else None,
        )

    return app


app = create_app(os.environ.get("PERDURE_DB", "sqlite:///orders.db"))


def demo(app: FastAPI) -> Any:
    """Serve *app* on a free loopback port, place an order, return the answer."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            thread.join(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            order = {"customer": "ann", "items": ["book", "pen"]}
            created = http.post("/orders", json=order).raise_for_status()
            order_id = created.json()["id"]
            return http.get(f"/orders/{order_id}", params={"wait": 20}).json()
    finally:
        server.should_exit = True
        thread.join()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(demo(create_app(f"sqlite:///{tmp}/orders.db")))


if __name__ == "__main__":
    main()
