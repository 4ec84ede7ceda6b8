"""api-contract-rule: a dependency rule in Python (world
dependency-rule-plugin, WIT host:plugin@0.2.0), the same policy as the
shipped Rust plugin plugins/api-contract-rule. This file is the WIT glue;
the decision lives in `api_contract` so it runs under plain `python3`.

componentize-py binds each exported interface to a class named after it:
`DependencyRule` here (`EventHandler`, `StatusMapper`, `BackgroundAgent` for
the other kinds). `componentize-py -d ../../../wit -w dependency-rule-plugin
bindings .` writes the typed modules an editor completes from.
"""

from typing import List, Optional, Tuple

from wit_world import exports
from wit_world.imports.host import config
from wit_world.imports.types import Dependency, RuleInfo, Task

import api_contract


def _keywords() -> List[str]:
    return api_contract.parse_keywords(config("keywords"))


def _prepared(t: Task) -> api_contract.Prepared:
    return api_contract.Prepared(t.repository, api_contract.terms(t.title, t.description, t.keywords))


def _check(a: api_contract.Prepared, b: Task, keywords: List[str]) -> Optional[Dependency]:
    found = api_contract.decide(
        a, b.repository, api_contract.terms(b.title, b.description, b.keywords), keywords)
    if found is None:
        return None
    reason, confidence = found
    return Dependency(relationship="api-contract", reason=reason, confidence=confidence)


class DependencyRule(exports.DependencyRule):
    def describe(self) -> RuleInfo:
        return RuleInfo(
            name="api-contract",
            description="Tasks in different repositories that touch the same API contract",
            keywords=_keywords(),
        )

    def check(self, a: Task, b: Task) -> Optional[Dependency]:
        return _check(_prepared(a), b, _keywords())

    def check_batch(self, task: Task, candidates: List[Task]) -> List[Tuple[int, Dependency]]:
        keywords = _keywords()
        a = _prepared(task)
        found = []
        for i, b in enumerate(candidates):
            d = _check(a, b, keywords)
            if d is not None:
                found.append((i, d))
        return found
