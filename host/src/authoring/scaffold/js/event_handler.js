// {{name}}: an event handler in JavaScript (world event-handler-plugin).
// The host asks `subscriptions` once when it loads the plugin, then calls
// `handle` for every event whose type matches one of them, and performs the
// actions it returns (within the grants of plugin.toml's [permissions]).
//
// WIT -> JS (jco's QuickJS backend): records are objects with camelCase
// fields, variants are {tag, val} (tags in kebab-case: 'emit',
// 'set-status'), enums are strings, u64 is a Number (exact up to 2^53), an
// absent option is null, and a thrown string becomes the `err` of a result.
// types/ (built by build.sh) has every type for your editor; it writes u64
// as bigint and none as undefined, but the QuickJS backend wants Number and
// null (a BigInt traps).

// Host functions, when you need them:
// import { log, config, processes, nowMs } from 'host:plugin/host@0.2.0';

/** @type {typeof import('host:plugin/event-handler@0.2.0')} */
export const eventHandler = {
  subscriptions() {
    // Type patterns: `*` matches one dotted token, `>` the rest
    // (`process.>` is every process event). Change to what you react to.
    return ['process.failed'];
  },

  handle(e) {
    // Nothing to do yet. To announce each failure, return for example
    // (and grant `emit = ["my.>"]` in plugin.toml):
    //   [{ tag: 'emit', val: { type: 'my.failure_seen', subject: e.subject, data: e.data } }]
    // (`data` is JSON text: JSON.stringify an object.)
    void e;
    return [];
  },
};
