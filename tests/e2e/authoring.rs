//! The authoring loop: a plugin folder filled after it was made, a version bumped before the rebuild, guest errors in words, `[build]` and `host run --watch`.
