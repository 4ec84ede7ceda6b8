//! Finding TODO / FIXME / HACK in lines, and telling whether a file's
//! findings changed since the last scan. No host call and no file system:
//! plain functions for `cargo test`.

use serde_json::{Value, json};

/// The tags looked for, upper case, as whole words.
pub const TAGS: [&str; 3] = ["TODO", "FIXME", "HACK"];
/// Longest text kept of one finding.
pub const MAX_TEXT: usize = 200;
/// Findings kept of one file (the rest are counted).
pub const MAX_PER_FILE: usize = 50;

/// One tag on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// 1-based line number.
    pub line: u64,
    /// `TODO`, `FIXME` or `HACK`.
    pub tag: &'static str,
    /// What follows the tag on the line, trimmed and cut to [`MAX_TEXT`].
    pub text: String,
}

/// The first tag on `line` (number `n`), if any. A tag counts when it is a
/// whole word: `TODO:`, `// FIXME(x)`, `# HACK -` count; `TODOS`,
/// `MYHACK`, `todo` do not.
pub fn find_tag(line: &str, n: u64) -> Option<Finding> {
    let bytes = line.as_bytes();
    let mut best: Option<(usize, &'static str)> = None;
    for tag in TAGS {
        let mut from = 0;
        while let Some(i) = line[from..].find(tag) {
            let at = from + i;
            let end = at + tag.len();
            let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
            let before_ok = at == 0 || !word(bytes[at - 1]);
            let after_ok = end == bytes.len() || !word(bytes[end]);
            if before_ok && after_ok {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, tag));
                }
                break;
            }
            from = end;
        }
    }
    let (at, tag) = best?;
    let rest = line[at + tag.len()..]
        .trim_start_matches(|c: char| c == ':' || c == '-' || c.is_whitespace())
        .trim_end();
    Some(Finding {
        line: n,
        tag,
        text: cut(rest, MAX_TEXT),
    })
}

/// `text` cut to at most `max` bytes on a character boundary.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// A short fingerprint of a file's findings (FNV-1a over tag, text and line),
/// stored per file so the next scan publishes only files whose findings
/// changed.
pub fn fingerprint(findings: &[Finding], total: u64) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    eat(&total.to_le_bytes());
    for f in findings {
        eat(&f.line.to_le_bytes());
        eat(f.tag.as_bytes());
        eat(f.text.as_bytes());
    }
    format!("{h:016x}")
}

/// The `gatherer.findings` data for one file.
pub fn findings_event(file: &str, findings: &[Finding], total: u64, partial: bool) -> Value {
    let list: Vec<Value> = findings
        .iter()
        .map(|f| json!({ "line": f.line, "tag": f.tag, "text": f.text }))
        .collect();
    json!({
        "file": file,
        "findings": list,
        "total": total,
        "truncated": total > findings.len() as u64,
        "partial": partial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_found_as_whole_words_with_the_text_after_them() {
        let f = find_tag("    // TODO: handle the empty case", 7).unwrap();
        assert_eq!(
            (f.line, f.tag, f.text.as_str()),
            (7, "TODO", "handle the empty case")
        );
        assert_eq!(
            find_tag("# FIXME(ana) - leaks", 1).unwrap().text,
            "(ana) - leaks"
        );
        assert_eq!(find_tag("HACK", 1).unwrap().text, "");
        assert_eq!(find_tag("let todo = TODOS + MYHACK + FIXMES;", 1), None);
        assert_eq!(find_tag("todo: lower case is prose", 1), None);
    }

    #[test]
    fn the_first_tag_on_a_line_wins() {
        let f = find_tag("x = 1 # HACK then TODO later", 1).unwrap();
        assert_eq!((f.tag, f.text.as_str()), ("HACK", "then TODO later"));
        let f = find_tag("TODOS TODO real one", 1).unwrap();
        assert_eq!(f.text, "real one");
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let line = format!("TODO {}", "é".repeat(10_000));
        let f = find_tag(&line, 1).unwrap();
        assert!(f.text.len() <= MAX_TEXT);
    }

    #[test]
    fn fingerprints_change_with_any_finding_and_only_then() {
        let a = vec![find_tag("TODO a", 1).unwrap()];
        let b = vec![find_tag("TODO a", 2).unwrap()];
        assert_eq!(fingerprint(&a, 1), fingerprint(&a.clone(), 1));
        assert_ne!(fingerprint(&a, 1), fingerprint(&b, 1));
        assert_ne!(fingerprint(&a, 1), fingerprint(&a, 2));
        assert_ne!(fingerprint(&[], 0), fingerprint(&a, 1));
    }

    #[test]
    fn the_event_says_when_findings_were_cut() {
        let a = vec![find_tag("TODO a", 1).unwrap()];
        let e = findings_event("/data/x.rs", &a, 3, false);
        assert_eq!(e["truncated"], true);
        assert_eq!(e["findings"][0]["tag"], "TODO");
    }
}
