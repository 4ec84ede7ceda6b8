// api-contract-rule: a dependency rule in JavaScript (world
// dependency-rule-plugin, WIT host:plugin@0.2.0), the same policy as the
// shipped Rust plugin plugins/api-contract-rule (seed 003's API_Contract).
// The conformance suite (host/tests/plugins/languages.rs) holds all three
// versions to identical answers on tests/fixtures/conformance/.
//
// Two tasks depend when they are in different repositories, both mention an
// API keyword, and they share a meaningful term. Confidence: 0.25 + 0.2 per
// shared subject + 0.1 per shared API keyword + 0.2 when one defines the
// contract and the other implements it, capped at 0.95, in f32 arithmetic
// as the Rust version does it.
//
// Config (plugin.toml [config]):
//   keywords  comma list of API words (lowercased); unset or blank = defaults
//
// WIT → JS (jco's QuickJS backend): option<dependency> is the record or null; list<tuple<u32,
// dependency>> is an array of [index, record] pairs; f32 is a number.

import { config } from 'host:plugin/host@0.2.0';

const DEFAULT_KEYWORDS = ['api', 'endpoint', 'contract', 'interface', 'schema', 'openapi', 'graphql', 'rest'];
const DEFINES = ['define', 'design', 'spec', 'specify', 'specification', 'draft'];
const IMPLEMENTS = ['implement', 'implementation', 'build', 'integrate', 'consume', 'client'];
// plugins/rule-text's STOPWORDS, word for word.
const STOPWORDS = new Set([
  'the', 'and', 'for', 'with', 'from', 'into', 'onto', 'that', 'this', 'these', 'those', 'are',
  'was', 'were', 'has', 'have', 'not', 'all', 'any', 'new', 'our', 'its', 'their', 'via', 'per',
  'add', 'adds', 'update', 'updates', 'fix', 'fixes', 'make', 'use', 'uses', 'create', 'creates',
  'remove', 'change', 'changes', 'support', 'task', 'work', 'need', 'needs', 'should', 'must',
  'will', 'can', 'also', 'when', 'then', 'than', 'more', 'less', 'some', 'implement',
  'implementation', 'build', 'check', 'checks', 'service', 'new', 'part',
]);

// Rust's char::is_alphanumeric: Alphabetic or a number (Nd, Nl, No).
const NOT_ALNUM = /[^\p{Alphabetic}\p{Nd}\p{Nl}\p{No}]/u;
// The same split for ASCII text, which is most text: QuickJS runs the
// Unicode property classes ~20x slower, and they were most of a batch call.
const ASCII = /^[\x00-\x7f]*$/;
const NOT_ASCII_ALNUM = /[^A-Za-z0-9]/;

// UTF-8 length of a string (Rust's str::len), without TextEncoder.
function utf8Len(s) {
  let n = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0);
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return n;
}

// Drops a plural `s`, but not from words like status, analysis, class.
function singular(word) {
  const keep = word.endsWith('ss') || word.endsWith('us') || word.endsWith('is');
  if (!keep && word.endsWith('s')) {
    const stem = word.slice(0, -1);
    if (utf8Len(stem) >= 3) return stem;
  }
  return word;
}

// The task's words: lowercase, three characters or more, plurals folded.
function terms(task) {
  const out = [];
  for (const text of [task.title, task.description, task.keywords.join(' ')]) {
    for (const w of text.split(ASCII.test(text) ? NOT_ASCII_ALNUM : NOT_ALNUM)) {
      if ([...w].length >= 3) out.push(singular(w.toLowerCase()));
    }
  }
  return out;
}

// Rust orders strings by bytes (= code points); JS `<` compares UTF-16 units.
function byCodePoint(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

function parseKeywords(raw) {
  const words = (raw ?? '').split(',').map((k) => k.trim().toLowerCase()).filter((k) => k !== '');
  return words.length === 0 ? DEFAULT_KEYWORDS : words;
}

const f32 = Math.fround;

// The decision over the prepared task `a` and the terms of `b`.
function decide(a, termsB, keywords) {
  const isApi = (t) => keywords.includes(t);
  if (![...a.terms].some(isApi)) return null;
  let bApi = false;
  let bDefines = false;
  let bImplements = false;
  const shared = new Set();
  for (const t of termsB) {
    bApi ||= isApi(t);
    bDefines ||= DEFINES.includes(t);
    bImplements ||= IMPLEMENTS.includes(t);
    if (a.terms.has(t) && !STOPWORDS.has(t)) shared.add(t);
  }
  if (!bApi || shared.size === 0) return null;
  const sharedApi = [...shared].filter(isApi).length;
  const sharedSubject = shared.size - sharedApi;
  const has = (verbs) => verbs.some((v) => a.terms.has(v));
  const definesAndImplements = (has(DEFINES) && bImplements) || (bDefines && has(IMPLEMENTS));
  let confidence = f32(0.25);
  confidence = f32(confidence + f32(f32(0.2) * sharedSubject));
  confidence = f32(confidence + f32(f32(0.1) * sharedApi));
  confidence = f32(confidence + (definesAndImplements ? f32(0.2) : 0));
  const names = [...shared].sort(byCodePoint);
  let reason = `both tasks touch an API and share: ${names.join(', ')}`;
  if (definesAndImplements) reason += '; one defines the contract, the other implements it';
  return {
    relationship: 'api-contract',
    reason,
    confidence: Math.min(confidence, f32(0.95)),
  };
}

function prepare(task) {
  return { repository: task.repository, terms: new Set(terms(task)) };
}

function checkOne(a, b, keywords) {
  if (a.repository === b.repository) return null;
  return decide(a, terms(b), keywords);
}

export const dependencyRule = {
  describe() {
    return {
      name: 'api-contract',
      description: 'Tasks in different repositories that touch the same API contract',
      keywords: parseKeywords(config('keywords')),
    };
  },

  check(a, b) {
    return checkOne(prepare(a), b, parseKeywords(config('keywords')));
  },

  checkBatch(task, candidates) {
    const keywords = parseKeywords(config('keywords'));
    const a = prepare(task);
    const found = [];
    candidates.forEach((b, i) => {
      const d = checkOne(a, b, keywords);
      if (d !== null) found.push([i, d]);
    });
    return found;
  },
};
