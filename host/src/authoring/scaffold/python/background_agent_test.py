"""Tests of app.py, run by build.sh before the component is built
(`python -m unittest test_app` after a build wrote bindings/). The host's
functions exist only inside the host, so the logic is tested in `decide`."""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "bindings"))

from app import BackgroundAgent, decide  # noqa: E402


class Agent(unittest.TestCase):
    def test_it_ticks_once_a_minute(self):
        self.assertEqual(BackgroundAgent().describe().interval_ms, 60_000)

    def test_a_tick_says_what_it_watches_and_asks_for_nothing_yet(self):
        outcome = decide([])
        self.assertEqual(outcome.activity, "watching 0 processes")
        self.assertEqual(outcome.actions, [])


if __name__ == "__main__":
    unittest.main()
