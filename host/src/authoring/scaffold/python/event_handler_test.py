"""Tests of app.py, run by build.sh before the component is built
(`python -m unittest test_app` after a build wrote bindings/)."""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "bindings"))

from app import EventHandler  # noqa: E402
from wit_world.imports.types import Event  # noqa: E402


def event(type_: str) -> Event:
    return Event(
        id="0191a7e4-0000-7000-8000-000000000001",
        source="host/supervisor",
        type=type_,
        subject="web",
        time="2026-01-01T00:00:00Z",
        sequence=1,
        data='{"exit_code":1}',
    )


class Handler(unittest.TestCase):
    def test_it_subscribes_to_failed_processes(self):
        self.assertEqual(EventHandler().subscriptions(), ["process.failed"])

    def test_a_failed_process_asks_for_nothing_yet(self):
        self.assertEqual(EventHandler().handle(event("process.failed")), [])


if __name__ == "__main__":
    unittest.main()
