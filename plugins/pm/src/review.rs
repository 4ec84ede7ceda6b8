//! The PM's decisions (seed 002's background PM), free of any host call so
//! they run under `cargo test` natively: which processes are stalled, which
//! to heal within the limit, and what a check-in says.
//!
//! A stall *episode* is a process plus the time of its last sign of life
//! (last output, else start). It is announced once and healed at most once:
//! a restart moves the start time, which ends the episode; a restart the
//! supervisor refused leaves the episode open, so it is not asked again.
//! Heals are also capped per process: at most `max_heals` within
//! `heal_window_ms`; past that a stall is a blocker for a person.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Most names listed in one check-in's concerns or blockers.
pub const MAX_LISTED: usize = 20;
/// New stall episodes handled in one tick (three actions each, under the
/// host's 256 actions per call); the rest wait for the next tick.
pub const MAX_NEW_STALLS: usize = 60;

/// What the PM needs to know about one process.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Process name.
    pub name: String,
    /// The lifecycle state, as its WIT name (`running`, `failed`, ...).
    pub state: &'static str,
    /// Whether the host knows a pid for it.
    pub has_pid: bool,
    /// Epoch ms of the last output line, else of the start; `None` when the
    /// host knows neither.
    pub last_sign_of_life_ms: Option<u64>,
    /// 0..=1 from a status mapper.
    pub progress: Option<f32>,
    /// Restarts so far.
    pub restarts: u32,
    /// Exit code of its last run.
    pub exit_code: Option<i32>,
    /// The state its own system reported through a status mapper, if any
    /// (an AI coder that says `paused` is waiting on purpose).
    pub reported: Option<&'static str>,
}

/// The PM's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Silence that counts as a stall.
    pub stall_after_ms: u64,
    /// Whether stalled processes are restarted at all.
    pub heal: bool,
    /// Restarts per process within `heal_window_ms`.
    pub max_heals: usize,
    /// The window of `max_heals`.
    pub heal_window_ms: u64,
    /// Time between check-ins; 0 turns them off.
    pub checkin_every_ms: u64,
}

/// What the PM remembers between ticks (kept in host state).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memory {
    /// Open stall episodes: process → last sign of life when announced.
    pub episodes: BTreeMap<String, u64>,
    /// Heal times per process inside the window.
    pub heals: BTreeMap<String, Vec<u64>>,
    /// When the last check-in was published.
    pub last_checkin_ms: Option<u64>,
}

/// Why a process is stalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Running, and silent this long.
    Silent { secs: u64 },
    /// Running, but the host knows no pid for it.
    NoPid,
}

impl Why {
    /// The reason, for events and people.
    pub fn reason(&self) -> String {
        match self {
            Why::Silent { secs } => format!("no output for {secs} s"),
            Why::NoPid => "running with no live pid".to_string(),
        }
    }
}

/// A stall seen for the first time in its episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// The process.
    pub process: String,
    /// Why.
    pub why: Why,
    /// `Some(attempt)` when the PM restarts it now (1-based within the
    /// window); `None` when it may not (healing off, or the limit reached).
    pub heal: Option<usize>,
}

/// The result of one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// New stall episodes, with the heal decided for each.
    pub stalls: Vec<Stall>,
    /// What to remember for the next tick.
    pub memory: Memory,
    /// The check-in to publish now, if one is due.
    pub checkin: Option<Value>,
    /// Shown as the agent's activity.
    pub activity: String,
}

