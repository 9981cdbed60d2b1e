"""The dashboard's data (read from the log alone), its server, and the HTML report (the
same page with the data inside).  The browser tests are in test_dashboard_browser.py."""

from __future__ import annotations

import json
import re
import urllib.request

import numpy as np
import pytest

from glompo_like import GloMPOManager, read_log
from glompo_like.cli import main
from glompo_like.optimizers import RandomOptimizer
from glompo_like.policies import BestUnmoving, CycleSelector, MaxFuncCalls, MinFuncCalls
from glompo_like.problems import rastrigin
from glompo_like.record.dashboard import Dashboard, RunFollower, page_html, static_page
from glompo_like.record.report import make_html_report

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def hunted_run(tmp_path_factory):
    """A finished run with hunts."""
    d = tmp_path_factory.mktemp("hunted")
    result = GloMPOManager(rastrigin, [(-5.12, 5.12)] * 3, backend="threads", max_jobs=3, status=None, seed=7,
                           opt_selector=CycleSelector([(RandomOptimizer, {"popsize": 6})]),
                           convergence_checker=MaxFuncCalls(3000), hunt_frequency=30,
                           killing_conditions=MinFuncCalls(60) & BestUnmoving(30, 0.5),
                           working_dir=d).start_manager()
    return d, result


def test_the_state_is_the_log(hunted_run):
    d, result = hunted_run
    s = RunFollower(d).state()
    evals, opts = read_log(d), read_log(d, optimizers=True)
    assert s["status"] == "finished" and s["end_reason"] == result.stats["end_cond"]
    assert s["evaluations"] == len(evals) == result.stats["f_evals"]
    assert s["best"]["fx"] == result.fx and s["best"]["opt_id"] == result.origin["opt_id"]
    assert s["title"] == "rastrigin, 3 dimensions"
    assert [o["opt_id"] for o in s["optimizers"]] == list(opts["opt_id"])
    fx = np.asarray(evals["fx"], dtype=float)
    for o in s["optimizers"]:
        mine = fx[np.asarray(evals["opt_id"]) == o["opt_id"]]
        assert o["n_evals"] == len(mine)
        if len(mine):
            assert o["best_fx"] == np.nanmin(mine) == o["trace"]["f"][-1]
            assert o["trace"]["f"] == sorted(o["trace"]["f"], reverse=True)  # improvements only
    # hunts: who killed whom, and why, from the log's end reasons
    killed = {int(i): r for i, k, r in zip(opts["opt_id"], opts["end_kind"], opts["end_reason"], strict=True)
              if k == "killed"}
    assert killed, "the fixture should hunt"
    assert {h["victim"] for h in s["hunts"]} == set(killed)
    for h in s["hunts"]:
        assert killed[h["victim"]] == f"killed by optimizer {h['hunter']}: {h['reason']}"
        assert next(o for o in s["optimizers"] if o["opt_id"] == h["victim"])["hunted_by"] == h["hunter"]
    assert s["settings"]["killing_conditions"].startswith("(MinFuncCalls")
    assert s["rate"]["average"] > 0 and sum(s["rate"]["v"]) > 0
    json.dumps(s, allow_nan=False)  # plain JSON


def test_the_follower_reads_only_new_rows_and_waits_for_a_log(tmp_path):
    follower = RunFollower(tmp_path)
    assert follower.state()["status"] == "waiting"
    m = GloMPOManager(rastrigin, [(-5.12, 5.12)] * 2, backend="threads", max_jobs=1, status=None, seed=1,
                      opt_selector=CycleSelector([(RandomOptimizer, {"popsize": 5})]),
                      convergence_checker=MaxFuncCalls(200), working_dir=tmp_path)
    m.start_manager()
    s1 = follower.state()
    assert s1["evaluations"] == len(read_log(tmp_path)) and follower.last_id == s1["evaluations"]
    s2 = follower.state()  # nothing new: the same picture
    assert s2["evaluations"] == s1["evaluations"] and s2["best"] == s1["best"]


def test_a_run_whose_evaluations_all_failed_points_to_the_error_column(tmp_path):
    def broken(x):
        raise ValueError("the simulation diverged")

    m = GloMPOManager(broken, [(-1, 1)] * 2, backend="threads", max_jobs=1, status=None, seed=1,
                      opt_selector=CycleSelector([(RandomOptimizer, {"popsize": 4})]),
                      convergence_checker=MaxFuncCalls(200), working_dir=tmp_path)
    try:  # (whether such a run ends early with an error is not this test's business)
        m.start_manager()
    except Exception:
        pass
    s = RunFollower(tmp_path).state()
    assert s["evaluations"] > 0 and s["failed"] == s["evaluations"] and s["best"]["fx"] is None
    assert s["failures"] and "ValueError: the simulation diverged" in s["failures"][0]["error"]
    assert "see the error column" in page_html()


def test_the_server_serves_the_page_plotly_and_the_state(hunted_run):
    d, result = hunted_run
    with Dashboard(d, port=0) as board:
        assert board.host == "127.0.0.1"
        page = urllib.request.urlopen(board.url, timeout=10).read().decode()
        scripts = re.findall(r"<script[^>]*src=\"([^\"]+)\"", page)
        assert scripts == ["plotly.min.js"]  # nothing from elsewhere
        assert "http://" not in page and "https://" not in page
        js = urllib.request.urlopen(board.url + "plotly.min.js", timeout=10).read()
        assert len(js) > 1_000_000 and b"plotly" in js[:2000].lower()
        state = json.loads(urllib.request.urlopen(board.url + "api/state", timeout=10).read())
        assert state["evaluations"] == result.stats["f_evals"]
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(board.url + "nothing", timeout=10)


def test_html_report_is_one_self_contained_file(hunted_run, tmp_path, capsys):
    d, result = hunted_run
    path = make_html_report(d, tmp_path)
    text = path.read_text()
    assert not re.search(r"<script[^>]*\ssrc=", text) and not re.search(r"<link[^>]*href=\"https?:", text)
    assert f'"evaluations": {result.stats["f_evals"]}' in text
    assert main(["report", str(d), "--html", "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError):
        static_page(tmp_path / "nothing")


def test_dashboard_command_checks_its_arguments(tmp_path, capsys):
    assert main(["dashboard", str(tmp_path / "missing")]) == 1
    assert "no run directory" in capsys.readouterr().err
    assert main(["dashboard", str(tmp_path), "--refresh", "0"]) == 1
    assert "--refresh" in capsys.readouterr().err


def test_without_plotly_the_commands_name_the_extra(hunted_run, tmp_path, capsys, monkeypatch):
    d, _ = hunted_run
    monkeypatch.setitem(__import__("sys").modules, "plotly.offline", None)
    assert main(["dashboard", str(d), "--port", "0"]) == 1
    assert "pip install 'glompo_like[interactive]'" in capsys.readouterr().err
    assert main(["report", str(d), "--html", "--out", str(tmp_path)]) == 1
    assert "pip install 'glompo_like[interactive]'" in capsys.readouterr().err
