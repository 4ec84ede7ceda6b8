"""pytest-progress: a status mapper in Python (world status-mapper-plugin)
for processes of kind `pytest`.

`[ 42%]` at the end of a line becomes progress 0.42 with the test file as
message; the closing summary (`3 passed, 1 failed in 0.12s`) becomes state
completed, or failed when anything failed or errored, with the counts as
message. The parsing lives in `pytest_lines` so it is testable without a host.
"""

from typing import List, Optional

from wit_world import exports
from wit_world.imports.types import ProcessInfo, ProcessState, StatusUpdate

import pytest_lines


class StatusMapper(exports.StatusMapper):
    def kinds(self) -> List[str]:
        return ["pytest"]

    def map_status(self, p: ProcessInfo, reported: str) -> Optional[StatusUpdate]:
        # pytest reports no statuses of its own; only its output matters.
        return None

    def map_output(self, p: ProcessInfo, line: str) -> Optional[StatusUpdate]:
        reading = pytest_lines.parse_line(line)
        if reading is None:
            return None
        if reading.ok is None:
            state = None
        elif reading.ok:
            state = ProcessState.COMPLETED
        else:
            state = ProcessState.FAILED
        return StatusUpdate(state=state, progress=reading.progress, message=reading.message)
