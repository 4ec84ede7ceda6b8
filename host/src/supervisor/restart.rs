//! Restart policy: whether to restart, how long to wait, when to give up.
//!
//! Pure functions over plain values so the whole decision table is tested
//! without spawning anything; the runner only feeds them outcomes and clocks.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::spec::RestartMode;
use super::state::ProcessState;

/// Whether a run that ended in `outcome` should be restarted under `mode`.
///
/// `outcome` is the terminal state the run ended in. A stop request
/// (`Cancelled`) is never restarted; `on-failure` covers non-zero exits,
/// signals, spawn failures (all `Failed`) and timeouts.
pub(crate) fn should_restart(mode: RestartMode, outcome: ProcessState) -> bool {
    match (mode, outcome) {
        (_, ProcessState::Cancelled) => false,
        (RestartMode::Never, _) => false,
        (RestartMode::OnFailure, ProcessState::Failed | ProcessState::Timeout) => true,
        (RestartMode::OnFailure, _) => false,
        (RestartMode::Always, state) => state.is_terminal(),
    }
}

/// Restarts seen within a sliding window, to enforce `max_restarts`.
#[derive(Debug, Default)]
pub(crate) struct RestartWindow {
    times: VecDeque<Instant>,
}

impl RestartWindow {
    /// Records a restart at `now` and returns its attempt number (1-based,
    /// counted within the window), or `None` when `max` restarts already
    /// happened within `window`: the caller gives up.
    pub(crate) fn try_record(&mut self, now: Instant, window: Duration, max: u32) -> Option<u32> {
        self.expire(now, window);
        if self.times.len() >= max as usize {
            return None;
        }
        self.times.push_back(now);
        u32::try_from(self.times.len()).ok()
    }

    /// Whether a restart at `now` would be allowed, without recording it.
    pub(crate) fn would_allow(&mut self, now: Instant, window: Duration, max: u32) -> bool {
        self.expire(now, window);
        self.times.len() < max as usize
    }

    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some(&oldest) = self.times.front() {
            if now.saturating_duration_since(oldest) >= window {
                self.times.pop_front();
            } else {
                break;
            }
        }
    }

    /// Forgets all restarts (an explicit start begins afresh).
    pub(crate) fn clear(&mut self) {
        self.times.clear();
    }
}

/// The delay before restart number `attempt` (1-based).
///
/// `initial` doubles per attempt up to `max`; then `jitter` (a number in
/// `[0, 1)`, e.g. from `fastrand::f64()`) spreads it by ±20% so that many
/// processes failing together do not restart in lockstep. The result never
/// exceeds `max`.
pub(crate) fn backoff_delay(
    initial: Duration,
    max: Duration,
    attempt: u32,
    jitter: f64,
) -> Duration {
    let doublings = attempt.saturating_sub(1).min(32);
    let base = initial.saturating_mul(1u32 << doublings.min(31)).min(max);
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    base.mul_f64(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProcessState::*;

    #[test]
    fn the_restart_decision_table_holds() {
        let table = [
            // outcome, never, on-failure, always
            (Completed, false, false, true),
            (Failed, false, true, true),
            (Timeout, false, true, true),
            (Cancelled, false, false, false),
        ];
        for (outcome, never, on_failure, always) in table {
            assert_eq!(
                should_restart(RestartMode::Never, outcome),
                never,
                "{outcome}"
            );
            assert_eq!(
                should_restart(RestartMode::OnFailure, outcome),
                on_failure,
                "{outcome}"
            );
            assert_eq!(
                should_restart(RestartMode::Always, outcome),
                always,
                "{outcome}"
            );
        }
    }

    #[test]
    fn non_terminal_states_are_never_restarted() {
        for state in [Pending, Starting, Running, Paused, Stopping, Backoff] {
            for mode in [
                RestartMode::Never,
                RestartMode::OnFailure,
                RestartMode::Always,
            ] {
                assert!(!should_restart(mode, state), "{mode:?} {state}");
            }
        }
    }

    #[test]
    fn backoff_doubles_per_attempt_until_the_cap() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        let mid = |attempt| backoff_delay(initial, max, attempt, 0.5);
        assert_eq!(mid(1), Duration::from_millis(100));
        assert_eq!(mid(2), Duration::from_millis(200));
        assert_eq!(mid(3), Duration::from_millis(400));
        assert_eq!(mid(4), Duration::from_millis(800));
        assert_eq!(mid(5), max);
        assert_eq!(mid(1000), max);
        assert_eq!(backoff_delay(initial, max, 0, 0.5), initial);
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_under_the_cap() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(30);
        assert_eq!(
            backoff_delay(initial, max, 1, 0.0),
            Duration::from_millis(80)
        );
        assert_eq!(
            backoff_delay(initial, max, 1, 1.0),
            Duration::from_millis(120)
        );
        for _ in 0..1000 {
            let attempt = fastrand::u32(1..12);
            let d = backoff_delay(initial, max, attempt, fastrand::f64());
            let base = initial.saturating_mul(1 << (attempt - 1)).min(max);
            assert!(
                d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2),
                "{d:?} vs {base:?}"
            );
            assert!(d <= max);
        }
        // Out-of-range jitter is clamped rather than trusted.
        assert_eq!(
            backoff_delay(initial, max, 1, 7.0),
            Duration::from_millis(120)
        );
    }

    #[test]
    fn the_window_allows_max_restarts_then_gives_up() {
        let mut window = RestartWindow::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        assert_eq!(window.try_record(t0, w, 3), Some(1));
        assert_eq!(
            window.try_record(t0 + Duration::from_secs(1), w, 3),
            Some(2)
        );
        assert_eq!(
            window.try_record(t0 + Duration::from_secs(2), w, 3),
            Some(3)
        );
        assert_eq!(window.try_record(t0 + Duration::from_secs(3), w, 3), None);
    }

    #[test]
    fn restarts_older_than_the_window_no_longer_count() {
        let mut window = RestartWindow::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(10);
        assert_eq!(window.try_record(t0, w, 2), Some(1));
        assert_eq!(
            window.try_record(t0 + Duration::from_secs(5), w, 2),
            Some(2)
        );
        assert_eq!(
            window.try_record(t0 + Duration::from_secs(12), w, 2),
            Some(2)
        );
        window.clear();
        assert_eq!(
            window.try_record(t0 + Duration::from_secs(13), w, 2),
            Some(1)
        );
    }

    #[test]
    fn zero_max_restarts_gives_up_at_once() {
        let mut window = RestartWindow::default();
        assert_eq!(
            window.try_record(Instant::now(), Duration::from_secs(1), 0),
            None
        );
    }
}
