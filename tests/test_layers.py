"""The package's layering: every module imports only its own package and lower ones.

The table :data:`LAYERS` lists the top-level units of ``glompo_like`` (sub-packages and
modules), lowest first.  A unit may import itself and any unit of a *lower* row; units of
one row do not import each other.  Every ``import`` statement of every module counts,
including those inside functions (an upward import is one even when it is deferred).
Imports that break the table today and are not yet fixed are listed, with the reason, in
:data:`KNOWN_EXCEPTIONS`; the test fails on any other, and also on an exception that is no
longer needed (so the list only shrinks).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "glompo_like"
ROOT = "__init__"  # the package's own __init__: the public facade (GloMPOManager, read_log, ...)

#: The units of glompo_like, lowest first.  Extend it when a package is added.
LAYERS: list[tuple[str, ...]] = [
    ("errors",),
    ("_version", "bounds", "result", "states", "validation"),
    ("problems",),  # test functions and BBOB: NumPy only
    ("procs",),  # child-process hygiene, shared by both levels
    ("evaluation",),  # Level 2 pools
    ("optimizers",),
    ("record",),  # the run's log, views, checkpoints, summary, report
    ("policies",),  # selectors, generators, hunters, checkers
    ("execution",),  # Level 1: plan, runners (generational, steady-state, noisy), supervisors
    ("control",),  # flow control, steering files
    ("settings",),
    ("manager",),
    ("minimize",),  # scipy-style entry point: one managed run behind one call
    (ROOT,),
    ("cli", "testing"),
    ("__main__",),
]

#: (importing unit, imported unit) pairs that break the table today, and why they stay.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {
}

RANK = {unit: i for i, row in enumerate(LAYERS) for unit in row}
EVALUATION_MAY_IMPORT = {"procs", "errors", "bounds"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. "glompo_like.execution.runner"
    line: int
    unit: str  # its unit, e.g. "execution"
    target: str  # the imported unit, e.g. "evaluation"

    def __str__(self) -> str:
        return f"{self.module}:{self.line} ({self.unit}) imports {self.target}"


def _unit_of(parts: list[str]) -> str:
    """``["glompo_like", "execution", "runner"]`` → ``"execution"``; the package itself → ROOT."""
    return parts[1] if len(parts) > 1 else ROOT


def _is_unit(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def _targets(node: ast.AST, parts: list[str], is_package: bool) -> list[str]:
    """The glompo_like units an import statement reaches."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:  # relative: resolve against the importing module's package
            base = parts if is_package else parts[:-1]
            base = base[: len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        if module == PACKAGE.name:  # from glompo_like import X: a unit, or a name of the facade
            return [a.name if _is_unit(a.name) else ROOT for a in node.names]
        names = [module]
    else:
        return []
    return [_unit_of(n.split(".")) for n in names if n == PACKAGE.name or n.startswith(PACKAGE.name + ".")]


def all_imports() -> list[Import]:
    """Every import of one glompo_like unit by another, in every module of the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        unit = _unit_of(parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            for target in _targets(node, parts, is_package):
                if target != unit:
                    found.append(Import(".".join(parts), node.lineno, unit, target))
    return found


def _allowed(imp: Import) -> bool:
    return RANK[imp.target] < RANK[imp.unit]


def test_every_unit_of_the_package_is_in_the_table():
    units = {_unit_of(list(p.relative_to(PACKAGE.parent).with_suffix("").parts)) for p in PACKAGE.glob("*.py")}
    units |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    units = {ROOT if u == "__init__" else u for u in units}
    missing = sorted(units - set(RANK))
    assert not missing, f"add {missing} to LAYERS in tests/test_layers.py (lowest first)"


def test_no_unit_imports_a_higher_or_equal_one():
    imports = all_imports()
    assert imports, "no imports found: the parser is broken"
    bad = [str(i) for i in imports if not _allowed(i) and (i.unit, i.target) not in KNOWN_EXCEPTIONS]
    assert not bad, "imports against the layering (lowest first: " + " < ".join(
        "/".join(row) for row in LAYERS) + "):\n" + "\n".join(bad)


def test_known_exceptions_are_still_needed():
    seen = {(i.unit, i.target) for i in all_imports() if not _allowed(i)}
    stale = sorted(set(KNOWN_EXCEPTIONS) - seen)
    assert not stale, f"remove these from KNOWN_EXCEPTIONS, they are fixed: {stale}"


def test_level2_evaluation_imports_only_procs_errors_and_bounds():
    """Level 2 pools know nothing of runners, supervisors, the manager, its settings,
    record or policies (stricter than the table, which would allow the base units too)."""
    bad = [str(i) for i in all_imports() if i.unit == "evaluation" and i.target not in EVALUATION_MAY_IMPORT]
    assert not bad, "\n".join(bad)


def test_the_parser_sees_relative_deferred_and_facade_imports():
    """A check of the checker on the shapes of import the package uses."""
    imports = all_imports()
    pairs = {(i.module, i.target) for i in imports}
    assert ("glompo_like.execution.runner", "evaluation") in pairs  # from ..evaluation import ...
    assert ("glompo_like.evaluation.dask_remote", "procs") in pairs  # deferred, inside a function
    assert ("glompo_like.cli", "_version") in pairs  # from ._version import __version__
    assert ("glompo_like.cli", ROOT) in pairs  # from glompo_like / . import GloMPOManager
