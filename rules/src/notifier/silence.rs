//! Silences, with Alertmanager's rules for them.
//!
//! A silence mutes every alert all of whose labels match all of its matchers (`=`, `!=`,
//! `=~`, `!~`; regexes anchored; a missing label is the empty string) while it is *active*:
//! `startsAt <= now < endsAt`. Before that it is *pending*, after it *expired*.
//!
//! Changing one follows `silence.Silences.Set`: a silence posted with the id of an existing
//! one is updated in place only when its matchers are unchanged and the times allow it (an
//! active silence keeps its start and may not end in the past, a pending one may not start
//! in the past); otherwise the old one is expired (unless it already is) and the change is
//! stored as a new silence with a new id. New silences never start before now. Expiring an
//! active silence ends it now; a pending one gets start and end set to now. Expired
//! silences are kept for `retention` (120h, Alertmanager's `--data.retention`) and then
//! forgotten.
//!
//! In an HA pair the set is shared ([`super::cluster`]): a peer's silence replaces ours
//! with the same id when its `updated_at` is newer ([`Silences::merge`], Alertmanager's
//! rule), so a change made on either central wins everywhere once it has travelled.
//!
//! The set is saved as one JSON file written atomically (see `FORMAT.md`) after every
//! change, and read back on start.

use std::collections::BTreeMap;
use std::path::Path;

use fedwatch_model::{Labels, MatchOp, Matcher};
use serde::{Deserialize, Serialize};

/// How long expired silences stay visible (Alertmanager's default `--data.retention`).
pub const RETENTION_MS: i64 = 120 * 3600 * 1000;

/// A silence; times are milliseconds since the epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub updated_at: i64,
    pub created_by: String,
    pub comment: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// One matcher as the API v2 writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    #[serde(rename = "isRegex")]
    pub is_regex: bool,
    #[serde(rename = "isEqual", default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    fn op(&self) -> MatchOp {
        match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::RegexMatch,
            (true, false) => MatchOp::RegexNoMatch,
        }
    }

    /// The matcher as `amtool` prints it, e.g. `alertname=~"Disk.*"`.
    pub fn display(&self) -> String {
        let op = match self.op() {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        };
        format!("{}{op}{:?}", self.name, self.value)
    }
}

/// `pending`, `active` or `expired`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SilenceState {
    Active,
    Pending,
    Expired,
}

impl SilenceState {
    /// The API's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Active => "active",
            SilenceState::Pending => "pending",
            SilenceState::Expired => "expired",
        }
    }
}

impl Silence {
    /// The state at `now`.
    pub fn state(&self, now: i64) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SilenceError {
    #[error("silence {0} not found")]
    NotFound(String),
    #[error("silence {0} already expired")]
    AlreadyExpired(String),
    #[error("invalid silence: {0}")]
    Invalid(String),
}

#[derive(Debug)]
struct Entry {
    silence: Silence,
    compiled: Vec<Matcher>,
}

/// The silences of one notifier.
#[derive(Debug, Default)]
pub struct Silences {
    by_id: BTreeMap<String, Entry>,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    silences: Vec<Silence>,
}

impl Silences {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates or updates `s` at `now` as the module notes say; returns the id it is stored under.
    pub fn set(&mut self, mut s: Silence, now: i64) -> Result<String, SilenceError> {
        let compiled = validate(&s)?;
        let prev = if s.id.is_empty() {
            None
        } else {
            Some(self.by_id.get(&s.id).ok_or_else(|| SilenceError::NotFound(s.id.clone()))?)
        };
        if let Some(prev) = prev {
            if can_update(&prev.silence, &s, now) {
                s.updated_at = now;
                self.by_id.insert(
                    s.id.clone(),
                    Entry {
                        silence: s.clone(),
                        compiled,
                    },
                );
                return Ok(s.id);
            }
            if prev.silence.state(now) != SilenceState::Expired {
                let id = s.id.clone();
                self.expire(&id, now)?;
            }
        }
        s.id = new_id(|id| self.by_id.contains_key(id));
        s.starts_at = s.starts_at.max(now);
        if s.ends_at < s.starts_at {
            return Err(SilenceError::Invalid("end time must not be before start time".into()));
        }
        s.updated_at = now;
        self.by_id.insert(
            s.id.clone(),
            Entry {
                silence: s.clone(),
                compiled,
            },
        );
        Ok(s.id)
    }

    /// Expires the silence `id` at `now`.
    pub fn expire(&mut self, id: &str, now: i64) -> Result<(), SilenceError> {
        let e = self.by_id.get_mut(id).ok_or_else(|| SilenceError::NotFound(id.to_string()))?;
        match e.silence.state(now) {
            SilenceState::Expired => return Err(SilenceError::AlreadyExpired(id.to_string())),
            SilenceState::Active => e.silence.ends_at = now,
            SilenceState::Pending => {
                e.silence.starts_at = now;
                e.silence.ends_at = now;
            }
        }
        e.silence.updated_at = now;
        Ok(())
    }

