//! The configuration file's shape, field for field as Prometheus 2.42 reads it, so one file
//! runs under both. Unknown fields are errors (as in Prometheus). Fields Prometheus knows
//! but Fedwatch does not act on yet (most service discoveries, OAuth2, proxies) are accepted
//! and kept as raw values so the file still loads; [`Config::unsupported_fields`] lists them.
//!
//! Durations left unset are zero after parsing and are filled from `global` by
//! [`crate::validate`], the way Prometheus resolves them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::duration::PromDuration;
use crate::relabel::RelabelConfig;

/// Deserializes YAML `null` (a key with nothing after it) as the type's default, as Go does.
pub fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A value kept as written because Fedwatch does not interpret it yet.
pub type Raw = serde_json::Value;

/// The whole configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default, deserialize_with = "nullable")]
    pub global: GlobalConfig,
    #[serde(default, deserialize_with = "nullable")]
    pub rule_files: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub scrape_configs: Vec<ScrapeConfig>,
    #[serde(default, deserialize_with = "nullable")]
    pub alerting: AlertingConfig,
    #[serde(default, deserialize_with = "nullable")]
    pub remote_write: Vec<RemoteWriteConfig>,
    #[serde(default, deserialize_with = "nullable")]
    pub remote_read: Vec<RemoteReadConfig>,
    /// `storage:` (TSDB and exemplar settings), accepted as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Raw>,
    /// `tracing:`, accepted as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Raw>,
    /// The directory relative paths in the file are resolved against (the file's directory).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `global:` defaults for every scrape config and rule group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default = "GlobalConfig::unset")]
pub struct GlobalConfig {
    pub scrape_interval: PromDuration,
    pub scrape_timeout: PromDuration,
    pub evaluation_interval: PromDuration,
    #[serde(deserialize_with = "nullable")]
    pub external_labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_log_file: Option<String>,
}

impl GlobalConfig {
    /// Zero durations, so validation can tell a written value from a default (a written
    /// `scrape_interval: 5s` must cap the default timeout, not conflict with it).
    fn unset() -> Self {
        GlobalConfig {
            scrape_interval: PromDuration::default(),
            scrape_timeout: PromDuration::default(),
            evaluation_interval: PromDuration::default(),
            ..GlobalConfig::default()
        }
    }
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: PromDuration::from_secs(60),
            scrape_timeout: PromDuration::from_secs(10),
            evaluation_interval: PromDuration::from_secs(60),
            external_labels: BTreeMap::new(),
            query_log_file: None,
        }
    }
}

/// `basic_auth:` of an HTTP client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<String>,
}

/// `authorization:` of an HTTP client (`type` defaults to Bearer).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<String>,
    pub credentials_file: Option<String>,
}

/// `tls_config:` of an HTTP client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
}

/// One `static_configs:` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    #[serde(deserialize_with = "nullable")]
    pub targets: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
}

/// One `file_sd_configs:` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSdConfig {
    #[serde(deserialize_with = "nullable")]
    pub files: Vec<String>,
    pub refresh_interval: PromDuration,
}

impl Default for FileSdConfig {
    fn default() -> Self {
        FileSdConfig {
            files: Vec::new(),
            refresh_interval: PromDuration::from_secs(300),
        }
    }
}

