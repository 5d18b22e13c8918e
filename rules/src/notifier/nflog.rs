//! The notification log: what was last delivered to each integration of each group — the
//! hashes of the firing and of the resolved alerts it announced, and when. Alertmanager's
//! dedup rule ([`super::needs_update`]) reads it at every flush, so a group whose alerts did
//! not change is not notified again before `repeat_interval`.
//!
//! Entries are keyed by group key, receiver name and the integration's position in the
//! receiver (Alertmanager's `receiver/integration/index`), outlive their group (an alert
//! that fires again later is compared with what was said last), and are forgotten
//! [`RETENTION_MS`] after they were written. The log is saved after every delivery that
//! changed it and read back on start, so a restart or a reload does not repeat a
//! notification (Alertmanager issue 627).
//!
//! In an HA pair the log is shared ([`super::cluster`]): entries from a peer are merged by
//! [`NotificationLog::merge`], the newer `at` winning as in Alertmanager's `state.merge`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// How long an entry is kept after it was written (Alertmanager's `--data.retention`).
pub const RETENTION_MS: i64 = 120 * 3600 * 1000;

/// What was last delivered to one integration of a group.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogEntry {
    pub firing: HashSet<u64>,
    pub resolved: HashSet<u64>,
    pub at: i64,
}

/// Where an entry belongs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogKey {
    pub group_key: String,
    pub receiver: String,
    pub integration: usize,
}

/// The log.
#[derive(Default)]
pub struct NotificationLog {
    entries: HashMap<LogKey, LogEntry>,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    entries: Vec<SavedEntry>,
}

/// One entry as the file and the cluster messages write it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedEntry {
    pub group_key: String,
    pub receiver: String,
    pub integration: usize,
    /// Fingerprints as 16 hex digits, sorted.
    pub firing: Vec<String>,
    pub resolved: Vec<String>,
    pub at: i64,
}

impl SavedEntry {
    /// The written form of `key` and `e`.
    pub fn new(key: &LogKey, e: &LogEntry) -> SavedEntry {
        let hex = |s: &HashSet<u64>| {
            let mut v: Vec<u64> = s.iter().copied().collect();
            v.sort_unstable();
            v.into_iter().map(|fp| format!("{fp:016x}")).collect()
        };
        SavedEntry {
            group_key: key.group_key.clone(),
            receiver: key.receiver.clone(),
            integration: key.integration,
            firing: hex(&e.firing),
            resolved: hex(&e.resolved),
            at: e.at,
        }
    }

    /// Reads the entry back; `source` names where it came from in errors.
    pub fn parse(self, source: &str) -> Result<(LogKey, LogEntry), String> {
        let parse = |v: &[String]| -> Result<HashSet<u64>, String> {
            v.iter()
                .map(|s| u64::from_str_radix(s, 16).map_err(|_| format!("{source}: bad fingerprint {s:?} (expected 16 hex digits)")))
                .collect()
        };
        let entry = LogEntry {
            firing: parse(&self.firing)?,
            resolved: parse(&self.resolved)?,
            at: self.at,
        };
        let key = LogKey {
            group_key: self.group_key,
            receiver: self.receiver,
            integration: self.integration,
        };
        Ok((key, entry))
    }
}

impl NotificationLog {
    /// The entry for `key`.
    pub fn get(&self, key: &LogKey) -> Option<&LogEntry> {
        self.entries.get(key)
    }

    /// Records a delivery.
    pub fn log(&mut self, key: LogKey, entry: LogEntry) {
        self.entries.insert(key, entry);
    }

    /// Takes a peer's entry unless ours for the key is as new or newer; true if it was taken.
    pub fn merge(&mut self, key: LogKey, entry: LogEntry, now: i64) -> bool {
        if entry.at + RETENTION_MS <= now {
            return false;
        }
        match self.entries.get(&key) {
            Some(prev) if prev.at >= entry.at => false,
            _ => {
                self.entries.insert(key, entry);
                true
            }
        }
    }

    /// Every entry in its written form, sorted by key.
    pub fn saved_entries(&self) -> Vec<SavedEntry> {
        let mut entries: Vec<SavedEntry> = self.entries.iter().map(|(k, e)| SavedEntry::new(k, e)).collect();
        entries.sort_by(|a, b| (&a.group_key, &a.receiver, a.integration).cmp(&(&b.group_key, &b.receiver, b.integration)));
        entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets entries older than [`RETENTION_MS`]; true if any went.
    pub fn gc(&mut self, now: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|_, e| e.at + RETENTION_MS > now);
        before != self.entries.len()
    }

    /// Writes the log to `path` atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let entries = self.saved_entries();
        let bytes = serde_json::to_vec(&File { version: 1, entries }).map_err(std::io::Error::other)?;
        super::persist::write_atomic(path, &bytes)
    }

    /// Reads a log saved by [`NotificationLog::save`]; a missing file is an empty log.
    pub fn load(path: &Path) -> Result<NotificationLog, String> {
        let Some(bytes) = super::persist::read_optional(path)? else {
            return Ok(NotificationLog::default());
        };
        let f: File = serde_json::from_slice(&bytes).map_err(|e| format!("{}: not a notification log: {e}", path.display()))?;
        if f.version != 1 {
            return Err(format!(
                "{}: notification log version {} (this build reads 1)",
                path.display(),
                f.version
            ));
        }
        let mut log = NotificationLog::default();
        let where_ = path.display().to_string();
        for e in f.entries {
            let (key, entry) = e.parse(&where_)?;
            log.entries.insert(key, entry);
        }
        Ok(log)
    }
}