    /// Takes a peer's copy of a silence unless ours is as new or newer, or it was forgotten
    /// already at `now`; true if it was taken.
    pub fn merge(&mut self, s: Silence, now: i64) -> Result<bool, SilenceError> {
        if s.ends_at + RETENTION_MS <= now {
            return Ok(false);
        }
        if self.by_id.get(&s.id).is_some_and(|prev| prev.silence.updated_at >= s.updated_at) {
            return Ok(false);
        }
        if s.id.is_empty() {
            return Err(SilenceError::Invalid("a replicated silence needs an id".into()));
        }
        let compiled = validate(&s)?;
        self.by_id.insert(s.id.clone(), Entry { silence: s, compiled });
        Ok(true)
    }

    /// The silence `id`.
    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.by_id.get(id).map(|e| &e.silence)
    }

    /// Every silence, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Silence> {
        self.by_id.values().map(|e| &e.silence)
    }

    /// Ids of the silences active at `now` that match `labels`, sorted.
    pub fn silenced_by(&self, labels: &Labels, now: i64) -> Vec<String> {
        self.by_id
            .values()
            .filter(|e| e.silence.state(now) == SilenceState::Active)
            .filter(|e| e.compiled.iter().all(|m| m.matches_labels(labels)))
            .map(|e| e.silence.id.clone())
            .collect()
    }

    /// Forgets silences that expired more than [`RETENTION_MS`] before `now`; true if any went.
    pub fn gc(&mut self, now: i64) -> bool {
        let before = self.by_id.len();
        self.by_id.retain(|_, e| e.silence.ends_at + RETENTION_MS > now);
        self.by_id.len() != before
    }

    /// Writes the set to `path` atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let file = File {
            version: 1,
            silences: self.iter().cloned().collect(),
        };
        let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        super::persist::write_atomic(path, &bytes)
    }

    /// Reads a set saved by [`Silences::save`]; a missing file is an empty set.
    pub fn load(path: &Path) -> Result<Silences, String> {
        let Some(bytes) = super::persist::read_optional(path)? else {
            return Ok(Silences::new());
        };
        let file: File = serde_json::from_slice(&bytes).map_err(|e| format!("{}: not a silences file: {e}", path.display()))?;
        if file.version != 1 {
            return Err(format!(
                "{}: silences file version {} (this build reads 1)",
                path.display(),
                file.version
            ));
        }
        let mut out = Silences::new();
        for s in file.silences {
            let compiled = validate(&s).map_err(|e| format!("{}: silence {}: {e}", path.display(), s.id))?;
            out.by_id.insert(s.id.clone(), Entry { silence: s, compiled });
        }
        Ok(out)
    }
}

/// Alertmanager's `canUpdate`: same matchers, and times the current state allows.
fn can_update(prev: &Silence, next: &Silence, now: i64) -> bool {
    if prev.matchers != next.matchers {
        return false;
    }
    match prev.state(now) {
        // Alertmanager compares starts at second precision.
        SilenceState::Active => next.starts_at.div_euclid(1000) == prev.starts_at.div_euclid(1000) && next.ends_at >= now,
        SilenceState::Pending => next.starts_at >= now,
        SilenceState::Expired => false,
    }
}

/// Checks a silence as Alertmanager's `validateSilence` does and compiles its matchers.
fn validate(s: &Silence) -> Result<Vec<Matcher>, SilenceError> {
    let invalid = |m: String| SilenceError::Invalid(m);
    if s.matchers.is_empty() {
        return Err(invalid("at least one matcher required".into()));
    }
    let mut compiled = Vec::new();
    for (i, m) in s.matchers.iter().enumerate() {
        let ok_name = m.name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && m.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok_name {
            return Err(invalid(format!("invalid label matcher {i}: invalid label name {:?}", m.name)));
        }
        let c = Matcher::new(m.op(), m.name.clone(), m.value.clone()).map_err(|e| invalid(format!("invalid label matcher {i}: {e}")))?;
        compiled.push(c);
    }
    if compiled.iter().all(|m| m.matches_empty()) {
        return Err(invalid("at least one matcher must not match the empty string".into()));
    }
    if s.starts_at == 0 {
        return Err(invalid("invalid zero start timestamp".into()));
    }
    if s.ends_at == 0 {
        return Err(invalid("invalid zero end timestamp".into()));
    }
    if s.ends_at < s.starts_at {
        return Err(invalid("end time must not be before start time".into()));
    }
    Ok(compiled)
}

/// A random (version 4) UUID not yet taken.
fn new_id(taken: impl Fn(&str) -> bool) -> String {
    loop {
        let mut b = fastrand::u128(..).to_be_bytes();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let id = format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]);
        if !taken(&id) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests;
