//! Scraping: one loop per target, fetching the exposition body, parsing it, attaching
//! the target's labels and appending the samples plus the report series (`up`,
//! `scrape_duration_seconds`, `scrape_samples_scraped`,
//! `scrape_samples_post_metric_relabeling`, `scrape_series_added`).
//!
//! Structure, as in Prometheus's `scrape` package: a [`ScrapeManager`] holds one pool per
//! scrape config (job). A pool follows its discovery channel, turns target groups into
//! [`ScrapeTarget`]s with `fedwatch_config::targets::populate_labels`, and starts or stops
//! one loop per target. Loops start at an offset derived from the target's hash so targets
//! spread over the interval and each keeps a stable phase across restarts.
//!
//! Staleness: a loop remembers the series of its last successful scrape (those that carried
//! no explicit timestamp, as Prometheus does). A series missing from the next scrape gets a
//! stale marker; a failed scrape marks all of them stale; a target removed from discovery
//! marks them and its report series stale. Stopping the manager (shutdown) writes no
//! markers, and a config reload hands each surviving target's series to its new loop.
//!
//! Cost per sample: each loop keeps a scrape cache (`cache.rs`) from a line's raw series
//! text to the stored series, so a line seen before is appended by the store's series ref
//! (`Appender::append_refs`) without building, relabeling or hashing its labels; staleness
//! and `scrape_series_added` compare series by the fingerprint of their final labels.

mod cache;
mod labels;
mod manager;
mod metrics;
mod scrape_loop;

pub use fedwatch_config::targets::ScrapeTarget;
pub use manager::{ScrapeManager, TargetHealth, TargetStatus};

/// What Prometheus 2.42 sends as `Accept` (OpenMetrics preferred, then text 0.0.4).
pub const ACCEPT_HEADER: &str =
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
