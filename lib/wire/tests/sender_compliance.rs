//! The remote_write 2.0 sender compliance catalogue (`../shared/compliance/remotewrite/
//! sender-cases.json`) reproduced against our real sending path.
//!
//! Per case: the case's exposition text is parsed with our scrape parser and given the
//! labels a scrape adds (`job="test"`, `instance`), appended to a real store (`Db`, so to its
//! WAL), and a [`WalForwarder`] configured with `protobuf_message:
//! io.prometheus.write.v2.Request` tails that WAL and sends to a mock receiver on loopback.
//! The scrape loop itself is not run (its own tests cover it); everything from the WAL to
//! the wire is the production code.
//!
//! The mock receiver is a small HTTP/1.1 server written on a raw socket, so it can also
//! answer in ways a real server would not (cut-off or malformed responses). Like the
//! upstream suite's mock it answers 204 with `X-Prometheus-Remote-Write-*-Written` headers
//! counted from the request, unless the case scripts other answers.
//!
//! Every request of every case goes through the upstream validators' checks (method,
//! headers, snappy block format, protobuf, symbols table, label rules, sample order), and
//! the samples received must equal, bit for bit, the samples appended. Cases about
//! behaviour (retries, backoff, fall-back, answers) have their own scenario. Every JSON case
//! must be named in [`scenario`], so a case added to the catalogue fails here until it is
//! reproduced. A MUST case must pass. A SHOULD or RECOMMENDED case must pass or be
//! [`Scenario::NotMet`] with its reason, and then be listed by name in
//! `docs/COMPATIBILITY.md`; where a not-met case can be checked, the check runs and must
//! still fail, so a case that starts passing is noticed.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fedwatch_model::selfmetrics::Registry;
use fedwatch_model::textparse::{Format, parse_samples};
use fedwatch_model::{Labels, Sample, TimeSeries};
use fedwatch_tsdb::Appender as _;
use fedwatch_wire::forward::{WalForwarder, WalForwarderOptions};
use fedwatch_wire::{ForwarderConfig, WireProtocol};
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/v2_full.rs"]
mod full;

const V2_CONTENT_TYPE: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
const INSTANCE: &str = "scrape-target:9100";

// ---------------------------------------------------------------------------------------
// The catalogue

#[derive(serde::Deserialize)]
struct Group {
    test: String,
    description: Option<String>,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize, Clone)]
struct Case {
    name: String,
    rfc_level: Option<String>,
    description: Option<String>,
    scrape_data: Option<String>,
}

