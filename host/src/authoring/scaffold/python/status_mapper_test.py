"""Tests of app.py, run by build.sh before the component is built
(`python -m unittest test_app` after a build wrote bindings/)."""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "bindings"))

from app import StatusMapper  # noqa: E402
from wit_world.imports.types import ProcessInfo, ProcessState  # noqa: E402

PROCESS = ProcessInfo(
    name="job",
    kind="{{name}}",
    state=ProcessState.RUNNING,
    reported_state=None,
    pid=42,
    exit_code=None,
    restarts=0,
    progress=None,
    message=None,
    started_at_ms=1767225600000,
    last_output_ms=None,
    metadata=[],
)


class Mapper(unittest.TestCase):
    def test_it_serves_processes_of_its_own_kind(self):
        self.assertEqual(StatusMapper().kinds(), ["{{name}}"])

    def test_an_output_line_or_a_status_maps_to_nothing_yet(self):
        self.assertIsNone(StatusMapper().map_output(PROCESS, "step 3 of 10"))
        self.assertIsNone(StatusMapper().map_status(PROCESS, "paused"))


if __name__ == "__main__":
    unittest.main()
