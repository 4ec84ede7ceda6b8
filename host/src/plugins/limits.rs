//! Limits of one plugin: the host-wide defaults a manifest's `[limits]`
//! may override, and the bounds every deadline and memory cap is checked
//! against, wherever it comes from (`plugin.toml`, `host.toml`, a
//! [`super::PluginHostConfig`] built by hand). Checked, not wrapped: a
//! memory cap of 2^44 MiB used to wrap to 0 and a deadline of `u64::MAX`
//! ms failed every call at once.

use std::time::Duration;

/// Longest per-call deadline, in milliseconds: a plugin call is a
/// decision, and a minute is already far beyond any sane one.
pub const MAX_DEADLINE_MS: u64 = 60_000;

/// Largest memory cap, in MiB: 4 GiB is all a 32-bit wasm memory can
/// address, so a larger cap means nothing (and its bytes could overflow).
pub const MAX_MEMORY_MIB: u64 = 4096;

/// Check a deadline in milliseconds: 1 ..= [`MAX_DEADLINE_MS`].
///
/// # Errors
///
/// A message giving the bound and the value, for the caller to prefix
/// with the field's name.
pub fn check_deadline_ms(ms: u64) -> Result<Duration, String> {
    if (1..=MAX_DEADLINE_MS).contains(&ms) {
        Ok(Duration::from_millis(ms))
    } else {
        Err(format!(
            "must be between 1 and {MAX_DEADLINE_MS} milliseconds, not {ms}"
        ))
    }
}

/// Check a memory cap in MiB: 1 ..= [`MAX_MEMORY_MIB`]; returns bytes.
///
/// # Errors
///
/// A message giving the bound and the value, for the caller to prefix
/// with the field's name.
pub fn check_memory_mib(mib: u64) -> Result<u64, String> {
    if (1..=MAX_MEMORY_MIB).contains(&mib) {
        Ok(mib << 20)
    } else {
        Err(format!(
            "must be between 1 and {MAX_MEMORY_MIB} MiB, not {mib}"
        ))
    }
}

/// The host-wide defaults a manifest's `[limits]` may override.
#[derive(Debug, Clone, Copy)]
pub struct LimitDefaults {
    /// Deadline of one call.
    pub deadline: Duration,
    /// Memory cap in bytes.
    pub memory_bytes: u64,
}

impl LimitDefaults {
    /// Defaults from `host.toml`'s `deadline_ms` and `memory_mib`, checked
    /// with [`check_deadline_ms`] and [`check_memory_mib`].
    ///
    /// # Errors
    ///
    /// A message naming the field and its bound.
    pub fn from_config(deadline_ms: u64, memory_mib: u64) -> Result<Self, String> {
        Ok(Self {
            deadline: check_deadline_ms(deadline_ms).map_err(|e| format!("`deadline_ms` {e}"))?,
            memory_bytes: check_memory_mib(memory_mib).map_err(|e| format!("`memory_mib` {e}"))?,
        })
    }

    /// Check values built by hand (a [`Duration`] and bytes) against the
    /// same bounds.
    ///
    /// # Errors
    ///
    /// A message naming the field and its bound.
    pub fn check(&self) -> Result<(), String> {
        let ms = u64::try_from(self.deadline.as_millis()).unwrap_or(u64::MAX);
        check_deadline_ms(ms).map_err(|e| format!("`deadline` {e}"))?;
        if self.memory_bytes == 0 || self.memory_bytes > MAX_MEMORY_MIB << 20 {
            return Err(format!(
                "`memory_bytes` must be between 1 and {} bytes ({MAX_MEMORY_MIB} MiB), not {}",
                MAX_MEMORY_MIB << 20,
                self.memory_bytes
            ));
        }
        Ok(())
    }
}

impl Default for LimitDefaults {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(100),
            memory_bytes: 64 << 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_defaults_are_checked_against_the_same_bounds() {
        assert!(LimitDefaults::from_config(100, 64).is_ok());
        let err = LimitDefaults::from_config(0, 64).unwrap_err();
        assert!(
            err.contains("deadline_ms") && err.contains("60000"),
            "{err}"
        );
        let err = LimitDefaults::from_config(100, 1 << 44).unwrap_err();
        assert!(err.contains("memory_mib") && err.contains("4096"), "{err}");
        let hand_made = LimitDefaults {
            deadline: Duration::from_millis(u64::MAX),
            memory_bytes: 64 << 20,
        };
        assert!(hand_made.check().unwrap_err().contains("deadline"));
    }
}