fn shared_dir() -> PathBuf {
    if let Ok(d) = std::env::var("FEDWATCH_SHARED") {
        return PathBuf::from(d);
    }
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = dir.join("shared");
        if candidate.join("README.md").is_file() && candidate.join("compliance").is_dir() {
            return candidate;
        }
        assert!(dir.pop(), "no shared/ directory above {}", env!("CARGO_MANIFEST_DIR"));
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What a case does and how it is judged.
#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// The case's exposition (or generated data) sent to a 204 receiver; all checks.
    Send(Data),
    /// The receiver answers `status` twice, then accepts: the request must be retried.
    Retried(u16),
    /// The receiver answers `status`: the request must not be retried.
    NotRetried(u16),
    /// 503 eight times: delays at least double from min_backoff and stay under max_backoff.
    Backoff,
    /// A 1.0-only receiver (415 to 2.0): fall back, send 1.0, remember it.
    Fallback,
    /// Several batches to a 2.0 receiver: never a 1.0 request.
    NoFallbackOn2xx,
    /// 1.0 configured: 1.0 headers and a body a 1.0 receiver decodes.
    V1,
    /// A scripted answer (see [`Answer`]) and what the counters must then say.
    Answer(Answer),
    /// A transport failure, then a good answer: the batch is retried and delivered and the
    /// sender goes on to the next batch.
    Transport(Transport),
    /// A host that does not resolve: retried, no crash.
    DnsFailure,
    /// An ftp:// URL: refused when the forwarder is built.
    BadScheme,
    /// A series appended over many appends: the receiver sees its samples in order.
    Ordering,
    /// Passes because we never send the feature the case is about; the generic checks
    /// still verify that none is sent malformed.
    Vacuous(&'static str),
    /// A SHOULD/RECOMMENDED/MAY we do not meet, with the reason (and, for SHOULD and
    /// RECOMMENDED, an entry in docs/COMPATIBILITY.md). `check` runs and must fail.
    NotMet { reason: &'static str, check: Option<Check> },
}

#[derive(Clone, Copy, Debug)]
enum Data {
    /// The case's `scrape_data`.
    Scrape,
    HugeLabelValue,
    LongMetricName,
    FutureTimestamp,
    ManySeries(usize),
    StaleMarker,
}

#[derive(Clone, Copy, Debug)]
enum Answer {
    /// 200 with a body that is not protobuf.
    OkWithBody,
    Ok200,
    NoContent204,
    /// 204 saying one sample fewer was written.
    WrittenShort,
    /// 400 saying all but one were written.
    PartialWrite400,
    /// 400 without written headers.
    Refused400NoHeaders,
    /// 400 with a multi-line, non-ASCII body that must appear verbatim in the log.
    LogVerbatim,
    /// 400 with a 1 MiB body.
    LargeErrorBody,
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    ConnectionRefused,
    Timeout,
    CutOffResponse,
    Malformed,
    InvalidStatus,
    EmptyResponse,
    ServerErrors,
    LargeErrorBody,
    RobustUnderLoad,
}

#[derive(Clone, Copy, Debug)]
enum Check {
    MetadataSent,
}

const NO_METADATA: &str = "no tier stores metric metadata (TYPE/HELP/UNIT are not in the WAL), so the forwarder has none to send";
const NO_EXEMPLARS: &str = "Fedwatch stores float samples only: exemplars are not kept, so none are forwarded";
const NO_HISTOGRAMS: &str = "Fedwatch stores float samples only: no native histograms to send (classic histograms go as float series)";
const NO_START_TS: &str = "the store keeps no start (created) timestamps, so start_timestamp is always 0 (unset)";

/// Cases fully judged by sending their exposition and the per-request checks.
const SCRAPE_AND_CHECK: &[&str] = &[
    "multiple_series_per_request",
    "handles_varying_cardinality",
    "efficient_symbol_reuse",
    "multiple_metric_types",
    "high_cardinality_labels",
    "complete_metric_family",
    "real_world_scenario",
    "empty_scrape",
    "unicode_in_labels",
    "special_float_combinations",
    "zero_timestamp",
    "metric_name_with_colons",
    "mixed_sample_and_histogram_families",
    // Classic histograms (text format) are float series: _bucket, _sum and _count.
    "native_histogram_structure",
    "histogram_count_present",
    "histogram_sum_present",
    "histogram_buckets_ordered",
    "histogram_timestamp",
    "histogram_empty_buckets",
    "histogram_large_counts",
    "label_lexicographic_ordering",
    "metric_name_label_present",
    "metric_name_format_valid",
    "label_name_format_valid",
    "no_duplicate_label_names",
    "label_names_not_empty",
    "label_values_may_be_empty",
    "reserved_label_prefix",
    "unicode_in_label_values",
    "special_chars_in_label_values",
    "very_long_label_names",
    "very_long_label_values",
    "many_labels_per_series",
    "content_type_protobuf",
    "content_type_with_proto_param",
    "content_encoding_snappy",
    "version_header_present",
    "version_header_value",
    "user_agent_present",
    "snappy_block_format",
    "protobuf_parseable",
    "float_value_encoding",
    "integer_value_encoding",
    "zero_value_encoding",
    "negative_value_encoding",
    "positive_infinity_encoding",
    "negative_infinity_encoding",
    "nan_encoding",
    "timestamp_milliseconds_format",
    "timestamp_recent",
    "large_float_values",
    "small_float_values",
    "scientific_notation",
    "precision_preservation",
    "job_instance_labels_present",
    "empty_string_at_index_zero",
    "string_deduplication",
    "labels_refs_valid_indices",
    "labels_refs_even_length",
    "timestamp_int64_milliseconds",
    "timestamp_precision",
    "timestamp_future_values",
];

/// The scenario of every case in the catalogue, by name (a test with no cases goes by its
/// test name). `None` fails the test: a new case needs a decision.
fn scenario(name: &str) -> Option<Scenario> {
    use Scenario::*;
    let not_met = |reason| NotMet { reason, check: None };
    Some(match name {
        "exponential_backoff_on_retries" | "backoff_required" | "backoff_max_delay" => Backoff,
        "backoff_with_jitter" => not_met("retry delays are exactly min_backoff × 2^n (capped), without jitter"),
        "huge_label_values" => Send(Data::HugeLabelValue),
        "very_long_metric_name" => Send(Data::LongMetricName),
        "future_timestamp" => Send(Data::FutureTimestamp),
        "many_timeseries" | "batch_size_reasonable" => Send(Data::ManySeries(5000)),
        "high_cardinality" => Send(Data::ManySeries(2000)),
        "stale_marker" => Send(Data::StaleMarker),
        "TestConcurrentRequests" => Send(Data::ManySeries(3000)),
        "TestRobustnessUnderLoad" => Transport(self::Transport::RobustUnderLoad),
        "samples_with_metadata"
        | "mixed_labels_and_metadata"
        | "metadata_batching"
        | "metadata_type_counter"
        | "metadata_type_gauge"
        | "metadata_type_histogram"
        | "metadata_type_summary"
        | "metadata_help_text"
        | "metadata_help_with_newlines"
        | "metadata_help_with_special_chars"
        | "metadata_consistent_across_series" => NotMet {
            reason: NO_METADATA,
            check: Some(Check::MetadataSent),
        },
        "metadata_unit" | "rw1_metadata_handling" => not_met(NO_METADATA),
        "metadata_help_refs_valid" | "metadata_empty_help_allowed" => Vacuous(NO_METADATA),
        "samples_with_exemplars"
        | "histogram_with_metadata_and_exemplars"
        | "exemplar_with_trace_id"
        | "exemplar_with_span_id"
        | "exemplar_custom_labels"
        | "exemplar_on_histogram"
        | "multiple_exemplars_per_series" => not_met(NO_EXEMPLARS),
        "exemplar_value_valid" | "exemplar_timestamp_valid" | "exemplar_labels_valid_refs" | "exemplar_labels_even_length" => {
            Vacuous(NO_EXEMPLARS)
        }
        "histogram_positive_buckets" | "histogram_negative_buckets" | "histogram_zero_bucket" => not_met(NO_HISTOGRAMS),
        "histogram_schema" | "histogram_no_mixed_with_samples" | "rw1_no_native_histograms" => Vacuous(NO_HISTOGRAMS),
        "start_timestamp_for_counters" | "start_timestamp_for_histograms" => not_met(NO_START_TS),
        "start_timestamp_zero_handling" | "start_timestamp_before_sample_timestamp" | "rw1_no_start_timestamp" => Vacuous(NO_START_TS),
        "fallback_on_415_unsupported_media_type"
        | "retry_with_different_version"
        | "fallback_header_changes"
        | "accept_success_after_fallback"
        | "persistent_fallback_choice"
        | "TestContentTypeNegotiation" => Fallback,
        "TestNoFallbackOn2xx" => NoFallbackOn2xx,
        "rw1_version_header"
        | "rw1_content_type"
        | "rw1_samples_encoding"
        | "rw1_labels_encoding"
        | "rw1_symbol_table_not_used"
        | "TestRemoteWrite1Configuration" => V1,
        "ignore_response_body_on_success" => Answer(self::Answer::OkWithBody),
        "process_written_count_headers" => Answer(self::Answer::WrittenShort),
        "handle_partial_write_response" => Answer(self::Answer::PartialWrite400),
        "handle_missing_written_headers" => Answer(self::Answer::Refused400NoHeaders),
        "log_error_messages_verbatim" => Answer(self::Answer::LogVerbatim),
        "handle_large_error_body" => Answer(self::Answer::LargeErrorBody),
        "handle_204_no_content" => Answer(self::Answer::NoContent204),
        "handle_200_ok" => Answer(self::Answer::Ok200),
        "no_retry_on_400" => NotRetried(400),
        "no_retry_on_401" => NotRetried(401),
        "no_retry_on_404" => NotRetried(404),
        "no_retry_on_413" => NotRetried(413),
        "may_retry_on_429" => Retried(429),
        "retry_on_500" => Retried(500),
        "retry_on_502" => Retried(502),
        "retry_on_503" => Retried(503),
        "retry_on_504" => Retried(504),
        "handle_connection_refused" => Transport(self::Transport::ConnectionRefused),
        "handle_timeout" => Transport(self::Transport::Timeout),
        "handle_partial_write" => Transport(self::Transport::CutOffResponse),
        "handle_malformed_response" => Transport(self::Transport::Malformed),
        "handle_invalid_status_code" => Transport(self::Transport::InvalidStatus),
        "handle_empty_response" => Transport(self::Transport::EmptyResponse),
        "sender_continues_after_errors" => Transport(self::Transport::ServerErrors),
        "handle_large_error_response" => Transport(self::Transport::LargeErrorBody),
        "dns_resolution_failure" => DnsFailure,
        "invalid_url_scheme" => BadScheme,
        "TestSampleOrdering" | "timestamp_ordering_within_series" | "multiple_samples_same_series" => Ordering,
        "TestHTTPMethod" | "TestSymbolTableEfficiency" => Send(Data::Scrape),
        n if SCRAPE_AND_CHECK.contains(&n) => Send(Data::Scrape),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// The mock receiver

/// One captured request.
#[derive(Clone, Debug)]
struct Captured {
    at: Instant,
    method: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Captured {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
    fn is_v2(&self) -> bool {
        self.header("content-type").contains("proto=io.prometheus.write.v2.Request")
    }
}

/// A scripted answer; after the script the receiver accepts.
#[derive(Clone, Debug)]
enum Reply {
    Status {
        code: u16,
        body: String,
        /// Samples written, relative to those in the request (`None`: no header).
        written_less: Option<usize>,
    },
    /// Bytes written as the whole answer, then the connection closes.
    Raw(&'static str),
    /// Waits this long, then answers as after the script.
    Stall(Duration),
}

#[derive(Default)]
struct Mock {
    requests: Mutex<Vec<Captured>>,
    script: Mutex<VecDeque<Reply>>,
    /// Answer 415 to every 2.0 request, as a 1.0-only receiver should.
    v1_only: bool,
}

impl Mock {
    fn requests(&self) -> Vec<Captured> {
        self.requests.lock().expect("lock").clone()
    }
}

async fn start_mock(script: Vec<Reply>, v1_only: bool) -> (Arc<Mock>, String) {
    let mock = Arc::new(Mock {
        requests: Mutex::new(Vec::new()),
        script: Mutex::new(script.into()),
        v1_only,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/api/v1/write", listener.local_addr().expect("addr"));
    let m = mock.clone();
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else { return };
            let m = m.clone();
            tokio::spawn(async move {
                let _ = serve_conn(conn, &m).await;
            });
        }
    });
    (mock, url)
}

/// Reads one request, records it and answers; one request per connection.
async fn serve_conn(mut conn: tokio::net::TcpStream, m: &Mock) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let method = lines.next().unwrap_or("").split(' ').next().unwrap_or("").to_string();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let captured = Captured {
        at: Instant::now(),
        method,
        headers,
        body: buf[head_end..].to_vec(),
    };
    let samples = count_samples(&captured);
    let v2 = captured.is_v2();
    m.requests.lock().expect("lock").push(captured);
    let reply = if m.v1_only && v2 {
        Some(Reply::Status {
            code: 415,
            body: "unsupported content type: only prometheus.WriteRequest is accepted".into(),
            written_less: None,
        })
    } else {
        m.script.lock().expect("lock").pop_front()
    };
    let accept = |code: u16, body: &str, written_less: Option<usize>| {
        let mut out = format!(
            "HTTP/1.1 {code} {}\r\nconnection: close\r\ncontent-length: {}\r\n",
            reason(code),
            body.len()
        );
        if let (Some(less), true) = (written_less, v2) {
            let w = samples.saturating_sub(less);
            out.push_str(&format!(
                "x-prometheus-remote-write-samples-written: {w}\r\nx-prometheus-remote-write-histograms-written: 0\r\nx-prometheus-remote-write-exemplars-written: 0\r\n"
            ));
        }
        out.push_str("\r\n");
        out.push_str(body);
        out
    };
    let out = match reply {
        None => accept(204, "", Some(0)),
        Some(Reply::Stall(d)) => {
            tokio::time::sleep(d).await;
            accept(204, "", Some(0))
        }
        Some(Reply::Status { code, body, written_less }) => accept(code, &body, written_less),
        Some(Reply::Raw(raw)) => raw.to_string(),
    };
    conn.write_all(out.as_bytes()).await?;
    conn.shutdown().await
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn count_samples(c: &Captured) -> usize {
    match decode(c) {
        Ok(series) => series.iter().map(|s| s.samples.len()).sum(),
        Err(_) => 0,
    }
}

/// The series of a captured request, 2.0 or 1.0 by its Content-Type.
fn decode(c: &Captured) -> Result<Vec<TimeSeries>, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&c.body)
        .map_err(|e| format!("not snappy block format: {e}"))?;
    if c.is_v2() {
        let req = full::Request::decode(raw.as_slice()).map_err(|e| format!("not a v2 Request: {e}"))?;
        let sym = |r: u32| req.symbols.get(r as usize).cloned().unwrap_or_default();
        Ok(req
            .timeseries
            .iter()
            .map(|ts| TimeSeries {
                labels: Labels::from_pairs(ts.labels_refs.chunks(2).map(|p| (sym(p[0]), sym(*p.get(1).unwrap_or(&0))))),
                samples: ts
                    .samples
                    .iter()
                    .map(|s| Sample {
                        t: s.timestamp,
                        v: s.value,
                    })
                    .collect(),
            })
            .collect())
    } else {
        let req = fedwatch_wire::prompb::WriteRequest::decode(raw.as_slice()).map_err(|e| format!("not a v1 WriteRequest: {e}"))?;
        Ok(fedwatch_wire::codec::from_proto(req).series)
    }
}

/// The upstream validators' per-request checks; the first failure.
fn check_request(c: &Captured, want_v2: bool) -> Result<(), String> {
    if c.method != "POST" {
        return Err(format!("method {}", c.method));
    }
    let ct = c.header("content-type");
    if !ct.starts_with("application/x-protobuf") {
        return Err(format!("content-type {ct:?}"));
    }
    if c.header("content-encoding") != "snappy" {
        return Err(format!("content-encoding {:?}", c.header("content-encoding")));
    }
    if c.header("user-agent").is_empty() {
        return Err("no user-agent".into());
    }
    let (want_ct, want_version) = if want_v2 {
        (V2_CONTENT_TYPE, "2.0.0")
    } else {
        ("application/x-protobuf", "0.1.0")
    };
    if ct != want_ct {
        return Err(format!("content-type {ct:?}, want {want_ct:?}"));
    }
    let version = c.header("x-prometheus-remote-write-version");
    if version != want_version {
        return Err(format!("version header {version:?}, want {want_version:?}"));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&c.body)
        .map_err(|e| format!("not snappy block format: {e}"))?;
    if !want_v2 {
        let req = fedwatch_wire::prompb::WriteRequest::decode(raw.as_slice()).map_err(|e| format!("not a v1 WriteRequest: {e}"))?;
        let decoded = fedwatch_wire::codec::from_proto(req);
        if let Some(bad) = decoded.invalid.first() {
            return Err(bad.to_string());
        }
        return check_series_labels(
            decoded
                .series
                .iter()
                .map(|s| s.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect()),
        );
    }
    let req = full::Request::decode(raw.as_slice()).map_err(|e| format!("not a v2 Request: {e}"))?;
    if req.symbols.first().map(String::as_str) != Some("") {
        return Err("symbols[0] is not the empty string".into());
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = req.symbols.iter().find(|s| !seen.insert(s.as_str())) {
        return Err(format!("symbol {dup:?} appears twice"));
    }
    let refs_ok = |refs: &[u32]| refs.len() % 2 == 0 && refs.iter().all(|&r| (r as usize) < req.symbols.len());
    let mut label_sets = Vec::new();
    for (i, ts) in req.timeseries.iter().enumerate() {
        if !refs_ok(&ts.labels_refs) {
            return Err(format!("timeseries[{i}]: labels_refs {:?} odd or out of range", ts.labels_refs));
        }
        if ts.samples.is_empty() == ts.histograms.is_empty() {
            return Err(format!("timeseries[{i}]: needs samples or histograms, not both or neither"));
        }
        if ts.samples.windows(2).any(|w| w[0].timestamp >= w[1].timestamp) {
            return Err(format!("timeseries[{i}]: samples not in timestamp order"));
        }
        if let Some(e) = ts.exemplars.iter().find(|e| !refs_ok(&e.labels_refs)) {
            return Err(format!("timeseries[{i}]: exemplar refs {:?}", e.labels_refs));
        }
        if let Some(md) = &ts.metadata
            && !refs_ok(&[md.help_ref, md.unit_ref])
        {
            return Err(format!("timeseries[{i}]: metadata refs out of range"));
        }
        if ts.created_timestamp != 0 {
            return Err(format!("timeseries[{i}]: created_timestamp set, but we keep none"));
        }
        label_sets.push(
            ts.labels_refs
                .chunks(2)
                .map(|p| (req.symbols[p[0] as usize].clone(), req.symbols[p[1] as usize].clone()))
                .collect::<Vec<_>>(),
        );
    }
    check_series_labels(label_sets.into_iter())
}

/// Sorted, unique, non-empty names; no empty values; a valid `__name__`; valid names.
fn check_series_labels(sets: impl Iterator<Item = Vec<(String, String)>>) -> Result<(), String> {
    for labels in sets {
        if labels.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(format!("labels not sorted or repeated: {labels:?}"));
        }
        if labels.iter().any(|(n, v)| n.is_empty() || v.is_empty()) {
            return Err(format!("empty label name or value: {labels:?}"));
        }
        let Some((_, name)) = labels.iter().find(|(n, _)| n == "__name__") else {
            return Err(format!("no __name__: {labels:?}"));
        };
        let metric_ok = name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if !metric_ok {
            return Err(format!("metric name {name:?}"));
        }
        for (n, _) in &labels {
            let ok = n
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
            if !ok {
                return Err(format!("label name {n:?}"));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The sender under test

struct Sender {
    _dir: TempDir,
    db: Arc<fedwatch_tsdb::Db>,
    fwd: WalForwarder,
    registry: Registry,
    url: String,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

static NEXT_DIR: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn fast_config(url: &str, protocol: WireProtocol) -> ForwarderConfig {
    let mut c = ForwarderConfig::new(url);
    c.protocol = protocol;
    c.batch_send_deadline = Duration::from_millis(20);
    c.min_backoff = MIN_BACKOFF;
    c.max_backoff = MAX_BACKOFF;
    c.timeout = Duration::from_secs(5);
    c
}

const MIN_BACKOFF: Duration = Duration::from_millis(40);
const MAX_BACKOFF: Duration = Duration::from_millis(160);

fn start_sender(cfg: ForwarderConfig) -> Sender {
    let dir = std::env::temp_dir().join(format!(
        "fedwatch-sender-compliance-{}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = fedwatch_tsdb::DbOptions {
        fsync: fedwatch_tsdb::FsyncPolicy::Never,
        block_duration: None,
        ..Default::default()
    };
    let db = Arc::new(fedwatch_tsdb::Db::open(dir.join("data"), opts).expect("open db"));
    let mut wal = WalForwarderOptions::new(dir.join("forward"));
    wal.poll_interval = Duration::from_millis(10);
    let registry = Registry::new();
    let url = cfg.url.clone();
    let fwd = WalForwarder::spawn(cfg, db.clone(), wal, &registry).expect("spawn forwarder");
    Sender {
        _dir: TempDir(dir),
        db,
        fwd,
        registry,
        url,
    }
}

impl Sender {
    fn counter(&self, name: &str) -> u64 {
        self.registry.counter(name, "", &[("url", &self.url)]).get()
    }
    fn sent(&self) -> u64 {
        self.counter("fedwatch_forward_samples_sent_total")
    }
    fn failed(&self) -> u64 {
        self.counter("fedwatch_forward_samples_failed_total")
    }
    fn append(&self, series: &[TimeSeries]) -> u64 {
        self.db.append(series).expect("append");
        series.iter().map(|s| s.samples.len() as u64).sum()
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The case's samples as a scrape of it would store them.
fn scrape(case: &Case, data: Data) -> Vec<TimeSeries> {
    let now = now_ms();
    let with_target = |labels: &[(&str, &str)]| {
        let mut pairs: Vec<(String, String)> = labels.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        pairs.push(("job".into(), "test".into()));
        pairs.push(("instance".into(), INSTANCE.into()));
        Labels::from_pairs(pairs)
    };
    let one = |labels: Labels, t: i64, v: f64| TimeSeries {
        labels,
        samples: vec![Sample { t, v }],
    };
    match data {
        Data::Scrape => {
            let mut text = case.scrape_data.clone().unwrap_or_else(|| "test_metric 42\n".into());
            if !text.ends_with('\n') {
                text.push('\n');
            }
            let format = if text.contains("# {") {
                text.push_str("# EOF\n");
                Format::OpenMetrics
            } else {
                Format::Text
            };
            let parsed =
                parse_samples(text.as_bytes(), format).unwrap_or_else(|e| panic!("{}: scrape data does not parse: {e}", case.name));
            let mut seen = std::collections::HashSet::new();
            parsed
                .into_iter()
                .map(|p| {
                    let mut b = p.labels.builder();
                    b.set("job", "test");
                    b.set("instance", INSTANCE);
                    one(b.build(), p.timestamp_ms.unwrap_or(now), p.value)
                })
                // A series twice in one scrape: the store keeps the first, as Prometheus's does.
                .filter(|ts| seen.insert(ts.labels.clone()))
                .collect()
        }
        Data::HugeLabelValue => vec![one(
            with_target(&[("__name__", "test_metric"), ("big", &"v".repeat(12 * 1024))]),
            now,
            1.0,
        )],
        Data::LongMetricName => vec![one(
            with_target(&[("__name__", &format!("m_{}", "long_name_".repeat(40)))]),
            now,
            1.0,
        )],
        Data::FutureTimestamp => vec![one(with_target(&[("__name__", "test_metric")]), now + 5 * 60 * 1000, 42.0)],
        Data::ManySeries(n) => (0..n)
            .map(|i| {
                one(
                    with_target(&[("__name__", "many_series"), ("id", &format!("series-{i}"))]),
                    now,
                    i as f64,
                )
            })
            .collect(),
        Data::StaleMarker => {
            // "StaleNaN" is not a value the exposition formats have (Prometheus's parser
            // refuses it too); what a scrape writes is the stale marker when a series is gone.
            let labels = with_target(&[("__name__", "test_metric")]);
            vec![TimeSeries {
                labels,
                samples: vec![
                    Sample { t: now - 1000, v: 42.0 },
                    Sample {
                        t: now,
                        v: fedwatch_model::stale_nan(),
                    },
                ],
            }]
        }
    }
}

/// Every sample as (labels, t, value bits), sorted.
fn flat(series: &[TimeSeries]) -> Vec<(String, i64, u64)> {
    let mut out: Vec<(String, i64, u64)> = series
        .iter()
        .flat_map(|s| s.samples.iter().map(move |x| (s.labels.to_string(), x.t, x.v.to_bits())))
        .collect();
    out.sort();
    out
}

async fn eventually(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let until = Instant::now() + deadline;
    while !cond() {
        if Instant::now() > until {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

const WAIT: Duration = Duration::from_secs(30);

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

/// The requests' samples equal the appended ones, every request passes the checks.
fn check_delivery(requests: &[Captured], appended: &[TimeSeries], v2: bool) -> Result<(), String> {
    let mut got = Vec::new();
    for (i, c) in requests.iter().enumerate() {
        check_request(c, v2).map_err(|e| format!("request {i}: {e}"))?;
        got.extend(decode(c)?);
    }
    // Retried requests repeat samples; receivers ignore identical ones, so compare sets.
    let (mut got, mut want) = (flat(&got), flat(appended));
    got.dedup();
    want.dedup();
    if got != want {
        let shown = |v: &[(String, i64, u64)]| v.iter().take(4).map(|x| format!("{x:?}")).collect::<Vec<_>>().join(", ");
        return Err(format!(
            "received {} samples [{}...], appended {} [{}...]",
            got.len(),
            shown(&got),
            want.len(),
            shown(&want)
        ));
    }
    Ok(())
}

/// Sends `series` through a fresh sender to a fresh receiver and waits until delivered.
async fn send_and_collect(series: &[TimeSeries], protocol: WireProtocol) -> Result<Vec<Captured>, String> {
    let (mock, url) = start_mock(vec![], false).await;
    let s = start_sender(fast_config(&url, protocol));
    let n = s.append(series);
    eventually("delivery", WAIT, || s.sent() >= n).await?;
    let _ = s.fwd.shutdown(Duration::from_secs(5)).await;
    Ok(mock.requests())
}

async fn run_case(case: Case, sc: Scenario, logs: Arc<Mutex<Vec<u8>>>) -> Result<(), String> {
    let v2 = WireProtocol::V2;
    match sc {
        Scenario::Send(data) => {
            let series = scrape(&case, data);
            let requests = send_and_collect(&series, v2).await?;
            check_delivery(&requests, &series, true)?;
            if matches!(data, Data::ManySeries(_)) {
                for c in &requests {
                    let n = decode(c)?.len();
                    ensure(n <= 10_000, || format!("a request of {n} series"))?;
                }
            }
            if case.name == "timestamp_recent" {
                let now = now_ms();
                for ts in requests.iter().flat_map(|c| decode(c).unwrap_or_default()) {
                    ensure(ts.samples.iter().all(|x| (now - x.t).abs() < 60_000), || {
                        format!("old timestamp in {}", ts.labels)
                    })?;
                }
            }
            Ok(())
        }
        Scenario::Vacuous(_) => {
            let series = scrape(&case, Data::Scrape);
            let requests = send_and_collect(&series, v2).await?;
            check_delivery(&requests, &series, true)
        }
        Scenario::NotMet { check, .. } => {
            let Some(check) = check else { return Err("not met".into()) };
            match check {
                Check::MetadataSent => {
                    let series = scrape(&case, Data::Scrape);
                    let requests = send_and_collect(&series, v2).await?;
                    check_delivery(&requests, &series, true)?;
                    let mut any = false;
                    for c in &requests {
                        let raw = snap::raw::Decoder::new().decompress_vec(&c.body).map_err(|e| e.to_string())?;
                        let req = full::Request::decode(raw.as_slice()).map_err(|e| e.to_string())?;
                        any |= req
                            .timeseries
                            .iter()
                            .any(|ts| ts.metadata.as_ref().is_some_and(|m| m.r#type != 0 || m.help_ref != 0));
                    }
                    if any {
                        Ok(())
                    } else {
                        Err("not met: no metadata in any request".into())
                    }
                }
            }
        }
        Scenario::Backoff => {
            let gaps = backoff_gaps(&case).await?;
            for (i, g) in gaps.iter().enumerate() {
                let floor = MIN_BACKOFF.saturating_mul(1 << i.min(2)).min(MAX_BACKOFF);
                ensure(*g >= floor, || format!("retry {i} after {g:?}, less than {floor:?}: {gaps:?}"))?;
                // An uncapped doubling would reach 5 s by the eighth retry.
                ensure(*g < MAX_BACKOFF + Duration::from_millis(2500), || {
                    format!("retry {i} after {g:?}: not capped: {gaps:?}")
                })?;
            }
            Ok(())
        }
        Scenario::Retried(code) | Scenario::NotRetried(code) => {
            let retried = matches!(sc, Scenario::Retried(_));
            let script = (0..if retried { 2 } else { 1 })
                .map(|_| Reply::Status {
                    code,
                    body: format!("scripted {code}"),
                    written_less: None,
                })
                .collect();
            let (mock, url) = start_mock(script, false).await;
            let s = start_sender(fast_config(&url, v2));
            let series = scrape(&case, Data::Scrape);
            let n = s.append(&series);
            if retried {
                eventually("delivery after retries", WAIT, || s.sent() >= n).await?;
                let requests = mock.requests();
                ensure(requests.len() >= 3, || format!("{} requests", requests.len()))?;
                ensure(requests[0].body == requests[2].body, || "the retry is not the same request".into())?;
                check_delivery(&requests[2..], &series, true)?;
            } else {
                eventually("refusal counted", WAIT, || s.failed() >= n).await?;
                tokio::time::sleep(MAX_BACKOFF * 5).await;
                let requests = mock.requests();
                ensure(requests.len() == 1, || format!("{} requests after a {code}", requests.len()))?;
                ensure(s.sent() == 0, || "counted as sent".into())?;
            }
            let _ = s.fwd.shutdown(Duration::from_secs(1)).await;
            Ok(())
        }
        Scenario::Fallback => {
            let (mock, url) = start_mock(vec![], true).await;
            let s = start_sender(fast_config(&url, v2));
            let first = scrape(&case, Data::Scrape);
            let n1 = s.append(&first);
            eventually("delivery after fall-back", WAIT, || s.sent() >= n1).await?;
            let second: Vec<TimeSeries> = first
                .iter()
                .map(|ts| TimeSeries {
                    labels: ts.labels.clone(),
                    samples: ts.samples.iter().map(|x| Sample { t: x.t + 1000, v: x.v }).collect(),
                })
                .collect();
            let n2 = s.append(&second);
            eventually("second batch", WAIT, || s.sent() >= n1 + n2).await?;
            let requests = mock.requests();
            ensure(requests[0].is_v2(), || "the first request is not 2.0".into())?;
            ensure(requests.iter().filter(|c| c.is_v2()).count() == 1, || {
                "2.0 sent again after the 415".into()
            })?;
            check_delivery(&requests[1..], &[first, second].concat(), false)?;
            ensure(s.failed() == 0, || "samples counted as failed".into())?;
            ensure(s.counter("fedwatch_forward_protocol_fallbacks_total") == 1, || {
                "fall-back not counted".into()
            })?;
            Ok(())
        }
        Scenario::NoFallbackOn2xx => {
            let (mock, url) = start_mock(vec![], false).await;
            let s = start_sender(fast_config(&url, v2));
            let mut all = Vec::new();
            for round in 0..3i64 {
                let batch = vec![TimeSeries {
                    labels: Labels::from_pairs([("__name__", "m"), ("job", "test")]),
                    samples: vec![Sample { t: 1000 + round, v: 1.0 }],
                }];
                let n = s.append(&batch);
                all.extend(batch);
                eventually("delivery", WAIT, || s.sent() >= (round as u64 + 1) * n).await?;
            }
            check_delivery(&mock.requests(), &all, true)
        }
        Scenario::V1 => {
            let series = scrape(&case, Data::Scrape);
            let requests = send_and_collect(&series, WireProtocol::V1).await?;
            check_delivery(&requests, &series, false)
        }
        Scenario::Answer(a) => {
            let status = |code: u16, body: &str, written_less: Option<usize>| Reply::Status {
                code,
                body: body.to_string(),
                written_less,
            };
            let verbatim = "sample rejected: \"out of order\" for series {ünï=\"çødé\"}\n\tsecond line stays";
            let big = "E".repeat(1 << 20);
            let (reply, sent_less, failed) = match a {
                Answer::OkWithBody => (status(200, "this is not protobuf \u{0}\u{1}", Some(0)), 0, 0),
                Answer::Ok200 => (status(200, "", Some(0)), 0, 0),
                Answer::NoContent204 => (status(204, "", Some(0)), 0, 0),
                Answer::WrittenShort => (status(204, "", Some(1)), 1, 0),
                Answer::PartialWrite400 => (status(400, "1 sample was rejected", Some(1)), 1, 1),
                Answer::Refused400NoHeaders => (status(400, "all rejected", None), usize::MAX, usize::MAX),
                Answer::LogVerbatim => (status(400, verbatim, None), usize::MAX, usize::MAX),
                Answer::LargeErrorBody => (status(400, &big, None), usize::MAX, usize::MAX),
            };
            let (mock, url) = start_mock(vec![reply], false).await;
            let mut cfg = fast_config(&url, v2);
            // One request carries the whole case, so the scripted answer is about all of it.
            cfg.shards = 1;
            let s = start_sender(cfg);
            let series = scrape(&case, Data::Scrape);
            let n = s.append(&series) as usize;
            let want_sent = n.saturating_sub(sent_less) as u64;
            let want_failed = if failed == usize::MAX { n } else { failed } as u64;
            let not_written = || s.counter("fedwatch_forward_samples_not_written_total");
            eventually("the answer counted", WAIT, || s.sent() + s.failed() + not_written() >= n as u64).await?;
            ensure((s.sent(), s.failed()) == (want_sent, want_failed), || {
                format!("sent {} failed {}, want {want_sent} {want_failed}", s.sent(), s.failed())
            })?;
            if matches!(a, Answer::WrittenShort) {
                ensure(s.counter("fedwatch_forward_samples_not_written_total") == 1, || {
                    "short write not counted".into()
                })?;
            }
            if matches!(a, Answer::LogVerbatim) {
                let text = String::from_utf8_lossy(&logs.lock().expect("lock")).to_string();
                ensure(text.contains(verbatim), || "the error body is not in the log as sent".into())?;
            }
            ensure(mock.requests().len() == 1, || format!("{} requests", mock.requests().len()))?;
            // And the sender goes on.
            let later = vec![TimeSeries {
                labels: Labels::from_pairs([("__name__", "after"), ("job", "test")]),
                samples: vec![Sample { t: now_ms(), v: 1.0 }],
            }];
            s.append(&later);
            eventually("the next batch", WAIT, || s.sent() > want_sent).await?;
            Ok(())
        }
        Scenario::Transport(t) => run_transport(&case, t).await,
        Scenario::DnsFailure => {
            let s = start_sender(fast_config("http://fedwatch-no-such-host.invalid:9/api/v1/write", v2));
            let n = s.append(&scrape(&case, Data::Scrape));
            eventually("retries", WAIT, || s.counter("fedwatch_forward_samples_retried_total") >= 2 * n).await?;
            ensure(s.fwd.shutdown(Duration::from_millis(200)).await.is_err(), || {
                "nothing can have been delivered".into()
            })
        }
        Scenario::BadScheme => {
            let dir = std::env::temp_dir().join(format!("fedwatch-sender-ftp-{}", std::process::id()));
            let db = Arc::new(fedwatch_tsdb::Db::open(dir.join("data"), Default::default()).map_err(|e| e.to_string())?);
            let got = WalForwarder::spawn(
                fast_config("ftp://upstream/write", v2),
                db,
                WalForwarderOptions::new(dir.join("f")),
                &Registry::new(),
            );
            let _ = std::fs::remove_dir_all(&dir);
            match got {
                Err(e) => ensure(e.to_string().contains("scheme \"ftp\""), || e.to_string()),
                Ok(_) => Err("an ftp:// upstream was accepted".into()),
            }
        }
        Scenario::Ordering => {
            let (mock, url) = start_mock(vec![], false).await;
            let mut cfg = fast_config(&url, v2);
            cfg.max_samples_per_send = 7;
            let s = start_sender(cfg);
            let base = now_ms() - 60_000;
            let labels = |n: &str| Labels::from_pairs([("__name__", n), ("job", "test")]);
            let mut appended = Vec::new();
            for i in 0..40i64 {
                let batch: Vec<TimeSeries> = ["metric_a", "metric_b", "metric_c"]
                    .iter()
                    .map(|n| TimeSeries {
                        labels: labels(n),
                        samples: vec![Sample {
                            t: base + i * 1000,
                            v: i as f64,
                        }],
                    })
                    .collect();
                s.append(&batch);
                appended.extend(batch);
            }
            eventually("delivery", WAIT, || s.sent() >= appended.len() as u64).await?;
            let requests = mock.requests();
            check_delivery(&requests, &appended, true)?;
            let mut last: BTreeMap<String, i64> = BTreeMap::new();
            for c in &requests {
                for ts in decode(c)? {
                    for x in &ts.samples {
                        let prev = last.insert(ts.labels.to_string(), x.t);
                        ensure(prev.is_none_or(|p| p < x.t), || format!("{} went back in time", ts.labels))?;
                    }
                }
            }
            Ok(())
        }
    }
}

/// The gaps between the attempts of one request answered 503 eight times.
async fn backoff_gaps(case: &Case) -> Result<Vec<Duration>, String> {
    let script = (0..8)
        .map(|_| Reply::Status {
            code: 503,
            body: "down".into(),
            written_less: None,
        })
        .collect();
    let (mock, url) = start_mock(script, false).await;
    let s = start_sender(fast_config(&url, WireProtocol::V2));
    let n = s.append(&scrape(case, Data::Scrape));
    eventually("delivery after 8 failures", WAIT, || s.sent() >= n).await?;
    let requests = mock.requests();
    ensure(requests.len() == 9, || format!("{} requests for 8 failures", requests.len()))?;
    Ok(requests.windows(2).map(|w| w[1].at.duration_since(w[0].at)).collect())
}

async fn run_transport(case: &Case, t: Transport) -> Result<(), String> {
    let server_error = |code: u16, body: String| Reply::Status {
        code,
        body,
        written_less: None,
    };
    let mut cfg_timeout = Duration::from_secs(5);
    let (script, delivered_first) = match t {
        Transport::ConnectionRefused => (vec![], true),
        Transport::Timeout => {
            cfg_timeout = Duration::from_millis(300);
            (vec![Reply::Stall(Duration::from_millis(1500))], true)
        }
        Transport::CutOffResponse => (vec![Reply::Raw("HTTP/1.1 20")], true),
        Transport::Malformed => (vec![Reply::Raw("THIS IS NOT HTTP\r\n\r\n")], true),
        Transport::InvalidStatus => (
            vec![Reply::Raw(
                "HTTP/1.1 999 Whatever\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )],
            false,
        ),
        Transport::EmptyResponse => (vec![Reply::Raw("")], true),
        Transport::ServerErrors => (vec![server_error(500, "boom".into()), server_error(503, "boom".into())], true),
        Transport::LargeErrorBody => (vec![server_error(500, "E".repeat(1 << 20))], true),
        Transport::RobustUnderLoad => (vec![server_error(503, "busy".into()), server_error(500, "busy".into())], true),
    };
    let (mock, mut url) = start_mock(script, false).await;
    if matches!(t, Transport::ConnectionRefused) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        url = format!("http://{}/api/v1/write", l.local_addr().map_err(|e| e.to_string())?);
        drop(l);
    }
    let mut cfg = fast_config(&url, WireProtocol::V2);
    cfg.timeout = cfg_timeout;
    let s = start_sender(cfg);
    let first = match t {
        Transport::RobustUnderLoad => scrape(case, Data::ManySeries(20_000)),
        _ => scrape(case, Data::Scrape),
    };
    let n = s.append(&first);
    if matches!(t, Transport::ConnectionRefused) {
        eventually("retries", WAIT, || s.counter("fedwatch_forward_samples_retried_total") >= 2 * n).await?;
        return ensure(s.fwd.shutdown(Duration::from_millis(200)).await.is_err(), || {
            "delivered to nobody".into()
        });
    }
    if delivered_first {
        eventually("delivery after the failure", WAIT, || s.sent() >= n).await?;
        ensure(s.counter("fedwatch_forward_samples_retried_total") > 0, || "not retried".into())?;
        check_delivery(&mock.requests(), &first, true)?;
    } else {
        eventually("the refusal counted", WAIT, || s.failed() >= n).await?;
    }
    let second = vec![TimeSeries {
        labels: Labels::from_pairs([("__name__", "after_errors"), ("job", "test")]),
        samples: vec![Sample { t: now_ms(), v: 2.0 }],
    }];
    let before = s.sent();
    s.append(&second);
    eventually("the next batch", WAIT, || s.sent() > before).await?;
    let _ = s.fwd.shutdown(Duration::from_secs(1)).await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The test

/// A `tracing` writer into a shared buffer, to check what the forwarder logs.
#[derive(Clone)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_cases_from_the_compliance_catalogue() {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let writer = LogBuffer(logs.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this test binary");

    let path = shared_dir().join("compliance/remotewrite/sender-cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let groups: Vec<Group> = serde_json::from_str(&text).expect("sender-cases.json parses");
    let compat = std::fs::read_to_string(repo_root().join("docs/COMPATIBILITY.md")).expect("docs/COMPATIBILITY.md");

    let mut cases = Vec::new();
    for g in groups {
        if g.cases.is_empty() {
            // A test without table cases: its description carries the level word.
            let d = g.description.clone().unwrap_or_default();
            let level = ["MUST", "SHOULD", "RECOMMENDED", "MAY"]
                .into_iter()
                .find(|l| d.contains(l))
                .map(String::from);
            cases.push((
                g.test.clone(),
                Case {
                    name: g.test.clone(),
                    rfc_level: level,
                    description: Some(d),
                    scrape_data: None,
                },
            ));
        }
        for c in g.cases {
            cases.push((g.test.clone(), c));
        }
    }
    assert!(cases.len() >= 140, "only {} cases in {}", cases.len(), path.display());

    let mut unknown = Vec::new();
    let mut set = tokio::task::JoinSet::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(6));
    for (test, case) in cases {
        let Some(sc) = scenario(&case.name) else {
            unknown.push(format!("{test}/{}", case.name));
            continue;
        };
        let (gate, logs) = (gate.clone(), logs.clone());
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("gate");
            let result = tokio::time::timeout(Duration::from_secs(90), run_case(case.clone(), sc, logs))
                .await
                .unwrap_or_else(|_| Err("case timed out".into()));
            (test, case, sc, result)
        });
    }
    assert!(
        unknown.is_empty(),
        "cases without a scenario (decide how each is reproduced): {unknown:?}"
    );

    let mut failures = Vec::new();
    let mut table = Vec::new();
    while let Some(done) = set.join_next().await {
        let (test, case, sc, result) = done.expect("case task");
        let level = case.rfc_level.clone().unwrap_or_else(|| "SHOULD".into());
        let id = format!("{test}/{} [{level}]", case.name);
        let verdict = match (&sc, &result) {
            (Scenario::NotMet { reason, .. }, Err(_)) => {
                if level == "MUST" {
                    failures.push(format!("{id}: a MUST case cannot be NotMet ({reason})"));
                } else if level != "MAY" && !compat.contains(&case.name) {
                    failures.push(format!("{id}: not met ({reason}) and not listed in docs/COMPATIBILITY.md"));
                }
                format!("not met: {reason}")
            }
            (Scenario::NotMet { .. }, Ok(())) => {
                failures.push(format!("{id}: passes now; take it off the not-met list"));
                "passes".into()
            }
            (Scenario::Vacuous(why), Ok(())) => format!("pass (vacuous: {why})"),
            (_, Ok(())) => "pass".into(),
            (_, Err(e)) => {
                failures.push(format!("{id}: {e} ({})", case.description.clone().unwrap_or_default()));
                format!("FAIL: {e}")
            }
        };
        table.push(format!("{id}: {verdict}"));
    }
    table.sort();
    println!("{}", table.join("\n"));
    assert!(
        failures.is_empty(),
        "{} sender cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
