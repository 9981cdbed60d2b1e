"""What the PNG report marks: hunts (who killed whom, and why), how each optimizer ended,
failed evaluations; titles name the problem; legends stay beside the axes; a run with
only failures points to the error column."""

from __future__ import annotations

import numpy as np
import pytest

from glompo_like import GloMPOManager, read_log
from glompo_like.optimizers import RandomOptimizer
from glompo_like.policies import BestUnmoving, CycleSelector, MaxFuncCalls, MinFuncCalls
from glompo_like.problems import rastrigin
from glompo_like.record import report

pytestmark = pytest.mark.timeout(90)
pytest.importorskip("matplotlib")


class Flaky:
    """Rastrigin that fails on every 7th call."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        if self.calls % 7 == 0:
            raise RuntimeError("solver did not converge")
        return rastrigin(x)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("marks")
    GloMPOManager(Flaky(), [(-5.12, 5.12)] * 3, backend="threads", max_jobs=3, status=None, seed=7,
                  opt_selector=CycleSelector([(RandomOptimizer, {"popsize": 6})]),
                  convergence_checker=MaxFuncCalls(3000), hunt_frequency=30,
                  killing_conditions=MinFuncCalls(60) & BestUnmoving(30, 0.5), working_dir=d).start_manager()
    return d


def _figure(draw, data, size=(11, 5)):
    Figure, Canvas = report._import_matplotlib()
    fig = report._new_figure(Figure, Canvas, size)
    draw(fig, data)
    fig.canvas.draw()
    return fig


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_hunts_are_read_from_the_log_and_marked(run):
    d = report._load(run)
    opts = read_log(run, optimizers=True)
    killed = {int(i) for i, k in zip(opts["opt_id"], opts["end_kind"], strict=True) if k == "killed"}
    hunts = d.hunts()
    assert killed and {v for _, v, _ in hunts} == killed
    assert all("BestUnmoving" in why or "MinFuncCalls" in why for _, _, why in hunts)
    fig = _figure(report._plot_per_optimizer, d)
    labels = _texts(fig)
    for hunter, _, _ in hunts:
        assert f"by {hunter}" in labels  # each victim's end is labelled with its hunter
    timeline = _figure(report._plot_timeline, d, (11, 6))
    (text,) = [t for t in _texts(timeline) if t.startswith("Hunts")]
    for hunter, victim, _ in hunts:
        assert f"{victim} hunted by {hunter}: " in text


def test_titles_name_the_problem_and_legends_stay_beside_the_axes(run):
    d = report._load(run)
    assert d.problem == "Flaky, 3 dimensions"
    for draw in (report._plot_per_optimizer, report._plot_overall, report._plot_timeline):
        fig = _figure(draw, d)
        assert any(ax.get_title().startswith("Flaky, 3 dimensions: ") for ax in fig.axes)
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is not None:
                assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # not over the plot


def test_failed_evaluations_and_ends_are_in_the_legend(run):
    d = report._load(run)
    n_failed = int((~np.isfinite(d.fx_ok)).sum())
    assert n_failed > 0
    fig = _figure(report._plot_per_optimizer, d)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert f"failed evaluation ({n_failed})" in labels
    assert "stopped" in labels and any(label.startswith("killed") for label in labels)


def test_a_run_with_only_failures_points_to_the_error_column(tmp_path):
    def broken(x):
        raise ValueError("the simulation diverged")

    m = GloMPOManager(broken, [(-1, 1)] * 2, backend="threads", max_jobs=1, status=None, seed=1,
                      opt_selector=CycleSelector([(RandomOptimizer, {"popsize": 4})]),
                      convergence_checker=MaxFuncCalls(100), working_dir=tmp_path)
    try:
        m.start_manager()
    except Exception:
        pass
    d = report._load(tmp_path)
    for draw in (report._plot_per_optimizer, report._plot_overall):
        text = "\n".join(_texts(_figure(draw, d)))
        assert "error column" in text and "ValueError: the simulation diverged" in text
    assert len(report.make_report(tmp_path)) == 3
