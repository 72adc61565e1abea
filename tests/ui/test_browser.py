"""The web UI in a real headless browser (chromium through selenium).

What a user sees: the list shows started instances and filters them; the
page of a nested race shows the winner and the cancelled losers; the cancel
button cancels a waiting instance; read-only mode shows no buttons and its
API refuses actions; an id made of markup stays text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

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
from ui_support import BackgroundRuntime, browser, running, served, wait_for

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver


@dataclass
class Site:
    rt: BackgroundRuntime
    driver: WebDriver
    url: str
    db: str

    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def instance(self, instance_id: str) -> None:
        self.open("/instances/" + quote(instance_id, safe=""))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    db = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'ui.db'}"
    with browser() as driver, running(db, ORCHESTRATIONS, ACTIVITIES) as rt:
        start_nested(rt)
        start_failed(rt, "boom")
        start_waiters(rt, "order-1", "order-2", XSS_ID)
        with served(db) as url:
            yield Site(rt, driver, url, db)


def rows(driver: WebDriver) -> dict[str, str]:
    """The listed instances: id -> status (read at once: the list is live)."""
    found: dict[str, str] = driver.execute_script(
        """
        const out = {};
        for (const row of document.querySelectorAll("#instances tr[data-status]")) {
          out[row.dataset.instanceId] = row.dataset.status;
        }
        return out;
        """
    )
    return found


def test_list_shows_started_instances_and_filters_them(site: Site) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    site.open("/")
    listed = wait_for(site.driver, lambda d: rows(d) if len(rows(d)) >= 5 else None)
    assert listed[nested.FAST] == "Completed"
    assert listed["boom"] == "Failed"
    assert listed["order-1"] == "Running"
    assert listed[XSS_ID] == "Running"
    Select(site.driver.find_element(By.NAME, "status")).select_by_value("Running")
    site.driver.find_element(By.CSS_SELECTOR, "#filters button").click()
    running_only = wait_for(
        site.driver, lambda d: rows(d) if "boom" not in rows(d) else None
    )
    assert set(running_only.values()) == {"Running"}
    assert "?status=Running" in site.driver.current_url
    name = site.driver.find_element(By.NAME, "name")
    name.clear()
    name.send_keys("NestedScopes")
    Select(site.driver.find_element(By.NAME, "status")).select_by_value("")
    site.driver.find_element(By.CSS_SELECTOR, "#filters button").click()
    assert wait_for(site.driver, lambda d: rows(d) == {nested.FAST: "Completed"})


def test_list_pages_with_a_cursor(site: Site) -> None:
    from selenium.webdriver.common.by import By

    driver = site.driver
    site.open("/?name=Waiter&limit=2")
    first = wait_for(driver, lambda d: rows(d) if len(rows(d)) == 2 else None)
    info = driver.find_element(By.ID, "list-info")
    assert "more on the next page" in info.text
    driver.find_element(By.ID, "next").click()
    second = wait_for(driver, lambda d: rows(d) if rows(d) != first else None)
    assert len(second) == 1 and not set(second) & set(first)
    assert "cursor=" in driver.current_url
    assert wait_for(driver, lambda d: "page 2" in info.text)
    assert not driver.find_element(By.ID, "next").is_enabled()
    driver.find_element(By.ID, "prev").click()
    assert wait_for(driver, lambda d: rows(d) == first)


def test_nested_race_shows_the_winner_and_the_cancelled_losers(site: Site) -> None:
    from selenium.webdriver.common.by import By

    site.instance(nested.FAST)
    driver = site.driver

    def scope(path: str) -> Any:
        return driver.find_element(By.CSS_SELECTOR, f'details[data-path="{path}"]')

    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-path="0.1.1"]'))
    assert scope("0.1").get_attribute("data-status") == "winner"
    assert "✓ winner" in scope("0.1").find_element(By.TAG_NAME, "summary").text
    inner = scope("0.1.1")
    assert inner.get_attribute("data-status") == "cancelled"
    assert "cancelled: lost select" in inner.find_element(By.TAG_NAME, "summary").text

    def work(label: str) -> Any:
        for item in driver.find_elements(By.CSS_SELECTOR, "li.work"):
            if label in (item.get_attribute("textContent") or ""):
                return item
        raise AssertionError(f"no work {label!r}")

    assert work("InnerB").get_attribute("data-status") == "winner"
    assert work("InnerA1").get_attribute("data-status") == "cancelled"
    assert work("timer 60 s").get_attribute("data-status") == "cancelled"
    assert work("Finalize").get_attribute("data-status") == "completed"
    # Nested blocks collapse.
    assert inner.get_attribute("open") is not None
    inner.find_element(By.TAG_NAME, "summary").click()
    assert wait_for(driver, lambda d: scope("0.1.1").get_attribute("open") is None)
    assert not work("InnerA1").is_displayed()
    # The timeline: one row per piece of work, with its outcome.
    timeline = driver.find_elements(By.CSS_SELECTOR, "#timeline .tl-row")
    statuses = [row.get_attribute("data-status") for row in timeline]
    assert statuses == ["completed", "cancelled", "cancelled", "winner", "completed"]
    assert driver.find_element(By.ID, "status").text == "Completed"
    payloads = driver.find_element(By.ID, "payloads").text
    assert "fast-job:ready>b>final" in payloads


def test_failure_shows_the_error_and_its_stack(site: Site) -> None:
    from selenium.webdriver.common.by import By

    site.instance("boom")
    driver = site.driver
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#payloads .error"))
    payloads = driver.find_element(By.ID, "payloads").text
    assert "ValueError: cannot fly" in payloads
    assert "Traceback" in payloads
    assert driver.find_element(By.ID, "rewind").is_enabled()
    assert not driver.find_element(By.ID, "resume").is_enabled()


def test_cancel_button_cancels_a_waiting_instance(site: Site) -> None:
    from selenium.webdriver.common.by import By

    site.instance("order-2")
    driver = site.driver
    wait_for(driver, lambda d: d.find_element(By.ID, "status").text == "Running")
    driver.find_element(By.NAME, "reason").send_keys("from the UI")
    driver.find_element(By.ID, "cancel").click()
    wait_for(driver, lambda d: d.switch_to.alert).accept()
    wait_for(driver, lambda d: d.find_element(By.ID, "status").text == "Cancelled")
    state = site.rt.run(site.rt.client.get_status("order-2"))
    assert state is not None and state.status == "Cancelled"
    tree = driver.find_element(By.ID, "tree").text
    assert "cancelled: from the UI" in tree
    assert "[shielded]" in tree  # the compensation ran on
    assert not driver.find_element(By.ID, "cancel").is_enabled()


def test_raise_event_button_delivers_json_data(site: Site) -> None:
    from selenium.webdriver.common.by import By

    site.instance("order-1")
    driver = site.driver
    wait_for(driver, lambda d: d.find_element(By.ID, "status").text == "Running")
    form = driver.find_element(By.ID, "raise-form")
    form.find_element(By.NAME, "name").send_keys("go")
    form.find_element(By.NAME, "data").send_keys("{not json")
    driver.find_element(By.ID, "raise").click()
    assert wait_for(
        driver, lambda d: "not JSON" in d.find_element(By.ID, "action-result").text
    )
    form.find_element(By.NAME, "data").clear()
    form.find_element(By.NAME, "data").send_keys('{"ok": true}')
    driver.find_element(By.ID, "raise").click()
    wait_for(driver, lambda d: d.find_element(By.ID, "status").text == "Completed")
    assert '"ok": true' in driver.find_element(By.ID, "payloads").text


def test_markup_in_an_id_stays_text(site: Site) -> None:
    from selenium.webdriver.common.by import By

    driver = site.driver
    site.instance(XSS_ID)
    wait_for(driver, lambda d: d.find_element(By.ID, "status").text == "Running")
    assert driver.find_element(By.ID, "instance-id").text == XSS_ID
    site.open("/")
    wait_for(driver, lambda d: XSS_ID in rows(d))
    assert driver.find_elements(By.LINK_TEXT, XSS_ID)
    assert driver.execute_script("return window.pwned === undefined")
    assert not driver.find_elements(By.CSS_SELECTOR, "img[src=x]")


def test_read_only_mode_shows_no_buttons_and_refuses_actions(site: Site) -> None:
    from selenium.webdriver.common.by import By

    driver = site.driver
    with served(site.db, read_only=True) as url:
        driver.get(url + "/instances/" + quote(XSS_ID, safe=""))
        wait_for(driver, lambda d: d.find_element(By.ID, "status").text == "Running")
        assert not driver.find_elements(By.ID, "actions")
        assert not driver.find_elements(By.ID, "cancel")
        assert "read-only" in driver.find_element(By.CSS_SELECTOR, "header").text
        # The page's own origin, posting as the script would: refused.
        status = driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            fetch(arguments[0], {method: "POST",
                headers: {"Content-Type": "application/json"}, body: "{}"})
              .then((r) => done(r.status), (e) => done(String(e)));
            """,
            "/api/instances/" + quote(XSS_ID, safe="") + "/cancel",
        )
        assert status == 403
    state = site.rt.run(site.rt.client.get_status(XSS_ID))
    assert state is not None and state.status == "Running"


def test_screenshots_regenerate(tmp_path: Path) -> None:
    from screenshots import take

    for path in take(tmp_path):
        assert path.read_bytes().startswith(b"\x89PNG")