/// One `scrape_configs:` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrapeConfig {
    pub job_name: String,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    #[serde(deserialize_with = "nullable")]
    pub params: BTreeMap<String, Vec<String>>,
    /// Zero until resolved from `global`.
    pub scrape_interval: PromDuration,
    /// Zero until resolved from `global` (capped at the interval).
    pub scrape_timeout: PromDuration,
    pub metrics_path: String,
    pub scheme: String,
    /// 0 means no limit.
    pub sample_limit: u64,
    pub target_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    /// Written like `10MB`; accepted, not enforced yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_size_limit: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub static_configs: Vec<StaticConfig>,
    #[serde(deserialize_with = "nullable")]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(deserialize_with = "nullable")]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(deserialize_with = "nullable")]
    pub metric_relabel_configs: Vec<RelabelConfig>,

    // HTTP client.
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    pub tls_config: Option<TlsConfig>,
    pub follow_redirects: bool,
    pub enable_http2: bool,
    pub oauth2: Option<Raw>,
    pub proxy_url: Option<String>,
    pub no_proxy: Option<String>,
    pub proxy_from_environment: Option<bool>,
    pub proxy_connect_header: Option<Raw>,

    // Service discoveries Prometheus has and Fedwatch accepts without acting on.
    pub azure_sd_configs: Option<Raw>,
    pub consul_sd_configs: Option<Raw>,
    pub digitalocean_sd_configs: Option<Raw>,
    pub docker_sd_configs: Option<Raw>,
    pub dockerswarm_sd_configs: Option<Raw>,
    pub dns_sd_configs: Option<Raw>,
    pub ec2_sd_configs: Option<Raw>,
    pub ecs_sd_configs: Option<Raw>,
    pub elasticache_sd_configs: Option<Raw>,
    pub eureka_sd_configs: Option<Raw>,
    pub gce_sd_configs: Option<Raw>,
    pub hetzner_sd_configs: Option<Raw>,
    pub http_sd_configs: Option<Raw>,
    pub ionos_sd_configs: Option<Raw>,
    pub kubernetes_sd_configs: Option<Raw>,
    pub kuma_sd_configs: Option<Raw>,
    pub lightsail_sd_configs: Option<Raw>,
    pub linode_sd_configs: Option<Raw>,
    pub marathon_sd_configs: Option<Raw>,
    pub msk_sd_configs: Option<Raw>,
    pub nerve_sd_configs: Option<Raw>,
    pub nomad_sd_configs: Option<Raw>,
    pub openstack_sd_configs: Option<Raw>,
    pub ovhcloud_sd_configs: Option<Raw>,
    pub puppetdb_sd_configs: Option<Raw>,
    pub rds_sd_configs: Option<Raw>,
    pub scaleway_sd_configs: Option<Raw>,
    pub serverset_sd_configs: Option<Raw>,
    pub triton_sd_configs: Option<Raw>,
    pub uyuni_sd_configs: Option<Raw>,
    pub vultr_sd_configs: Option<Raw>,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        ScrapeConfig {
            job_name: String::new(),
            honor_labels: false,
            honor_timestamps: true,
            params: BTreeMap::new(),
            scrape_interval: PromDuration::default(),
            scrape_timeout: PromDuration::default(),
            metrics_path: "/metrics".into(),
            scheme: "http".into(),
            sample_limit: 0,
            target_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            body_size_limit: None,
            static_configs: Vec::new(),
            file_sd_configs: Vec::new(),
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
            basic_auth: None,
            authorization: None,
            bearer_token: None,
            bearer_token_file: None,
            tls_config: None,
            follow_redirects: true,
            enable_http2: true,
            oauth2: None,
            proxy_url: None,
            no_proxy: None,
            proxy_from_environment: None,
            proxy_connect_header: None,
            azure_sd_configs: None,
            consul_sd_configs: None,
            digitalocean_sd_configs: None,
            docker_sd_configs: None,
            dockerswarm_sd_configs: None,
            dns_sd_configs: None,
            ec2_sd_configs: None,
            ecs_sd_configs: None,
            elasticache_sd_configs: None,
            eureka_sd_configs: None,
            gce_sd_configs: None,
            hetzner_sd_configs: None,
            http_sd_configs: None,
            ionos_sd_configs: None,
            kubernetes_sd_configs: None,
            kuma_sd_configs: None,
            lightsail_sd_configs: None,
            linode_sd_configs: None,
            marathon_sd_configs: None,
            msk_sd_configs: None,
            nerve_sd_configs: None,
            nomad_sd_configs: None,
            openstack_sd_configs: None,
            ovhcloud_sd_configs: None,
            puppetdb_sd_configs: None,
            rds_sd_configs: None,
            scaleway_sd_configs: None,
            serverset_sd_configs: None,
            triton_sd_configs: None,
            uyuni_sd_configs: None,
            vultr_sd_configs: None,
        }
    }
}

impl ScrapeConfig {
    /// The configured interval as a std duration.
    pub fn interval(&self) -> Duration {
        self.scrape_interval.0
    }

    /// The configured timeout as a std duration.
    pub fn timeout(&self) -> Duration {
        self.scrape_timeout.0
    }

