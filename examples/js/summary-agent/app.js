// summary-agent: a background agent in JavaScript (world
// background-agent-plugin, WIT host:plugin@0.2.0). Every `interval_ms` it
// asks the host for the counts of the events of the last interval (the 0.2
// `stats` import) and, when anything happened, emits one `summary.window`
// event: how many events, how many process failures, and the busiest types.
// A quiet interval emits nothing. Its own `summary.*` events are not counted,
// so it never reports only itself.
//
// Config (plugin.toml [config]):
//   interval_ms  how often to summarise (default 60000; the host's floor is 10)
//   top          how many of the busiest types to name (default 5)
//
// WIT → JS (jco's QuickJS backend): u64 crosses as a Number (exact up to
// 2^53: epoch milliseconds and counts are), option none is null, tuples are
// arrays.

import { config, nowMs, stats } from 'host:plugin/host@0.2.0';

function whole(key, fallback) {
  const raw = config(key);
  if (raw == null || raw.trim() === '') return fallback;
  const text = raw.trim();
  if (!/^[0-9]+$/.test(text)) throw `config \`${key}\` = ${JSON.stringify(text)} is not a whole number`;
  return Number(text);
}

const interval = () => whole('interval_ms', 60000);

export const backgroundAgent = {
  describe() {
    return {
      name: 'summary',
      description: 'Emits summary.window with the counts of the events of each interval',
      intervalMs: interval(),
    };
  },

  tick() {
    const intervalMs = interval();
    const top = whole('top', 5);
    const until = nowMs();
    const since = Math.max(until - intervalMs, 0);
    const counts = stats(since, until);
    const byType = counts.byType
      .filter(([type]) => !type.startsWith('summary.'))
      .map(([type, n]) => [type, Number(n)]);
    const events = byType.reduce((sum, [, n]) => sum + n, 0);
    if (events === 0) {
      return { activity: `quiet for ${intervalMs} ms`, actions: [] };
    }
    const failures = byType.filter(([type]) => type === 'process.failed').reduce((s, [, n]) => s + n, 0);
    const busiest = [...byType]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, top);
    const data = {
      since_ms: since,
      until_ms: until,
      events,
      failures,
      top: busiest,
      complete: counts.complete,
    };
    return {
      activity: `${events} events (${failures} failures) in the last ${intervalMs} ms`,
      actions: [{ tag: 'emit', val: { type: 'summary.window', subject: null, data: JSON.stringify(data) } }],
    };
  },
};
