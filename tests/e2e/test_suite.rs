//! Test runs of kind `test_suite` reported with counts and first failures.
