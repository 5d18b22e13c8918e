//! The data model every tier shares: label sets, samples, series, label matchers with
//! Prometheus's regex semantics, the process's own counters, and the exposition parser.

pub mod gofloat;
pub mod labels;
pub mod matcher;
pub mod par;
pub mod sample;
pub mod selfmetrics;
pub mod textparse;

pub use gofloat::format_go_float;
pub use labels::{Label, Labels, LabelsBuilder, METRIC_NAME};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use sample::{STALE_NAN_BITS, Sample, TimeSeries, is_stale_nan, stale_nan};
