//! Tests of the shipped background agents (pm, gatherer, security) against their compiled components.
