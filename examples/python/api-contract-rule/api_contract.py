"""The API-contract decision (seed 003's `API_Contract`), free of any host
call so it runs under plain `python3`: the same policy as the shipped Rust
plugin plugins/api-contract-rule, line for line (its src/terms.rs and
plugins/rule-text). The conformance suite (host/tests/plugins/languages.rs)
holds the Rust, JavaScript and Python versions to identical answers.

Two tasks depend when they are in different repositories, both mention an
API keyword, and they share a meaningful term. The confidence is computed in
f32, as Rust does it, so the three agree to the last bit.
"""

import struct
from typing import Iterable, List, Optional, Sequence, Set, Tuple

DEFAULT_KEYWORDS = ["api", "endpoint", "contract", "interface", "schema", "openapi", "graphql", "rest"]
DEFINES = ["define", "design", "spec", "specify", "specification", "draft"]
IMPLEMENTS = ["implement", "implementation", "build", "integrate", "consume", "client"]
# plugins/rule-text's STOPWORDS, word for word.
STOPWORDS = frozenset("""
the and for with from into onto that this these those are was were has have
not all any new our its their via per add adds update updates fix fixes make
use uses create creates remove change changes support task work need needs
should must will can also when then than more less some implement
implementation build check checks service new part
""".split())


def f32(x: float) -> float:
    """`x` rounded to the nearest f32, as Rust's f32 arithmetic rounds."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _alnum(c: str) -> bool:
    # Rust's char::is_alphanumeric is Alphabetic or Nd/Nl/No; str.isalnum
    # agrees except for Other_Alphabetic marks (e.g. Devanagari vowel
    # signs), which Python's standard library cannot name.
    return c.isalnum()


def _words(text: str) -> Iterable[str]:
    word: List[str] = []
    for c in text:
        if _alnum(c):
            word.append(c)
        else:
            yield "".join(word)
            word = []
    yield "".join(word)


def singular(word: str) -> str:
    """Drops a plural `s`, but not from words like status, analysis, class."""
    keep = word.endswith(("ss", "us", "is"))
    if not keep and word.endswith("s"):
        stem = word[:-1]
        if len(stem.encode("utf-8")) >= 3:
            return stem
    return word


def terms(title: str, description: str, keywords: Sequence[str]) -> List[str]:
    """The task's words: lowercase, three characters or more, plurals folded."""
    out = []
    for text in (title, description, " ".join(keywords)):
        for w in _words(text):
            if len(w) >= 3:
                out.append(singular(w.lower()))
    return out


def parse_keywords(raw: Optional[str]) -> List[str]:
    """The `keywords` config value (a comma list), lowercased; unset or
    blank gives the defaults."""
    words = [k.strip().lower() for k in (raw or "").split(",")]
    words = [k for k in words if k]
    return words or list(DEFAULT_KEYWORDS)


class Prepared:
    """A task's repository and terms, computed once per batch."""

    def __init__(self, repository: str, terms_: Iterable[str]):
        self.repository = repository
        self.terms: Set[str] = set(terms_)


def decide(a: Prepared, repository_b: str, terms_b: Iterable[str],
           keywords: Sequence[str]) -> Optional[Tuple[str, float]]:
    """(reason, confidence) when `a` and `b` share an API contract."""
    if a.repository == repository_b:
        return None
    if not any(t in keywords for t in a.terms):
        return None
    b_api = b_defines = b_implements = False
    shared: Set[str] = set()
    for t in terms_b:
        b_api = b_api or t in keywords
        b_defines = b_defines or t in DEFINES
        b_implements = b_implements or t in IMPLEMENTS
        if t in a.terms and t not in STOPWORDS:
            shared.add(t)
    if not b_api or not shared:
        return None
    shared_api = sum(1 for t in shared if t in keywords)
    shared_subject = len(shared) - shared_api
    has = lambda verbs: any(v in a.terms for v in verbs)  # noqa: E731
    defines_and_implements = (has(DEFINES) and b_implements) or (b_defines and has(IMPLEMENTS))
    confidence = f32(0.25)
    confidence = f32(confidence + f32(f32(0.2) * shared_subject))
    confidence = f32(confidence + f32(f32(0.1) * shared_api))
    confidence = f32(confidence + (f32(0.2) if defines_and_implements else 0.0))
    # sorted() orders by code point, as Rust's BTreeSet<&str> does.
    reason = "both tasks touch an API and share: " + ", ".join(sorted(shared))
    if defines_and_implements:
        reason += "; one defines the contract, the other implements it"
    return reason, min(confidence, f32(0.95))


if __name__ == "__main__":
    a = Prepared("backend-api", terms("Define user authentication API",
                                      "Create OpenAPI spec for user auth endpoints", []))
    print(decide(a, "frontend-app", terms("Implement authentication endpoint", "", []),
                 DEFAULT_KEYWORDS))
