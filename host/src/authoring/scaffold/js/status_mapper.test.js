// Tests of app.js, run by build.sh (and `npm test`) in Node before the
// component is built.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { statusMapper } from '../app.js';

const process = {
  name: 'job',
  kind: '{{name}}',
  state: 'running',
  reportedState: null,
  pid: 42,
  exitCode: null,
  restarts: 0,
  progress: null,
  message: null,
  startedAtMs: 1767225600000,
  lastOutputMs: null,
  metadata: [],
};

test('it serves processes of its own kind', () => {
  assert.deepEqual(statusMapper.kinds(), ['{{name}}']);
});

test('an output line or a status maps to nothing yet', () => {
  assert.equal(statusMapper.mapOutput(process, 'step 3 of 10'), null);
  assert.equal(statusMapper.mapStatus(process, 'paused'), null);
});
