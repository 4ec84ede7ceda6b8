"""The alerting decision of failure-alert, free of any host call so it runs
under plain `python3`: the same policy as the shipped Rust plugin
plugins/failure-alert (its src/policy.rs), line for line. The conformance
suite (host/tests/plugins/languages.rs) holds the Rust, JavaScript and
Python versions to identical decisions.

A sliding window of failure times per process, and the time of the last
alert, so one alert covers a whole window. The window is plain data stored
in host state in the Rust version's format, so a hot reload (or a switch
between languages) keeps counting.
"""

import json
import re
from dataclasses import dataclass, field
from typing import Any, List, Optional

U64_MAX = (1 << 64) - 1
# usize on wasm32, what the Rust version parses `threshold` into.
USIZE_MAX = (1 << 32) - 1
# Rust's FromStr for unsigned integers: an optional `+`, ASCII digits.
_WHOLE = re.compile(r"\+?[0-9]+")


@dataclass
class Policy:
    threshold: int
    window_ms: int


@dataclass
class History:
    times: List[int] = field(default_factory=list)
    alerted_at: Optional[int] = None
    suppressed: int = 0


@dataclass
class Alert:
    failures: int
    suppressed: int


def _rust_debug(text: str) -> str:
    # Rust's `{:?}` of a plain string (quotes, \\, \", \n, \r, \t escaped).
    return json.dumps(text, ensure_ascii=False)


def parse_setting(key: str, raw: Optional[str], default: int, most: int) -> int:
    """A whole-number config value; raises ValueError naming the key."""
    text = (raw or "").strip()
    if text == "":
        return default
    if not _WHOLE.fullmatch(text) or int(text) > most:
        raise ValueError(f"config `{key}` = {_rust_debug(text)} is not a whole number")
    return int(text)


def read_policy(threshold: Optional[str], window_secs: Optional[str]) -> Policy:
    t = parse_setting("threshold", threshold, 3, USIZE_MAX)
    if t == 0:
        raise ValueError("config `threshold` must be at least 1")
    w = parse_setting("window_secs", window_secs, 600, U64_MAX)
    return Policy(threshold=t, window_ms=min(w * 1000, U64_MAX))


def record(policy: Policy, earlier: History, now_ms: int):
    """(history to store, alert or None) after a failure at `now_ms`."""
    oldest_kept = max(now_ms - policy.window_ms, 0)
    times = [t for t in earlier.times if oldest_kept < t <= now_ms]
    times.append(now_ms)
    if len(times) > policy.threshold:
        times = times[len(times) - policy.threshold:]
    at = earlier.alerted_at
    holding = at is not None and at <= now_ms and now_ms - at < policy.window_ms
    if holding:
        return History(times, at, min(earlier.suppressed + 1, U64_MAX)), None
    if len(times) >= policy.threshold:
        return History(times, now_ms, 0), Alert(len(times), earlier.suppressed)
    return History(times, at, earlier.suppressed), None


def _u64(v: Any) -> Optional[int]:
    # serde_json's as_u64: an integer (not a float, not a bool) in range.
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= U64_MAX:
        return v
    return None


def decode_history(raw: Optional[bytes]) -> History:
    """A stored history (or the 0.1 bare array of times); anything
    unreadable is no history rather than blocking alerts forever."""
    if raw is None:
        return History()
    try:
        value = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return History()

    def times_of(v: Any) -> List[int]:
        if not isinstance(v, list):
            return []
        return [t for t in map(_u64, v) if t is not None]

    if isinstance(value, list):
        return History(times=times_of(value))
    if isinstance(value, dict):
        suppressed = _u64(value.get("suppressed"))
        return History(times_of(value.get("times")), _u64(value.get("alerted_at")),
                       0 if suppressed is None else suppressed)
    return History()


def encode_history(h: History) -> bytes:
    """The Rust version's JSON object (its keys sorted)."""
    return json.dumps({"alerted_at": h.alerted_at, "suppressed": h.suppressed, "times": h.times},
                      separators=(",", ":")).encode("utf-8")


def last_exit_code(data: str) -> Any:
    """The failed run's exit code; None when it died by signal or the data
    carries none."""
    try:
        value = json.loads(data)
    except ValueError:
        return None
    if isinstance(value, dict):
        return value.get("exit_code")
    return None


if __name__ == "__main__":
    policy, history, alerts = read_policy(None, None), History(), []
    for t in (1_000, 2_000, 3_000, 4_000, 900_000, 901_000, 902_000):
        history, alert = record(policy, history, t)
        if alert:
            alerts.append((t, alert))
    print(alerts)
