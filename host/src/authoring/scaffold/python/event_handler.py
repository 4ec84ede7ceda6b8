"""{{name}}: an event handler in Python (world event-handler-plugin).

The host asks `subscriptions` once when it loads the plugin, then calls
`handle` for every event whose type matches one of them, and performs the
actions it returns (within the grants of plugin.toml's [permissions]).
"""

from typing import List

from wit_world import exports
from wit_world.imports.types import Action, Event

# Host functions, when you need them:
# from wit_world.imports import host   # host.log, host.config, host.processes, ...


# componentize-py finds the implementation by name: the class must be named
# after the interface it exports (`event-handler` -> `EventHandler`).
class EventHandler(exports.EventHandler):
    def subscriptions(self) -> List[str]:
        # Type patterns: `*` matches one dotted token, `>` the rest
        # (`process.>` is every process event). Change to what you react to.
        return ["process.failed"]

    def handle(self, e: Event) -> List[Action]:
        # Nothing to do yet. To announce each failure, return for example
        # (and grant `emit = ["my.>"]` in plugin.toml):
        #   [Action_Emit(NewEvent(type="my.failure_seen", subject=e.subject, data=e.data))]
        # (`data` is JSON text: json.dumps an object.) Raise
        # componentize_py_types.Err("why") to return an error, which the host
        # records as a `plugin.error` event.
        return []
