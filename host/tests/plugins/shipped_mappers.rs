//! Tests of the shipped status mappers (ai-coder, test-suite, build) against their compiled components.
