//! Restart policy: whether to restart, how long to wait, when to give up.
//!
//! Pure functions over plain values so the whole decision table is tested
//! without spawning anything; the runner only feeds them outcomes and the
//! readings of a [`RestartClock`]. The clock is injected so that a test can
//! drive a crash loop on virtual time, with seeded jitter, and check every
//! delay and restart moment against the policy.
//!
//! Two counts are kept apart: the *limit* counts every restart within the
//! sliding `restart_window` (`max_restarts` of them, then
//! `process.gave_up`); the *backoff attempt* counts only the restarts since
//! the last run that stayed up for `stable_after`, so a process that ran
//! well for a while and then crashed waits the first delay again, not the
//! longest.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use super::spec::RestartMode;
use super::state::ProcessState;

/// The time the restart accounting runs on: readings for the window and
/// uptimes, the backoff waits, and the jitter spreading the delays.
///
/// [`SystemClock`] in the host; tests use a virtual one that only moves
/// when told to, so a crash loop's every step can be checked.
pub(crate) trait RestartClock: Send + Sync {
    /// Now, on this clock.
    fn now(&self) -> Instant;
    /// Resolves once `delay` has passed on this clock.
    fn sleep(&self, delay: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
    /// A number in `[0, 1)` spreading one backoff delay (see [`backoff_delay`]).
    fn jitter(&self) -> f64;
}

/// Real time: [`Instant::now`], tokio's timer, `fastrand`.
pub(crate) struct SystemClock;

impl RestartClock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, delay: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(delay))
    }

    fn jitter(&self) -> f64 {
        fastrand::f64()
    }
}

/// Whether a run that ended in `outcome` should be restarted under `mode`.
///
/// `outcome` is the terminal state the run ended in. A stop request
/// (`Cancelled`) is never restarted; `on-failure` covers non-zero exits,
/// signals, spawn failures (all `Failed`), timeouts, and runs the host
/// itself left unfinished (`Interrupted`): the work did not complete.
pub(crate) fn should_restart(mode: RestartMode, outcome: ProcessState) -> bool {
    match (mode, outcome) {
        (_, ProcessState::Cancelled) => false,
        (RestartMode::Never, _) => false,
        (
            RestartMode::OnFailure,
            ProcessState::Failed | ProcessState::Timeout | ProcessState::Interrupted,
        ) => true,
        (RestartMode::OnFailure, _) => false,
        (RestartMode::Always, state) => state.is_terminal(),
    }
}

/// Restarts seen within a sliding window, to enforce `max_restarts`, and
/// the moment of the last stable run, which resets the backoff.
#[derive(Debug, Default)]
pub(crate) struct RestartWindow {
    times: VecDeque<Instant>,
    /// When the last run that stayed up for `stable_after` ended: restarts
    /// before it still count towards the limit, but not towards the backoff.
    stable_at: Option<Instant>,
}

impl RestartWindow {
    /// Records a restart at `now` and returns its backoff attempt number
    /// (1-based: the restarts within the window since the last stable run,
    /// this one included), or `None` when `max` restarts already happened
    /// within `window`: the caller gives up.
    pub(crate) fn try_record(&mut self, now: Instant, window: Duration, max: u32) -> Option<u32> {
        self.expire(now, window);
        if self.times.len() >= max as usize {
            return None;
        }
        self.times.push_back(now);
        let since_stable = match self.stable_at {
            Some(at) => self.times.iter().filter(|&&t| t >= at).count(),
            None => self.times.len(),
        };
        u32::try_from(since_stable).ok()
    }

    /// A run that stayed up long enough ended at `at`: the next restart
    /// backs off as a first one. The limit is not reset: a process that
    /// is stable for a moment and crashes again and again is still given
    /// up on after `max_restarts` within the window.
    pub(crate) fn mark_stable(&mut self, at: Instant) {
        self.stable_at = Some(at);
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
        self.stable_at = None;
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
            (Interrupted, false, true, true),
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
    fn a_stable_run_resets_the_backoff_attempt_but_not_the_limit() {
        let mut window = RestartWindow::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(60);
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(window.try_record(at(0), w, 4), Some(1));
        assert_eq!(window.try_record(at(1), w, 4), Some(2));
        // The third run stayed up: its crash backs off as a first one.
        window.mark_stable(at(40));
        assert_eq!(window.try_record(at(40), w, 4), Some(1));
        assert_eq!(window.try_record(at(41), w, 4), Some(2));
        // Four restarts within the window all the same: the limit holds.
        assert_eq!(window.try_record(at(42), w, 4), None);
        window.clear();
        assert_eq!(window.try_record(at(43), w, 4), Some(1));
    }

    #[test]
    fn the_system_clock_reads_real_time_and_jitters_within_range() {
        let before = Instant::now();
        assert!(SystemClock.now() >= before);
        for _ in 0..100 {
            let j = SystemClock.jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
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
