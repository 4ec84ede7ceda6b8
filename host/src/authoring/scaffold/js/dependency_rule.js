// {{name}}: a dependency rule in JavaScript (world dependency-rule-plugin).
// When a task is registered, the host asks the rule whether it depends on
// each task already known (`checkBatch`, up to 1,024 candidates per call;
// `check` for one pair), but only for pairs where both tasks mention one of
// the rule's keywords.
//
// WIT -> JS (jco's QuickJS backend): records are objects with camelCase
// fields, an absent option is null, a tuple is an array. types/ (built by
// build.sh) has every type for your editor; it writes none as undefined, but
// the QuickJS backend wants null.

// The host only pairs tasks that both mention one of these; an empty list
// sees every pair. Change them to your rule's words.
const KEYWORDS = ['api', 'schema'];

/**
 * Whether `a` (the task being registered) depends on `b`: never, yet. A rule
 * linking a task that changes an API to one that consumes it might return
 *   { relationship: 'api-contract', reason: `${a.title} changes the API ${b.title} uses`, confidence: 0.8 }
 * @param {import('host:plugin/types@0.2.0').Task} a
 * @param {import('host:plugin/types@0.2.0').Task} b
 * @returns {import('host:plugin/types@0.2.0').Dependency | null}
 */
function depends(a, b) {
  void a, b;
  return null;
}

/** @type {typeof import('host:plugin/dependency-rule@0.2.0')} */
export const dependencyRule = {
  describe() {
    return {
      name: '{{name}}',
      description: 'What this rule links (say it in a line)',
      keywords: KEYWORDS,
    };
  },

  check(a, b) {
    return depends(a, b);
  },

  checkBatch(task, candidates) {
    /** @type {Array<[number, import('host:plugin/types@0.2.0').Dependency]>} */
    const hits = [];
    candidates.forEach((b, i) => {
      const d = depends(task, b);
      if (d !== null) hits.push([i, d]);
    });
    return hits;
  },
};
