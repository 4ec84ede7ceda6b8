//! Durable cursors: where a consumer that must survive restarts got to.
//!
//! A consumer saves its cursor after every batch it handles, so saving must be
//! cheap: it updates this run's map at once and hands the change to the writer
//! thread, which coalesces changes per name and writes them to the journal's
//! `cursors` table with the next commit, or within 100 ms when nothing else is
//! being published. [`Bus::flush`] makes every earlier save durable.
//!
//! The in-memory map is the authority for this run (it is loaded from the
//! journal at open), so a load never sees an older value than the last save.

use crate::bus::log::Bus;

impl Bus {
    /// The cursor saved under `name`, by this run or an earlier one.
    ///
    /// # Examples
    ///
    /// ```
    /// # use host::bus::{Bus, BusConfig, StartAt};
    /// # let bus = Bus::open_in_memory(BusConfig::default()).unwrap();
    /// let start = bus.load_cursor("mailer").map_or(StartAt::Beginning, StartAt::After);
    /// let mut consumer = bus.consumer("mailer", Vec::new(), start);
    /// // ... handle events ...
    /// bus.save_cursor("mailer", consumer.cursor());
    /// ```
    pub fn load_cursor(&self, name: &str) -> Option<u64> {
        self.core().cursors.lock().get(name).copied()
    }

    /// Saves `sequence` as the cursor of `name`; cheap enough to call after
    /// every batch. Written with the next commit or within about 100 ms;
    /// [`Bus::flush`] waits for it. A failure to write is logged, and the next
    /// save of the same name tries again.
    pub fn save_cursor(&self, name: &str, sequence: u64) {
        let mut cursors = self.core().cursors.lock();
        if cursors.get(name) == Some(&sequence) {
            return;
        }
        cursors.insert(name.to_owned(), sequence);
        // Still under the map's lock, so concurrent saves reach the writer in
        // the order they reached the map.
        self.core().queue.note_cursor(name, Some(sequence));
    }

    /// Deletes the cursor of `name`, durably after the next commit or flush.
    pub fn forget_cursor(&self, name: &str) {
        let mut cursors = self.core().cursors.lock();
        if cursors.remove(name).is_some() {
            self.core().queue.note_cursor(name, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::bus::{Bus, BusConfig, NewEvent};
    use std::time::{Duration, Instant};

    #[test]
    fn cursors_survive_a_reopen_and_forgetting_them_too() {
        let dir = tempfile::tempdir().unwrap();
        {
            let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
            assert_eq!(bus.load_cursor("a"), None);
            for seq in 1..=50 {
                bus.save_cursor("a", seq);
            }
            bus.save_cursor("b", 7);
            bus.save_cursor("c", 9);
            assert_eq!(
                bus.load_cursor("a"),
                Some(50),
                "a load sees the last save at once"
            );
            bus.flush().unwrap();
            bus.forget_cursor("c");
        }
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        assert_eq!(bus.load_cursor("a"), Some(50));
        assert_eq!(bus.load_cursor("b"), Some(7));
        assert_eq!(
            bus.load_cursor("c"),
            None,
            "forgetting was written at close"
        );
    }

    #[test]
    fn a_saved_cursor_is_written_soon_without_any_publish_or_flush() {
        let dir = tempfile::tempdir().unwrap();
        let bus = Bus::open(dir.path(), BusConfig::default()).unwrap();
        bus.publish(NewEvent::new("s", "a.b", serde_json::json!(1)))
            .unwrap();
        bus.save_cursor("idle", 1);
        let path = crate::bus::journal_path(dir.path());
        let read = || -> Option<i64> {
            rusqlite::Connection::open(&path)
                .unwrap()
                .query_row("SELECT seq FROM cursors WHERE name = 'idle'", [], |r| {
                    r.get(0)
                })
                .ok()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while read() != Some(1) {
            assert!(Instant::now() < deadline, "the cursor was never written");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
