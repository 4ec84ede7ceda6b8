//! Crash loops on a virtual clock: every backoff delay, restart moment,
//! stable-uptime reset and give-up checked against the policy, with real
//! `/bin/sh` children and seeded jitter. Also the golden-trace harness:
//! a process's lifecycle through the shared harness of `probes.rs`
//! (`name: type from→to`), compared with a list written in the test.
//!
//! The [`ManualClock`] moves only when a test advances it, so a run's
//! uptime and the window are exactly what the test says, however slow the
//! machine; sleeps are registered with it and fire when it passes their
//! deadline, so a restart before its delay is impossible to miss.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::*;
use crate::supervisor::restart::RestartClock;

/// A restart clock that stands still until [`ManualClock::advance`].
pub(super) struct ManualClock {
    base: Instant,
    state: Mutex<Virtual>,
    rng: Mutex<fastrand::Rng>,
}

#[derive(Default)]
struct Virtual {
    elapsed: Duration,
    /// Deadlines (as elapsed time) of pending sleeps.
    sleepers: Vec<(Duration, oneshot::Sender<()>)>,
    /// Every delay a sleep was asked for, in order.
    requested: Vec<Duration>,
}

impl ManualClock {
    /// A clock at zero whose jitter comes from a generator seeded with `seed`.
    pub(super) fn new(seed: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            base: Instant::now(),
            state: Mutex::default(),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        })
    }

    /// Moves the clock on by `by`, waking every sleep whose time has come.
    pub(super) fn advance(&self, by: Duration) {
        let mut state = self.state.lock();
        state.elapsed += by;
        let now = state.elapsed;
        let (due, pending): (Vec<_>, Vec<_>) = std::mem::take(&mut state.sleepers)
            .into_iter()
            .partition(|(deadline, _)| *deadline <= now);
        state.sleepers = pending;
        drop(state);
        for (_, wake) in due {
            let _ = wake.send(());
        }
    }

    /// Sleeps still waiting (not dropped by their owner).
    pub(super) fn sleepers(&self) -> usize {
        let state = self.state.lock();
        state
            .sleepers
            .iter()
            .filter(|(_, w)| !w.is_closed())
            .count()
    }

    /// Every delay asked for so far.
    pub(super) fn requested(&self) -> Vec<Duration> {
        self.state.lock().requested.clone()
    }
}

impl RestartClock for ManualClock {
    fn now(&self) -> Instant {
        self.base + self.state.lock().elapsed
    }

    fn sleep(
        &self,
        delay: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let (wake, woken) = oneshot::channel();
        let mut state = self.state.lock();
        state.requested.push(delay);
        let deadline = state.elapsed + delay;
        state.sleepers.push((deadline, wake));
        drop(state);
        Box::pin(async move {
            let _ = woken.await;
        })
    }

    fn jitter(&self) -> f64 {
        self.rng.lock().f64()
    }
}

/// A supervisor on `clock`, without resource sampling (nothing else runs).
pub(super) fn setup_clocked(clock: Arc<ManualClock>) -> (Supervisor, Bus, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
    let mut config = SupervisorConfig::new(dir.path());
    config.resource_interval = None;
    let sup = Supervisor::with_clock(bus.clone(), config, clock);
    (sup, bus, dir)
}

/// The golden trace of `name` by the shared harness (`probes::trace`):
/// `name: type from→to` per lifecycle event, `created` left out.
pub(super) fn trace(bus: &Bus, name: &str) -> Vec<String> {
    super::probes::trace(bus, &[name])
}

/// The trace expected of `name`, from steps written `type from->to`.
pub(super) fn expect<S: AsRef<str>>(name: &str, steps: &[S]) -> Vec<String> {
    steps
        .iter()
        .map(|s| format!("{name}: {}", s.as_ref().replace("->", "→")))
        .collect()
}

/// The lines of one crash of a restarting process: its run's end and
/// backoff, then the next start.
fn crash_and_restart() -> [&'static str; 5] {
    [
        "exited running->failed",
        "failed running->failed",
        "backoff failed->backoff",
        "starting backoff->starting",
        "started starting->running",
    ]
}

/// The policy's delay for backoff attempt `attempt`, written out from the
/// documentation (doubling from `initial`, capped at `max`, spread by
/// `0.8 + 0.4 × jitter`, never above `max`), not taken from the code.
fn policy_delay(initial: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let mut base = initial;
    for _ in 1..attempt {
        base = (base * 2).min(max);
    }
    base.mul_f64(0.8 + 0.4 * jitter).min(max)
}

