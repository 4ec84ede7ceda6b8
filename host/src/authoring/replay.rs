//! Replaying recorded events through a plugin with a virtual clock.
