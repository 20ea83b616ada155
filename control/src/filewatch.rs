//! Reload on a change of the configuration file, but never from a half-written one: an
//! editor or `cat > uvs.yaml` writes a file in several steps, and a prefix of a valid YAML
//! file is often valid too (a list of services cut short). A change is applied only once
//! the file's (modification time, size) has stayed the same for [`SETTLE`]. A writer that
//! renames a complete file into place is seen at once and waits out the same delay.
//! SIGHUP still reloads at once: the operator says the file is ready.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// How long a changed file must stay unchanged before it is loaded.
pub const SETTLE: Duration = Duration::from_millis(500);

/// What identifies one version of the file: modification time and size.
pub type Stamp = Option<(SystemTime, u64)>;

/// The stamp of `path` now (`None` when it cannot be read: missing, being replaced).
pub fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Decides when a changed file has settled.
#[derive(Debug)]
pub struct FileWatch {
    /// The version last loaded (or present at start).
    loaded: Stamp,
    /// A different version seen since, and when it was first seen in this form.
    pending: Option<(Stamp, Instant)>,
}

impl FileWatch {
    pub fn new(current: Stamp) -> Self {
        FileWatch {
            loaded: current,
            pending: None,
        }
    }

    /// Feeds the file's stamp at `now`; true when a changed version has stayed the same
    /// for [`SETTLE`] and should be loaded now (it then counts as loaded).
    pub fn observe(&mut self, seen: Stamp, now: Instant) -> bool {
        if seen == self.loaded || seen.is_none() {
            self.pending = None;
            return false;
        }
        match self.pending {
            Some((s, since)) if s == seen => {
                if now.duration_since(since) >= SETTLE {
                    self.loaded = seen;
                    self.pending = None;
                    true
                } else {
                    false
                }
            }
            _ => {
                self.pending = Some((seen, now));
                false
            }
        }
    }

    /// Records that the file was loaded by other means (SIGHUP).
    pub fn loaded(&mut self, seen: Stamp) {
        self.loaded = seen;
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(secs: u64, len: u64) -> Stamp {
        Some((SystemTime::UNIX_EPOCH + Duration::from_secs(secs), len))
    }

    #[test]
    fn a_change_is_applied_once_it_settles() {
        let t0 = Instant::now();
        let mut w = FileWatch::new(st(1, 100));
        assert!(!w.observe(st(1, 100), t0), "unchanged");
        assert!(!w.observe(st(2, 40), t0), "just changed");
        assert!(!w.observe(st(2, 40), t0 + Duration::from_millis(200)));
        assert!(w.observe(st(2, 40), t0 + SETTLE), "settled");
        assert!(!w.observe(st(2, 40), t0 + SETTLE * 2), "applied once");
    }

    #[test]
    fn a_file_still_being_written_is_not_applied() {
        let t0 = Instant::now();
        let mut w = FileWatch::new(st(1, 100));
        // The writer appends every 300 ms: the stamp never holds for SETTLE.
        for i in 0..10u64 {
            let now = t0 + Duration::from_millis(300 * i);
            assert!(!w.observe(st(2 + i, 10 * i), now), "step {i}");
        }
        let end = t0 + Duration::from_millis(3000);
        assert!(!w.observe(st(20, 120), end));
        assert!(w.observe(st(20, 120), end + SETTLE));
    }

    #[test]
    fn a_vanished_file_or_a_sighup_reload_resets() {
        let t0 = Instant::now();
        let mut w = FileWatch::new(st(1, 100));
        assert!(!w.observe(st(2, 50), t0));
        assert!(!w.observe(None, t0 + SETTLE), "being replaced");
        w.loaded(st(3, 60));
        assert!(!w.observe(st(3, 60), t0 + SETTLE * 3));
    }
}
