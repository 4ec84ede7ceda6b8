"""Tests of app.py, run by build.sh before the component is built
(`python -m unittest test_app` after a build wrote bindings/)."""

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "bindings"))

from app import DependencyRule  # noqa: E402
from wit_world.imports.types import Task  # noqa: E402


def task(id_: str, title: str) -> Task:
    return Task(id=id_, repository="shop", title=title, description="", keywords=["api"], agent=None)


class Rule(unittest.TestCase):
    def test_it_names_itself_and_asks_for_keywords(self):
        info = DependencyRule().describe()
        self.assertEqual(info.name, "{{name}}")
        self.assertTrue(info.keywords)

    def test_two_tasks_on_the_same_api_are_not_linked_yet(self):
        a = task("a", "Change the orders API")
        b = task("b", "Use the orders API in the app")
        self.assertIsNone(DependencyRule().check(a, b))
        self.assertEqual(DependencyRule().check_batch(a, [b]), [])


if __name__ == "__main__":
    unittest.main()
