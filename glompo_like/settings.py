"""Every setting of a run, defined once.

:class:`Settings` is one frozen dataclass.  Each field is declared with :func:`option`, which
carries its default, its documentation, its check, and whether a resumed run may change
it.  Everything else is derived from that one table:

- the parameters of :class:`~glompo_like.GloMPOManager` (its signature and its docstring),
- the checks run at construction (:meth:`Settings.build`: a wrong type raises
  :class:`~glompo_like.errors.ConfigTypeError`, a wrong value
  :class:`~glompo_like.errors.ConfigError`, both naming the argument and the fix),
- what a checkpoint stores (:meth:`Settings.saved`) and what ``load_checkpoint`` may
  override (:data:`RESUME_OVERRIDES`),
- the settings section of the run summary (:meth:`Settings.describe`),
- for type checkers, :class:`ManagerOptions`: the same names with the types each accepts
  (``tests/test_typing.py`` checks that it lists every setting of the table, in order).

Checks that involve several settings at once (an entry's Level 2 backend against the Level
1 backend, ``task_timeout`` against both, ...) live with the execution plan
(:func:`glompo_like.execution.plan.validate`).
"""

from __future__ import annotations

import difflib
import inspect
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, SupportsFloat, TypedDict, get_args

import numpy as np

from . import validation as v
from .bounds import Bounds, as_bounds
from .control.callbacks import Callback, check_callbacks
from .errors import ConfigError, ConfigTypeError
from .evaluation.core import ON_ERROR_POLICIES
from .evaluation.memory import parse_size
from .evaluation.samples import AGGREGATES
from .execution.handles import LEVEL1_BACKENDS
from .record.checkpoint import CheckpointingControl
from .record.status import STATUS_KINDS, StatusLike

if TYPE_CHECKING:
    from .policies.base import Checker, Hunter
    from .policies.generators import BaseGenerator
    from .policies.selectors import BaseSelector

__all__ = ["Settings", "ManagerOptions", "option", "RESUME_OVERRIDES", "default_max_jobs", "LEVEL1",
           "ON_ERROR_POLICIES", "Task", "Level1", "OnError", "StatusSpec"]

OWNER = "GloMPOManager"
LEVEL1 = (*LEVEL1_BACKENDS, "auto")

#: The objective: a 1-D float array in, a number out.
Task = Callable[[np.ndarray], SupportsFloat]
#: The names ``backend`` takes (``LEVEL1``, for type checkers; a test checks they agree).
Level1 = Literal["threads", "processes", "processes_forced", "auto"]
#: The names ``on_error`` takes.
OnError = Literal["penalty", "resample", "raise"]
#: What ``status`` takes: a name, a reporter, or ``None``.
StatusSpec = Literal["auto", "rich", "log"] | StatusLike | None
assert get_args(Level1) == LEVEL1 and get_args(OnError) == ON_ERROR_POLICIES
#: ``max_jobs`` above this many times the CPUs is refused (each slot is a thread or process)
MAX_JOBS_PER_CPU = 64


def default_max_jobs() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def option(default: Any, doc: str, check: Callable[[Any], Any] | None = None, *, resume: bool = True,
           saved: bool = True, shown: bool = True) -> Any:
    """Declare a setting: its ``default``, its ``doc`` (reStructuredText, shown in the
    manager's docstring), ``check(value) -> value`` (normalises, or raises a typed error),
    whether ``load_checkpoint`` may override it (``resume``), whether checkpoints store it
    (``saved``), and whether the summary shows it (``shown``)."""
    meta = {"doc": doc, "check": check, "resume": resume, "saved": saved, "shown": shown}
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


# ----------------------------------------------------------------------------- checks
def _task(value: Any) -> Any:
    if not callable(value):
        raise ConfigTypeError(f"{OWNER}: task must be a callable taking a 1-D float array and returning "
                              f"a float; got {type(value).__name__}")
    return value


