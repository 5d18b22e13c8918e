//! Small durable state of the notifier: silences, the notification log and the alerts it
//! holds, one JSON file each under `<--storage.path>/notifier/` (see `FORMAT.md`).
//!
//! Every file is replaced whole: written to `<name>.tmp`, synced, renamed over the old one
//! and the directory synced, so a crash leaves either the old or the new file and never a
//! torn one; no checksum is needed beyond JSON's own syntax. A file that cannot be read is
//! moved aside to `<name>.corrupt` and the notifier starts without it, logging why.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use fedwatch_model::Labels;
use serde::{Deserialize, Serialize};

/// The silences file.
pub const SILENCES: &str = "silences.json";
/// The notification log file.
pub const NFLOG: &str = "nflog.json";
/// The alerts file.
pub const ALERTS: &str = "alerts.json";

/// Replaces `path` with `bytes` atomically (tmp file, fsync, rename, directory fsync).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        // Not every filesystem lets a directory be synced; the rename is done either way.
        let _ = d.sync_all();
    }
    Ok(())
}

/// The bytes of `path`, or `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Loads one state file with `load`; on failure logs, moves the file aside and returns `T::default()`.
pub fn load_or_set_aside<T: Default>(path: &Path, load: impl FnOnce(&Path) -> Result<T, String>) -> T {
    match load(path) {
        Ok(v) => v,
        Err(e) => {
            let mut aside = path.as_os_str().to_owned();
            aside.push(".corrupt");
            let moved = std::fs::rename(path, &aside);
            tracing::error!(error = %e, moved_to = %PathBuf::from(&aside).display(), moved = moved.is_ok(), "notifier state file unreadable; starting without it");
            T::default()
        }
    }
}

/// One alert as the alerts file keeps it; times in ms.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedAlert {
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: i64,
    pub ends_at: i64,
    #[serde(default)]
    pub updated_at: i64,
    #[serde(default)]
    pub generator_url: String,
}

impl SavedAlert {
    /// The labels as a label set.
    pub fn label_set(&self) -> Labels {
        Labels::from_pairs(self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

#[derive(Serialize, Deserialize)]
struct AlertsFile {
    version: u32,
    alerts: Vec<SavedAlert>,
}

/// Writes the alerts file.
pub fn save_alerts(path: &Path, alerts: Vec<SavedAlert>) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(&AlertsFile { version: 1, alerts }).map_err(std::io::Error::other)?;
    write_atomic(path, &bytes)
}

/// Reads the alerts file; missing is empty.
pub fn load_alerts(path: &Path) -> Result<Vec<SavedAlert>, String> {
    let Some(bytes) = read_optional(path)? else {
        return Ok(Vec::new());
    };
    let f: AlertsFile = serde_json::from_slice(&bytes).map_err(|e| format!("{}: not an alerts file: {e}", path.display()))?;
    if f.version != 1 {
        return Err(format!(
            "{}: alerts file version {} (this build reads 1)",
            path.display(),
            f.version
        ));
    }
    Ok(f.alerts)
}