/// Looks at every process at `now_ms`.
pub fn review(processes: &[Observed], before: &Memory, now_ms: u64, s: &Settings) -> Review {
    let mut memory = Memory {
        episodes: BTreeMap::new(),
        heals: BTreeMap::new(),
        last_checkin_ms: before.last_checkin_ms,
    };
    // Heal times inside the window, of processes that still exist.
    let oldest = now_ms.saturating_sub(s.heal_window_ms);
    for p in processes {
        if let Some(times) = before.heals.get(&p.name) {
            let kept: Vec<u64> = times
                .iter()
                .copied()
                .filter(|&t| t > oldest && t <= now_ms)
                .collect();
            if !kept.is_empty() {
                memory.heals.insert(p.name.clone(), kept);
            }
        }
    }

    let mut stalls = Vec::new();
    let mut concerns = Vec::new();
    let mut blockers = Vec::new();
    let mut running = 0usize;
    let mut stalled = 0usize;
    let mut deferred = 0usize;
    for p in processes {
        if p.state != "running" {
            if p.state == "failed" {
                blockers.push(match p.exit_code {
                    Some(code) => format!("{} failed (exit code {code})", p.name),
                    None => format!("{} failed", p.name),
                });
            }
            continue;
        }
        running += 1;
        // Silence is expected of a process that says it is paused (waiting
        // for a person, say): not a stall, and never restarted.
        if p.reported == Some("paused") {
            continue;
        }
        let (why, episode) = if !p.has_pid {
            (Why::NoPid, p.last_sign_of_life_ms.unwrap_or(0))
        } else {
            let Some(last) = p.last_sign_of_life_ms else {
                continue;
            };
            let silent = now_ms.saturating_sub(last);
            if silent < s.stall_after_ms {
                continue;
            }
            (
                Why::Silent {
                    secs: silent / 1000,
                },
                last,
            )
        };
        stalled += 1;
        let healed = memory.heals.get(&p.name).map_or(0, Vec::len);
        let new_episode = before.episodes.get(&p.name) != Some(&episode);
        if new_episode && stalls.len() >= MAX_NEW_STALLS {
            // Left for the next tick: not remembered, so it is new then.
            deferred += 1;
            concerns.push(format!("{} stalled: {}", p.name, why.reason()));
            continue;
        }
        memory.episodes.insert(p.name.clone(), episode);
        if new_episode {
            let heal = (s.heal && healed < s.max_heals).then_some(healed + 1);
            if heal.is_some() {
                memory.heals.entry(p.name.clone()).or_default().push(now_ms);
            }
            stalls.push(Stall {
                process: p.name.clone(),
                why: why.clone(),
                heal,
            });
        }
        let healed_now = memory.heals.get(&p.name).map_or(0, Vec::len);
        let stalled_text = format!("{} stalled: {}", p.name, why.reason());
        if s.heal
            && healed_now >= s.max_heals
            && !stalls
                .iter()
                .any(|st| st.process == p.name && st.heal.is_some())
        {
            blockers.push(format!(
                "{stalled_text}; heal limit reached ({healed_now} restarts within {} s)",
                s.heal_window_ms / 1000
            ));
        } else {
            concerns.push(stalled_text);
        }
    }
    for p in processes.iter().filter(|p| p.restarts >= 3) {
        concerns.push(format!("{} has restarted {} times", p.name, p.restarts));
    }

    let due = s.checkin_every_ms > 0
        && before
            .last_checkin_ms
            .is_none_or(|at| at > now_ms || now_ms - at >= s.checkin_every_ms);
    let checkin = due.then(|| {
        memory.last_checkin_ms = Some(now_ms);
        checkin(processes, running, concerns, blockers)
    });
    let healed_in_window: usize = memory.heals.values().map(Vec::len).sum();
    let noun = if running == 1 { "process" } else { "processes" };
    let mut activity = format!(
        "watching {running} running {noun}; {stalled} stalled; {healed_in_window} healed in window"
    );
    if deferred > 0 {
        activity.push_str(&format!("; {deferred} left for the next tick"));
    }
    Review {
        stalls,
        memory,
        checkin,
        activity,
    }
}

/// The `pm.checkin` data, as the seed's check-ins: a type (`progress`,
/// `review` when there are concerns, `blocker` when there are blockers), a
/// summary, and findings (progress, concerns, blockers), lists bounded.
fn checkin(
    processes: &[Observed],
    running: usize,
    concerns: Vec<String>,
    blockers: Vec<String>,
) -> Value {
    let count = |state: &str| processes.iter().filter(|p| p.state == state).count();
    let with_progress: Vec<f32> = processes
        .iter()
        .filter(|p| p.state == "running")
        .filter_map(|p| p.progress)
        .filter(|v| v.is_finite())
        .collect();
    let mean_progress = (!with_progress.is_empty()).then(|| {
        let mean = with_progress
            .iter()
            .map(|v| f64::from(v.clamp(0.0, 1.0)))
            .sum::<f64>()
            / with_progress.len() as f64;
        (mean * 100.0).round() / 100.0
    });
    let kind = if !blockers.is_empty() {
        "blocker"
    } else if !concerns.is_empty() {
        "review"
    } else {
        "progress"
    };
    let summary = format!(
        "{} processes: {running} running, {} completed, {} failed; {} concerns, {} blockers",
        processes.len(),
        count("completed"),
        count("failed"),
        concerns.len(),
        blockers.len()
    );
    let action_required = match kind {
        "blocker" => "Address blockers to unblock the work",
        "review" => "Review concerns and give guidance if needed",
        _ => "",
    };
    json!({
        "type": kind,
        "summary": summary,
        "action_required": action_required,
        "findings": {
            "progress": {
                "processes": processes.len(),
                "running": running,
                "completed": count("completed"),
                "failed": count("failed"),
                "mean_progress": mean_progress,
            },
            "concerns": bounded(concerns),
            "blockers": bounded(blockers),
        },
    })
}

