// {{name}}: a status mapper in JavaScript (world status-mapper-plugin).
// For processes of the kinds it serves, the host hands it each status the
// process reports of its own (`mapStatus`) and each line of its output
// (`mapOutput`); what it returns becomes the process's reported state,
// progress and message.
//
// WIT -> JS (jco's QuickJS backend): records are objects with camelCase
// fields, enums are strings ('running', 'completed', 'failed', ...), u64 is
// a Number, an absent option is null. types/ (built by build.sh) has every
// type for your editor; it writes u64 as bigint and none as undefined, but
// the QuickJS backend wants Number and null (a BigInt traps).

// Host functions, when you need them:
// import { log, config } from 'host:plugin/host@0.2.0';

/** @type {typeof import('host:plugin/status-mapper@0.2.0')} */
export const statusMapper = {
  kinds() {
    // Processes started with this `kind` are mapped; `*` serves every kind
    // (and then sees every output line of every process).
    return ['{{name}}'];
  },

  mapStatus(p, reported) {
    // A status the process's own system reports (e.g. `paused`).
    void p, reported;
    return null;
  },

  mapOutput(p, line) {
    // Nothing is read from output yet. To read a percentage, for example:
    //   const m = /(\d+)%$/.exec(line);
    //   if (m) return { state: null, progress: Number(m[1]) / 100, message: null };
    void p, line;
    return null;
  },
};
