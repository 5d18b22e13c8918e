//! Command-line flags, named as Prometheus names them so existing unit files and scripts
//! carry over.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The flags every tier takes.
#[derive(clap::Parser, Clone, Debug)]
#[command(version, about = "A Fedwatch tier: Prometheus-compatible federated monitoring")]
pub struct Flags {
    /// Check files instead of running (`check-config`, `check-rules`, `test-rules`).
    #[command(subcommand)]
    pub command: Option<crate::commands::Command>,
    /// Configuration file path (Prometheus format).
    #[arg(long = "config.file", default_value = "prometheus.yml")]
    pub config_file: PathBuf,
    /// Base path for metrics storage.
    #[arg(long = "storage.path", alias = "storage.tsdb.path", default_value = "data/")]
    pub storage_path: PathBuf,
    /// How long to keep samples in the local store (Prometheus duration).
    #[arg(long = "storage.tsdb.retention.time", alias = "storage.retention.time", default_value = "15d", value_parser = parse_retention)]
    pub retention_time: Retention,
    /// Most bytes of blocks and WAL to keep, oldest blocks removed first (e.g. 512MB; units
    /// B, KB, MB, GB, TB, PB, EB are powers of 1024 as in Prometheus).
    #[arg(long = "storage.tsdb.retention.size", value_parser = parse_bytes)]
    pub retention_size: Option<u64>,
    /// Build the 5m and 1h downsampled levels that aligned long-range queries read
    /// (`true`/`false`; default: on for cascade and central, off for edge).
    #[arg(long = "storage.tsdb.downsample")]
    pub downsample: Option<bool>,
    /// Address to listen on for the API, remote_write and /metrics.
    #[arg(long = "web.listen-address", default_value = "0.0.0.0:9090")]
    pub listen_address: SocketAddr,
    /// The URL under which this tier is reached from outside (used in alert links).
    #[arg(long = "web.external-url")]
    pub external_url: Option<String>,
    /// Alertmanager-format notification config (central only): route and receivers.
    #[arg(long = "notify.config.file")]
    pub notify_config_file: Option<PathBuf>,
    /// Another central of this one's notifier HA pair (base URL or host:port), repeatable.
    /// Pair members send each notification once and share silences and the notification log.
    #[arg(long = "cluster.peer")]
    pub cluster_peers: Vec<String>,
    /// This central's name and address as its peers list it (default: --web.external-url,
    /// else the listen address).
    #[arg(long = "cluster.advertise-address")]
    pub cluster_advertise_address: Option<String>,
    /// Wait per position in the pair before notifying (Alertmanager's --cluster.peer-timeout).
    #[arg(long = "cluster.peer-timeout", default_value = "15s", value_parser = parse_retention)]
    pub cluster_peer_timeout: Retention,
    /// Longest wait for the first state exchange with the peers before notifying anyway.
    #[arg(long = "cluster.settle-timeout", default_value = "30s", value_parser = parse_retention)]
    pub cluster_settle_timeout: Retention,
    /// How often the full notifier state is exchanged with every peer.
    #[arg(long = "cluster.pushpull-interval", default_value = "30s", value_parser = parse_retention)]
    pub cluster_pushpull_interval: Retention,
    /// Deduplicate HA pairs: accept each cluster's series from one elected replica.
    #[arg(long = "receiver.ha.enable")]
    pub ha_enable: bool,
    /// The label that names a sender's replica; removed from accepted series.
    #[arg(long = "receiver.ha.replica-label", default_value = "__replica__")]
    pub ha_replica_label: String,
    /// The label whose value groups replicas into one election.
    #[arg(long = "receiver.ha.cluster-label", default_value = "cluster")]
    pub ha_cluster_label: String,
    /// Silence of the elected replica after which another takes over.
    #[arg(long = "receiver.ha.failover-timeout", default_value = "30s", value_parser = parse_retention)]
    pub ha_failover_timeout: Retention,
    /// Most series in one remote_write request (0: unlimited).
    #[arg(long = "receiver.max-series-per-request", default_value_t = 0)]
    pub max_series_per_request: usize,
    /// Most samples in one remote_write request (0: unlimited).
    #[arg(long = "receiver.max-samples-per-request", default_value_t = 0)]
    pub max_samples_per_request: usize,
    /// Most labels on one series, `__name__` included (0: unlimited).
    #[arg(long = "receiver.max-labels-per-series", default_value_t = 0)]
    pub max_labels_per_series: usize,
    /// Longest label name in bytes (0: unlimited).
    #[arg(long = "receiver.max-label-name-length", default_value_t = 0)]
    pub max_label_name_length: usize,
    /// Longest label value in bytes (0: unlimited).
    #[arg(long = "receiver.max-label-value-length", default_value_t = 0)]
    pub max_label_value_length: usize,
    /// Ingestion budget in samples per second; over it, senders get 429 with Retry-After (0: none).
    #[arg(long = "receiver.ingestion-rate", default_value_t = 0.0)]
    pub ingestion_rate: f64,
    /// Samples allowed in a burst above the ingestion rate (default: one second's worth).
    #[arg(long = "receiver.ingestion-burst")]
    pub ingestion_burst: Option<f64>,
    /// Downsample what is forwarded to one upstream: `<remote_write url>=<resolution>`, repeatable.
    #[arg(long = "forward.resolution", value_parser = fedwatch_wire::parse_resolution_flag)]
    pub forward_resolution: Vec<(String, std::time::Duration)>,
    /// How old unsent WAL segments may get before they are deleted anyway (counted as
    /// dropped{reason="backlog_exceeded"}); 0s keeps them until sent.
    #[arg(long = "forward.max-backlog", default_value = "6h", value_parser = parse_retention)]
    pub forward_max_backlog: Retention,
    /// Log level: error, warn, info, debug (or a tracing filter; FEDWATCH_LOG overrides).
    #[arg(long = "log.level", default_value = "info")]
    pub log_level: String,
}

