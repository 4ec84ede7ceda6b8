"""{{name}}: a background agent in Python (world background-agent-plugin).

The host calls `tick` every `interval_ms` (from `describe`), shows the
activity it returns in status listings, and performs its actions (within the
grants of plugin.toml's [permissions]).
"""

from typing import List

from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import AgentInfo, ProcessInfo, TickOutcome


def decide(processes: List[ProcessInfo]) -> TickOutcome:
    """One tick over a snapshot of the processes: nothing to do yet. A stall
    detector might emit an event (granted `emit = ["my.>"]`) for each running
    process whose last_output_ms is older than host.now_ms() minus a limit."""
    return TickOutcome(activity=f"watching {len(processes)} processes", actions=[])


# componentize-py finds the implementation by name: the class must be named
# after the interface it exports (`background-agent` -> `BackgroundAgent`).
class BackgroundAgent(exports.BackgroundAgent):
    def describe(self) -> AgentInfo:
        return AgentInfo(
            name="{{name}}",
            description="What this agent watches (say it in a line)",
            # Once a minute; the host enforces a floor of 10 ms.
            interval_ms=60_000,
        )

    def tick(self) -> TickOutcome:
        # Raise componentize_py_types.Err("why") to return an error, which
        # the host records as a `plugin.error` event.
        return decide(host.processes())
