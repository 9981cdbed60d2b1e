"""The code blocks of the README and of ``docs/*.rst``, as :mod:`tests.test_docs` runs them.

A block is code when its language is ``python``, ``pycon`` or a shell (``console``,
``bash``, ``sh``, ``shell``); every other language (``text``, ``yaml``, ``none`` ...) is
shown, not run.  A code block runs unless it is marked as a fragment:

- Markdown: the word ``fragment`` in the fence's info string: ```` ```python fragment ````;
- reStructuredText: a comment line ``.. fragment`` (optionally ``.. fragment: reason``) as
  the last thing before the block: above a ``.. code-block::`` directive, above a lone
  ``::``, or above the paragraph whose trailing ``::`` opens a literal block.

A literal block opened by ``::`` has the page's default language (``python``, as for
Sphinx, or what a ``.. highlight::`` directive set), so a diagram or a listing goes into
``.. code-block:: text``.  A block whose first line starts with ``>>>`` is a doctest
(``pycon``), in rst also without ``::`` (a doctest block).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Block", "blocks_of", "PYTHON", "PYCON", "SHELL"]

PYTHON = {"python", "python3", "py"}
PYCON = {"pycon"}
SHELL = {"console", "bash", "sh", "shell", "shell-session"}

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\.\s+(?:code-block|code|sourcecode)::\s*(?P<lang>\S*)\s*$")
_HIGHLIGHT = re.compile(r"^\s*\.\.\s+highlight::\s*(?P<lang>\S+)\s*$")
_FRAGMENT = re.compile(r"^\s*\.\.\s+fragment\b[\s:]*(?P<reason>.*)$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line number of the block's first line of code
    lang: str  # lower case; "pycon" for doctests
    code: str
    fragment: str | None  # None: not marked; otherwise the reason ("" if none was given)

    @property
    def where(self) -> str:
        return f"{self.page.name}:{self.line}"

    @property
    def is_code(self) -> bool:
        return self.lang in PYTHON | PYCON | SHELL


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    return _markdown(page, text) if page.suffix == ".md" else _rst(page, text)


def _doctest_or(lang: str, code: str) -> str:
    first = next((line for line in code.splitlines() if line.strip()), "")
    return "pycon" if first.lstrip().startswith(">>>") else lang


# ----------------------------------------------------------------------------- Markdown
def _markdown(page: Path, text: str) -> list[Block]:
    lines = text.splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, words = m["fence"], m["info"].split()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        code = "\n".join(lines[i + 1:end]) + "\n"
        lang = words[0].lower() if words else "text"
        fragment = " ".join(words[2:]) if "fragment" in words[1:2] else None
        if fragment is None and "fragment" in words:
            fragment = ""
        out.append(Block(page, i + 2, _doctest_or(lang, code), code, fragment))
        i = end + 1
    return out


# ----------------------------------------------------------------------------- reStructuredText
def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _body(lines: list[str], start: int, indent: int) -> tuple[int, int]:
    """The indented body after line ``start - 1``: (first line, end) with blank lines at
    the edges left out."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    first = i
    end = i
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
        if lines[i].strip():
            end = i + 1
        i += 1
    return first, end


def _fragment_above(lines: list[str], i: int) -> str | None:
    """The reason of a ``.. fragment`` comment that is the last thing above line ``i``."""
    j = i - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0:
        return None
    m = _FRAGMENT.match(lines[j])
    return m["reason"].strip() if m else None


def _paragraph_start(lines: list[str], i: int) -> int:
    while i > 0 and lines[i - 1].strip() and _indent(lines[i - 1]) == _indent(lines[i]):
        i -= 1
    return i


def _rst(page: Path, text: str) -> list[Block]:
    lines = text.splitlines()
    out: list[Block] = []
    default = "python"
    in_literal_until = -1
    i = 0
    while i < len(lines):
        line = lines[i]
        if i < in_literal_until:
            i += 1
            continue
        if m := _HIGHLIGHT.match(line):
            default = m["lang"].lower()
            i += 1
            continue
        lang = intro = None
        if m := _DIRECTIVE.match(line):
            lang, intro, body_from = (m["lang"] or default).lower(), i, i + 1
            while body_from < len(lines) and re.match(r"^\s+:[\w-]+:", lines[body_from]):
                body_from += 1  # the directive's options (:caption: ...)
        elif line.rstrip().endswith("::") and not line.lstrip().startswith(".."):
            nxt = i + 1
            if nxt < len(lines) and not lines[nxt].strip():
                lang, body_from = default, nxt
                intro = i if line.strip() == "::" else _paragraph_start(lines, i)
        elif line.lstrip().startswith(">>>") and (i == 0 or not lines[i - 1].strip()):
            first, end = i, i
            while end < len(lines) and lines[end].strip():
                end += 1
            code = textwrap.dedent("\n".join(lines[first:end])) + "\n"
            out.append(Block(page, first + 1, "pycon", code, _fragment_above(lines, i)))
            i = end
            continue
        if lang is None:
            i += 1
            continue
        first, end = _body(lines, body_from, _indent(line))
        if first >= end:
            i += 1
            continue
        code = textwrap.dedent("\n".join(lines[first:end])) + "\n"
        out.append(Block(page, first + 1, _doctest_or(lang, code), code, _fragment_above(lines, intro)))
        in_literal_until = end
        i = end
    return out
