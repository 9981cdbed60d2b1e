"""The documentation runs as written: every code block of README.md and docs/*.rst.

A user follows a page from top to bottom, so the blocks of a page run in order, in one
fresh directory per page:

- a ``python`` block is saved as a script and run with this interpreter (so its
  ``if __name__ == "__main__":`` guard, where it has one, is true), with a hard timeout;
- a ``pycon`` block (``>>>``) runs as a doctest;
- a shell block (``console``) runs its ``glompo-like ...`` and ``python -m glompo_like ...``
  commands; installing and developing this repository (``python3 -m venv``, ``pip``,
  ``pytest``, ``ruff``, ``sphinx-build``, ``bash .ci/run``, ``git``, ``cd``) is shown, not
  run, and any other command (a benchmark, a Dask scheduler) needs the block to be marked
  as a fragment.

Blocks marked as fragments (see ``tests/_docblocks.py`` and "Writing docs" in the README)
are not run; a Python fragment must still be valid Python.  A block that needs an
optional extra which is not installed (``dask``, ``plots``, ``bbob`` ...) is skipped.
The ``Examples`` sections (doctests) in the package's docstrings run too.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import importlib.util
import os
import pkgutil
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from _docblocks import PYCON, PYTHON, SHELL, Block, blocks_of

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.rst"))]
BLOCK_TIMEOUT = 150  # seconds, per block or command

#: extra -> the module that tells whether it is installed
EXTRAS = {"dask": "distributed", "plots": "matplotlib", "hdf5": "h5py", "progress": "rich",
          "bbob": "cocoex", "peers": "nevergrad", "yaml": "yaml"}
#: optional modules a block may import (extras, and tools that are no dependency at all)
OPTIONAL = {*EXTRAS.values(), "dask", "pandas", "pygmo", "dask_jobqueue"}

_SETUP_TOOLS = {"pip", "pip3", "git", "cd", "ruff", "sphinx-build", "pytest"}
_SETUP_MODULES = {"venv", "pip", "pytest", "sphinx"}
_SHELL_SYNTAX = {"|", "||", ";", "&", ">", ">>", "<", "2>", "2>&1"}


def _code_blocks(fragments: bool) -> list[Block]:
    return [b for page in PAGES for b in blocks_of(page) if b.is_code and (b.fragment is not None) == fragments]


# ----------------------------------------------------------------------------- running one page
class PageRun:
    """Runs the code blocks of one page in order, each once, in the page's directory."""

    def __init__(self, page: Path, directory: Path) -> None:
        self.blocks = [b for b in blocks_of(page) if b.is_code]
        self.dir = directory / "work"
        self.scripts = directory / "scripts"
        self.dir.mkdir()
        self.scripts.mkdir()
        self.results: list[tuple[str, str]] = []

    def result(self, block: Block) -> tuple[str, str]:
        """``("ok" | "skip" | "fail" | "fragment", detail)`` of ``block``, after running
        every block above it on the page."""
        k = self.blocks.index(block)
        while len(self.results) <= k:
            self.results.append(self._run(self.blocks[len(self.results)]))
        return self.results[k]

    def _run(self, b: Block) -> tuple[str, str]:
        if b.fragment is not None:
            return "fragment", b.fragment
        if b.lang in PYTHON:
            script = self.scripts / f"block_{b.line}.py"
            script.write_text(b.code, encoding="utf-8")
            return _outcome(b, [[sys.executable, str(script)]], self.dir)
        if b.lang in PYCON:
            text = self.scripts / f"block_{b.line}.txt"
            text.write_text(b.code, encoding="utf-8")
            return _outcome(b, [[sys.executable, "-c", _DOCTEST, str(text)]], self.dir)
        assert b.lang in SHELL
        commands, problem = shell_commands(b.code)
        if problem:
            return "fail", (f"{b.where}: {problem}; mark the block as a fragment (a '.. fragment' "
                            "comment above it, or ```console fragment in Markdown) if it cannot run here")
        return _outcome(b, commands, self.dir)


