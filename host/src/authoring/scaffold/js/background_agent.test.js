// Tests of app.js, run by build.sh (and `npm test`) in Node before the
// component is built. test/host.js stands in for the host's functions.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { backgroundAgent } from '../app.js';
import { processList } from './host.js';

test('it ticks once a minute', () => {
  assert.equal(backgroundAgent.describe().intervalMs, 60000);
});

test('a tick says what it watches and asks for nothing yet', () => {
  processList.length = 0;
  processList.push({ name: 'web' });
  const outcome = backgroundAgent.tick();
  assert.equal(outcome.activity, 'watching 1 processes');
  assert.deepEqual(outcome.actions, []);
});