/// Waits until the `k`th `process.backoff` of `name` is out and its sleep
/// is registered with the clock; returns its data.
async fn nth_backoff(
    sup: &Supervisor,
    bus: &Bus,
    clock: &ManualClock,
    name: &str,
    k: usize,
) -> Value {
    wait_until(&format!("backoff {k} of {name}"), || {
        of_type(bus, name, "process.backoff").len() >= k && clock.sleepers() == 1
    })
    .await;
    assert_eq!(sup.get(name).unwrap().state, ProcessState::Backoff);
    of_type(bus, name, "process.backoff").swap_remove(k - 1)
}

/// Advances through one backoff of `delay`, checking that nothing
/// restarts a millisecond early; waits for the `starts`th start.
async fn sit_out(
    sup: &Supervisor,
    bus: &Bus,
    clock: &ManualClock,
    name: &str,
    delay: Duration,
    starts: usize,
) {
    clock.advance(delay - Duration::from_millis(1));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(clock.sleepers(), 1, "the backoff ended early");
    assert_eq!(sup.get(name).unwrap().state, ProcessState::Backoff);
    clock.advance(Duration::from_millis(1));
    wait_until(&format!("start {starts} of {name}"), || {
        of_type(bus, name, "process.started").len() >= starts
    })
    .await;
}

const SEED: u64 = 8;

#[tokio::test]
async fn eight_crashes_back_off_exactly_as_the_policy_says() {
    let clock = ManualClock::new(SEED);
    let (sup, bus, _dir) = setup_clocked(clock.clone());
    let mut s = spec("crashy", "exit 3");
    s.restart = RestartMode::OnFailure;
    s.backoff = Duration::from_secs(1);
    s.backoff_max = Duration::from_secs(30);
    s.max_restarts = 100;
    s.restart_window = Duration::from_secs(3600);
    sup.add(s.clone()).unwrap();
    sup.start("crashy").await.unwrap();

    let mut jitter = fastrand::Rng::with_seed(SEED);
    for k in 1..=8u32 {
        let backoff = nth_backoff(&sup, &bus, &clock, "crashy", k as usize).await;
        let expected = policy_delay(s.backoff, s.backoff_max, k, jitter.f64());
        assert_eq!(backoff["attempt"], k, "{backoff}");
        assert_eq!(
            backoff["delay_ms"].as_u64(),
            Some(expected.as_millis() as u64),
            "crash {k}: {backoff}"
        );
        assert_eq!(clock.requested()[k as usize - 1], expected, "crash {k}");
        sit_out(&sup, &bus, &clock, "crashy", expected, k as usize + 1).await;
    }
    // The cap holds from the sixth attempt: 16 s doubled is past 30 s.
    let delays: Vec<u64> = of_type(&bus, "crashy", "process.backoff")
        .iter()
        .map(|b| b["delay_ms"].as_u64().unwrap())
        .collect();
    assert!(
        delays[5..8].iter().all(|&d| (24_000..=30_000).contains(&d)),
        "{delays:?}"
    );
    sup.stop("crashy", true).await.ok();
    let mut expected = vec![
        "starting pending->starting".to_string(),
        "started starting->running".into(),
    ];
    for _ in 0..8 {
        expected.extend(crash_and_restart().map(String::from));
    }
    let expected = expect("crashy", &expected);
    assert_eq!(trace(&bus, "crashy")[..expected.len()], expected[..]);
}

