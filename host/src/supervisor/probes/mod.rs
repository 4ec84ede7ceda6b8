//! Probes: what a process's readiness, liveness and startup checks are, and
//! the task that runs them beside each run.
//!
//! A probe is one check (a shell command, an HTTP GET, a TCP connect, or a
//! regex over the run's output lines) plus a rhythm (initial delay, period,
//! timeout) and thresholds, in Kubernetes' vocabulary, so a readiness flap
//! shorter than `failure_threshold` periods changes nothing.
//!
//! Layout: this file holds the spec ([`Probe`]) and its checks at config
//! time; `check` performs one check; `task` runs a run's probes, keeps the
//! record's `ready` flag, publishes `process.ready` / `process.unready`, and
//! asks the runner to stop a run whose liveness (or startup) probe failed.

mod check;
mod task;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;
use super::error::SupervisorError;

pub(super) use task::start;

/// One probe of a process (`readiness_probe`, `liveness_probe`,
/// `startup_probe`): exactly one of `exec`, `http_get`, `tcp` or `log`, and
/// its rhythm.
///
/// Example: `readiness_probe = { http_get = "http://127.0.0.1:8080/health", period = "2s" }`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// A shell command (`/bin/sh -c`, in the process's `cwd` and `env`);
    /// exit status 0 is a success.
    ///
    /// Example: `exec = "pg_isready -h 127.0.0.1"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<String>,
    /// An `http://` URL; a status 200–399 within the timeout is a success.
    ///
    /// Example: `http_get = "http://127.0.0.1:8080/health"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<String>,
    /// A `host:port` that accepts a TCP connection.
    ///
    /// Example: `tcp = "127.0.0.1:5432"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// A regex; a success once any output line of the current run (stdout
    /// or stderr) matches it, and from then on for the rest of the run.
    ///
    /// Example: `log = "ready to accept connections"`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Wait after the run starts before the first check (default `"0s"`).
    #[serde(default, with = "duration::required")]
    pub initial_delay: Duration,
    /// Time between checks (default `"1s"`).
    #[serde(default = "default_period", with = "duration::required")]
    pub period: Duration,
    /// Longest a check may take before it counts as a failure (default `"1s"`).
    #[serde(default = "default_timeout", with = "duration::required")]
    pub timeout: Duration,
    /// Consecutive successes that make a failing probe pass (default 1).
    #[serde(default = "default_one")]
    pub success_threshold: u32,
    /// Consecutive failures that make a passing probe fail (default 3).
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
}

fn default_period() -> Duration {
    Duration::from_secs(1)
}
fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_one() -> u32 {
    1
}
fn default_failure_threshold() -> u32 {
    3
}

