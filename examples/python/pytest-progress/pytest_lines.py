"""Reading pytest's output lines, free of any WIT binding so it can be
tested with plain `python3 -m unittest` outside the component.

Two kinds of line matter: the per-file progress line that ends in
`[ 42%]`, and the final summary such as `==== 3 passed, 1 failed in 0.12s ====`.
"""

import re
from dataclasses import dataclass
from typing import Optional

# `tests/test_x.py ....  [ 42%]` and, with -v, `tests/test_x.py::test_a PASSED [ 42%]`.
_PROGRESS = re.compile(r"\[\s*(\d{1,3})%\]\s*$")
# The whole (de-decorated) summary: `N word` items, then an optional duration.
_SUMMARY = re.compile(r"^(\d+ [a-z]+(?:, \d+ [a-z]+)*)(?: in [\d.]+s\b.*)?$")
_COUNT = re.compile(r"(\d+) ([a-z]+)")
# Outcomes that make a run unsuccessful.
_BAD = {"failed", "error", "errors"}
# Words pytest uses in its summary; other "N word" lines are not a summary.
_OUTCOMES = {"passed", "failed", "error", "errors", "skipped", "xfailed",
             "xpassed", "deselected", "warning", "warnings", "rerun"}
_MESSAGE_CHARS = 160


@dataclass
class Reading:
    """What one pytest line says: a finished run (`ok` set) or progress."""
    progress: Optional[float]
    ok: Optional[bool]
    message: str


def parse_line(line: str) -> Optional[Reading]:
    """Reads one line of pytest output; None when it says nothing useful."""
    text = line.strip()
    summary = _summary(text)
    if summary is not None:
        return summary
    match = _PROGRESS.search(text)
    if match is None:
        return None
    percent = int(match.group(1))
    if percent > 100:
        return None
    # The test file (before the dots or `::`) is the useful part of the line.
    head = text[: match.start()].split()
    where = head[0].split("::")[0] if head else text
    return Reading(progress=percent / 100, ok=None, message=where[:_MESSAGE_CHARS])


def _summary(text: str) -> Optional[Reading]:
    inner = text.strip("= ").strip()
    match = _SUMMARY.match(inner)
    if match is None:
        return None
    counts = {word: int(n) for n, word in _COUNT.findall(match.group(1))}
    if not counts or not set(counts) <= _OUTCOMES:
        return None
    if not counts.keys() & {"passed", "failed", "error", "errors"}:
        return None
    ok = not any(counts.get(word, 0) for word in _BAD)
    return Reading(progress=1.0, ok=ok, message=match.group(1))
