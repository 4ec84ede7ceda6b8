//! Tests of the session judge and planner plugins against their compiled components.
