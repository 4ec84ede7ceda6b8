// failure-alert: an event handler in JavaScript (world event-handler-plugin,
// WIT host:plugin@0.2.0), the same policy as the shipped Rust plugin
// plugins/failure-alert (seed 001's "3 failures in 10 minutes" alert). The
// conformance suite (host/tests/plugins/languages.rs) holds all three
// versions to identical decisions on tests/fixtures/conformance/.
//
// Emits `alert.process_failures` when one process fails `threshold` times
// within `window_secs`, at most once per window per process; failures held
// back inside a window are counted in the next alert's `suppressed`. The
// window lives in host state (`failures/<process>`, the Rust version's
// format), so a hot reload, or a switch between languages, keeps counting.
//
// Config (plugin.toml [config]):
//   threshold    failures that raise an alert, at least 1 (default 3)
//   window_secs  length of the sliding window (default 600)
//
// WIT → JS (jco's QuickJS backend): u64 crosses as a Number (exact up to
// 2^53), option none is null, list<u8> is a Uint8Array, and a thrown string
// becomes the `err` of handle's result (the host records it as
// `plugin.error`). The window's arithmetic is done in BigInt, so that
// `window_secs` up to u64::MAX saturates exactly as in Rust.

import { config, log, nowMs, stateGet, stateSet } from 'host:plugin/host@0.2.0';

const DEFAULT_THRESHOLD = 3n;
const DEFAULT_WINDOW_SECS = 600n;
const U64_MAX = (1n << 64n) - 1n;
// usize on wasm32, what the Rust version parses `threshold` into.
const USIZE_MAX = (1n << 32n) - 1n;

// Rust's `{:?}` of a plain string, as the Rust version quotes bad values.
function quoted(text) {
  return JSON.stringify(text);
}

// A whole-number config value (Rust's FromStr for unsigned: an optional `+`
// and ASCII digits), naming the key when it is malformed.
function setting(key, max, fallback) {
  const raw = config(key);
  const text = raw == null ? '' : raw.trim();
  if (text === '') return fallback;
  if (!/^\+?[0-9]+$/.test(text) || BigInt(text) > max) {
    throw `config \`${key}\` = ${quoted(text)} is not a whole number`;
  }
  return BigInt(text);
}

function readPolicy() {
  const threshold = setting('threshold', USIZE_MAX, DEFAULT_THRESHOLD);
  if (threshold === 0n) throw 'config `threshold` must be at least 1';
  const windowSecs = setting('window_secs', U64_MAX, DEFAULT_WINDOW_SECS);
  const windowMs = windowSecs * 1000n > U64_MAX ? U64_MAX : windowSecs * 1000n;
  return { threshold, windowMs };
}

// A non-negative integer of the stored JSON, as BigInt; anything else is absent.
function asU64(v) {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? BigInt(v) : undefined;
}

// UTF-8 by hand: the QuickJS runtime with stubbed WASI need not have
// TextEncoder / TextDecoder. (The stored JSON is ASCII but for nothing.)
function utf8Encode(text) {
  const out = [];
  for (const ch of text) {
    const c = ch.codePointAt(0);
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(out);
}

function utf8Decode(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    const n = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 0;
    if (n === 0 || i + n > bytes.length) throw 'not UTF-8';
    let c = n === 1 ? b : b & (0xff >> (n + 1));
    for (let k = 1; k < n; k++) c = (c << 6) | (bytes[i + k] & 63);
    text += String.fromCodePoint(c);
    i += n;
  }
  return text;
}

// Reads a history stored by encode (or the 0.1 bare array of times);
// anything unreadable is no history rather than blocking alerts forever.
function decode(bytes) {
  const empty = { times: [], alertedAt: undefined, suppressed: 0n };
  if (bytes == null) return empty;
  let value;
  try {
    value = JSON.parse(utf8Decode(bytes));
  } catch {
    return empty;
  }
  const timesOf = (v) => (Array.isArray(v) ? v.map(asU64).filter((t) => t !== undefined) : []);
  if (Array.isArray(value)) return { ...empty, times: timesOf(value) };
  if (value !== null && typeof value === 'object') {
    return {
      times: timesOf(value.times),
      alertedAt: asU64(value.alerted_at),
      suppressed: asU64(value.suppressed) ?? 0n,
    };
  }
  return empty;
}

// The Rust version's JSON object, keys in its (sorted) order.
function encode(h) {
  const text = `{"alerted_at":${h.alertedAt === undefined ? 'null' : h.alertedAt},"suppressed":${h.suppressed},"times":[${h.times.join(',')}]}`;
  return utf8Encode(text);
}

// Records a failure at `now` on top of `earlier` (the Rust Policy::record).
function record(policy, earlier, now) {
  const oldestKept = now > policy.windowMs ? now - policy.windowMs : 0n;
  let times = earlier.times.filter((t) => t > oldestKept && t <= now);
  times.push(now);
  if (BigInt(times.length) > policy.threshold) {
    times = times.slice(times.length - Number(policy.threshold));
  }
  const at = earlier.alertedAt;
  const holding = at !== undefined && at <= now && now - at < policy.windowMs;
  if (holding) {
    const suppressed = earlier.suppressed < U64_MAX ? earlier.suppressed + 1n : U64_MAX;
    return { remembered: { times, alertedAt: at, suppressed }, alert: undefined };
  }
  if (BigInt(times.length) >= policy.threshold) {
    return {
      remembered: { times, alertedAt: now, suppressed: 0n },
      alert: { failures: times.length, suppressed: earlier.suppressed },
    };
  }
  return { remembered: { times, alertedAt: at, suppressed: earlier.suppressed }, alert: undefined };
}

// The failed run's exit code; null when it died by signal or data has none.
function lastExitCode(data) {
  try {
    const v = JSON.parse(data);
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && 'exit_code' in v) {
      return v.exit_code;
    }
  } catch {
    // Not JSON: no exit code.
  }
  return null;
}

export const eventHandler = {
  subscriptions() {
    return ['process.failed'];
  },

  handle(e) {
    if (e.type !== 'process.failed') return [];
    const process = e.subject;
    if (process === undefined || process === null) {
      throw `process.failed event ${e.id} has no subject`;
    }
    const policy = readPolicy();
    const key = `failures/${process}`;
    // u64 crosses as a Number (exact below 2^53: epoch milliseconds are).
    const outcome = record(policy, decode(stateGet(key)), BigInt(nowMs()));
    stateSet(key, encode(outcome.remembered));
    const alert = outcome.alert;
    if (alert === undefined) return [];
    const windowSecs = policy.windowMs / 1000n;
    log('warn', `${process} failed ${alert.failures} times within ${windowSecs}s`);
    // BigInt has no JSON form: the numbers are written into the text.
    const data = `{"process":${JSON.stringify(process)},"failures":${alert.failures},"window_secs":${windowSecs},"last_exit_code":${JSON.stringify(lastExitCode(e.data))},"suppressed":${alert.suppressed}}`;
    return [{ tag: 'emit', val: { type: 'alert.process_failures', subject: process, data } }];
  },
};
