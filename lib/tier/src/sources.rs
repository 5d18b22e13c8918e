//! Adapters that show the scrape manager on the status endpoints, so `lib/server` does not
//! depend on it. (The rule manager implements `RulesSource` itself.)

use std::sync::Arc;

use fedwatch_scrape::{ScrapeManager, TargetStatus};
use fedwatch_server::sources::{TargetHealthState, TargetInfo, TargetsSource};

/// `/api/v1/targets` from the scrape manager.
pub struct ScrapeTargets(pub Arc<ScrapeManager>);

impl TargetsSource for ScrapeTargets {
    fn targets(&self) -> Vec<TargetInfo> {
        self.0
            .targets()
            .into_iter()
            .map(|h| TargetInfo {
                scrape_pool: h.job,
                discovered_labels: h.target.discovered.clone(),
                labels: h.target.labels.clone(),
                scrape_url: h.target.url(),
                health: match h.status {
                    TargetStatus::Unknown => TargetHealthState::Unknown,
                    TargetStatus::Up => TargetHealthState::Up,
                    TargetStatus::Down => TargetHealthState::Down,
                },
                last_error: h.last_error.unwrap_or_default(),
                last_scrape_ms: h.last_scrape_ms,
                last_scrape_duration: h.last_duration,
                scrape_interval: h.target.interval,
                scrape_timeout: h.target.timeout,
            })
            .collect()
    }
}
