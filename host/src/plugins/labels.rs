//! Which version a plugin may claim: the `version` of its manifest is a
//! promise about the component, and a promise the bytes do not keep is not
//! announced.
//!
//! Bumping `version` in `plugin.toml` before rebuilding used to publish
//! `plugin.reloaded` with the new version while the old code ran. Here a
//! manifest whose `version` changed while the component did not is *held*:
//! the old version keeps serving under its old name (other manifest changes,
//! config or grants, still apply), and `plugin.waiting` says once that the
//! declared version waits for its rebuild. When the component then changes,
//! the reload goes ahead under the new version.
//!
//! "Did not change" is measured against the digest the running version was
//! *first* announced with, not the digest serving now: an author who
//! rebuilt first (the reload kept the old name, for the manifest still said
//! so) and bumped the version after does get the new version, since the
//! code under the old name did change.

use std::collections::HashMap;

use parking_lot::Mutex;

/// What [`Labels::judge`] says about a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The manifest's version may be claimed.
    Claim,
    /// Keep the running version's name: the declared one waits for a
    /// component that differs from the one first served under that name.
    Hold {
        /// The running version's name, which the reload keeps.
        serving: Option<String>,
        /// Whether this is news (not already announced for this declared
        /// version and digest): then it is logged and published once.
        announce: bool,
    },
}

/// Per plugin: the name it serves under, the digest first served under that
/// name, and the declared version that waits for a rebuild, if any.
#[derive(Default)]
pub(crate) struct Labels {
    by_plugin: Mutex<HashMap<String, Label>>,
}

struct Label {
    version: Option<String>,
    first_digest: String,
    /// Declared version and digest last announced as waiting.
    waiting: Option<(Option<String>, String)>,
}

impl Labels {
    /// Judge a reload of `plugin`, serving `running` (version, digest), to
    /// a manifest declaring `declared` with a component of digest `disk`
    /// (`None`: unreadable, the load will say why).
    pub(crate) fn judge(
        &self,
        plugin: &str,
        declared: &Option<String>,
        disk: Option<&str>,
        running: (&Option<String>, &str),
    ) -> Verdict {
        let (serving, running_digest) = running;
        let mut labels = self.by_plugin.lock();
        let Some(label) = labels.get_mut(plugin) else {
            return Verdict::Claim;
        };
        if declared == serving {
            Self::settle(plugin, label);
            return Verdict::Claim;
        }
        let Some(disk) = disk else {
            return Verdict::Claim;
        };
        if disk != running_digest || label.first_digest != running_digest {
            return Verdict::Claim;
        }
        let key = (declared.clone(), disk.to_string());
        let announce = label.waiting.as_ref() != Some(&key);
        label.waiting = Some(key);
        Verdict::Hold {
            serving: serving.clone(),
            announce,
        }
    }

    /// The manifest declares the version serving: nothing waits.
    pub(crate) fn settled(&self, plugin: &str) {
        if let Some(label) = self.by_plugin.lock().get_mut(plugin) {
            Self::settle(plugin, label);
        }
    }

    fn settle(plugin: &str, label: &mut Label) {
        if label.waiting.take().is_some() {
            tracing::info!(plugin, version = ?label.version, "the manifest's version is back to the one serving; nothing waits");
        }
    }

    /// Note that `plugin` now serves `version` built from `digest`.
    pub(crate) fn installed(&self, plugin: &str, version: &Option<String>, digest: &str) {
        let mut labels = self.by_plugin.lock();
        match labels.get_mut(plugin) {
            Some(label) if label.version == *version => {}
            _ => {
                labels.insert(
                    plugin.to_string(),
                    Label {
                        version: version.clone(),
                        first_digest: digest.to_string(),
                        waiting: None,
                    },
                );
            }
        }
    }

    /// Forget `plugin` (unloaded).
    pub(crate) fn forget(&self, plugin: &str) {
        self.by_plugin.lock().remove(plugin);
    }

    /// The declared version `plugin` waits to have rebuilt, if any.
    pub(crate) fn waiting(&self, plugin: &str) -> Option<String> {
        let labels = self.by_plugin.lock();
        let (declared, _) = labels.get(plugin)?.waiting.as_ref()?;
        Some(declared.clone().unwrap_or_else(|| "(none)".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn a_version_bumped_before_the_rebuild_is_held_and_announced_once() {
        let labels = Labels::default();
        labels.installed("p", &v("1.0"), "aaa");
        let held = labels.judge("p", &v("1.1"), Some("aaa"), (&v("1.0"), "aaa"));
        assert_eq!(
            held,
            Verdict::Hold {
                serving: v("1.0"),
                announce: true
            }
        );
        assert_eq!(labels.waiting("p").as_deref(), Some("1.1"));
        let again = labels.judge("p", &v("1.1"), Some("aaa"), (&v("1.0"), "aaa"));
        assert_eq!(
            again,
            Verdict::Hold {
                serving: v("1.0"),
                announce: false
            },
            "said once"
        );
        // The rebuild: new bytes, the new version is claimed.
        let rebuilt = labels.judge("p", &v("1.1"), Some("bbb"), (&v("1.0"), "aaa"));
        assert_eq!(rebuilt, Verdict::Claim);
        labels.installed("p", &v("1.1"), "bbb");
        assert_eq!(labels.waiting("p"), None);
    }

    #[test]
    fn a_version_bumped_and_bumped_back_waits_for_nothing_and_a_new_bump_is_news_again() {
        let labels = Labels::default();
        labels.installed("p", &v("1.0"), "aaa");
        labels.judge("p", &v("2.0"), Some("aaa"), (&v("1.0"), "aaa"));
        let back = labels.judge("p", &v("1.0"), Some("aaa"), (&v("1.0"), "aaa"));
        assert_eq!(back, Verdict::Claim);
        assert_eq!(labels.waiting("p"), None);
        let bumped = labels.judge("p", &v("2.0"), Some("aaa"), (&v("1.0"), "aaa"));
        assert!(matches!(bumped, Verdict::Hold { announce: true, .. }));
    }

    #[test]
    fn a_component_rebuilt_first_and_bumped_after_claims_the_new_version() {
        let labels = Labels::default();
        labels.installed("p", &v("1.0"), "aaa");
        // Rebuilt without a bump: reloaded under the old name.
        assert_eq!(
            labels.judge("p", &v("1.0"), Some("bbb"), (&v("1.0"), "aaa")),
            Verdict::Claim
        );
        labels.installed("p", &v("1.0"), "bbb");
        // Then bumped: the code under 1.0 did change since 1.0 was announced.
        assert_eq!(
            labels.judge("p", &v("1.1"), Some("bbb"), (&v("1.0"), "bbb")),
            Verdict::Claim
        );
    }

    #[test]
    fn a_first_load_or_an_unreadable_component_claims_what_the_manifest_says() {
        let labels = Labels::default();
        assert_eq!(
            labels.judge("p", &v("1.0"), Some("aaa"), (&None, "aaa")),
            Verdict::Claim
        );
        labels.installed("p", &v("1.0"), "aaa");
        assert_eq!(
            labels.judge("p", &v("1.1"), None, (&v("1.0"), "aaa")),
            Verdict::Claim
        );
        labels.forget("p");
        assert_eq!(
            labels.judge("p", &v("1.1"), Some("aaa"), (&v("1.0"), "aaa")),
            Verdict::Claim
        );
    }
}