impl Flags {
    /// The flags as `/api/v1/status/flags` lists them, by their Prometheus names.
    pub fn as_map(&self) -> std::collections::BTreeMap<String, String> {
        let mut m = std::collections::BTreeMap::new();
        m.insert("config.file".into(), self.config_file.display().to_string());
        m.insert("storage.path".into(), self.storage_path.display().to_string());
        m.insert(
            "storage.tsdb.retention.time".into(),
            fedwatch_config::format_duration(self.retention_time.0),
        );
        m.insert(
            "storage.tsdb.retention.size".into(),
            self.retention_size.map(|b| format!("{b}B")).unwrap_or_default(),
        );
        m.insert("web.listen-address".into(), self.listen_address.to_string());
        m.insert("web.external-url".into(), self.external_url.clone().unwrap_or_default());
        m.insert(
            "notify.config.file".into(),
            self.notify_config_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        );
        m.insert("cluster.peer".into(), self.cluster_peers.join(","));
        m.insert(
            "cluster.advertise-address".into(),
            self.cluster_advertise_address.clone().unwrap_or_default(),
        );
        m.insert(
            "cluster.peer-timeout".into(),
            fedwatch_config::format_duration(self.cluster_peer_timeout.0),
        );
        m.insert(
            "forward.max-backlog".into(),
            fedwatch_config::format_duration(self.forward_max_backlog.0),
        );
        m.insert("log.level".into(), self.log_level.clone());
        m
    }
}

/// A retention duration given on the command line.
#[derive(Clone, Copy, Debug)]
pub struct Retention(pub std::time::Duration);

fn parse_retention(s: &str) -> Result<Retention, String> {
    fedwatch_config::parse_duration(s).map(Retention)
}

/// Parses Prometheus's byte sizes (`512MB`, `1GB`): units are powers of 1024.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    const UNITS: [(&str, u32); 7] = [("EB", 6), ("PB", 5), ("TB", 4), ("GB", 3), ("MB", 2), ("KB", 1), ("B", 0)];
    let (number, power) = UNITS
        .iter()
        .find_map(|(u, p)| s.strip_suffix(u).map(|n| (n, *p)))
        .ok_or_else(|| format!("{s:?} is not a size: expected a number followed by B, KB, MB, GB, TB, PB or EB"))?;
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size: {number:?} is not a whole number"))?;
    n.checked_mul(1024u64.pow(power)).ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn byte_sizes_as_prometheus_reads_them() {
        assert_eq!(parse_bytes("512MB"), Ok(512 << 20));
        assert_eq!(parse_bytes("1GB"), Ok(1 << 30));
        assert_eq!(parse_bytes("100B"), Ok(100));
        assert!(parse_bytes("12").is_err());
        assert!(parse_bytes("1.5GB").is_err());
        assert!(parse_bytes("99999999999EB").is_err());
    }
}
