//! The judging itself, free of host calls so it runs under `cargo test`
//! natively: phrase lists (configurable) read over a lowercased text, the
//! message's own kind taken first.

/// Phrases that read as agreement unless an objection phrase is present.
pub const DEFAULT_AGREE: &str =
    "agree, agreed, sounds good, approved, approve, looks good, lgtm, confirmed, +1, ship it";

/// Phrases that read as an objection; they win over agreement phrases
/// ("I don't agree" contains "agree").
pub const DEFAULT_OBJECT: &str = "disagree, don't agree, do not agree, not agreed, not approved, \
     doesn't look good, does not look good, object, blocker, blocked, -1, no way, reject";

/// A judge's reading of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The author agrees.
    Agreement,
    /// The author objects.
    Disagreement,
    /// Neither.
    Neutral,
}

impl Verdict {
    /// The word `session.judged` carries.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Agreement => "agreement",
            Verdict::Disagreement => "disagreement",
            Verdict::Neutral => "neutral",
        }
    }
}

/// The phrase lists a judge reads with.
#[derive(Debug, Clone)]
pub struct Judge {
    agree: Vec<String>,
    object: Vec<String>,
}

/// Splits a comma-separated list into lowercased, trimmed, non-empty phrases.
pub fn phrases(list: &str) -> Vec<String> {
    list.split(',')
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect()
}

impl Judge {
    /// A judge with these comma-separated phrase lists.
    pub fn new(agree: &str, object: &str) -> Judge {
        Judge {
            agree: phrases(agree),
            object: phrases(object),
        }
    }

    /// Reads a message of `kind` (`proposal`, `question`, `agreement`,
    /// `concern`). A `concern` is a disagreement whatever it says; an
    /// explicit `agreement` is one unless its words object; otherwise the
    /// words decide, objections first. A question agrees to nothing.
    pub fn judge(&self, kind: &str, text: &str) -> Verdict {
        let text = text.to_lowercase();
        let has = |list: &[String]| list.iter().any(|p| contains_phrase(&text, p));
        if kind == "concern" || has(&self.object) {
            Verdict::Disagreement
        } else if kind == "agreement" || (kind != "question" && has(&self.agree)) {
            Verdict::Agreement
        } else {
            Verdict::Neutral
        }
    }
}

/// Whether `phrase` occurs in `text` on word boundaries, so "agree" is not
/// found in "agreement-free" prose like "disagreeable" by accident.
fn contains_phrase(text: &str, phrase: &str) -> bool {
    let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
    text.match_indices(phrase).any(|(at, m)| {
        boundary(text[..at].chars().next_back()) && boundary(text[at + m.len()..].chars().next())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge() -> Judge {
        Judge::new(DEFAULT_AGREE, DEFAULT_OBJECT)
    }

    #[test]
    fn agreement_words_in_a_proposal_agree() {
        assert_eq!(
            judge().judge("proposal", "Sounds good, API first."),
            Verdict::Agreement
        );
        assert_eq!(judge().judge("proposal", "LGTM"), Verdict::Agreement);
    }

    #[test]
    fn a_negated_agreement_is_a_disagreement() {
        assert_eq!(
            judge().judge("proposal", "I don't agree with that order"),
            Verdict::Disagreement
        );
        assert_eq!(
            judge().judge("agreement", "I disagree"),
            Verdict::Disagreement
        );
    }

    #[test]
    fn words_inside_other_words_do_not_count() {
        assert_eq!(
            judge().judge("proposal", "that is disagreeable"),
            Verdict::Neutral
        );
        assert_eq!(
            judge().judge("proposal", "the agreement table"),
            Verdict::Neutral
        );
    }

    #[test]
    fn a_concern_disagrees_and_a_question_never_agrees() {
        assert_eq!(
            judge().judge("concern", "sounds good but"),
            Verdict::Disagreement
        );
        assert_eq!(
            judge().judge("question", "does that sound good? agree?"),
            Verdict::Neutral
        );
    }

    #[test]
    fn configured_phrases_replace_the_defaults() {
        let j = Judge::new("d'accord", "non");
        assert_eq!(j.judge("proposal", "D'accord."), Verdict::Agreement);
        assert_eq!(j.judge("proposal", "agreed"), Verdict::Neutral);
    }
}