/// What a probe checks, borrowed from its spec.
#[derive(Clone, Copy, Debug)]
pub(super) enum Check<'a> {
    Exec(&'a str),
    HttpGet(&'a str),
    Tcp(&'a str),
    Log(&'a str),
}

impl Probe {
    /// A probe running `check` with every default rhythm.
    pub fn new(check: ProbeCheck) -> Probe {
        let mut probe = Probe {
            exec: None,
            http_get: None,
            tcp: None,
            log: None,
            initial_delay: Duration::ZERO,
            period: default_period(),
            timeout: default_timeout(),
            success_threshold: 1,
            failure_threshold: default_failure_threshold(),
        };
        match check {
            ProbeCheck::Exec(c) => probe.exec = Some(c),
            ProbeCheck::HttpGet(u) => probe.http_get = Some(u),
            ProbeCheck::Tcp(a) => probe.tcp = Some(a),
            ProbeCheck::Log(r) => probe.log = Some(r),
        }
        probe
    }

    /// The one check this probe makes (validated specs have exactly one).
    pub(super) fn check(&self) -> Check<'_> {
        match (&self.exec, &self.http_get, &self.tcp, &self.log) {
            (Some(c), ..) => Check::Exec(c),
            (_, Some(u), ..) => Check::HttpGet(u),
            (_, _, Some(a), _) => Check::Tcp(a),
            (.., Some(r)) => Check::Log(r),
            // validate() refuses a probe without a check; an unchecked
            // spec's empty probe never passes.
            (None, None, None, None) => Check::Exec("false"),
        }
    }

    /// True for a `log` probe (what `depends_on = { x = "log_ready" }` needs).
    pub fn is_log(&self) -> bool {
        self.log.is_some()
    }

    /// Checks the probe `field` (`readiness_probe`, ...) of process `name`.
    ///
    /// # Errors
    ///
    /// [`SupervisorError::InvalidSpec`] naming `field.<key>`.
    pub(super) fn validate(&self, name: &str, field: &str) -> Result<(), SupervisorError> {
        let bad = |key: &str, reason: String| SupervisorError::InvalidSpec {
            name: name.into(),
            field: if key.is_empty() {
                field.into()
            } else {
                format!("{field}.{key}")
            },
            reason,
        };
        let given = [&self.exec, &self.http_get, &self.tcp, &self.log]
            .iter()
            .filter(|c| c.is_some())
            .count();
        if given != 1 {
            return Err(bad(
                "",
                format!("needs exactly one of `exec`, `http_get`, `tcp` or `log` ({given} given)"),
            ));
        }
        match self.check() {
            Check::Exec(c) if c.trim().is_empty() || c.contains('\0') => {
                return Err(bad(
                    "exec",
                    "must be a non-empty command without NUL".into(),
                ));
            }
            Check::HttpGet(url) => {
                check::parse_http_url(url).map_err(|reason| bad("http_get", reason))?;
            }
            Check::Tcp(addr) => {
                check::parse_tcp(addr).map_err(|reason| bad("tcp", reason))?;
            }
            Check::Log(re) => {
                if let Err(e) = regex::Regex::new(re) {
                    return Err(bad("log", format!("is not a regex: {e}")));
                }
            }
            Check::Exec(_) => {}
        }
        if self.period.is_zero() {
            return Err(bad("period", "must be longer than 0s".into()));
        }
        if self.timeout.is_zero() {
            return Err(bad("timeout", "must be longer than 0s".into()));
        }
        if self.success_threshold == 0 {
            return Err(bad("success_threshold", "must be at least 1".into()));
        }
        if self.failure_threshold == 0 {
            return Err(bad("failure_threshold", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// The check of a probe built in code ([`Probe::new`]).
#[derive(Clone, Debug)]
pub enum ProbeCheck {
    /// A shell command; exit 0 passes.
    Exec(String),
    /// An `http://` URL; 200–399 passes.
    HttpGet(String),
    /// A `host:port` accepting TCP connections.
    Tcp(String),
    /// A regex over the run's output lines.
    Log(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(text: &str) -> String {
        let probe: Probe = toml::from_str(text).unwrap();
        match probe.validate("web", "readiness_probe") {
            Err(SupervisorError::InvalidSpec { field, .. }) => field,
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }

    #[test]
    fn a_probe_with_only_a_check_gets_the_default_rhythm() {
        let probe: Probe = toml::from_str(r#"tcp = "127.0.0.1:80""#).unwrap();
        assert_eq!(probe.period, Duration::from_secs(1));
        assert_eq!(probe.timeout, Duration::from_secs(1));
        assert_eq!(probe.initial_delay, Duration::ZERO);
        assert_eq!((probe.success_threshold, probe.failure_threshold), (1, 3));
        assert!(probe.validate("web", "readiness_probe").is_ok());
    }

    #[test]
    fn a_probe_needs_exactly_one_check() {
        assert_eq!(field_of(r#"period = "1s""#), "readiness_probe");
        assert_eq!(
            field_of("tcp = \"127.0.0.1:1\"\nexec = \"true\""),
            "readiness_probe"
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(field_of(r#"log = "(unclosed""#), "readiness_probe.log");
        assert_eq!(field_of(r#"tcp = "no-port""#), "readiness_probe.tcp");
        assert_eq!(
            field_of(r#"http_get = "https://x/""#),
            "readiness_probe.http_get"
        );
        assert_eq!(
            field_of("exec = \"true\"\nperiod = \"0s\""),
            "readiness_probe.period"
        );
        assert_eq!(
            field_of("exec = \"true\"\nfailure_threshold = 0"),
            "readiness_probe.failure_threshold"
        );
    }

    #[test]
    fn an_unknown_probe_key_is_rejected_by_name() {
        let err = toml::from_str::<Probe>("exec = \"true\"\ninterval = \"1s\"").unwrap_err();
        assert!(err.to_string().contains("interval"), "{err}");
    }
}