#[tokio::test]
async fn a_run_that_stayed_up_resets_the_backoff_but_not_the_limit() {
    let clock = ManualClock::new(SEED);
    let (sup, bus, dir) = setup_clocked(clock.clone());
    let hold = dir.path().join("hold");
    let mut s = spec(
        "steady",
        &format!(
            "while [ -e '{}' ]; do sleep 0.01; done; exit 3",
            hold.display()
        ),
    );
    s.restart = RestartMode::Always;
    s.backoff = Duration::from_secs(1);
    s.backoff_max = Duration::from_secs(60);
    s.stable_after = Some(Duration::from_secs(30));
    s.max_restarts = 4;
    s.restart_window = Duration::from_secs(3600);
    sup.add(s.clone()).unwrap();
    sup.start("steady").await.unwrap();

    let mut jitter = fastrand::Rng::with_seed(SEED);
    let mut delays = Vec::new();
    // Two quick crashes: attempts 1 and 2.
    for k in 1..=2 {
        let b = nth_backoff(&sup, &bus, &clock, "steady", k).await;
        let d = policy_delay(s.backoff, s.backoff_max, k as u32, jitter.f64());
        assert_eq!(
            (b["attempt"].as_u64(), b["delay_ms"].as_u64()),
            (Some(k as u64), Some(d.as_millis() as u64))
        );
        delays.push(d);
        if k == 2 {
            std::fs::write(&hold, "").unwrap();
        }
        sit_out(&sup, &bus, &clock, "steady", d, k + 1).await;
    }
    // The third run stays up 45 s on the clock, past `stable_after`.
    wait_state(&sup, "steady", ProcessState::Running).await;
    clock.advance(Duration::from_secs(45));
    std::fs::remove_file(&hold).unwrap();
    let b = nth_backoff(&sup, &bus, &clock, "steady", 3).await;
    let d = policy_delay(s.backoff, s.backoff_max, 1, jitter.f64());
    assert_eq!(b["attempt"], 1, "a stable run starts the backoff over: {b}");
    assert_eq!(b["delay_ms"].as_u64(), Some(d.as_millis() as u64));
    sit_out(&sup, &bus, &clock, "steady", d, 4).await;
    // A quick crash again doubles from there.
    let b = nth_backoff(&sup, &bus, &clock, "steady", 4).await;
    let d = policy_delay(s.backoff, s.backoff_max, 2, jitter.f64());
    assert_eq!(b["attempt"], 2, "{b}");
    assert_eq!(b["delay_ms"].as_u64(), Some(d.as_millis() as u64));
    sit_out(&sup, &bus, &clock, "steady", d, 5).await;
    // The limit counted every restart: the fifth crash is one too many.
    wait_until("gave_up", || {
        !of_type(&bus, "steady", "process.gave_up").is_empty()
    })
    .await;
    let gave_up = &of_type(&bus, "steady", "process.gave_up")[0];
    assert_eq!(
        (
            gave_up["restarts"].as_u64(),
            gave_up["max_restarts"].as_u64()
        ),
        (Some(4), Some(4))
    );
    let mut expected = vec![
        "starting pending->starting".to_string(),
        "started starting->running".into(),
    ];
    for _ in 0..4 {
        expected.extend(crash_and_restart().map(String::from));
    }
    expected.extend([
        "exited running->failed".into(),
        "failed running->failed".into(),
        "gave_up".into(),
    ]);
    assert_eq!(trace(&bus, "steady"), expect("steady", &expected));
}

#[tokio::test]
async fn the_circuit_breaker_gives_up_after_max_restarts_within_the_window() {
    let clock = ManualClock::new(SEED);
    let (sup, bus, _dir) = setup_clocked(clock.clone());
    let mut s = spec("broken", "exit 1");
    s.restart = RestartMode::Always;
    s.backoff = Duration::from_millis(500);
    s.max_restarts = 3;
    s.restart_window = Duration::from_secs(60);
    sup.add(s.clone()).unwrap();
    sup.start("broken").await.unwrap();
    let mut jitter = fastrand::Rng::with_seed(SEED);
    for k in 1..=3 {
        let b = nth_backoff(&sup, &bus, &clock, "broken", k).await;
        let d = policy_delay(s.backoff, s.backoff_max, k as u32, jitter.f64());
        assert_eq!(b["delay_ms"].as_u64(), Some(d.as_millis() as u64));
        sit_out(&sup, &bus, &clock, "broken", d, k + 1).await;
    }
    wait_until("gave_up", || {
        !of_type(&bus, "broken", "process.gave_up").is_empty()
    })
    .await;
    wait_state(&sup, "broken", ProcessState::Failed).await;
    let gave_up = &of_type(&bus, "broken", "process.gave_up")[0];
    assert_eq!(gave_up["restarts"], 3);
    assert_eq!(gave_up["window_ms"], 60_000);
    assert_eq!(gave_up["state"], "failed");
    let mut expected = vec![
        "starting pending->starting".to_string(),
        "started starting->running".into(),
    ];
    for _ in 0..3 {
        expected.extend(crash_and_restart().map(String::from));
    }
    expected.extend([
        "exited running->failed".into(),
        "failed running->failed".into(),
        "gave_up".into(),
    ]);
    assert_eq!(trace(&bus, "broken"), expect("broken", &expected));
    assert_eq!(clock.requested().len(), 3, "no fourth backoff was waited");
}