/// At most [`MAX_LISTED`] entries, the rest said as a count.
fn bounded(mut list: Vec<String>) -> Vec<String> {
    if list.len() > MAX_LISTED {
        let more = list.len() - MAX_LISTED;
        list.truncate(MAX_LISTED);
        list.push(format!("and {more} more"));
    }
    list
}

/// Reads the memory kept in host state; unreadable state starts afresh (at
/// worst one repeated announcement, never more heals than the limit allows
/// per window since the memory is rebuilt from then on).
pub fn decode_memory(bytes: &[u8]) -> Memory {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return Memory::default();
    };
    let episodes = v
        .get("episodes")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, t)| Some((k.clone(), t.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    let heals = v
        .get("heals")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, t)| {
                    let times: Vec<u64> = t.as_array()?.iter().filter_map(Value::as_u64).collect();
                    Some((k.clone(), times))
                })
                .collect()
        })
        .unwrap_or_default();
    Memory {
        episodes,
        heals,
        last_checkin_ms: v.get("last_checkin_ms").and_then(Value::as_u64),
    }
}

/// Stores the memory as JSON, readable in host state dumps.
pub fn encode_memory(m: &Memory) -> Vec<u8> {
    json!({
        "episodes": m.episodes,
        "heals": m.heals,
        "last_checkin_ms": m.last_checkin_ms,
    })
    .to_string()
    .into_bytes()
}

