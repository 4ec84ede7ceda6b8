//! `grouping-rule`: `forgetful-rule` built for the world
//! `grouping-rule-plugin`, so the host asks it by numbers with
//! `check-grouped`: its hits come back grouped by their dependency (one
//! group per title here). Config `memory` behaves as in `forgetful-rule`;
//! with `out-of-range` its groups name each hit twice and an index past
//! the candidates, and with `flood` (otherwise honest) it adds a group
//! naming four million candidates past the end.

use exports::host::plugin::grouped_memory::{Guest as GroupedGuest, HitGroup};

wit_bindgen::generate!({ world: "grouping-rule-plugin", path: "../../../wit" });

include!("../../forgetful-rule/src/rule.rs");

impl GroupedGuest for Forgetful {
    fn check_grouped(task: u32, candidates: Vec<u32>) -> Result<Vec<HitGroup>, Vec<u32>> {
        Ok(grouped_hits(task, candidates)?
            .into_iter()
            .map(|(dependency, candidates)| HitGroup {
                dependency,
                candidates,
            })
            .collect())
    }
}

export!(Forgetful);
