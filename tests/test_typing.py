"""The typed public API: py.typed ships, ManagerOptions (the manager's keyword settings for
type checkers) lists every setting of the one table, and mypy accepts typical use and
rejects typical mistakes (tests/typing/usage.py)."""

from __future__ import annotations

import configparser
import typing
from dataclasses import fields
from pathlib import Path

import pytest

import glompo_like
from glompo_like.settings import (
    LEVEL1,
    ON_ERROR_POLICIES,
    Level1,
    ManagerOptions,
    OnError,
    Settings,
)

ROOT = Path(__file__).resolve().parents[1]


def test_manager_options_list_every_setting_in_order():
    keyword = [f.name for f in fields(Settings) if f.name not in ("task", "bounds")]
    assert list(ManagerOptions.__annotations__) == keyword
    assert ManagerOptions.__total__ is False  # every setting has a default


def test_literal_names_agree_with_the_runtime_tuples():
    assert typing.get_args(Level1) == LEVEL1
    assert typing.get_args(OnError) == ON_ERROR_POLICIES


def test_the_package_is_marked_typed():
    assert (Path(glompo_like.__file__).parent / "py.typed").is_file()
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert "py.typed" in cfg["options.package_data"]["glompo_like"].split()


@pytest.mark.timeout(600)
def test_mypy_accepts_the_api_as_used_and_catches_mistakes():
    api = pytest.importorskip("mypy.api")
    out, err, status = api.run(["--config-file", str(ROOT / "setup.cfg"), "--warn-unused-ignores",
                                str(ROOT / "tests" / "typing" / "usage.py")])
    assert status == 0, out + err
