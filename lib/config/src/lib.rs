//! Prometheus-compatible configuration for the Fedwatch binaries: the file's shape
//! ([`schema`]), Prometheus durations ([`duration`]), relabeling ([`relabel`]), service
//! discovery into target groups ([`discovery`]) and the label rules that turn a discovered
//! target into a scrape target ([`targets`]).
//!
//! A file that stock Prometheus 2.42 accepts loads here unchanged; a file it rejects is
//! rejected here too, with `file:line: reason` where the line is known. [`parse`] does
//! syntax and validation in one step and fills defaults from `global`, so callers only ever
//! see a resolved [`Config`].

pub mod discovery;
pub mod duration;
pub mod http;
pub mod relabel;
pub mod schema;
pub mod targets;
mod validate;

use std::path::{Path, PathBuf};

pub use duration::{PromDuration, format_duration, parse_duration};
pub use relabel::{Action, RelabelConfig, RelabelRegex};
pub use schema::{
    AlertingConfig, AlertmanagerConfig, Authorization, BasicAuth, Config, FileSdConfig, GlobalConfig, MetadataConfig, QueueConfig,
    RemoteReadConfig, RemoteWriteConfig, ScrapeConfig, StaticConfig, TlsConfig,
};
pub use validate::check_files;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The YAML is malformed or does not fit the schema; `line` is 1-based.
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: String,
        line: u64,
        column: u64,
        message: String,
    },
    /// The file parsed but breaks a rule; `line` when it could be located.
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid { path: String, line: Option<u64>, message: String },
}

/// Reads, parses and validates the configuration at `path`; relative paths inside it are
/// resolved against its directory.
pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
    load_with_text(path).map(|(cfg, _)| cfg)
}

/// Like [`load`], also returning the file's text as read (for a status page), so the text
/// shown is exactly what was parsed.
pub fn load_with_text(path: impl AsRef<Path>) -> Result<(Config, String), ConfigError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut cfg = parse(&text, &path.display().to_string())?;
    cfg.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    Ok((cfg, text))
}

/// Parses and validates configuration text; `path` is only used in messages. Relative
/// paths resolve against the current directory until the caller sets `base_dir`.
pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
    let mut cfg = parse_yaml::<Config>(text, path)?.unwrap_or_default();
    cfg.base_dir = PathBuf::from(".");
    validate::validate(&mut cfg, text).map_err(|(line, message)| ConfigError::Invalid {
        path: path.to_string(),
        line,
        message,
    })?;
    Ok(cfg)
}

/// Deserializes a YAML document; `None` for an empty document (only comments or nothing).
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str, path: &str) -> Result<Option<T>, ConfigError> {
    let blank = text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    });
    if blank {
        return Ok(None);
    }
    serde_saphyr::from_str::<T>(text).map(Some).map_err(|e| {
        let loc = e.location();
        ConfigError::Syntax {
            path: path.to_string(),
            line: loc.map(|l| l.line()).unwrap_or(0),
            column: loc.map(|l| l.column()).unwrap_or(0),
            message: plain_message(&e),
        }
    })
}

/// The error's reason without the location and source snippet serde-saphyr adds, with
/// serde's backticks turned into the double quotes our other messages use.
fn plain_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    // serde-saphyr appends " at line N column M"; the line is reported separately.
    let text = match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    text.replace('`', "\"")
}