def _of_kind(kind: str, where: str, example: str, allow_false: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None or (allow_false and value is False):
            return value
        if getattr(value, "kind", None) == kind:
            return value
        raise ConfigTypeError(f"{OWNER}: {where} must be a {kind} from glompo_like.policies (e.g. {example})"
                              f"{' or False' if allow_false else ''}; got {value!r}")
    return check


def _selector(value: Any) -> Any:
    from .policies.selectors import BaseSelector

    if value is None or isinstance(value, BaseSelector):
        return value
    raise ConfigTypeError(f"{OWNER}: opt_selector must be a selector such as "
                          f"CycleSelector([(CMAOptimizer, {{...}})]); got {type(value).__name__}")


def _generator(value: Any) -> Any:
    from .policies.generators import BaseGenerator

    if value is None or isinstance(value, BaseGenerator):
        return value
    raise ConfigTypeError(f"{OWNER}: x0_generator must be a generator from glompo_like.policies "
                          f"(e.g. RandomGenerator()); got {value!r}")


def _backend(value: Any) -> str:
    return v.one_of(value, "backend", LEVEL1, owner=OWNER)


def _max_jobs(value: Any) -> int | None:
    n = v.integer(value, "max_jobs", owner=OWNER, minimum=1, none_ok=True,
                  fix="It is the number of slots (cores) the run may use.")
    limit = MAX_JOBS_PER_CPU * default_max_jobs()
    if n is not None and n > limit:
        raise ConfigError(f"{OWNER}: max_jobs={n} is more than {MAX_JOBS_PER_CPU} slots per CPU "
                          f"({default_max_jobs()} CPUs here, so at most {limit}); each slot runs a thread "
                          "or a process: lower max_jobs")
    return n


def _working_dir(value: Any) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigTypeError(f"{OWNER}: working_dir must be a path or None, got {type(value).__name__}")
    path = Path(value).expanduser().absolute()  # (a resumed run finds its files from anywhere)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{OWNER}: working_dir {str(value)!r} exists and is not a directory")
    return path


def _start_method(name: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        methods = multiprocessing.get_all_start_methods()
        if value is None:
            return None
        return v.one_of(value, name, methods, owner=OWNER, fix="None picks the default")
    return check


def _seconds(name: str, *, none_ok: bool = False, zero_ok: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        return v.number(value, name, owner=OWNER, low=0.0, low_ok=zero_ok, none_ok=none_ok, unit="seconds")
    return check


def _thread_slice(value: Any) -> Any:
    if value is None or value == "auto":
        return value
    if isinstance(value, (str, bool)):
        raise ConfigTypeError(f"{OWNER}: thread_slice must be a number of seconds (e.g. 0.005), 'auto' or "
                              f"None, got {value!r}")
    return v.number(value, "thread_slice", owner=OWNER, low=0.0, low_ok=False, unit="seconds",
                    example=0.005, fix="a positive number of seconds, 'auto' or None")


def _checkpoint_control(value: Any) -> Any:
    if value is None or isinstance(value, CheckpointingControl):
        return value
    raise ConfigTypeError(f"{OWNER}: checkpoint_control must be a CheckpointingControl(...) or None, "
                          f"got {type(value).__name__}")


def _status(value: Any) -> Any:
    if isinstance(value, str) or value is None:
        return v.one_of(value, "status", STATUS_KINDS, owner=OWNER,
                        fix="or pass an object with update(view) and close(view) methods")
    if callable(getattr(value, "update", None)) and callable(getattr(value, "close", None)):
        return value
    raise ConfigTypeError(f"{OWNER}: status must be one of {STATUS_KINDS} or an object with update(view) "
                          f"and close(view) methods, got {value!r}")


def _clock(value: Any) -> Any:
    if not callable(value):
        raise ConfigTypeError(f"{OWNER}: clock must be a callable returning seconds (e.g. time.monotonic), "
                              f"got {value!r}")
    return value


def _dask_address(value: Any) -> Any:
    from .evaluation.dask_cluster import validate_address

    return validate_address(value)


def _dask_security(value: Any) -> Any:
    if value is None:
        return None
    try:
        from distributed.security import Security
    except ImportError:
        raise ConfigError(f"{OWNER}: dask_security needs the distributed package: "
                          "pip install 'glompo_like[dask]'") from None
    if isinstance(value, Security):
        return value
    if isinstance(value, dict):
        try:
            return Security(**value)
        except (TypeError, ValueError, OSError) as e:
            raise ConfigError(f"{OWNER}: dask_security={value!r} is not a valid distributed.Security: {e}; "
                              "give e.g. {'tls_ca_file': ..., 'tls_client_cert': ..., 'tls_client_key': ..., "
                              "'require_encryption': True}") from e
    raise ConfigTypeError(f"{OWNER}: dask_security must be a distributed.Security, a dict of its keyword "
                          f"arguments, or None, got {type(value).__name__}")
def _samples(value: Any) -> int:
    return v.integer(value, "samples", owner=OWNER, minimum=1, example=5,
                     fix="It is how many times each asked point is evaluated (1: a deterministic objective).")


def _incumbent_samples(value: Any) -> int | None:
    return v.integer(value, "incumbent_samples", owner=OWNER, minimum=1, none_ok=True, example=20,
                     fix="It is how many samples a point needs before it may be the best (None: 4 * samples).")


def _study(value: Any) -> str | None:
    if value is None:
        return None
    try:
        from .record.study.storage import normalise_url
    except ImportError as e:  # (a missing extra)
        raise ConfigError(f"{OWNER}: study needs SQLAlchemy ({e}): pip install 'glompo_like[study]'") from e
    if isinstance(value, os.PathLike):
        raise ConfigTypeError(f"{OWNER}: study must be a storage URL such as 'sqlite:///path/to/study.db', "
                              f"not a path; got {value!r}")
    normalise_url(value)  # (raises ConfigError naming what is wrong)
    return str(value)


def _flag(name: str) -> Callable[[Any], bool]:
    return lambda value: v.boolean(value, name, owner=OWNER)


# ----------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Settings:
    """The settings of one run (see the module docstring); build one with :meth:`build`."""

    task: Task = option(
        MISSING, "The objective: a callable taking a 1-D float array and returning a float.",
        _task, resume=False, saved=False)
    bounds: Bounds = option(
        MISSING, "``[(lower, upper), ...]``, one pair per parameter (or a :class:`~glompo_like.Bounds`).",
        as_bounds, resume=False)
    opt_selector: BaseSelector = option(
        None, "Which optimizers to start (a selector from :mod:`glompo_like.policies`).  Default: "
        ":func:`~glompo_like.policies.defaults.default_selector`: CMA-ES restarts with growing "
        "populations; with 2 or 3 slots (``max_jobs``) one optimizer at a time evaluates its population on "
        "all of them.", _selector)
    backend: Level1 = option(
        "processes", "Level 1 parallelism: ``\"threads\"``, ``\"processes\"`` (default), "
        "``\"processes_forced\"`` (non-daemonic, so optimizers may own process pools), or ``\"auto\"`` "
        "(measure the task briefly and choose; see :mod:`glompo_like.execution.auto`).  An optimizer "
        "entry's own ``backend`` (Level 2) may be ``\"auto\"`` too.  With the default ``opt_selector`` and 2 "
        "or 3 slots, ``\"processes\"`` becomes ``\"processes_forced\"``, so that the one optimizer may own a "
        "process pool (:func:`~glompo_like.policies.defaults.default_level1`).", _backend)
    max_jobs: int = option(
        None, "Slots (cores) the run may use; an optimizer takes ``workers`` slots.  Default: the cores "
        "available to this process.", _max_jobs)
    convergence_checker: Checker = option(
        None, "When the run ends (checkers compose with ``|`` and ``&``).  Default: "
        "``MaxFuncCalls(10_000 * dim)``.",
        _of_kind("checker", "convergence_checker", "MaxFuncCalls(20_000) | TargetCost(0.0)"))
    killing_conditions: Hunter | Literal[False] = option(
        None, "When the best optimizer stops another (hunters compose with ``&`` and ``|``), or "
        "``False`` for no hunting.  Default: :func:`~glompo_like.policies.defaults.default_hunters`.",
        _of_kind("hunter", "killing_conditions", "MinFuncCalls(1000) & BestUnmoving(400, 0.01)", True))
    x0_generator: BaseGenerator = option(
        None, "Start points of new optimizers.  Default: ``RandomGenerator()``.", _generator)
    hunt_frequency: int = option(
        None, "Evaluations between hunts.  Default ``10 * dim``.",
        lambda x: v.integer(x, "hunt_frequency", owner=OWNER, minimum=1, none_ok=True,
                            fix="It is the number of evaluations between hunts."))
    share_best_solutions: bool = option(
        False, "Send every new incumbent to the running optimizers (``inject``).",
        _flag("share_best_solutions"))
    working_dir: Path | None = option(
        None, "Where the evaluation log (``evaluations.sqlite``) and ``summary.yml`` go; ``None`` writes "
        "nothing.", _working_dir)
    seed: int | None = option(
        None, "Makes the run reproducible: start points, selector choices and every optimizer's seed "
        "derive from it.  A seeded run with ``max_jobs=1`` repeats exactly.",
        lambda x: v.integer(x, "seed", owner=OWNER, minimum=0, none_ok=True, example=1), resume=False)
    start_method: str | None = option(
        None, "``multiprocessing`` start method of optimizer processes (``None``: the platform default), "
        "and of Level 2 workers unless ``pool_start_method`` is given.", _start_method("start_method"))
    pool_start_method: str | None = option(
        None, "Start method of Level 2 process-pool workers.  ``None`` (the default): ``start_method`` if "
        "that is given, else ``\"forkserver\"`` where the platform has one and the main script keeps its "
        "run under ``if __name__ == \"__main__\":``, else the platform default (see :doc:`parallelism`).  "
        "The choice and its reason are in the execution plan and the run summary.",
        _start_method("pool_start_method"))
    task_timeout: float | None = option(
        None, "Seconds one evaluation may take; needs evaluations in killable processes.  The worker is "
        "killed and the evaluation logged as ``timed_out``.", _seconds("task_timeout", none_ok=True))
    on_error: OnError = option(
        "penalty", "What an optimizer is told about a failed evaluation (exception, NaN, inf, None, an "
        "array): ``\"penalty\"`` (default: ``penalty``, or if ``None`` a value worse than any it has "
        "seen), ``\"resample\"`` (evaluate the point once more, then penalise), or ``\"raise\"`` (end the "
        "run with :class:`~glompo_like.errors.EvaluationError`).  Whatever the policy, a run whose "
        "first ``fail_fast`` evaluations all fail stops early (see ``fail_fast``), and a run whose "
        "evaluations fail often says so in its log while it goes.",
        lambda x: v.one_of(x, "on_error", ON_ERROR_POLICIES, owner=OWNER))
    fail_fast: int | None = option(
        50, "If the first ``fail_fast`` evaluations of the run all fail (the task raises, or returns no "
        "usable number), the run stops with :class:`~glompo_like.errors.BrokenTaskError`, which carries "
        "the first failure's message and traceback, instead of spending its budget on a broken task.  "
        "``None``: never stop for that.",
        lambda x: v.integer(x, "fail_fast", owner=OWNER, minimum=1, none_ok=True, example=50,
                            fix="None turns the check off"))
    samples: int = option(
        1, "Noisy objectives: evaluate every asked point this many times (each a row of the log, with "
        "its ``sample`` number; the repeats are spread over the optimizer's Level 2 workers), and tell the "
        "optimizer, the hunters and the checkers their ``aggregate``.  The budget counts every sample.  A "
        "point that looks like the optimizer's best is measured ``incumbent_samples`` times before it may "
        "become the best, so the reported best is not a lucky draw (see :doc:`evaluation_models`).", _samples)
    aggregate: str = option(
        "mean", "How a point's samples are combined: ``\"mean\"`` or ``\"median\"`` (robust to outliers).",
        lambda x: v.one_of(x, "aggregate", AGGREGATES, owner=OWNER))
    incumbent_samples: int | None = option(
        None, "With ``samples > 1``: the samples a point needs before it may become an optimizer's best (and "
        "the run's).  Each generation, its best point, when its aggregate beats the optimizer's best, is "
        "measured this many times afresh, and their aggregate is its value (the draws that made it look best "
        "are set aside).  ``None``: ``4 * samples``; at most ``samples``: no re-measuring.",
        _incumbent_samples)
    memory_limit: int | None = option(
        None, "Resident memory one evaluation's process (and what it started) may use, e.g. ``\"2GiB\"``, "
        "``\"512MiB\"`` or a number of bytes; over it, the process group is killed and the evaluation logged "
        "as ``memory_exceeded``.  Needs Level 2 ``\"processes\"`` or ``\"isolated\"``.",
        lambda x: parse_size(x, "memory_limit", OWNER))
    penalty: float | None = option(
        None, "The value an optimizer is told for a failed evaluation (``None``: automatic).",
        lambda x: v.number(x, "penalty", owner=OWNER, none_ok=True, fix="None is automatic"))
    blas_threads: int | None = option(
        1, "BLAS/OpenMP threads in Level 2 worker processes (``None``: untouched).",
        lambda x: v.integer(x, "blas_threads", owner=OWNER, minimum=1, none_ok=True,
                            fix="Use None to leave BLAS threading alone."))
    shutdown_grace: float = option(
        2.0, "Seconds children get to finish their generation when stopped, before they are terminated.",
        _seconds("shutdown_grace"))
    overwrite: bool = option(
        False, "Replace the log of an earlier, finished run in ``working_dir`` (otherwise that is an "
        "error).", _flag("overwrite"), resume=False, saved=False)
    report_interval: float = option(
        0.02, "Longest time (seconds) an optimizer keeps evaluated generations before reporting them.  "
        "Optimizers with fast generations report a few at a time, which keeps the manager's cost low; near "
        "the end of an evaluation budget they report every generation, so the budget is overshot by at "
        "most one generation per optimizer.  ``0`` makes every optimizer report each generation and wait "
        "for the manager's decision (hunt, stop) before evaluating the next.",
        _seconds("report_interval", zero_ok=True))
    thread_slice: float | str | None = option(
        "auto", "``backend=\"threads\"``: runner threads take turns, each running whole generations for "
        "this many seconds (e.g. ``0.01``), instead of contending for the interpreter lock all the time, "
        "which costs 10–25% of the throughput when the task is fast and holds the GIL.  ``\"auto\"`` "
        "(default): the manager measures the task when the run starts and takes turns of 10 ms only for "
        "a fast task that holds the GIL; the choice and its reason are in the execution plan.  ``None``: "
        "never take turns.  A number forces turns, which serialises tasks that release the GIL.",
        _thread_slice)
    reuse_processes: bool = option(
        True, "Process backends: when an optimizer ends cleanly, its process stays and runs the next "
        "optimizer, which saves starting a process for every restart.  The task is unpickled once per "
        "process, so what it keeps in module or object state carries over.  ``False``: a new process for "
        "every optimizer.  A process whose optimizer crashed is never reused.", _flag("reuse_processes"))
    checkpoint_control: CheckpointingControl | None = option(
        None, "When to write checkpoints (a :class:`~glompo_like.CheckpointingControl`); resume with "
        ":meth:`load_checkpoint`.  A ``CHKPT`` file in ``working_dir`` or :meth:`checkpoint` writes one at "
        "once; Ctrl-C writes one when this is set.", _checkpoint_control)
    status: StatusSpec = option(
        "auto", "Live status while the run goes: ``\"auto\"`` (a live table in a terminal when ``rich`` is "
        "installed, otherwise a line on the ``glompo_like.status`` logger), ``\"rich\"``, ``\"log\"``, a "
        "reporter object (see :mod:`glompo_like.record.status`), or ``None`` for none.", _status,
        saved=False)
    status_interval: float = option(
        10.0, "Seconds between status updates.", _seconds("status_interval", zero_ok=True))
    capture_prints: bool = option(
        True, "With a ``working_dir``, what each optimizer (and its task) prints goes to "
        "``<working_dir>/prints/opt_<id>.out`` and ``.err``.", _flag("capture_prints"))
    clock: Callable[[], float] = option(
        time.monotonic, "The time source (seconds, monotonic) for policies; tests inject a fake one.",
        _clock, resume=False, saved=False, shown=False)
    callbacks: tuple[Callback, ...] = option(
        (), "Functions called as ``f(view, event)`` from the manager's thread on a new best, after each "
        "logged batch and when an optimizer ends; returning ``StopRun(reason)`` ends the run, and an "
        "exception is logged and listed in ``result.stats[\"callback_errors\"]`` without ending it (see "
        ":mod:`glompo_like.control.callbacks`).", check_callbacks, saved=False)
    dask_address: str | None = option(
        None, "Scheduler of an existing Dask cluster (``\"tcp://host:8786\"``) for entries with "
        "``backend=\"dask\"``; ``None`` starts an embedded cluster on 127.0.0.1 for the run, private to "
        "this process (TLS with certificates made for the run, when ``cryptography`` is installed, as the "
        "``dask`` extra does).", _dask_address)
    dask_security: Any = option(
        None, "TLS settings for the existing cluster at ``dask_address``: a ``distributed.Security``, or a "
        "dict of its keyword arguments (``tls_ca_file``, ``tls_client_cert``, ``tls_client_key``, "
        "``require_encryption``, ...), passed to every Dask client of the run.", _dask_security,
        shown=True)
    dask_worker_timeout: float = option(
        120.0, "Seconds to wait for a Dask cluster to have a worker before the run gives up with "
        ":class:`~glompo_like.evaluation.dask_pool.DaskUnavailable` (a cluster whose workers come from a "
        "batch queue may need more).", _seconds("dask_worker_timeout"))
    study: str | None = option(
        None, "Several managers, one study: a storage URL that every manager of the study is given, "
        "``\"sqlite:///path/to/study.db\"`` (managers on one machine) or ``\"postgresql://user@host/dbname\"`` "
        "(managers on several machines).  The first manager creates it; the others join it if their setup "
        "agrees.  They share the evaluation history, the budget, the convergence and the best point (see "
        ":doc:`study`).  ``None``: a run of its own.", _study, resume=False)
    study_timeout: float = option(
        60.0, "With ``study``: seconds without a heartbeat after which a manager of the study is marked lost "
        "(and its optimizers with it).  Managers beat every ``study_timeout / 4`` seconds (at most 5); "
        "every manager of a study must use the same value.", _seconds("study_timeout"), resume=False)
    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, **given: Any) -> Settings:
        """Check every given setting, fill in the defaults (some depend on the dimension),
        and return the frozen settings.  Unknown names raise ``ConfigTypeError`` with the
        closest known name."""
        names = [f.name for f in fields(cls)]
        for name in given:
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; the settings are {names}"
                raise ConfigTypeError(f"{OWNER}() got an unexpected keyword argument {name!r}{hint}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in given:
                value = given[f.name]
            elif f.default is not MISSING:
                value = f.default
            else:
                raise ConfigTypeError(f"{OWNER}() missing required argument: {f.name!r}")
            check = f.metadata["check"]
            values[f.name] = check(value) if check is not None else value
        return cls(**values)._with_defaults()

    def _with_defaults(self) -> Settings:
        from .policies import defaults

        dim = self.bounds.dim
        max_jobs = self.max_jobs if self.max_jobs is not None else default_max_jobs()
        backend, selector = self.backend, self.opt_selector
        if selector is None:
            selector = defaults.default_selector(dim, max_jobs)
            backend = defaults.default_level1(backend, max_jobs)
        return replace(
            self,
            opt_selector=selector,
            backend=backend,
            max_jobs=max_jobs,
            convergence_checker=(self.convergence_checker if self.convergence_checker is not None
                                 else defaults.default_checker(dim)),
            killing_conditions=(self.killing_conditions if self.killing_conditions is not None
                                else defaults.default_hunters(dim)),
            x0_generator=self.x0_generator if self.x0_generator is not None else defaults.default_generator(dim),
            hunt_frequency=(self.hunt_frequency if self.hunt_frequency is not None
                            else defaults.default_hunt_frequency(dim)),
        )

    # ------------------------------------------------------------------ derived views
    @property
    def dim(self) -> int:
        return self.bounds.dim

    @property
    def lockstep(self) -> bool:
        """A seeded single-optimizer run is exactly reproducible: strict lock-step."""
        return self.max_jobs == 1 and self.seed is not None

    def saved(self) -> dict[str, Any]:
        """The settings a checkpoint stores (``bounds`` as pairs)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["saved"]}
        out["bounds"] = self.bounds.as_pairs()
        if out.get("working_dir") is not None:
            out["working_dir"] = str(out["working_dir"])
        return out

    def describe(self) -> dict[str, Any]:
        """The summary's settings section: every shown setting, policies by their ``repr``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if not f.metadata["shown"]:
                continue
            value = getattr(self, f.name)
            if f.name == "task":  # a function's name, or the class of a callable object
                value = getattr(value, "__qualname__", None) or type(value).__qualname__
            elif f.name == "bounds":
                value = value.as_pairs()
            elif f.name == "callbacks":
                value = [getattr(fn, "__qualname__", None) or type(fn).__name__ for fn in value]
            elif not (value is None or isinstance(value, (bool, int, float, str))):
                value = repr(value) if not isinstance(value, Path) else str(value)
            out[f.name] = value
        out["dim"] = self.dim
        return out


class ManagerOptions(TypedDict, total=False):
    """The keyword settings of :class:`~glompo_like.GloMPOManager` (and of
    :func:`~glompo_like.minimize`) with the types each accepts, for type checkers
    (``**settings: Unpack[ManagerOptions]``).  :class:`Settings` holds the same names with
    their values after the defaults are filled in; their docs are there."""

    opt_selector: BaseSelector | None
    backend: Level1
    max_jobs: int | None
    convergence_checker: Checker | None
    killing_conditions: Hunter | Literal[False] | None
    x0_generator: BaseGenerator | None
    hunt_frequency: int | None
    share_best_solutions: bool
    working_dir: str | os.PathLike[str] | None
    seed: int | None
    start_method: str | None
    pool_start_method: str | None
    task_timeout: float | None
    on_error: OnError
    fail_fast: int | None
    samples: int
    aggregate: Literal["mean", "median"]
    incumbent_samples: int | None
    memory_limit: int | str | None
    penalty: float | None
    blas_threads: int | None
    shutdown_grace: float
    overwrite: bool
    report_interval: float
    thread_slice: float | Literal["auto"] | None
    reuse_processes: bool
    checkpoint_control: CheckpointingControl | None
    status: StatusSpec
    status_interval: float
    capture_prints: bool
    clock: Callable[[], float]
    callbacks: Callback | Iterable[Callback] | None
    dask_address: str | None
    dask_security: Any
    dask_worker_timeout: float
    study: str | None
    study_timeout: float


#: what ``load_checkpoint`` lets a resumed run change
RESUME_OVERRIDES = frozenset(f.name for f in fields(Settings) if f.metadata["resume"])


def parameters_doc(indent: str = "    ") -> str:
    """The numpydoc ``Parameters`` section of every setting (for the manager's docstring)."""
    import textwrap

    lines = ["Parameters", "----------"]
    for f in fields(Settings):
        lines.append(f"{f.name}:")
        lines.extend(textwrap.wrap(f.metadata["doc"], 88, initial_indent=indent, subsequent_indent=indent,
                                   break_on_hyphens=False))
    return "\n".join(lines)


def signature(first: list[inspect.Parameter]) -> inspect.Signature:
    """The manager's constructor signature: ``first`` (``self``), then every setting
    (``task`` and ``bounds`` positional or keyword, the rest keyword-only)."""
    accepted: dict[str, Any] = {"task": "Task", "bounds": "BoundsLike"}
    for name, hint in ManagerOptions.__annotations__.items():  # the types accepted, not those stored
        accepted[name] = getattr(hint, "__forward_arg__", hint)
    params = list(first)
    for f in fields(Settings):
        kind = (inspect.Parameter.POSITIONAL_OR_KEYWORD if f.default is MISSING
                else inspect.Parameter.KEYWORD_ONLY)
        default = inspect.Parameter.empty if f.default is MISSING else f.default
        params.append(inspect.Parameter(f.name, kind, default=default, annotation=accepted.get(f.name, f.type)))
    return inspect.Signature(params)


def document_settings(cls: type) -> type:
    """Give ``cls`` (the manager) the settings as its constructor's signature, and their
    docs as the ``Parameters`` section of its docstring."""
    cls.__init__.__signature__ = signature(  # type: ignore[misc]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)])
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n" + "\n".join(
        ("    " + line).rstrip() for line in parameters_doc().splitlines()) + "\n"
    return cls
