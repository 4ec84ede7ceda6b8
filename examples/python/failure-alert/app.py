"""failure-alert: an event handler in Python (world event-handler-plugin,
WIT host:plugin@0.2.0), the same policy as the shipped Rust plugin
plugins/failure-alert: `alert.process_failures` when one process fails
`threshold` times within `window_secs`, at most once per window. This file
is the WIT glue; the decision lives in `policy` so it runs under plain
`python3`.

The class is named after the exported interface (`EventHandler`), as
componentize-py requires. An error is raised as `Err(text)`: the host
records the text in `plugin.error`.
"""

import json
from typing import List

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.host import config, log, now_ms, state_get, state_set
from wit_world.imports.types import Action, Action_Emit, Event, Level, NewEvent

import policy


class EventHandler(exports.EventHandler):
    def subscriptions(self) -> List[str]:
        return ["process.failed"]

    def handle(self, e: Event) -> List[Action]:
        if e.type != "process.failed":
            return []
        process = e.subject
        if process is None:
            raise Err(f"process.failed event {e.id} has no subject")
        try:
            p = policy.read_policy(config("threshold"), config("window_secs"))
        except ValueError as bad:
            raise Err(str(bad))
        key = f"failures/{process}"
        remembered, alert = policy.record(p, policy.decode_history(state_get(key)), now_ms())
        state_set(key, policy.encode_history(remembered))
        if alert is None:
            return []
        window_secs = p.window_ms // 1000
        log(Level.WARN, f"{process} failed {alert.failures} times within {window_secs}s")
        data = {
            "process": process,
            "failures": alert.failures,
            "window_secs": window_secs,
            "last_exit_code": policy.last_exit_code(e.data),
            "suppressed": alert.suppressed,
        }
        return [Action_Emit(NewEvent(
            type="alert.process_failures", subject=process,
            data=json.dumps(data, separators=(",", ":"))))]
