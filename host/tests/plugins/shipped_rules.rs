//! Tests of the shipped dependency rules and the batch check against their compiled components.
