"""Unit tests for pytest_lines; run with `python3 -m unittest` in this folder."""

import unittest

from pytest_lines import parse_line


class ParseLine(unittest.TestCase):
    def test_a_progress_line_gives_the_fraction_and_the_test_file(self):
        reading = parse_line("tests/test_x.py ....F.  [ 42%]")
        self.assertEqual(reading.progress, 0.42)
        self.assertIsNone(reading.ok)
        self.assertEqual(reading.message, "tests/test_x.py")

    def test_a_verbose_progress_line_names_the_file_not_the_test(self):
        reading = parse_line("tests/test_x.py::test_a PASSED            [100%]")
        self.assertEqual(reading.progress, 1.0)
        self.assertEqual(reading.message, "tests/test_x.py")

    def test_a_clean_summary_means_completed(self):
        reading = parse_line("============ 12 passed, 1 skipped in 0.34s ============")
        self.assertTrue(reading.ok)
        self.assertEqual(reading.progress, 1.0)
        self.assertEqual(reading.message, "12 passed, 1 skipped")

    def test_a_summary_with_failures_or_errors_means_failed(self):
        self.assertFalse(parse_line("3 passed, 1 failed").ok)
        self.assertFalse(parse_line("== 1 error in 0.10s ==").ok)
        self.assertFalse(parse_line("2 failed, 5 passed, 2 warnings in 1.20s").ok)

    def test_ordinary_lines_say_nothing(self):
        self.assertIsNone(parse_line("collected 14 items"))
        self.assertIsNone(parse_line("2 apples, 3 pears"))
        self.assertIsNone(parse_line("assert 42 == [ 43%]x"))
        self.assertIsNone(parse_line("5 warnings in 0.1s"))
        self.assertIsNone(parse_line(""))


if __name__ == "__main__":
    unittest.main()
