//! The kind-level contract check any component must pass.
