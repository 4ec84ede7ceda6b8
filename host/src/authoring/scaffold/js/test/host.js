// What `host:plugin/host@0.2.0` gives app.js when the tests run it in Node:
// the same functions as in the host, answering from values a test sets.

/** `config(key)` answers from here (plugin.toml's [config] in the host). */
export const configValues = new Map();
/** Every `log` call, as [level, message]. */
export const logged = [];
/** What `processes()` returns. */
export const processList = [];
/** What `nowMs()` returns (u64 is a Number with jco's QuickJS backend). */
export const clock = { now: 1767225600000 };
const state = new Map();

export function log(level, message) { logged.push([level, message]); }
export function nowMs() { return clock.now; }
export function config(key) { return configValues.get(key) ?? null; }
export function processes() { return processList; }
export function recentEvents(_filter) { return []; }
export function history(_query) { return []; }
export function stats(_since, _until) {
  return { total: 0, byType: [], bySource: [], perMinute: [], complete: true };
}
export function stateGet(key) { return state.get(key) ?? null; }
export function stateSet(key, value) { state.set(key, value); }
