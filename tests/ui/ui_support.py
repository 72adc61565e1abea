"""Helpers of the web UI tests: a runtime, a served UI, a headless browser.

The runtime runs on an event loop of its own in a background thread, and
uvicorn serves the UI from another (as ``perdure ui`` does, with a client
of its own), so a test body is plain blocking code: HTTP calls and the
browser. The browser is Debian's chromium driven by selenium through
``/usr/bin/chromedriver``; without it the browser tests skip, except with
``CI=true`` where they fail (``.ci/run`` installs it).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import sys
import threading
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import uvicorn

import perdure
from perdure.ui import create_app

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

T = TypeVar("T")
WAIT = 20
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (once) as module ``example_<name>``."""
    module_name = f"example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


class BackgroundRuntime:
    """A `perdure.Runtime` on its own event loop in a background thread."""

    def __init__(self, runtime: perdure.Runtime) -> None:
        self.runtime = runtime
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = WAIT) -> T:
        """Run *coro* on the runtime's loop; return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def client(self) -> perdure.Client:
        return self.runtime.client

    def start(self) -> None:
        self.thread.start()
        self.run(self.runtime.__aenter__())

    def stop(self) -> None:
        try:
            self.run(self.runtime.__aexit__(None, None, None))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(WAIT)
            self.loop.close()


@contextmanager
def running(
    url: str,
    orchestrations: Sequence[Any],
    activities: Sequence[Any] = (),
) -> Iterator[BackgroundRuntime]:
    """A runtime hosting *orchestrations* and *activities* on *url*."""
    runtime = perdure.Runtime(
        url, orchestrations=list(orchestrations), activities=list(activities)
    )
    background = BackgroundRuntime(runtime)
    background.start()
    try:
        yield background
    finally:
        background.stop()


@contextmanager
def served(url: str, *, read_only: bool = False) -> Iterator[str]:
    """The UI for *url* on a free loopback port; yields its base URL."""
    app = create_app(url, read_only=read_only, allowed_hosts=["127.0.0.1"])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="none")
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
        server.should_exit = True  # the lifespan then closes the UI's client
        thread.join(WAIT)
    assert not thread.is_alive()


def _browser_paths() -> tuple[str, str] | None:
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    binary = "/usr/lib/chromium/chromium"
    if not os.path.exists(binary):
        binary = shutil.which("chromium") or ""
    if not (os.path.exists(driver) and binary):
        return None
    return driver, binary


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@contextmanager
def browser(width: int = 1280, height: int = 900) -> Iterator[WebDriver]:
    """Headless chromium (skips without it; fails with ``CI=true``)."""
    try:
        from selenium import webdriver
    except ImportError:
        _missing("selenium is not installed (the dev extra)")
        raise  # unreachable: _missing raises
    paths = _browser_paths()
    if paths is None:
        _missing("chromium and chromium-driver are not installed (apt-get)")
        raise AssertionError("unreachable")
    driver_path, binary = paths
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    service = webdriver.ChromeService(executable_path=driver_path)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, condition: Any, timeout: float = WAIT) -> Any:
    """Wait until ``condition(driver)`` is truthy; return its value.

    The page re-renders while it refreshes live: an element found a moment
    ago may be gone (stale) when the condition reads it; that is not an
    answer, so the wait looks again (it failed CI once).
    """
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.05,
        ignored_exceptions=(StaleElementReferenceException,),
    ).until(condition)
