"""Noisy objectives (``samples > 1``): the runner evaluates each asked point several times.

Each point's samples go through the optimizer's pool as separate evaluations (spread over
its workers); the optimizer is told their aggregate once all are back.  A generation's best
point that beats the incumbent is measured ``incumbent_samples`` times afresh before it may
become the best (:class:`~glompo_like.evaluation.samples.Sampler` keeps the books).  These
are methods of :class:`~glompo_like.execution.runner.Runner` (a mixin).
"""

from __future__ import annotations

import math
import pickle
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import EvaluationError
from ..evaluation import BatchPool, EvalBatch, EvalStatus, Outcome, PointBatch, StreamingPool

if TYPE_CHECKING:
    from .runner import RunnerSpec

__all__ = ["SampledEvaluation"]


class SampledEvaluation:
    """How the runner evaluates a generation of a noisy objective (see the module docstring)."""

    spec: RunnerSpec
    sampler: Any
    stop_reason: str | None
    _pending: list[EvalBatch]
    _pending_gens: int
    _worst: float

    if TYPE_CHECKING:  # the runner's own methods this uses
        def _should_abort(self) -> bool: ...
        def _penalty(self) -> float: ...

    def _gather(self, pool: BatchPool, jobs: list[tuple[Any, np.ndarray]]) -> tuple[dict[Any, Outcome], bool]:
        """Evaluate ``jobs`` (``(key, x)`` pairs) as one batch spread over the pool's workers;
        returns the outcomes by key and whether all ran (False: told to stop)."""
        out: dict[Any, Outcome] = {}
        if not jobs:
            return out, True
        if not isinstance(pool, StreamingPool):
            outcomes = pool.evaluate(np.array([x for _, x in jobs]), self._should_abort)
            for (key, _), o in zip(jobs, outcomes, strict=True):
                if o is not None:
                    out[key] = o
            return out, len(out) == len(jobs)
        for key, x in jobs:
            pool.submit(key, x)
        while len(out) < len(jobs):
            for key, o in pool.collect(timeout=0.05):  # the timeout keeps a Stop responsive
                out[key] = o
            if len(out) < len(jobs) and self._should_abort():
                pool.cancel_pending()
                out.update(pool.collect(timeout=0))
                return out, False
        return out, True

    def _sampled_generation(self, pool: BatchPool, xs: np.ndarray) -> tuple[np.ndarray, EvalBatch, int] | None:
        """Evaluate a generation of a noisy objective: ``samples`` evaluations of every point
        (spread over the workers), failed ones once more with ``on_error="resample"``, then
        more samples of the generation's best point if it beats the incumbent (see
        :mod:`glompo_like.evaluation.samples`).  Returns the values to tell (the
        aggregates), the batch to report (every sample a row, and the points) and how many
        points have a value; ``None`` if told to stop (what ran is then pending)."""
        s, sp = self.spec, self.sampler
        points = [sp.point(x) for x in xs]
        rows: list[tuple[np.ndarray, Outcome, int]] = []

        def run(jobs: list[tuple[tuple[int, int], np.ndarray]]) -> bool:
            done, complete = self._gather(pool, jobs)
            retry = []
            for key, x in jobs:
                o = done.get(key)
                if o is None:
                    continue
                rows.append((x, o, key[1]))
                if o.status is not EvalStatus.OK and s.on_error == "raise":
                    self._pend_rows(pool, rows, PointBatch.empty(s.bounds.dim))
                    cause = pickle.loads(o.exc_pickle) if o.exc_pickle else None
                    raise EvaluationError(f"evaluation failed ({o.status.value}): {o.error}") from cause
                if sp.record(points[key[0]], key[1], o, s.on_error == "resample"):
                    retry.append(((key[0], points[key[0]].take(1)[0]), x))
            if not complete:
                return False
            return run(retry) if retry else True

        complete = run([((i, j), p.x) for i, p in enumerate(points) for j in p.take(sp.samples)])
        if complete:  # the best point of the generation, if it beats the incumbent, is confirmed
            values = [sp.value(p)[0] if p.values else math.inf for p in points]
            best = int(np.argmin(values))
            more = sp.needs_confirmation(points[best])
            if more:
                sp.confirming(points[best])
                complete = run([((best, j), points[best].x) for j in points[best].take(more)])
                if complete:
                    sp.confirmed(points[best])
        if not complete:
            self._pend_rows(pool, rows, PointBatch.empty(s.bounds.dim))  # no point is complete
            return None
        pb = sp.batch(points, s.bounds.dim)
        if pb.ok.any():
            self._worst = max(self._worst, float(pb.fx[pb.ok].max()))
        fs = pb.fx.copy()
        if not pb.ok.all():
            fs[~pb.ok] = self._penalty()
        batch = EvalBatch.from_outcomes(np.array([r[0] for r in rows]), [r[1] for r in rows],
                                        [r[2] for r in rows], pb)
        return fs, batch, int(pb.ok.sum())

    def _pend_rows(self, pool: BatchPool, rows: list[tuple[np.ndarray, Outcome, int]], points: PointBatch,
                   count: bool = False) -> None:
        """Rows (and complete points) go out with the next report; ``count``: they finish a
        generation.  The rows of a pool that reports each evaluation were sent already."""
        if pool.reports_each or not rows:
            batch = EvalBatch.empty(self.spec.bounds.dim, points)
        else:
            batch = EvalBatch.from_outcomes(np.array([r[0] for r in rows]), [r[1] for r in rows],
                                            [r[2] for r in rows], points)
        if len(batch) or len(points) or count:
            self._pending.append(batch)
            self._pending_gens += int(count)

