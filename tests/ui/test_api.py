"""The web UI's JSON API and pages over real HTTP (uvicorn on a loopback port).

One SQLite database and runtime serve the module: a completed nested race,
a failed instance and waiting ones (one with an id made to run script).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from ui_app import (
    ACTIVITIES,
    ORCHESTRATIONS,
    XSS_ID,
    nested,
    start_failed,
    start_nested,
    start_waiters,
)
from ui_support import BackgroundRuntime, running, served

WAITERS = ["order-1", "order-2", "order/3", XSS_ID]


@dataclass
class World:
    rt: BackgroundRuntime
    http: httpx.Client
    url: str
    db: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    db = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'ui.db'}"
    with running(db, ORCHESTRATIONS, ACTIVITIES) as rt:
        start_nested(rt)
        start_failed(rt, "boom")
        start_waiters(rt, *WAITERS)
        with served(db) as url, httpx.Client(base_url=url, timeout=20) as http:
            yield World(rt, http, url, db)


def api(instance_id: str, tail: str = "") -> str:
    return f"/api/instances/{quote(instance_id, safe='')}{tail}"


def post(world: World, instance_id: str, action: str, body: Any) -> httpx.Response:
    return world.http.post(api(instance_id, f"/{action}"), json=body)


def test_list_pages_newest_first_without_a_silent_cut(world: World) -> None:
    everything = world.http.get("/api/instances", params={"limit": 500}).json()
    ids = [item["instance_id"] for item in everything["items"]]
    assert set(ids) >= {nested.FAST, "boom", *WAITERS}
    assert everything["next_cursor"] is None
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = world.http.get("/api/instances", params=params).json()
        assert len(page["items"]) <= 2
        seen += [item["instance_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids


def test_list_filters_by_status_name_and_version(world: World) -> None:
    def ids(**params: str) -> set[str]:
        page = world.http.get("/api/instances", params=params).json()
        return {item["instance_id"] for item in page["items"]}

    assert ids(status="Failed") == {"boom"}
    assert ids(name="NestedScopes") == {nested.FAST}
    assert ids(name="Waiter", status="Running") >= set(WAITERS)
    assert ids(version="9.9") == set()
    assert ids(name="Exploder", version="1.0.0") == {"boom"}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "Sleeping"}, "status must be one of"),
        ({"limit": "0"}, "limit must be 1 to 500"),
        ({"limit": "many"}, "not a number"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"created_after": "yesterday"}, "not a time"),
    ],
)
def test_list_rejects_bad_filters(
    world: World, params: dict[str, str], message: str
) -> None:
    response = world.http.get("/api/instances", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_status_history_and_tree_of_an_instance(world: World) -> None:
    state = world.http.get(api(nested.FAST)).json()
    assert state["status"] == "Completed"
    assert state["output"] == "fast-job:ready>b>final"
    history = world.http.get(api(nested.FAST, "/history")).json()
    assert history["execution_id"] == 1
    assert history["events"][0]["type"] == "OrchestrationStarted"
    tree = world.http.get(api(nested.FAST, "/tree")).json()
    assert tree["status"] == "done"
    outer = tree["root"]["items"][0]
    assert (outer["path"], outer["status"]) == ("0.1", "winner")
    inner = next(i for i in outer["items"] if i["kind"] == "scope")
    assert (inner["path"], inner["status"], inner["reason"]) == (
        "0.1.1",
        "cancelled",
        "lost select",
    )
    labels = [item["label"].split("(")[0] for item in tree["timeline"]]
    assert labels == [
        "activity Setup",
        "timer 60 s",
        "activity InnerA1",
        "activity InnerB",
        "activity Finalize",
    ]


def test_an_id_with_a_slash_is_reachable(world: World) -> None:
    assert world.http.get(api("order/3")).json()["instance_id"] == "order/3"
    tree = world.http.get(api("order/3", "/tree")).json()
    assert tree["root"]["items"][0]["status"] == "pending"


def test_failed_instance_reports_the_error_with_its_stack(world: World) -> None:
    state = world.http.get(api("boom")).json()
    assert state["status"] == "Failed"
    tree = world.http.get(api("boom", "/tree")).json()
    work = tree["root"]["items"][0]
    assert work["status"] == "failed"
    assert work["error"]["type"] == "ValueError"
    assert "cannot fly" in work["error"]["message"]
    assert "Traceback" in work["error"]["stack"]


def test_unknown_instance_and_execution(world: World) -> None:
    missing = world.http.get(api("nobody"))
    assert missing.status_code == 404
    assert "nobody" in missing.json()["error"]
    assert world.http.get(api("nobody", "/tree")).status_code == 404
    response = world.http.get(api("boom", "/history"), params={"execution": 7})
    assert response.status_code == 400
    assert post(world, "nobody", "cancel", {}).status_code == 404


def test_raise_event_completes_a_waiter(world: World) -> None:
    response = post(world, "order-1", "raise", {"name": "go", "data": {"n": 1}})
    assert response.json() == {"ok": True, "action": "raise"}
    state = world.rt.run(world.rt.client.wait_for_orchestration("order-1", 10))
    assert (state.status, state.output) == ("Completed", {"n": 1})


def test_cancel_runs_the_shielded_compensation(world: World) -> None:
    assert post(world, "order-2", "cancel", {"reason": "ops"}).status_code == 200
    state = world.rt.run(world.rt.client.wait_for_orchestration("order-2", 10))
    assert state.status == "Cancelled"
    tree = world.http.get(api("order-2", "/tree")).json()
    assert (tree["status"], tree["reason"]) == ("cancelled", "ops")
    undo = next(i for i in tree["root"]["items"] if i.get("name") == "Undo")
    assert undo["shielded"] and undo["status"] == "completed"


def test_resume_and_rewind_name_the_wrong_status(world: World) -> None:
    response = post(world, nested.FAST, "resume", {})
    assert response.status_code == 409
    assert "not Suspended" in response.json()["error"]
    response = post(world, nested.FAST, "rewind", {})
    assert response.status_code == 409
    assert "not Failed" in response.json()["error"]


def test_bad_actions(world: World) -> None:
    assert post(world, "boom", "explode", {}).status_code == 404
    response = post(world, "boom", "raise", {"data": 1})
    assert response.status_code == 400
    assert "name" in response.json()["error"]
    assert post(world, "boom", "raise", [1]).status_code == 400
    assert post(world, "boom", "cancel", {"reason": 5}).status_code == 400
    # A plain form post (what another site could make a browser send).
    form = world.http.post(api("boom", "/cancel"), data={"reason": "x"})
    assert form.status_code == 415
    broken = world.http.post(
        api("boom", "/cancel"),
        content=b"{",
        headers={"content-type": "application/json"},
    )
    assert broken.status_code == 400


def test_rewind_restarts_a_failed_instance(world: World) -> None:
    start_failed(world.rt, "boom-again")
    assert post(world, "boom-again", "rewind", {}).status_code == 200
    # The code still fails the same way: Failed again, after a rewind.
    state = world.rt.run(world.rt.client.wait_for_orchestration("boom-again", 10))
    assert state.status == "Failed"
    events = world.http.get(api("boom-again", "/history")).json()["events"]
    assert any(e["type"] == "ExecutionRewound" for e in events)


def test_read_only_refuses_every_action(world: World) -> None:
    with (
        served(world.db, read_only=True) as url,
        httpx.Client(base_url=url) as http,
    ):
        assert http.get("/api/config").json() == {"read_only": True}
        for action in ("raise", "cancel", "resume", "rewind"):
            response = http.post(api(XSS_ID, f"/{action}"), json={"name": "go"})
            assert response.status_code == 403, action
            assert "read-only" in response.json()["error"]
        page = http.get(f"/instances/{quote(XSS_ID, safe='')}").text
        assert 'id="actions"' not in page
        assert "read-only" in page
    state = world.rt.run(world.rt.client.get_status(XSS_ID))
    assert state is not None and state.status == "Running"


def test_pages_escape_user_data(world: World) -> None:
    page = world.http.get(f"/instances/{quote(XSS_ID, safe='')}")
    assert page.status_code == 200
    assert "<script>window" not in page.text
    assert "<img src=x" not in page.text
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page.text
    listing = world.http.get("/", params={"name": '"><script>x()</script>'}).text
    assert "<script>x()" not in listing
    assert "&quot;&gt;&lt;script&gt;x()" in listing


def test_pages_forbid_inline_script_and_framing(world: World) -> None:
    response = world.http.get("/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    script = world.http.get("/static/ui.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert ".innerHTML" not in script.text and "insertAdjacentHTML" not in script.text
    assert world.http.get("/static/../_api.py").status_code == 404
    assert world.http.get("/static/nothing.js").status_code == 404


def test_other_host_names_are_refused(world: World) -> None:
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1.
    response = world.http.get("/api/instances", headers={"host": "evil.example"})
    assert response.status_code == 400


def test_storage_label_hides_credentials() -> None:
    from perdure.ui._pages import storage_label

    assert (
        storage_label("postgresql://app:s3cret@db.local:5433/prod?sslmode=require")
        == "postgresql://db.local:5433/prod"
    )
    assert storage_label("sqlite:///x.db") == "sqlite:///x.db"


async def test_an_app_given_a_client_leaves_it_open(tmp_path: Path) -> None:
    import perdure
    from perdure.ui import create_app

    async with perdure.Client(f"sqlite:///{tmp_path / 'c.db'}") as client:
        app = create_app(client)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as h:
            assert (await h.get("/api/instances")).json()["items"] == []
        assert (await client.list_instances()).items == []
