// {{name}}: a background agent in JavaScript (world background-agent-plugin).
// The host calls `tick` every `intervalMs` (from `describe`), shows the
// activity it returns in status listings, and performs its actions (within
// the grants of plugin.toml's [permissions]).
//
// WIT -> JS (jco's QuickJS backend): records are objects with camelCase
// fields, u64 is a Number (intervalMs, nowMs(); exact up to 2^53), a thrown
// string becomes the `err` of a result. types/ (built by build.sh) has every
// type for your editor; it writes u64 as bigint, but the QuickJS backend
// wants a Number (a BigInt traps).

import { processes } from 'host:plugin/host@0.2.0';

/** @type {typeof import('host:plugin/background-agent@0.2.0')} */
export const backgroundAgent = {
  describe() {
    return {
      name: '{{name}}',
      description: 'What this agent watches (say it in a line)',
      // Once a minute; the host enforces a floor of 10 ms.
      intervalMs: 60000,
    };
  },

  tick() {
    // Nothing to do yet. A stall detector might emit an event (granted
    // `emit = ["my.>"]`) for each running process whose lastOutputMs is
    // older than nowMs() minus a limit:
    //   actions.push({ tag: 'emit', val: { type: 'my.stalled', subject: p.name, data: '{}' } });
    const watched = processes();
    return { activity: `watching ${watched.length} processes`, actions: [] };
  },
};
