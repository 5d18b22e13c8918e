//! The scrape layer's own metrics, registered once per manager.

use fedwatch_model::selfmetrics::{Counter, Gauge, Registry};

/// Handles to the self-metrics, per job created on demand.
#[derive(Clone, Debug)]
pub(crate) struct ScrapeMetrics {
    registry: Registry,
    samples: Counter,
    markers_lost: Counter,
}

impl ScrapeMetrics {
    pub(crate) fn new(registry: Registry) -> Self {
        let samples = registry.counter(
            "fedwatch_scrape_samples_total",
            "Samples appended by scrapes, after relabeling.",
            &[],
        );
        let markers_lost = registry.counter(
            "fedwatch_scrape_stale_markers_skipped_total",
            "Stale markers not written because the store had already dropped the series (retention).",
            &[],
        );
        ScrapeMetrics {
            registry,
            samples,
            markers_lost,
        }
    }

    pub(crate) fn targets(&self, job: &str) -> Gauge {
        self.registry
            .gauge("fedwatch_scrape_targets", "Targets currently scraped, per job.", &[("job", job)])
    }

    pub(crate) fn scrapes(&self, job: &str) -> Counter {
        self.registry
            .counter("fedwatch_scrapes_total", "Scrapes attempted, per job.", &[("job", job)])
    }

    pub(crate) fn failures(&self, job: &str, reason: &str) -> Counter {
        self.registry.counter(
            "fedwatch_scrape_failures_total",
            "Scrapes that failed, per job and reason (connect, timeout, http_status, read, parse, sample_limit, label_limit, target_limit, append, config).",
            &[("job", job), ("reason", reason)],
        )
    }

    pub(crate) fn samples(&self) -> &Counter {
        &self.samples
    }

    pub(crate) fn markers_lost(&self) -> &Counter {
        &self.markers_lost
    }
}
