// Tests of app.js, run by build.sh (and `npm test`) in Node before the
// component is built.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { dependencyRule } from '../app.js';

function task(id, title) {
  return { id, repository: 'shop', title, description: '', keywords: ['api'], agent: null };
}

test('it names itself and asks for keywords', () => {
  const info = dependencyRule.describe();
  assert.equal(info.name, '{{name}}');
  assert.ok(info.keywords.length > 0);
});

test('two tasks on the same API are not linked yet', () => {
  const a = task('a', 'Change the orders API');
  const b = task('b', 'Use the orders API in the app');
  assert.equal(dependencyRule.check(a, b), null);
  assert.deepEqual(dependencyRule.checkBatch(a, [b]), []);
});
