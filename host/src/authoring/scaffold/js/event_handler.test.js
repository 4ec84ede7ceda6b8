// Tests of app.js, run by build.sh (and `npm test`) in Node before the
// component is built.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { eventHandler } from '../app.js';

function event(type) {
  return {
    id: '0191a7e4-0000-7000-8000-000000000001',
    source: 'host/supervisor',
    type,
    subject: 'web',
    time: '2026-01-01T00:00:00Z',
    sequence: 1,
    data: JSON.stringify({ exit_code: 1 }),
  };
}

test('it subscribes to failed processes', () => {
  assert.deepEqual(eventHandler.subscriptions(), ['process.failed']);
});

test('a failed process asks for nothing yet', () => {
  assert.deepEqual(eventHandler.handle(event('process.failed')), []);
});
