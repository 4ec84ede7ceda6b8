//! The one rule for names the host hands out or accepts: process names
//! (and ids), process kinds, plugin names.
//!
//! A name becomes a file name (`logs/<name>.log`), an event subject or
//! source (`plugin/<name>`), and a path segment of the API, so it must be
//! safe in all of them; one rule keeps a plugin and a process from being
//! named under different laws.

/// Checks a name: non-empty, at most 128 bytes of `[A-Za-z0-9._-]`, and not
/// `.` or `..`.
///
/// # Errors
///
/// Why the name is refused, for the caller to prefix with the field.
pub fn ensure_valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 128 {
        return Err("must be at most 128 characters".into());
    }
    if name == "." || name == ".." {
        return Err("must not be `.` or `..`".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "may only contain letters, digits, `.`, `_` and `-` (found {c:?})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_safe_as_files_subjects_and_paths_pass_and_others_say_why() {
        for ok in ["web", "build_7f3a9c", "api-contract-rule", "v1.2", "a"] {
            assert!(ensure_valid_name(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("..", "`.`"),
            (".", "`.`"),
            ("a/b", "'/'"),
            ("two words", "' '"),
            ("é", "'é'"),
        ] {
            let err = ensure_valid_name(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(
            ensure_valid_name(&"x".repeat(129))
                .unwrap_err()
                .contains("128")
        );
    }
}
