"""The run's dashboard: a local web page that follows a run from its evaluation log.

::

    glompo-like dashboard RUN_DIR [--host 127.0.0.1] [--port 8050]
    glompo-like dashboard STUDY_URL          # a study of several managers (see docs/study.rst)

serves one page that shows, and refreshes every few seconds while the run goes: the best
value so far of every optimizer against evaluations and against time (log scale when every
value is positive), the evaluations per second, the optimizers' table (state, how and why
each ended, who hunted whom), the hunts, the failed evaluations, the run's settings and
how it ended.  ``glompo-like report --html`` writes the same page, with the data inside, as
one self-contained file.

The page is made from the log alone (:class:`RunFollower`): it is opened read-only, in
WAL mode readers never block the run's writer, and each refresh reads only the rows
added since the previous one.  The dashboard can be started before the run (it waits for
the log), while it goes, or after it ended or was killed.  The charts use Plotly's
JavaScript, served by the dashboard itself from the ``plotly`` package (no network is
needed): ``pip install 'glompo_like[interactive]'``.

A study (``sqlite:///study.db``, ``postgresql://...``) is followed the same way, over
every manager's evaluations and optimizers (numbered as the study numbers them): a SQLite
study's file is read as a run's log is; a study on a database server is copied at each
refresh, in one read transaction, into memory (:func:`~glompo_like.record.study.reading.snapshot`:
a refresh then costs time in proportion to the study's size).  A study is "running" while
one of its managers is.  The server is the standard library's
:class:`http.server.ThreadingHTTPServer`; it binds ``127.0.0.1`` unless told otherwise.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import GlompoError
from .log import LOG_NAME

__all__ = ["RunFollower", "Dashboard", "serve", "page_html", "static_page", "plotly_js", "DEFAULT_PORT"]

DEFAULT_PORT = 8050
#: how often the page asks for new data while the run goes (seconds)
DEFAULT_REFRESH = 2.0
_KILLED_BY = re.compile(r"killed by optimizer (\d+): (.*)", re.S)
_MAX_FAILURES = 25  # failed evaluations listed (the latest)
_RATE_BINS = 240


def plotly_js() -> str:
    """Plotly's JavaScript bundle, from the installed ``plotly`` package."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError as e:
        raise ImportError("the dashboard and the HTML report need plotly, which is not installed: "
                          "pip install 'glompo_like[interactive]'") from e
    return str(get_plotlyjs())


# --------------------------------------------------------------------------- the data
@dataclass
class _Opt:
    """What the follower keeps of one optimizer."""

    opt_id: int
    n_evals: int = 0
    n_failed: int = 0
    best: float = math.inf
    last_eval: int = 0
    last_t: float = 0.0
    # best so far at each improvement: evaluation id, seconds since the start, value
    e: list[int] = field(default_factory=list)
    t: list[float] = field(default_factory=list)
    f: list[float] = field(default_factory=list)


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _read_text(path: Path) -> dict[str, Any] | None:
    """summary.yml as a dict (JSON or YAML), or ``None``."""
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        try:
            import yaml

            data = yaml.safe_load(text)
        except Exception:
            return None
    return data if isinstance(data, dict) else None