/// Parses a whole-number config value, naming the key when it is malformed.
pub fn parse_setting(key: &str, raw: Option<&str>, default: u64) -> Result<u64, String> {
    match raw.map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("config `{key}` = {text:?} is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Settings = Settings {
        stall_after_ms: 300_000,
        heal: true,
        max_heals: 2,
        heal_window_ms: 3_600_000,
        checkin_every_ms: 0,
    };

    fn running(name: &str, last: u64) -> Observed {
        Observed {
            name: name.to_string(),
            state: "running",
            has_pid: true,
            last_sign_of_life_ms: Some(last),
            progress: None,
            restarts: 0,
            exit_code: None,
            reported: None,
        }
    }

    #[test]
    fn a_silent_running_process_is_stalled_and_healed_once_per_episode() {
        let first = review(&[running("db", 1_000)], &Memory::default(), 401_500, &S);
        assert_eq!(
            first.stalls,
            vec![Stall {
                process: "db".into(),
                why: Why::Silent { secs: 400 },
                heal: Some(1)
            }]
        );
        let again = review(&[running("db", 1_000)], &first.memory, 500_000, &S);
        assert!(again.stalls.is_empty(), "same episode: not healed twice");
        assert_eq!(
            again.activity,
            "watching 1 running process; 1 stalled; 1 healed in window"
        );
    }

    #[test]
    fn heals_stop_at_the_limit_within_the_window_and_resume_after_it() {
        let mut memory = Memory::default();
        let mut heals = Vec::new();
        // The process restarts after each heal and stalls again 400 s later.
        let mut start = 0;
        for tick in 0..10u64 {
            let now = start + 400_000;
            let r = review(&[running("db", start)], &memory, now, &S);
            if let Some(stall) = r.stalls.first() {
                heals.push((tick, stall.heal));
            }
            memory = r.memory;
            start = now;
        }
        let healed: Vec<u64> = heals
            .iter()
            .filter(|(_, h)| h.is_some())
            .map(|(t, _)| *t)
            .collect();
        // 400 s apart: a 3600 s window holds 9 ticks, so 2 heals, then none
        // until the first heal leaves the window (tick 9: 3600 s later).
        assert_eq!(healed, vec![0, 1, 9], "{heals:?}");
        assert_eq!(heals.len(), 10, "every episode is still announced");
    }

    #[test]
    fn at_the_limit_a_stall_is_a_blocker_in_the_checkin() {
        let s = Settings {
            checkin_every_ms: 1,
            max_heals: 0,
            ..S
        };
        let r = review(&[running("db", 1_000)], &Memory::default(), 400_000, &s);
        assert_eq!(r.stalls[0].heal, None);
        let c = r.checkin.unwrap();
        assert_eq!(c["type"], "blocker");
        let blocker = c["findings"]["blockers"][0].as_str().unwrap();
        assert!(blocker.contains("heal limit reached"), "{blocker}");
    }

    #[test]
    fn a_running_process_without_a_pid_is_stalled_whatever_its_output() {
        let mut p = running("ghost", 399_000);
        p.has_pid = false;
        let r = review(&[p], &Memory::default(), 400_000, &S);
        assert_eq!(r.stalls[0].why, Why::NoPid);
        assert_eq!(r.stalls[0].why.reason(), "running with no live pid");
    }

    #[test]
    fn a_process_that_reports_itself_paused_is_not_a_stall() {
        let mut p = running("coder", 0);
        p.reported = Some("paused");
        let r = review(&[p], &Memory::default(), 4_000_000, &S);
        assert!(r.stalls.is_empty());
        assert_eq!(
            r.activity,
            "watching 1 running process; 0 stalled; 0 healed in window"
        );
    }

    #[test]
    fn healing_off_announces_without_restarting() {
        let s = Settings { heal: false, ..S };
        let r = review(&[running("db", 0)], &Memory::default(), 400_000, &s);
        assert_eq!(r.stalls[0].heal, None);
        assert!(r.memory.heals.is_empty());
    }

    #[test]
    fn recent_output_and_other_states_are_not_stalls() {
        let mut done = running("done", 0);
        done.state = "completed";
        let r = review(
            &[running("web", 350_000), done],
            &Memory::default(),
            400_000,
            &S,
        );
        assert!(r.stalls.is_empty());
        assert!(r.memory.episodes.is_empty());
    }

    #[test]
    fn checkins_come_on_schedule_with_progress_concerns_and_blockers() {
        let s = Settings {
            checkin_every_ms: 900_000,
            ..S
        };
        let mut busy = running("coder", 399_000);
        busy.progress = Some(0.5);
        let mut failed = running("tests", 0);
        failed.state = "failed";
        failed.exit_code = Some(1);
        let procs = [busy, running("db", 0), failed];
        let first = review(&procs, &Memory::default(), 400_000, &s);
        let c = first.checkin.clone().expect("a check-in at the first tick");
        assert_eq!(c["type"], "blocker");
        assert_eq!(c["findings"]["progress"]["running"], 2);
        assert_eq!(c["findings"]["progress"]["mean_progress"], 0.5);
        assert_eq!(c["findings"]["blockers"][0], "tests failed (exit code 1)");
        assert!(
            c["findings"]["concerns"][0]
                .as_str()
                .unwrap()
                .starts_with("db stalled")
        );
        let soon = review(&procs, &first.memory, 500_000, &s);
        assert!(soon.checkin.is_none(), "not before checkin_every");
        let later = review(&procs, &soon.memory, 1_300_000, &s);
        assert!(later.checkin.is_some());
    }

    #[test]
    fn ten_thousand_stalled_processes_make_a_bounded_checkin_and_memory_of_live_ones() {
        let s = Settings {
            checkin_every_ms: 1,
            ..S
        };
        let procs: Vec<Observed> = (0..10_000).map(|i| running(&format!("p{i}"), 0)).collect();
        let r = review(&procs, &Memory::default(), 400_000, &s);
        assert_eq!(
            r.stalls.len(),
            MAX_NEW_STALLS,
            "the rest wait for later ticks"
        );
        assert!(
            r.activity.ends_with("; 9940 left for the next tick"),
            "{}",
            r.activity
        );
        let second = review(&procs, &r.memory, 405_000, &s);
        assert_eq!(second.stalls.len(), MAX_NEW_STALLS);
        assert_eq!(second.stalls[0].process, procs[MAX_NEW_STALLS].name);
        let c = r.checkin.unwrap();
        let concerns = c["findings"]["concerns"].as_array().unwrap();
        assert_eq!(concerns.len(), MAX_LISTED + 1);
        assert_eq!(concerns[MAX_LISTED], "and 9980 more");
        // Processes that left the table are forgotten.
        let next = review(&procs[..1], &r.memory, 500_000, &s);
        assert_eq!(
            (next.memory.episodes.len(), next.memory.heals.len()),
            (1, 1)
        );
    }

    #[test]
    fn memory_round_trips_and_garbage_starts_afresh() {
        let r = review(&[running("db", 0)], &Memory::default(), 400_000, &S);
        assert_eq!(decode_memory(&encode_memory(&r.memory)), r.memory);
        assert_eq!(decode_memory(b"{\"heals\":7}"), Memory::default());
        assert_eq!(decode_memory(b"\x00"), Memory::default());
    }

    #[test]
    fn settings_fall_back_to_defaults_and_reject_garbage() {
        assert_eq!(parse_setting("interval_ms", None, 5000), Ok(5000));
        assert_eq!(parse_setting("interval_ms", Some("250"), 5000), Ok(250));
        assert!(parse_setting("interval_ms", Some("-1"), 5000).is_err());
    }
}
