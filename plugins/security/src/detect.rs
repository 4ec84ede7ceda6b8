//! Secret detection over a process spec's command line, arguments and
//! environment, free of any host call so it runs under `cargo test`.
//!
//! A finding says *where* (`command`, `args`, `env:NAME`) and *what kind*,
//! never the value or any part of it: the types here carry no text of the
//! value at all, so nothing downstream can leak it by accident.

use std::collections::BTreeSet;

use serde_json::Value;

/// The kinds of secret recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `AKIA` / `ASIA` + 16 upper-case letters or digits.
    AwsAccessKey,
    /// `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` + 36 or more, or `github_pat_`.
    GithubToken,
    /// `-----BEGIN ... PRIVATE KEY-----`.
    PrivateKey,
    /// A value named `*TOKEN`.
    Token,
    /// A value named `*SECRET` (or `*SECRET_KEY`, `*SECRET_ACCESS_KEY`).
    Secret,
    /// A value named `*PASSWORD`, `*PASSWD`.
    Password,
    /// A value named `*API_KEY`, `*APIKEY`.
    ApiKey,
}

impl Kind {
    /// The name used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AwsAccessKey => "aws_access_key",
            Kind::GithubToken => "github_token",
            Kind::PrivateKey => "private_key",
            Kind::Token => "token",
            Kind::Secret => "secret",
            Kind::Password => "password",
            Kind::ApiKey => "api_key",
        }
    }
}

/// One secret found: where, and what kind. No part of the value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// `command`, `args`, or `env:NAME`.
    pub place: String,
    /// What it looks like.
    pub kind: Kind,
}

/// Longest text scanned of one field (command, argument, variable); a
/// longer one is scanned in its first part only.
pub const MAX_FIELD: usize = 64 * 1024;
/// Longest variable name reported (a longer one is cut).
const MAX_NAME: usize = 128;

/// Everything found in a `process.created` event's data (`spec.command`,
/// `spec.args`, `spec.env`), each place and kind once, in order.
pub fn scan_spec(data: &Value) -> BTreeSet<Finding> {
    let mut found = BTreeSet::new();
    let spec = data.get("spec").unwrap_or(&Value::Null);
    if let Some(command) = spec.get("command").and_then(Value::as_str) {
        let words: Vec<&str> = bounded(command).split_whitespace().collect();
        for kind in scan_text(command).into_iter().chain(scan_words(&words)) {
            found.insert(Finding {
                place: "command".into(),
                kind,
            });
        }
    }
    if let Some(args) = spec.get("args").and_then(Value::as_array) {
        let words: Vec<&str> = args.iter().filter_map(Value::as_str).map(bounded).collect();
        let kinds = words
            .iter()
            .flat_map(|w| scan_text(w))
            .chain(scan_words(&words));
        for kind in kinds {
            found.insert(Finding {
                place: "args".into(),
                kind,
            });
        }
    }
    if let Some(env) = spec.get("env").and_then(Value::as_object) {
        for (name, value) in env {
            let Some(value) = value.as_str() else {
                continue;
            };
            let mut kinds = scan_text(value);
            if let Some(kind) = kind_by_name(name).filter(|_| is_a_value(value)) {
                kinds.push(kind);
            }
            for kind in kinds {
                found.insert(Finding {
                    place: format!("env:{}", cut(name, MAX_NAME)),
                    kind,
                });
            }
        }
    }
    found
}