#[tokio::test]
async fn restarts_asked_by_a_person_go_through_the_same_backoff_and_limit() {
    let clock = ManualClock::new(SEED);
    let (sup, bus, _dir) = setup_clocked(clock.clone());
    let mut s = spec("web", "sleep 1000");
    s.backoff = Duration::from_secs(2);
    s.max_restarts = 2;
    s.restart_window = Duration::from_secs(60);
    s.stop_timeout = Duration::from_secs(20);
    sup.add(s.clone()).unwrap();
    sup.start("web").await.unwrap();
    let mut jitter = fastrand::Rng::with_seed(SEED);
    for k in 1..=2 {
        let restarting = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.restart("web").await })
        };
        let b = nth_backoff(&sup, &bus, &clock, "web", k).await;
        let d = policy_delay(s.backoff, s.backoff_max, k as u32, jitter.f64());
        assert_eq!(
            (b["attempt"].as_u64(), b["delay_ms"].as_u64()),
            (Some(k as u64), Some(d.as_millis() as u64))
        );
        sit_out(&sup, &bus, &clock, "web", d, k + 1).await;
        restarting.await.unwrap().unwrap();
    }
    // The third within the minute is refused, and the run carries on.
    let err = sup.restart("web").await.unwrap_err();
    assert!(matches!(err, SupervisorError::NotRestarted { .. }), "{err}");
    assert_eq!(sup.get("web").unwrap().state, ProcessState::Running);
    // A minute later on the clock the window has emptied: allowed again.
    clock.advance(Duration::from_secs(61));
    let restarting = {
        let sup = sup.clone();
        tokio::spawn(async move { sup.restart("web").await })
    };
    let b = nth_backoff(&sup, &bus, &clock, "web", 3).await;
    assert_eq!(b["attempt"], 1, "{b}");
    // The event rounds to milliseconds; the clock has the exact wait.
    let d = *clock.requested().last().unwrap();
    assert_eq!(b["delay_ms"].as_u64(), Some(d.as_millis() as u64));
    sit_out(&sup, &bus, &clock, "web", d, 4).await;
    restarting.await.unwrap().unwrap();
    sup.stop("web", true).await.unwrap();
    let asked = [
        "stopping running->stopping",
        "exited stopping->cancelled",
        "cancelled stopping->cancelled",
        "backoff cancelled->backoff",
        "starting backoff->starting",
        "started starting->running",
    ];
    let mut expected = vec![
        "starting pending->starting".to_string(),
        "started starting->running".into(),
    ];
    for _ in 0..3 {
        expected.extend(asked.map(String::from));
    }
    expected.extend([
        "stopping running->stopping".into(),
        "exited stopping->cancelled".into(),
        "cancelled stopping->cancelled".into(),
    ]);
    assert_eq!(trace(&bus, "web"), expect("web", &expected));
}

#[tokio::test]
async fn starts_asked_by_a_plugin_are_counted_and_end_in_gave_up() {
    let clock = ManualClock::new(SEED);
    let (sup, bus, _dir) = setup_clocked(clock.clone());
    let mut s = spec("job", "exit 2");
    s.backoff = Duration::from_secs(1);
    s.max_restarts = 2;
    sup.add(s.clone()).unwrap();
    sup.start("job").await.unwrap();
    wait_state(&sup, "job", ProcessState::Failed).await;
    for k in 1..=2 {
        let starting = {
            let sup = sup.clone();
            tokio::spawn(async move { sup.start_counted("job").await })
        };
        let b = nth_backoff(&sup, &bus, &clock, "job", k).await;
        assert_eq!(b["attempt"], k as u64, "{b}");
        let d = *clock.requested().last().unwrap();
        assert_eq!(b["delay_ms"].as_u64(), Some(d.as_millis() as u64));
        sit_out(&sup, &bus, &clock, "job", d, k + 1).await;
        starting.await.unwrap().unwrap();
        wait_state(&sup, "job", ProcessState::Failed).await;
    }
    let err = sup.start_counted("job").await.unwrap_err();
    assert!(matches!(err, SupervisorError::NotRestarted { .. }), "{err}");
    let run = ["exited running->failed", "failed running->failed"];
    let mut expected = vec![
        "starting pending->starting".to_string(),
        "started starting->running".into(),
    ];
    for _ in 0..2 {
        expected.extend(run.map(String::from));
        expected.extend([
            "backoff failed->backoff".into(),
            "starting backoff->starting".into(),
            "started starting->running".into(),
        ]);
    }
    expected.extend(run.map(String::from));
    expected.push("gave_up".into());
    assert_eq!(trace(&bus, "job"), expect("job", &expected));
}