class RunFollower:
    """Reads a run's log incrementally and keeps what the dashboard shows.

    ``state()`` reads the rows added since its last call (one read-only transaction) and
    returns the whole picture as plain JSON-able data.  Only the points where an
    optimizer's best value improved are kept, so the state stays small for long runs.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        #: the study's URL, when the dashboard follows a study
        self.url: str | None = None
        self.log_path: Path | None
        if _is_url(run_dir):
            from .study.reading import study_file

            self.url = str(run_dir)
            self.log_path = study_file(self.url)  # (None: a study on a database server)
            self.run_dir: Path | None = None
        else:
            where = Path(run_dir)
            # a run's directory (or one to come), its log file, or a SQLite study's file
            is_file = where.suffix == ".sqlite" or where.is_file()
            self.log_path = where if is_file and not where.is_dir() else where / LOG_NAME
            self.run_dir = self.log_path.parent
        #: what is followed, as the page names it
        self.where = self.url or str(self.run_dir)
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.last_id = 0
        self.opts: dict[int, _Opt] = {}
        self.n_evals = 0
        self.by_status: Counter[str] = Counter()
        self.failures: list[dict[str, Any]] = []
        self.t0: float | None = None
        self.t_last: float | None = None
        self.per_second: Counter[int] = Counter()
        self.overall: tuple[list[int], list[float], list[float]] = ([], [], [])
        self.best = math.inf
        self.best_opt: int | None = None
        self.best_eval: int | None = None
        self.dim: int | None = None

    # ------------------------------------------------------------------ reading
    def _connect(self) -> sqlite3.Connection:
        if self.log_path is None:  # a study on a database server: a copy in memory
            from .study.reading import snapshot
            from .study.storage import StudyError

            try:
                return snapshot(self.url or "")
            except StudyError as e:
                raise sqlite3.OperationalError(str(e)) from e
        uri = "file:" + self.log_path.resolve().as_posix().replace("%", "%25").replace("?", "%3f").replace(
            "#", "%23") + "?mode=ro"
        return sqlite3.connect(uri, uri=True, isolation_level=None)

    def state(self) -> dict[str, Any]:
        """The dashboard's data (see the module docstring); safe from several threads."""
        with self._lock:
            if self.log_path is not None and not self.log_path.exists():
                return self._waiting("no evaluation log yet: waiting for the run to start")
            try:
                db = self._connect()
            except sqlite3.Error as e:
                return self._waiting(f"cannot open the log yet ({e})")
            try:
                db.execute("BEGIN")
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if not {"evaluations", "optimizers"} <= tables:
                    return self._waiting("the log has no tables yet: the run is starting")
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
                top = db.execute("SELECT max(eval_id) FROM evaluations").fetchone()[0] or 0
                if top < self.last_id:  # the log was rolled back (a resumed run) or replaced
                    self._reset()
                self._read_evaluations(db)
                opt_rows = db.execute(
                    "SELECT opt_id, type, settings, t_start, t_end, n_evals, best_fx, end_kind, end_reason, "
                    "exitcode FROM optimizers ORDER BY opt_id").fetchall()
                study = _study_parts(db) if "managers" in tables else None
            except sqlite3.Error as e:
                return self._waiting(f"cannot read the log right now ({e}); trying again")
            finally:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                db.close()
            return _json_safe(self._picture(meta, opt_rows, study))

    def _waiting(self, why: str) -> dict[str, Any]:
        return {"status": "waiting", "message": why, "run_dir": self.where, "now": time.time()}

    def _read_evaluations(self, db: sqlite3.Connection) -> None:
        cur = db.execute(
            "SELECT eval_id, opt_id, fx, status, t_start, duration, "
            "CASE WHEN status = 'ok' THEN NULL ELSE substr(error, 1, 400) END "
            "FROM evaluations WHERE eval_id > ? ORDER BY eval_id", (self.last_id,))
        while True:
            rows = cur.fetchmany(4096)
            if not rows:
                break
            for eval_id, opt_id, fx, status, t_start, duration, error in rows:
                self._add(eval_id, opt_id, fx, status or "ok", t_start, duration, error)

    def _add(self, eval_id: int, opt_id: int, fx: float | None, status: str, t_start: float | None,
             duration: float | None, error: str | None) -> None:
        self.last_id = eval_id
        self.n_evals += 1
        self.by_status[status] += 1
        t_end = (t_start or 0.0) + (duration or 0.0)
        if self.t0 is None and t_start is not None:
            self.t0 = t_start
        t0 = self.t0 if self.t0 is not None else t_end
        t_rel = max(0.0, t_end - t0)
        self.t_last = t_end if self.t_last is None else max(self.t_last, t_end)
        self.per_second[int(t_rel)] += 1
        o = self.opts.get(opt_id)
        if o is None:
            o = self.opts[opt_id] = _Opt(opt_id)
        o.n_evals += 1
        o.last_eval, o.last_t = eval_id, t_rel
        if status != "ok" or fx is None or not math.isfinite(fx):
            o.n_failed += 1
            lines = (error or "").strip().splitlines()
            self.failures.append({"eval_id": eval_id, "opt_id": opt_id, "status": status,
                                  "error": lines[-1] if lines else ""})
            del self.failures[:-_MAX_FAILURES]
            return
        if fx < o.best:
            o.best = fx
            o.e.append(eval_id)
            o.t.append(t_rel)
            o.f.append(fx)
        if fx < self.best:
            self.best, self.best_opt, self.best_eval = fx, opt_id, eval_id
            for lst, v in zip(self.overall, (eval_id, t_rel, fx), strict=True):
                lst.append(v)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ the picture
    def _picture(self, meta: dict[str, str], opt_rows: list[tuple],
                 study: _StudyParts | None = None) -> dict[str, Any]:
        summary = None if self.run_dir is None else _read_text(self.run_dir / "summary.yml")
        settings: dict[str, Any] | None = None
        if "run" in meta:
            try:
                settings = json.loads(meta["run"])
            except ValueError:
                settings = None
        if summary is not None and isinstance(summary.get("settings"), dict):
            settings = summary["settings"]
        dim = meta.get("dim")
        t0 = self.t0
        optimizers, hunts = [], []
        kinds: Counter[str] = Counter()
        for opt_id, typ, desc, t_start, t_end, _n, _best, end_kind, end_reason, exitcode in opt_rows:
            o = self.opts.get(opt_id, _Opt(opt_id))
            state = "running" if end_kind is None else end_kind
            if typ != "probe":  # (optimizer 0 of backend="auto": the task probe)
                kinds[state] += 1
            hunted_by = None
            m = _KILLED_BY.match(end_reason or "")
            if end_kind == "killed" and m:
                hunted_by = int(m.group(1))
                if study is not None:  # (the reason names the hunter by its number in its manager)
                    hunted_by = study.ids.get((study.manager_of.get(opt_id, ""), hunted_by), hunted_by)
                hunts.append({"hunter": hunted_by, "victim": opt_id, "reason": m.group(2),
                              "t": None if t_end is None or t0 is None else max(0.0, t_end - t0),
                              "eval_id": o.last_eval or None})
            optimizers.append({
                "opt_id": opt_id, "type": typ, "settings": desc, "state": state,
                "n_evals": o.n_evals, "n_failed": o.n_failed,
                "best_fx": _finite(o.best), "end_kind": end_kind, "end_reason": end_reason,
                "hunted_by": hunted_by, "exitcode": exitcode,
                "t_start": None if t_start is None or t0 is None else t_start - t0,
                "t_end": None if t_end is None or t0 is None else t_end - t0,
                "trace": {"e": o.e + ([o.last_eval] if o.e and o.last_eval > o.e[-1] else []),
                          "t": o.t + ([o.last_t] if o.e and o.last_eval > o.e[-1] else []),
                          "f": o.f + ([o.f[-1]] if o.e and o.last_eval > o.e[-1] else [])},
            })
        end = None
        if summary is not None:
            stats = summary.get("stats") or {}
            end = stats.get("end_cond")
        now = time.time()
        elapsed = (self.t_last - t0) if (self.t_last is not None and t0 is not None) else 0.0
        task = (settings or {}).get("task")
        title_dim = (settings or {}).get("dim", dim)
        status = "finished" if summary is not None else ("running" if kinds.get("running") else "idle")
        if study is not None:  # running while one of its managers is
            status = "running" if any(state == "running" for _, state, _ in study.managers) else "finished"
            ended = sorted({reason for _, state, reason in study.managers if state != "running" and reason})
            end = "; ".join(ended) or None
        return {
            "status": status,
            "message": None,
            "run_dir": self.where,
            "title": _title(task, title_dim),
            "now": now,
            "last_eval_age": None if self.t_last is None else max(0.0, now - self.t_last),
            "elapsed": elapsed,
            "end_reason": end,
            "evaluations": self.n_evals,
            "by_status": dict(self.by_status),
            "failed": self.n_evals - self.by_status.get("ok", 0),
            "best": {"fx": _finite(self.best), "opt_id": self.best_opt, "eval_id": self.best_eval,
                     "x": ((summary or {}).get("result") or {}).get("x")},
            "optimizers_by_state": dict(kinds),
            "rate": self._rates(elapsed),
            "overall": {"e": self.overall[0], "t": self.overall[1], "f": self.overall[2]},
            "optimizers": optimizers,
            "hunts": hunts,
            "failures": list(reversed(self.failures)),
            "settings": settings,
            "result": (summary or {}).get("result"),
            "stats": (summary or {}).get("stats"),
        }

    def _rates(self, elapsed: float) -> dict[str, Any]:
        """Evaluations per second: over the whole run, over the last 10 s, and as a series."""
        if not self.per_second:
            return {"average": None, "recent": None, "t": [], "v": []}
        last = max(self.per_second)
        width = max(1, math.ceil((last + 1) / _RATE_BINS))
        bins: Counter[int] = Counter()
        for s, n in self.per_second.items():
            bins[s // width] += n
        ts = list(range(0, last // width + 1))
        recent_from = max(0, last - 9)
        recent = sum(n for s, n in self.per_second.items() if s >= recent_from) / max(1.0, min(10.0, elapsed))
        return {"average": self.n_evals / elapsed if elapsed > 0 else None, "recent": recent,
                "t": [(k + 0.5) * width for k in ts], "v": [bins.get(k, 0) / width for k in ts]}


def _is_url(where: Any) -> bool:
    return isinstance(where, str) and "://" in where


@dataclass
class _StudyParts:
    """What a study adds to a run's log: the study's number of each optimizer by
    ``(manager_id, its number in its manager)``, each optimizer's manager, and the managers
    as ``(manager_id, state, end_reason)``."""

    ids: dict[tuple[str, int], int]
    manager_of: dict[int, str]
    managers: list[tuple[str, str, str | None]]


def _study_parts(db: sqlite3.Connection) -> _StudyParts:
    parts = _StudyParts({}, {}, [])
    for opt_id, manager_id, local in db.execute("SELECT opt_id, manager_id, local_opt_id FROM optimizers"):
        parts.ids[(manager_id, local)] = opt_id
        parts.manager_of[opt_id] = manager_id
    parts.managers = db.execute("SELECT manager_id, state, end_reason FROM managers ORDER BY started_at").fetchall()
    return parts


def _json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no inf or NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _title(task: Any, dim: Any) -> str:
    what = str(task) if task else "glompo_like run"
    try:
        return f"{what}, {int(dim)} dimension{'s' if int(dim) != 1 else ''}"
    except (TypeError, ValueError):
        return what


# --------------------------------------------------------------------------- the page
def _template() -> str:
    return resources.files(__package__).joinpath("dashboard.html").read_text(encoding="utf-8")


def _json_for_script(data: Any) -> str:
    """JSON that can sit inside a ``<script>`` element."""
    return (json.dumps(data, allow_nan=False, default=str).replace("</", "<\\/")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def page_html(refresh: float = DEFAULT_REFRESH) -> str:
    """The live page: it loads Plotly from ``plotly.min.js`` and its data from
    ``api/state`` on the same server, every ``refresh`` seconds."""
    config = {"mode": "live", "refresh_ms": int(refresh * 1000)}
    return (_template().replace("/*CONFIG*/null", _json_for_script(config))
            .replace("<!--PLOTLY-->", '<script src="plotly.min.js"></script>')
            .replace("/*STATE*/null", "null"))


def static_page(run_dir: str | os.PathLike[str]) -> str:
    """The page of the run as it is now, as one self-contained HTML document (data and
    Plotly inside: it opens without a server or a network)."""
    follower = RunFollower(run_dir)
    if follower.log_path is not None and not follower.log_path.exists():
        raise FileNotFoundError(f"no evaluation log at {follower.log_path} (a run writes it into its working_dir)")
    state = follower.state()
    js = plotly_js().replace("</script", "<\\/script")
    return (_template().replace("/*CONFIG*/null", _json_for_script({"mode": "static", "refresh_ms": 0}))
            .replace("<!--PLOTLY-->", f"<script>{js}</script>")
            .replace("/*STATE*/null", _json_for_script(state)))


# --------------------------------------------------------------------------- the server
class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", self.server.page)
        elif path == "/plotly.min.js":
            self._send(200, "application/javascript; charset=utf-8", self.server.plotly,
                       cache="public, max-age=86400")
        elif path == "/api/state":
            body = json.dumps(self.server.follower.state(), allow_nan=False, default=str).encode()
            self._send(200, "application/json", body)
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found")

    def _send(self, code: int, kind: str, body: bytes, cache: str = "no-store") -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", cache)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the browser went away
            pass

    def log_message(self, format: str, *args: Any) -> None:
        return None  # quiet: the terminal shows the URL, not every request


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], follower: RunFollower, page: bytes, plotly: bytes) -> None:
        super().__init__(address, _Handler)
        self.follower, self.page, self.plotly = follower, page, plotly


class Dashboard:
    """A dashboard server for one run directory, serving in a background thread.

    ``Dashboard(run_dir, host="127.0.0.1", port=8050)``; ``port=0`` picks a free port.
    :attr:`url` is where to point a browser; :meth:`close` (or leaving the ``with``
    block) stops the server.
    """

    def __init__(self, run_dir: str | os.PathLike[str], host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 refresh: float = DEFAULT_REFRESH) -> None:
        if not _is_url(run_dir) and not Path(run_dir).exists():
            raise FileNotFoundError(f"no run directory {run_dir}")
        self.follower = RunFollower(run_dir)
        self._server = _Server((host, port), self.follower, page_html(refresh).encode(), plotly_js().encode())
        address = self._server.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="glompo-dashboard", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in str(self.host) else self.host
        return f"http://{host}:{self.port}/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(run_dir: str | os.PathLike[str], host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          refresh: float = DEFAULT_REFRESH, announce: Any = print) -> None:
    """Serve the dashboard of ``run_dir`` until Ctrl-C (what ``glompo-like dashboard`` does)."""
    try:
        board = Dashboard(run_dir, host, port, refresh)
    except OSError as e:
        raise GlompoError(f"cannot serve the dashboard on {host}:{port}: {e}") from e
    announce(f"dashboard of {board.follower.where}: {board.url}  (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    finally:
        board.close()