_DOCTEST = """
import doctest, sys
path = sys.argv[1]
test = doctest.DocTestParser().get_doctest(open(path, encoding="utf-8").read(),
                                           {"__name__": "__main__"}, path, path, 0)
runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
runner.run(test)
sys.exit(1 if runner.failures else 0)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["MPLBACKEND"] = "Agg"
    env.pop("COLUMNS", None)
    return env


def _outcome(b: Block, commands: list[list[str]], cwd: Path) -> tuple[str, str]:
    skipped = []
    for argv in commands:
        shown = b.where if b.lang in PYTHON | PYCON else shlex.join(argv[1:] if argv[0] == sys.executable else argv)
        try:
            p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, errors="replace",
                               timeout=BLOCK_TIMEOUT, env=_env(), check=False)
        except subprocess.TimeoutExpired as e:
            return "fail", f"{b.where}: `{shown}` did not finish within {BLOCK_TIMEOUT} s\n{_tail(e.stdout, e.stderr)}"
        if p.returncode == 0:
            continue
        missing = _missing_extra(p.stdout + p.stderr)
        if missing:
            skipped.append(f"`{shown}` needs {missing}, which is not installed")
            continue
        return "fail", f"{b.where}: `{shown}` exited with {p.returncode}\n{_tail(p.stdout, p.stderr)}"
    return ("skip", "; ".join(skipped)) if skipped else ("ok", "")


def _tail(out: str | bytes | None, err: str | bytes | None, n: int = 40) -> str:
    text = "".join(s.decode(errors="replace") if isinstance(s, bytes) else (s or "") for s in (out, err))
    return "\n".join(text.splitlines()[-n:])


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _missing_extra(output: str) -> str | None:
    """The optional module or extra a failed block needed and this environment lacks."""
    for name in re.findall(r"No module named '([\w.]+)'", output):
        top = name.split(".")[0]
        if top in OPTIONAL and not _installed(top):
            return f"the module {top!r}"
    for extra in re.findall(r"glompo_like\[(\w+)\]", output):
        if extra in EXTRAS and not _installed(EXTRAS[extra]):
            return f"the {extra!r} extra"
    return None


# ----------------------------------------------------------------------------- shell blocks
def shell_commands(code: str) -> tuple[list[list[str]], str | None]:
    """The commands of a shell block that run here (as argv lists for this interpreter),
    or a problem: a command that is neither ``glompo-like`` nor setting up this repository."""
    lines = code.splitlines()
    prompted = any(line.lstrip().startswith("$ ") for line in lines)
    joined: list[str] = []
    carry = ""
    for line in lines:
        text = line.strip()
        if not carry and prompted:
            if not text.startswith("$ "):
                continue  # output shown under a command
            text = text[2:]
        if text.endswith("\\"):
            carry += text[:-1] + " "
            continue
        if carry + text:
            joined.append(carry + text)
        carry = ""
    run: list[list[str]] = []
    for line in joined:
        tokens = shlex.split(line, comments=True)
        if not tokens:
            continue
        if _SHELL_SYNTAX & set(tokens):
            return [], f"`{line}` uses shell syntax other than &&"
        parts: list[list[str]] = [[]]
        for t in tokens:
            if t == "&&":
                parts.append([])
            else:
                parts[-1].append(t)
        for argv in parts:
            kind, to_run = _classify(argv)
            if kind == "run":
                run.append(to_run)
            elif kind == "other":
                return [], f"`{shlex.join(argv)}` is not a glompo-like command"
    return run, None


def _classify(argv: list[str]) -> tuple[str, list[str]]:
    """``("run", argv)``, ``("setup", [])`` or ``("other", [])``."""
    if not argv:
        return "setup", []
    prog = os.path.basename(argv[0])
    if prog == "glompo-like":
        return "run", [sys.executable, "-m", "glompo_like", *argv[1:]]
    if re.fullmatch(r"python(3(\.\d+)?)?", prog) and len(argv) >= 3 and argv[1] == "-m":
        if argv[2] == "glompo_like":
            return "run", [sys.executable, "-m", "glompo_like", *argv[3:]]
        if argv[2] in _SETUP_MODULES:
            return "setup", []
    if prog in _SETUP_TOOLS or (prog == "bash" and argv[1:2] == [".ci/run"]):
        return "setup", []
    return "other", []


# ----------------------------------------------------------------------------- the tests
_RUNS: dict[Path, PageRun] = {}


@pytest.fixture
def page_run(tmp_path_factory):
    def get(page: Path) -> PageRun:
        if page not in _RUNS:
            _RUNS[page] = PageRun(page, tmp_path_factory.mktemp(page.stem))
        return _RUNS[page]

    return get


_CODE = _code_blocks(fragments=False)


@pytest.mark.timeout(900)  # the blocks above it on the page run first, each with its own timeout
@pytest.mark.parametrize("block", _CODE, ids=[b.where for b in _CODE])
def test_the_code_block_runs_as_written(block, page_run):
    status, detail = page_run(block.page).result(block)
    if status == "skip":
        pytest.skip(detail)
    assert status == "ok", detail


_FRAGMENTS = [b for b in _code_blocks(fragments=True) if b.lang in PYTHON]


@pytest.mark.parametrize("block", _FRAGMENTS, ids=[b.where for b in _FRAGMENTS])
def test_a_python_fragment_is_still_python(block):
    try:
        ast.parse(block.code, filename=block.where)
    except SyntaxError as e:
        raise AssertionError(f"{block.where}: the fragment is not valid Python ({e}); write it "
                             "as Python, or put it in a '.. code-block:: text' if it is not code") from None


def _modules_with_examples() -> list[str]:
    import glompo_like

    found = []
    for info in pkgutil.walk_packages(glompo_like.__path__, "glompo_like."):
        spec = importlib.util.find_spec(info.name)
        if spec and spec.origin and spec.origin.endswith(".py") and ">>>" in Path(spec.origin).read_text(encoding="utf-8"):
            found.append(info.name)
    return found


@pytest.mark.timeout(120)
@pytest.mark.parametrize("module", _modules_with_examples())
def test_the_docstring_examples_of_the_package_run(module):
    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(mod, module) if t.examples]
    assert tests
    for t in tests:
        runner.run(t)
    assert runner.failures == 0, f"{runner.failures} docstring example(s) of {module} failed (see above)"


# ----------------------------------------------------------------------------- the convention itself
_RST = '''Title
=====

.. code-block:: python

   print("runs")

.. fragment: one call

.. code-block:: python

   f(x)

.. fragment

A paragraph that opens a literal block::

   g(y)

A diagram:

.. code-block:: text

   a --> b

Commands::

   $ glompo-like demo
'''

_MD = '''```python
print("runs")
```

```python fragment
f(x)
```

```console
$ glompo-like demo
```
'''


def test_the_fragment_convention_is_read_as_documented(tmp_path):
    rst, md = tmp_path / "page.rst", tmp_path / "page.md"
    rst.write_text(_RST, encoding="utf-8")
    md.write_text(_MD, encoding="utf-8")
    got = [(b.lang, b.code.strip(), b.fragment) for b in blocks_of(rst)]
    assert got == [
        ("python", 'print("runs")', None),
        ("python", "f(x)", "one call"),
        ("python", "g(y)", ""),
        ("text", "a --> b", None),
        ("python", "$ glompo-like demo", None),  # a literal block is Python: mark it, or say console
    ]
    got = [(b.lang, b.code.strip(), b.fragment) for b in blocks_of(md)]
    assert got == [("python", 'print("runs")', None), ("python", "f(x)", ""),
                   ("console", "$ glompo-like demo", None)]


def test_shell_blocks_run_only_glompo_like_and_name_what_they_cannot_run():
    run, problem = shell_commands(
        "$ python3 -m venv .venv && .venv/bin/pip install .   # setup: shown, not run\n"
        "$ .venv/bin/glompo-like demo --evals 100\n"
        "output line, not a command\n"
        "$ python -m glompo_like export run1 \\\n      --csv\n"
    )
    assert problem is None
    assert [argv[1:] for argv in run] == [["-m", "glompo_like", "demo", "--evals", "100"],
                                          ["-m", "glompo_like", "export", "run1", "--csv"]]
    assert "is not a glompo-like command" in shell_commands("$ dask scheduler --port 8786\n")[1]
    assert "shell syntax" in shell_commands("$ glompo-like demo | head\n")[1]
