"""{{name}}: a dependency rule in Python (world dependency-rule-plugin).

When a task is registered, the host asks the rule whether it depends on each
task already known (`check_batch`, up to 1,024 candidates per call; `check`
for one pair), but only for pairs where both tasks mention one of the rule's
keywords.
"""

from typing import List, Optional, Tuple

from wit_world import exports
from wit_world.imports.types import Dependency, RuleInfo, Task

# The host only pairs tasks that both mention one of these; an empty list
# sees every pair. Change them to your rule's words.
KEYWORDS = ["api", "schema"]


def depends(a: Task, b: Task) -> Optional[Dependency]:
    """Whether `a` (the task being registered) depends on `b`: never, yet.
    A rule linking a task that changes an API to one that consumes it might
    return Dependency(relationship="api-contract",
    reason=f"{a.title} changes the API {b.title} uses", confidence=0.8)."""
    return None


# componentize-py finds the implementation by name: the class must be named
# after the interface it exports (`dependency-rule` -> `DependencyRule`).
class DependencyRule(exports.DependencyRule):
    def describe(self) -> RuleInfo:
        return RuleInfo(
            name="{{name}}",
            description="What this rule links (say it in a line)",
            keywords=KEYWORDS,
        )

    def check(self, a: Task, b: Task) -> Optional[Dependency]:
        return depends(a, b)

    def check_batch(self, task: Task, candidates: List[Task]) -> List[Tuple[int, Dependency]]:
        hits = []
        for i, b in enumerate(candidates):
            d = depends(task, b)
            if d is not None:
                hits.append((i, d))
        return hits
