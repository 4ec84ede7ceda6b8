//! Coordination sessions: a dependency opens one; it resolves by agreement or escalates.