fn bounded(text: &str) -> &str {
    if text.len() <= MAX_FIELD {
        return text;
    }
    let mut end = MAX_FIELD;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn cut(text: &str, max: usize) -> String {
    bounded_to(text, max).to_string()
}

fn bounded_to(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Secrets recognisable by their shape anywhere in `text`, and assignments
/// `NAME=value` / `NAME: value` whose name says secret.
pub fn scan_text(text: &str) -> Vec<Kind> {
    let text = bounded(text);
    let b = text.as_bytes();
    let mut kinds = Vec::new();
    let boundary = |i: usize| i == 0 || !b[i - 1].is_ascii_alphanumeric();
    let run = |from: usize, ok: fn(u8) -> bool| b[from..].iter().take_while(|&&c| ok(c)).count();
    for i in 0..b.len() {
        let rest = &b[i..];
        if (rest.starts_with(b"AKIA") || rest.starts_with(b"ASIA"))
            && boundary(i)
            && run(i + 4, |c| c.is_ascii_uppercase() || c.is_ascii_digit()) == 16
        {
            kinds.push(Kind::AwsAccessKey);
        }
        if rest.len() > 4
            && rest.starts_with(b"gh")
            && matches!(rest[2], b'p' | b'o' | b'u' | b's' | b'r')
            && rest[3] == b'_'
            && boundary(i)
            && run(i + 4, |c| c.is_ascii_alphanumeric()) >= 36
        {
            kinds.push(Kind::GithubToken);
        }
        if rest.starts_with(b"github_pat_")
            && boundary(i)
            && run(i + 11, |c| c.is_ascii_alphanumeric() || c == b'_') >= 22
        {
            kinds.push(Kind::GithubToken);
        }
        if rest.starts_with(b"-----BEGIN ") {
            let head = &rest[11..rest.len().min(11 + 64)];
            if let Some(end) = head.windows(5).position(|w| w == b"-----")
                && head[..end].ends_with(b"PRIVATE KEY")
            {
                kinds.push(Kind::PrivateKey);
            }
        }
        if (b[i] == b'=' || b[i] == b':') && i > 0 {
            let name_start = b[..i]
                .iter()
                .rposition(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.'))
                .map_or(0, |p| p + 1);
            let name = &text[name_start..i];
            // Only the value's start matters (is there one, is it a
            // reference): a bounded look keeps the scan linear.
            let value = bounded_to(&text[i + 1..], 256)
                .trim_start_matches([' ', '"', '\''])
                .split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ';' || c == '&')
                .next()
                .unwrap_or("");
            // `a:b` with a space-free value right after a colon is also a
            // URL's scheme or a port; only `=` or `: ` assign.
            let colon_ok = b[i] == b'=' || b.get(i + 1) == Some(&b' ');
            if colon_ok
                && let Some(kind) = kind_by_name(name)
                && is_a_value(value)
            {
                kinds.push(kind);
            }
        }
    }
    kinds
}

/// `--password VALUE`, `--token VALUE`, `-p VALUE`-free: flags whose name
/// says secret followed by a separate word.
fn scan_words(words: &[&str]) -> Vec<Kind> {
    let mut kinds = Vec::new();
    for pair in words.windows(2) {
        let flag = pair[0];
        if !flag.starts_with("--") || flag.contains('=') {
            continue;
        }
        if let Some(kind) = kind_by_name(flag) {
            let value = pair[1].trim_matches(['"', '\'']);
            if !value.starts_with('-') && is_a_value(value) {
                kinds.push(kind);
            }
        }
    }
    kinds
}

/// The kind a name says its value is: `GITHUB_TOKEN`, `db.password`,
/// `--api-key`, `aws_secret_access_key`. Case and `-`/`.`/`_` do not matter.
pub fn kind_by_name(name: &str) -> Option<Kind> {
    let norm: String = name
        .trim_start_matches('-')
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    let ends = |s: &str| norm == s || norm.ends_with(&format!("_{s}"));
    if ends("PASSWORD") || ends("PASSWD") || ends("PASS") {
        Some(Kind::Password)
    } else if ends("TOKEN") {
        Some(Kind::Token)
    } else if ends("SECRET") || ends("SECRET_KEY") || ends("SECRET_ACCESS_KEY") {
        Some(Kind::Secret)
    } else if ends("API_KEY") || ends("APIKEY") {
        Some(Kind::ApiKey)
    } else {
        None
    }
}

/// Whether `value` is a value and not a reference to one (`$X`, `${X}`,
/// `%X%`) or a blank.
fn is_a_value(value: &str) -> bool {
    let v = value.trim();
    let windows_reference = v.starts_with('%') && v.ends_with('%');
    !v.is_empty() && !v.starts_with('$') && !windows_reference
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AWS: &str = "AKIAIOSFODNN7EXAMPLE";
    const GHP: &str = "ghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";

    fn kinds(found: &BTreeSet<Finding>) -> Vec<(String, &'static str)> {
        found
            .iter()
            .map(|f| (f.place.clone(), f.kind.as_str()))
            .collect()
    }

    #[test]
    fn shaped_secrets_are_found_in_the_command_line() {
        let data = json!({ "spec": { "command": format!(
            "curl -H 'Authorization: token {GHP}' https://x && aws --key {AWS} && echo '-----BEGIN RSA PRIVATE KEY-----'"
        ) } });
        assert_eq!(
            kinds(&scan_spec(&data)),
            vec![
                ("command".into(), "aws_access_key"),
                ("command".into(), "github_token"),
                ("command".into(), "private_key"),
            ]
        );
    }

    #[test]
    fn named_values_in_commands_args_and_env_are_found_by_their_names() {
        let data = json!({ "spec": {
            "command": "deploy API_TOKEN=abc123 db.password=hunter2 --api-key k1 --client-secret=s",
            "args": ["--password", "pw", "--verbose"],
            "env": {
                "GITHUB_TOKEN": "x1",
                "AWS_SECRET_ACCESS_KEY": "y2",
                "HOME": "/root",
                "AWS_ACCESS_KEY_ID": AWS,
                "EMPTY_TOKEN": "",
                "REF_PASSWORD": "${VAULT_PW}",
            },
        } });
        assert_eq!(
            kinds(&scan_spec(&data)),
            vec![
                ("args".into(), "password"),
                ("command".into(), "token"),
                ("command".into(), "secret"),
                ("command".into(), "password"),
                ("command".into(), "api_key"),
                ("env:AWS_ACCESS_KEY_ID".into(), "aws_access_key"),
                ("env:AWS_SECRET_ACCESS_KEY".into(), "secret"),
                ("env:GITHUB_TOKEN".into(), "token"),
            ]
        );
    }

    #[test]
    fn look_alikes_references_and_urls_are_not_secrets() {
        let data = json!({ "spec": {
            "command": "echo AKIA123 notghp_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ TOKEN_COUNT=3x PASSWORD=$PW curl http://host:8080 token: ",
            "env": { "TOKENIZER": "bert", "PATH": "/bin", "KEYS_TOKEN_FILE": "/x" },
        } });
        assert_eq!(kinds(&scan_spec(&data)), vec![]);
    }

    #[test]
    fn no_finding_carries_any_part_of_the_value() {
        let data =
            json!({ "spec": { "command": format!("x GITHUB_TOKEN={GHP}"), "env": { "K": AWS } } });
        let text = format!("{:?}", scan_spec(&data));
        for secret in [GHP, AWS] {
            for n in 4..secret.len() {
                assert!(
                    !text.contains(&secret[..n]),
                    "{text} holds a prefix of a secret"
                );
            }
        }
    }

    #[test]
    fn malformed_or_huge_specs_are_scanned_in_bounded_time() {
        assert!(scan_spec(&json!("garbage")).is_empty());
        assert!(
            scan_spec(&json!({ "spec": { "command": 5, "args": "x", "env": [1] } })).is_empty()
        );
        let huge = format!("{}{AWS}", "a=".repeat(10 << 20));
        let found = scan_spec(&json!({ "spec": { "command": huge } }));
        assert!(found.is_empty(), "past MAX_FIELD is not scanned");
        let mut env = serde_json::Map::new();
        for i in 0..10_000 {
            env.insert(format!("V{i}_TOKEN"), json!("v"));
        }
        assert_eq!(scan_spec(&json!({ "spec": { "env": env } })).len(), 10_000);
    }

    #[test]
    fn names_are_normalised_before_they_are_judged() {
        assert_eq!(kind_by_name("--api-key"), Some(Kind::ApiKey));
        assert_eq!(kind_by_name("db.Password"), Some(Kind::Password));
        assert_eq!(kind_by_name("TOKENS"), None);
        assert_eq!(kind_by_name("secret"), Some(Kind::Secret));
    }
}