    /// Names of fields that are set but that Fedwatch does not act on yet.
    pub fn unsupported_fields(&self) -> Vec<&'static str> {
        let raw: [(&'static str, bool); 36] = [
            ("oauth2", self.oauth2.is_some()),
            ("proxy_url", self.proxy_url.is_some()),
            ("no_proxy", self.no_proxy.is_some()),
            ("proxy_from_environment", self.proxy_from_environment.is_some()),
            ("proxy_connect_header", self.proxy_connect_header.is_some()),
            ("body_size_limit", self.body_size_limit.is_some()),
            ("azure_sd_configs", self.azure_sd_configs.is_some()),
            ("consul_sd_configs", self.consul_sd_configs.is_some()),
            ("digitalocean_sd_configs", self.digitalocean_sd_configs.is_some()),
            ("docker_sd_configs", self.docker_sd_configs.is_some()),
            ("dockerswarm_sd_configs", self.dockerswarm_sd_configs.is_some()),
            ("dns_sd_configs", self.dns_sd_configs.is_some()),
            ("ec2_sd_configs", self.ec2_sd_configs.is_some()),
            ("ecs_sd_configs", self.ecs_sd_configs.is_some()),
            ("elasticache_sd_configs", self.elasticache_sd_configs.is_some()),
            ("eureka_sd_configs", self.eureka_sd_configs.is_some()),
            ("gce_sd_configs", self.gce_sd_configs.is_some()),
            ("hetzner_sd_configs", self.hetzner_sd_configs.is_some()),
            ("http_sd_configs", self.http_sd_configs.is_some()),
            ("ionos_sd_configs", self.ionos_sd_configs.is_some()),
            ("kubernetes_sd_configs", self.kubernetes_sd_configs.is_some()),
            ("kuma_sd_configs", self.kuma_sd_configs.is_some()),
            ("lightsail_sd_configs", self.lightsail_sd_configs.is_some()),
            ("linode_sd_configs", self.linode_sd_configs.is_some()),
            ("marathon_sd_configs", self.marathon_sd_configs.is_some()),
            ("msk_sd_configs", self.msk_sd_configs.is_some()),
            ("nerve_sd_configs", self.nerve_sd_configs.is_some()),
            ("nomad_sd_configs", self.nomad_sd_configs.is_some()),
            ("openstack_sd_configs", self.openstack_sd_configs.is_some()),
            ("ovhcloud_sd_configs", self.ovhcloud_sd_configs.is_some()),
            ("puppetdb_sd_configs", self.puppetdb_sd_configs.is_some()),
            ("rds_sd_configs", self.rds_sd_configs.is_some()),
            ("scaleway_sd_configs", self.scaleway_sd_configs.is_some()),
            ("serverset_sd_configs", self.serverset_sd_configs.is_some()),
            ("triton_sd_configs", self.triton_sd_configs.is_some()),
            ("uyuni_sd_configs", self.uyuni_sd_configs.is_some()),
        ];
        let mut out: Vec<&'static str> = raw.iter().filter(|(_, set)| *set).map(|(n, _)| *n).collect();
        if self.vultr_sd_configs.is_some() {
            out.push("vultr_sd_configs");
        }
        out
    }
}

/// `alerting:`: where alerts go. Kept for the notifier; Fedwatch's own notifier has its
/// own configuration, so this block is parsed and validated but not acted on here.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    #[serde(deserialize_with = "nullable")]
    pub alert_relabel_configs: Vec<RelabelConfig>,
    #[serde(deserialize_with = "nullable")]
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

/// One `alertmanagers:` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    pub scheme: String,
    pub path_prefix: String,
    pub timeout: PromDuration,
    pub api_version: String,
    #[serde(deserialize_with = "nullable")]
    pub static_configs: Vec<StaticConfig>,
    #[serde(deserialize_with = "nullable")]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(deserialize_with = "nullable")]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(deserialize_with = "nullable")]
    pub alert_relabel_configs: Vec<RelabelConfig>,
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    pub tls_config: Option<TlsConfig>,
    pub follow_redirects: bool,
    pub enable_http2: bool,
    pub oauth2: Option<Raw>,
    pub proxy_url: Option<String>,
    pub sigv4: Option<Raw>,
    pub consul_sd_configs: Option<Raw>,
    pub dns_sd_configs: Option<Raw>,
    pub ec2_sd_configs: Option<Raw>,
    pub http_sd_configs: Option<Raw>,
    pub kubernetes_sd_configs: Option<Raw>,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig {
            scheme: "http".into(),
            path_prefix: "/".into(),
            timeout: PromDuration::from_secs(10),
            api_version: "v2".into(),
            static_configs: Vec::new(),
            file_sd_configs: Vec::new(),
            relabel_configs: Vec::new(),
            alert_relabel_configs: Vec::new(),
            basic_auth: None,
            authorization: None,
            bearer_token: None,
            bearer_token_file: None,
            tls_config: None,
            follow_redirects: true,
            enable_http2: true,
            oauth2: None,
            proxy_url: None,
            sigv4: None,
            consul_sd_configs: None,
            dns_sd_configs: None,
            ec2_sd_configs: None,
            http_sd_configs: None,
            kubernetes_sd_configs: None,
        }
    }
}

