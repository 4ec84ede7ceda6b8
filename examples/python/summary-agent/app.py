"""summary-agent: a background agent in Python (world
background-agent-plugin, WIT host:plugin@0.2.0), the JavaScript example's
twin. Every `interval_ms` it asks the host for the counts of the events of
the last interval (the 0.2 `stats` import) and, when anything happened,
emits one `summary.window` event: how many events, how many process
failures, and the busiest types. A quiet interval emits nothing; its own
`summary.*` events are not counted.

The class is named after the exported interface (`BackgroundAgent`), as
componentize-py requires.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.host import config, now_ms, stats
from wit_world.imports.types import Action_Emit, AgentInfo, NewEvent, TickOutcome


def _whole(key: str, default: int) -> int:
    text = (config(key) or "").strip()
    if text == "":
        return default
    if not text.isascii() or not text.isdigit():
        raise Err(f"config `{key}` = {json.dumps(text)} is not a whole number")
    return int(text)


class BackgroundAgent(exports.BackgroundAgent):
    def describe(self) -> AgentInfo:
        return AgentInfo(
            name="summary",
            description="Emits summary.window with the counts of the events of each interval",
            interval_ms=_whole("interval_ms", 60000),
        )

    def tick(self) -> TickOutcome:
        interval = _whole("interval_ms", 60000)
        top = _whole("top", 5)
        until = now_ms()
        since = max(until - interval, 0)
        counts = stats(since, until)
        by_type = [(t, n) for t, n in counts.by_type if not t.startswith("summary.")]
        events = sum(n for _, n in by_type)
        if events == 0:
            return TickOutcome(activity=f"quiet for {interval} ms", actions=[])
        failures = sum(n for t, n in by_type if t == "process.failed")
        busiest = sorted(by_type, key=lambda tn: (-tn[1], tn[0]))[:top]
        data = {
            "since_ms": since,
            "until_ms": until,
            "events": events,
            "failures": failures,
            "top": [[t, n] for t, n in busiest],
            "complete": counts.complete,
        }
        return TickOutcome(
            activity=f"{events} events ({failures} failures) in the last {interval} ms",
            actions=[Action_Emit(NewEvent(type="summary.window", subject=None,
                                          data=json.dumps(data, separators=(",", ":"))))],
        )
