"""The dashboard and the HTML report in a real headless browser (Debian's chromium, driven
by chromedriver through selenium).

The browser is required: without ``/usr/bin/chromium`` and ``/usr/bin/chromedriver``
(``apt-get install chromium chromium-driver``; ``.ci/run`` installs them) these tests
FAIL.  On a developer machine without them, ``GLOMPO_SKIP_BROWSER=1`` turns the failure
into a skip; it is ignored when ``CI`` is set, so CI never skips them.  Other paths:
``GLOMPO_CHROMIUM`` and ``GLOMPO_CHROMEDRIVER``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from glompo_like import GloMPOManager, read_log
from glompo_like.optimizers import RandomOptimizer
from glompo_like.policies import CycleSelector, MaxFuncCalls
from glompo_like.record.dashboard import Dashboard
from glompo_like.record.report import make_html_report

pytestmark = [pytest.mark.timeout(180), pytest.mark.browser]

CHROMIUM = os.environ.get("GLOMPO_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("GLOMPO_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT = 60.0  # seconds any one expectation may take to come true (a busy 2-core machine)


def _missing_browser(reason: str) -> None:
    if os.environ.get("GLOMPO_SKIP_BROWSER") == "1" and not os.environ.get("CI"):
        pytest.skip(f"{reason} (GLOMPO_SKIP_BROWSER=1)")
    pytest.fail(f"{reason}: apt-get install chromium chromium-driver (on a developer machine without "
                "them, GLOMPO_SKIP_BROWSER=1 skips this test; CI never skips it)", pytrace=False)


@pytest.fixture
def browser(tmp_path):
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            _missing_browser(f"{path} is missing")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing_browser("selenium is not installed (pip install '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                 "--window-size=1400,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def _until(what, condition, timeout=WAIT):
    """Wait until ``condition()`` is truthy (returns it), failing with ``what``."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as e:  # the page is still loading
            last_error = e
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what} (last error: {last_error!r})")


def _text(driver, element_id: str) -> str:
    return driver.execute_script(f"return document.getElementById('{element_id}').textContent")


def _int(driver, element_id: str) -> int | None:
    text = _text(driver, element_id).strip()
    return int(text) if text.isdigit() else None


class Gated:
    """A sphere that stops at its ``pause_at``-th call until ``go`` is set (so the test
    knows the run is still going while it looks at the page)."""

    def __init__(self, pause_at: int) -> None:
        self.pause_at, self.calls = pause_at, 0
        self.go, self.paused = threading.Event(), threading.Event()

    def __call__(self, x):
        self.calls += 1
        if self.calls == self.pause_at:
            self.paused.set()
            self.go.wait(WAIT)
        return float(np.sum(np.asarray(x) ** 2)) + 0.5


def _external_requests(driver, url: str) -> list[str]:
    names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [n for n in names if not (n.startswith(url) or n.startswith("data:") or n.startswith("file:"))]


def test_the_dashboard_shows_a_running_run_and_follows_it_to_its_end(browser, tmp_path):
    run_dir = tmp_path / "run"
    task = Gated(pause_at=301)
    manager = GloMPOManager(task, [(-3, 3)] * 2, backend="threads", max_jobs=1, status=None, seed=4,
                            opt_selector=CycleSelector([(RandomOptimizer, {"popsize": 10})]),
                            convergence_checker=MaxFuncCalls(900), killing_conditions=False,
                            thread_slice=None, working_dir=run_dir)
    results = []
    runner = threading.Thread(target=lambda: results.append(manager.start_manager()), daemon=True)
    runner.start()
    try:
        assert task.paused.wait(WAIT), "the run did not reach its pause"
        with Dashboard(run_dir, port=0, refresh=0.3) as board:
            browser.get(board.url)
            # the page loads and shows the run's numbers: those of the log, while it runs
            logged = len(read_log(run_dir))
            assert 0 < logged < 900
            _until("the page to show the logged evaluations", lambda: _int(browser, "n-evals") == logged)
            assert _text(browser, "status") == "running"
            assert _text(browser, "title") == "Gated, 2 dimensions"
            best = float(np.nanmin(np.asarray(read_log(run_dir)["fx"], dtype=float)))
            assert float(_text(browser, "best-fx")) == pytest.approx(best, rel=1e-6)
            _until("the charts to be drawn", lambda: browser.execute_script(
                "return document.querySelectorAll('#chart-evals .scatterlayer .trace').length") >= 2)
            # ... and it updates while the run writes, up to the end
            task.go.set()
            _until("the page to show the finished run", lambda: _text(browser, "status") == "finished")
            runner.join(WAIT)
            (result,) = results
            _until("the final count", lambda: _int(browser, "n-evals") == result.stats["f_evals"] > logged)
            assert float(_text(browser, "best-fx")) == pytest.approx(result.fx, rel=1e-6)
            assert "MaxFuncCalls" in _text(browser, "end-reason")
            rows = browser.execute_script("return document.querySelectorAll('#optimizers-table tbody tr').length")
            assert rows == len(read_log(run_dir, optimizers=True))
            assert _external_requests(browser, board.url) == []  # everything came from the dashboard
    finally:
        task.go.set()
        runner.join(WAIT)


def test_the_html_report_opens_without_a_server(browser, tmp_path):
    run_dir = tmp_path / "run"
    result = GloMPOManager(lambda x: float(np.sum(np.abs(x))) + 1.0, [(-3, 3)] * 3, backend="threads", max_jobs=2,
                           status=None, seed=5, convergence_checker=MaxFuncCalls(1500),
                           opt_selector=CycleSelector([(RandomOptimizer, {"popsize": 8})]),
                           working_dir=run_dir).start_manager()
    page = make_html_report(run_dir, tmp_path / "out")
    browser.get(Path(page).resolve().as_uri())
    _until("the report to render", lambda: _int(browser, "n-evals") == result.stats["f_evals"])
    assert _text(browser, "status") == "finished"
    assert float(_text(browser, "best-fx")) == pytest.approx(result.fx, rel=1e-6)
    assert browser.execute_script("return typeof Plotly") == "object"
    assert browser.execute_script("return document.querySelectorAll('#chart-evals .scatterlayer .trace').length") >= 2
    assert _external_requests(browser, "file:") == []