/// `queue_config:` of a remote write: how samples are batched and retried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub capacity: u64,
    pub max_shards: u64,
    pub min_shards: u64,
    pub max_samples_per_send: u64,
    pub batch_send_deadline: PromDuration,
    pub min_backoff: PromDuration,
    pub max_backoff: PromDuration,
    pub retry_on_http_429: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 2500,
            max_shards: 200,
            min_shards: 1,
            max_samples_per_send: 500,
            batch_send_deadline: PromDuration::from_secs(5),
            min_backoff: PromDuration(Duration::from_millis(30)),
            max_backoff: PromDuration::from_secs(5),
            retry_on_http_429: true,
        }
    }
}

/// `metadata_config:` of a remote write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    pub send: bool,
    pub send_interval: PromDuration,
    pub max_samples_per_send: u64,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            send: true,
            send_interval: PromDuration::from_secs(60),
            max_samples_per_send: 500,
        }
    }
}

/// One `remote_write:` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteConfig {
    pub url: String,
    pub name: String,
    pub remote_timeout: PromDuration,
    #[serde(deserialize_with = "nullable")]
    pub headers: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable")]
    pub write_relabel_configs: Vec<RelabelConfig>,
    pub send_exemplars: bool,
    pub send_native_histograms: bool,
    /// `prometheus.WriteRequest` (1.0, the default when empty) or `io.prometheus.write.v2.Request`.
    pub protobuf_message: String,
    #[serde(deserialize_with = "nullable")]
    pub queue_config: QueueConfig,
    #[serde(deserialize_with = "nullable")]
    pub metadata_config: MetadataConfig,
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    pub tls_config: Option<TlsConfig>,
    pub follow_redirects: bool,
    pub enable_http2: bool,
    pub oauth2: Option<Raw>,
    pub proxy_url: Option<String>,
    pub sigv4: Option<Raw>,
    pub azuread: Option<Raw>,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            url: String::new(),
            name: String::new(),
            remote_timeout: PromDuration::from_secs(30),
            headers: BTreeMap::new(),
            write_relabel_configs: Vec::new(),
            send_exemplars: false,
            send_native_histograms: false,
            protobuf_message: String::new(),
            queue_config: QueueConfig::default(),
            metadata_config: MetadataConfig::default(),
            basic_auth: None,
            authorization: None,
            bearer_token: None,
            bearer_token_file: None,
            tls_config: None,
            follow_redirects: true,
            enable_http2: true,
            oauth2: None,
            proxy_url: None,
            sigv4: None,
            azuread: None,
        }
    }
}

/// One `remote_read:` entry: accepted and validated; Fedwatch does not read remotely yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteReadConfig {
    pub url: String,
    pub name: String,
    pub remote_timeout: PromDuration,
    #[serde(deserialize_with = "nullable")]
    pub headers: BTreeMap<String, String>,
    pub read_recent: bool,
    #[serde(deserialize_with = "nullable")]
    pub required_matchers: BTreeMap<String, String>,
    pub filter_external_labels: bool,
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    pub tls_config: Option<TlsConfig>,
    pub follow_redirects: bool,
    pub enable_http2: bool,
    pub oauth2: Option<Raw>,
    pub proxy_url: Option<String>,
}

impl Default for RemoteReadConfig {
    fn default() -> Self {
        RemoteReadConfig {
            url: String::new(),
            name: String::new(),
            remote_timeout: PromDuration::from_secs(60),
            headers: BTreeMap::new(),
            read_recent: false,
            required_matchers: BTreeMap::new(),
            filter_external_labels: true,
            basic_auth: None,
            authorization: None,
            bearer_token: None,
            bearer_token_file: None,
            tls_config: None,
            follow_redirects: true,
            enable_http2: true,
            oauth2: None,
            proxy_url: None,
        }
    }
}

impl Config {
    /// Resolves a path from the file against the file's directory, as Prometheus does.
    pub fn resolve_path(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() { p.to_path_buf() } else { self.base_dir.join(p) }
    }

    /// The scrape config for `job`, if any.
    pub fn scrape_config(&self, job: &str) -> Option<&ScrapeConfig> {
        self.scrape_configs.iter().find(|s| s.job_name == job)
    }

    /// `job: field` for every field set that Fedwatch accepts but does not act on yet.
    pub fn unsupported_fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sc in &self.scrape_configs {
            for f in sc.unsupported_fields() {
                out.push(format!("scrape_configs[{}].{f}", sc.job_name));
            }
        }
        for (i, rw) in self.remote_write.iter().enumerate() {
            if rw.tls_config.is_some() {
                out.push(format!("remote_write[{i}].tls_config"));
            }
        }
        if !self.remote_read.is_empty() {
            out.push("remote_read".into());
        }
        out
    }
}
