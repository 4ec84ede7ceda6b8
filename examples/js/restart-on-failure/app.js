// restart-on-failure: an event handler in JavaScript (world
// event-handler-plugin) that heals failed processes by asking the host to
// restart them, and says so with a `heal.restarted` event.
//
// Config (plugin.toml [config]):
//   processes    comma list of process names to heal; unset or blank = all
//   max_restarts stop healing a process once the host counts this many
//                restarts for it (default 5), emitting `heal.gave_up` instead,
//                so a process that can never start does not loop forever
//
// WIT → JS: records are plain objects with camelCase fields, variants are
// {tag, val}, enums are strings, u64 arrives as BigInt, and a thrown error
// becomes the `err` of handle's result.

import { config, log, processes } from 'host:plugin/host@0.1.0';

const DEFAULT_MAX_RESTARTS = 5;

function listed() {
  const raw = config('processes');
  const names = (raw ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  return names.length === 0 ? null : new Set(names);
}

function maxRestarts() {
  const raw = config('max_restarts');
  if (raw == null || raw.trim() === '') return DEFAULT_MAX_RESTARTS;
  const n = Number(raw.trim());
  if (!Number.isInteger(n) || n < 0) {
    throw `config \`max_restarts\` = ${JSON.stringify(raw)} is not a whole number`;
  }
  return n;
}

function parseData(text) {
  try {
    const value = JSON.parse(text);
    return value !== null && typeof value === 'object' ? value : {};
  } catch {
    return {};
  }
}

function emit(type, subject, data) {
  return { tag: 'emit', val: { type, subject, data: JSON.stringify(data) } };
}

export const eventHandler = {
  subscriptions() {
    return ['process.failed'];
  },

  handle(e) {
    if (e.type !== 'process.failed') return [];
    const name = e.subject;
    if (name === undefined || name === null) {
      throw `process.failed event ${e.id} has no subject`;
    }
    const names = listed();
    if (names !== null && !names.has(name)) return [];

    const failed = parseData(e.data);
    const info = processes().find((p) => p.name === name);
    const restarts = info ? info.restarts : 0;
    const limit = maxRestarts();
    const details = {
      process: name,
      exit_code: failed.exit_code ?? null,
      reason: failed.reason ?? null,
      restarts,
      failed_sequence: Number(e.sequence),
    };
    if (restarts >= limit) {
      log('warn', `${name} failed again after ${restarts} restarts; not restarting it`);
      return [emit('heal.gave_up', name, { ...details, max_restarts: limit })];
    }
    log('info', `restarting ${name} after it failed`);
    return [{ tag: 'restart', val: name }, emit('heal.restarted', name, details)];
  },
};
