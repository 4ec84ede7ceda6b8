"""{{name}}: a status mapper in Python (world status-mapper-plugin).

For processes of the kinds it serves, the host hands it each status the
process reports of its own (`map_status`) and each line of its output
(`map_output`); what it returns becomes the process's reported state,
progress and message.
"""

from typing import List, Optional

from wit_world import exports
from wit_world.imports.types import ProcessInfo, StatusUpdate


# componentize-py finds the implementation by name: the class must be named
# after the interface it exports (`status-mapper` -> `StatusMapper`).
class StatusMapper(exports.StatusMapper):
    def kinds(self) -> List[str]:
        # Processes started with this `kind` are mapped; `*` serves every
        # kind (and then sees every output line of every process).
        return ["{{name}}"]

    def map_status(self, p: ProcessInfo, reported: str) -> Optional[StatusUpdate]:
        # A status the process's own system reports (e.g. `paused`).
        return None

    def map_output(self, p: ProcessInfo, line: str) -> Optional[StatusUpdate]:
        # Nothing is read from output yet. To read a percentage, for example:
        #   m = re.search(r"(\d+)%$", line)
        #   if m: return StatusUpdate(state=None, progress=int(m[1]) / 100, message=None)
        return None
