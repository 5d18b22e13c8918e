//! The crate's one error type. Every variant names the file (and line when YAML gives it) so
//! a user can fix the input; reloads report it and keep the old configuration.

use std::fmt;
use std::path::PathBuf;

/// One problem in one input file, at a line when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    pub file: PathBuf,
    pub line: Option<u64>,
    pub reason: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

/// What went wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule file failed to load or validate; every problem found is listed.
    #[error("{}", join(.0))]
    RuleFile(Vec<FileError>),
    /// The Alertmanager configuration failed to load or validate.
    #[error("{0}")]
    AlertmanagerConfig(FileError),
    /// The notifier's state directory (silences, notification log) cannot be used.
    #[error("notifier state directory {}: {reason}", .dir.display())]
    NotifierState { dir: PathBuf, reason: String },
    /// A `rule_files` pattern is not a valid glob.
    #[error("invalid rule_files pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
}

fn join(errors: &[FileError]) -> String {
    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
}
