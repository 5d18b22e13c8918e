//! The remote_write receiver: `POST /api/v1/write`, 1.0 and 2.0 on the same path.
//!
//! Answers as Prometheus's receiver does, with these choices made explicit:
//! - Content negotiation by `Content-Type` (remote_write 2.0 spec): missing (assumed
//!   `application/x-protobuf`), `application/x-protobuf`, or with `proto=prometheus.WriteRequest`
//!   is 1.0; `proto=io.prometheus.write.v2.Request` is 2.0 (`v2.rs`); any other media type or
//!   proto is 415. `Content-Encoding` may be missing or `snappy`; anything else is 415.
//! - 2.0 answers carry `X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written` on
//!   every answer after negotiation, success or not, with the exact counts written; 1.0
//!   answers do not (a 1.0 sender must not read them, and 1.0 clients of the compliance
//!   suite expect them absent).
//! - Malformed bodies (snappy, protobuf, invalid UTF-8) are 400 with the decoder's message.
//! - Bodies over the limit are 413: checked on the compressed bytes while reading and on
//!   the decompressed size from the snappy header before allocating. Prometheus has no such
//!   limit; 413 is the HTTP status for it, and senders (Prometheus included) do not retry
//!   4xx other than 429, so an oversize batch is dropped at the sender, visibly.
//! - Series with invalid labels (empty name, duplicate name, no `__name__`; for 2.0 also bad
//!   symbol references) are left out, the valid ones are stored, and the answer is 400 naming
//!   the invalid ones, like Prometheus's 2.0 handler: the sender learns of the problem
//!   without losing good data (a partial write, in the 2.0 spec's words).
//! - 2.0 only: native histograms are not stored (Fedwatch keeps float samples), so a request
//!   with any is answered 400 saying how many were not written, after its float samples are
//!   stored. Exemplars are checked and dropped, and counted as written, as Prometheus does
//!   with exemplar storage off. Metadata is skipped unread. Samples the store drops as out of
//!   order or as a different value for an existing timestamp are not written, so a 2.0
//!   answer is 400 saying how many (the spec forbids 2xx when anything was not written).
//! - The store's answer decides the rest: 204 only once [`Appender::append`] returned Ok,
//!   500 on any append error (the sender retries; data is delayed, not lost). For 1.0,
//!   samples the store refuses as out of order or duplicate are counted, not reported.
//! - `append` is synchronous and may touch disk, so it runs on tokio's blocking pool.
//! - Limits ([`IngestLimits`]): series and samples per request refuse the whole request
//!   with 400; label count, name and value length and name validity refuse only the series
//!   concerned, in the same way as invalid labels. The store's own label limits
//!   (`AppendError::LabelLimit`) are treated alike: the named series is taken out, the rest
//!   appended again, and the answer is 400 naming it.
//! - The ingestion budget ([`IngestBudget`], optional) answers 429 with `Retry-After` in
//!   seconds; senders retry 429, so nothing is lost, only delayed.
//! - HA dedupe ([`HaTracker`], optional) runs after the per-series limits: samples from a
//!   standby replica are dropped and counted; a request that brought only such samples is
//!   answered 202 (as Mimir does), any other success 204. For 2.0 they count as written:
//!   they were accepted and deliberately not stored (as Cortex answers).
//! - A tier's `external_labels` are not added here: they are added by the forwarder on the
//!   way up. `ingest_labels` is a hook for labels the receiver must impose (e.g. a tenant);
//!   they overwrite labels of the same name.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use fedwatch_model::selfmetrics::Registry;
use fedwatch_model::{Labels, TimeSeries};
use fedwatch_tsdb::{AppendError, AppendStats, Appender};
use http_body_util::BodyExt as _;

use crate::codec::{
    DEFAULT_MAX_DECOMPRESSED_BYTES, DecodeError, DecodedRequest, InvalidSeries, LabelProblem, decode_write_request_partial,
};
use crate::dedupe::HaTracker;
use crate::limits::{IngestBudget, IngestLimits};
use crate::v2::{V2_PROTO_MESSAGE, decode_v2_request};

/// The path the receiver serves.
pub const WRITE_PATH: &str = "/api/v1/write";

const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";
const V1_PROTO_MESSAGE: &str = "prometheus.WriteRequest";
/// The 2.0 response headers with the counts written.
pub const SAMPLES_WRITTEN: &str = "x-prometheus-remote-write-samples-written";
pub const HISTOGRAMS_WRITTEN: &str = "x-prometheus-remote-write-histograms-written";
pub const EXEMPLARS_WRITTEN: &str = "x-prometheus-remote-write-exemplars-written";
/// How many invalid series a 400 answer names before summarising the rest.
const INVALID_SERIES_IN_ANSWER: usize = 3;

/// What the receiver needs: where data goes, where it counts, and its limits.
#[derive(Clone)]
pub struct ReceiverState {
    /// Where accepted series go.
    pub appender: Arc<dyn Appender>,
    /// Where the receiver's counters are registered.
    pub registry: Registry,
    /// Labels set on every incoming series (overwriting same-named ones); None by default.
    pub ingest_labels: Option<Labels>,
    /// The largest decompressed body accepted, in bytes (32 MiB by default).
    pub max_body_bytes: usize,
    /// Per-request and per-series limits (none by default, names validated).
    pub limits: IngestLimits,
    /// The tier's ingestion budget; None (the default) admits everything.
    pub budget: Option<IngestBudget>,
    /// HA deduplication by cluster and replica label; None (the default) keeps every replica.
    pub ha: Option<HaTracker>,
}

impl ReceiverState {
    /// A receiver writing to `appender` with default limits and no ingest labels.
    pub fn new(appender: Arc<dyn Appender>, registry: Registry) -> Self {
        Self {
            appender,
            registry,
            ingest_labels: None,
            max_body_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            limits: IngestLimits::default(),
            budget: None,
            ha: None,
        }
    }
}

/// The axum router serving `POST /api/v1/write`.
pub fn write_router(state: ReceiverState) -> Router {
    Router::new().route(WRITE_PATH, post(write)).with_state(Arc::new(state))
}

/// How many times one request may have the store refuse a series and be appended again.
const MAX_STORE_REFUSALS: usize = 100;

/// A refusal: status, the counter reason, the plain-text message and when to retry.
struct Refusal {
    status: StatusCode,
    reason: &'static str,
    message: String,
    retry_after: Option<std::time::Duration>,
}

impl Refusal {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// Which message a request carries, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    V1,
    V2,
}

/// What a 2.0 answer reports as written.
#[derive(Clone, Copy, Debug, Default)]
struct Written {
    samples: u64,
    histograms: u64,
    exemplars: u64,
}

/// The answer to one request: a status or a refusal, and for 2.0 the counts written.
struct Answer {
    result: Result<StatusCode, Refusal>,
    /// None for 1.0 and for requests refused before negotiation succeeded.
    written: Option<Written>,
}

async fn write(State(st): State<Arc<ReceiverState>>, headers: HeaderMap, body: Body) -> Response {
    let answer = handle(&st, &headers, body).await;
    let (status, message, retry_after) = match answer.result {
        Ok(status) => (status, None, None),
        Err(r) => {
            st.registry
                .counter(
                    "fedwatch_receiver_rejected_requests_total",
                    "remote_write requests answered with an error, by reason.",
                    &[("reason", r.reason)],
                )
                .inc();
            if r.status.is_server_error() {
                tracing::error!(status = %r.status, reason = r.reason, "remote_write request failed: {}", r.message);
            } else {
                tracing::debug!(status = %r.status, reason = r.reason, "remote_write request refused: {}", r.message);
            }
            (r.status, Some(r.message), r.retry_after)
        }
    };
    st.registry
        .counter(
            "fedwatch_receiver_requests_total",
            "remote_write requests received, by HTTP status.",
            &[("code", status.as_str())],
        )
        .inc();
    let mut resp = match message {
        None => status.into_response(),
        // Like Go's http.Error: plain text, one line.
        Some(m) => (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{m}\n")).into_response(),
    };
    if let Some(after) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, after.as_secs().into());
    }
    if let Some(w) = answer.written {
        let h = resp.headers_mut();
        h.insert(SAMPLES_WRITTEN, w.samples.into());
        h.insert(HISTOGRAMS_WRITTEN, w.histograms.into());
        h.insert(EXEMPLARS_WRITTEN, w.exemplars.into());
    }
    resp
}

async fn handle(st: &ReceiverState, headers: &HeaderMap, body: Body) -> Answer {
    let proto = match check_content_type(headers).and_then(|p| check_content_encoding(headers).map(|()| p)) {
        Ok(p) => p,
        Err(r) => {
            return Answer {
                result: Err(r),
                written: None,
            };
        }
    };
    let mut written = Written::default();
    let result = handle_negotiated(st, proto, body, &mut written).await;
    Answer {
        result,
        written: (proto == Proto::V2).then_some(written),
    }
}

fn decode_refusal(e: DecodeError) -> Refusal {
    let (status, reason) = match &e {
        DecodeError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        DecodeError::Snappy(_) => (StatusCode::BAD_REQUEST, "snappy"),
        DecodeError::Protobuf(_) => (StatusCode::BAD_REQUEST, "protobuf"),
        DecodeError::InvalidLabels(_) => (StatusCode::BAD_REQUEST, "invalid_labels"),
    };
    Refusal::new(status, reason, e.to_string())
}

async fn handle_negotiated(st: &ReceiverState, proto: Proto, body: Body, written: &mut Written) -> Result<StatusCode, Refusal> {
    // A snappy block of n bytes never compresses to more than max_compress_len(n).
    let max_compressed = snap::raw::max_compress_len(st.max_body_bytes).max(64);
    let body = match http_body_util::Limited::new(body, max_compressed).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "request body exceeds {max_compressed} compressed bytes (limit {} decompressed)",
                    st.max_body_bytes
                ),
            ));
        }
        Err(e) => {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "read_body",
                format!("reading request body: {e}"),
            ));
        }
    };

    // Decoding is CPU work proportional to the body: off the async workers, like append.
    let max = st.max_body_bytes;
    let decoded = tokio::task::spawn_blocking(move || match proto {
        Proto::V1 => decode_write_request_partial(&body, max).map(|d| (d, 0, 0)),
        Proto::V2 => decode_v2_request(&body, max).map(|d| (d.request, d.exemplars, d.histograms)),
    })
    .await
    .map_err(|e| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "decode_task",
            format!("decoding task failed: {e}"),
        )
    })?;
    let (decoded, exemplars, histograms): (DecodedRequest, u64, u64) = decoded.map_err(decode_refusal)?;

    let limits = &st.limits;
    limits
        .check_request(&decoded.series, decoded.invalid.len())
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, "request_limit", e.to_string()))?;

    // Per-series limits on the series as sent, named by their index in the request.
    let mut invalid = decoded.invalid;
    let wire_index = wire_indexes(decoded.series.len(), &invalid);
    let (series, mut refused) = limits.split_series(decoded.series);
    for r in &mut refused {
        r.index = wire_index[r.index];
    }
    invalid.append(&mut refused);

    let mut series = series;
    let mut only_duplicates = false;
    let mut deduplicated = 0;
    if let Some(ha) = &st.ha {
        let outcome = ha.filter(series);
        deduplicated = outcome.dropped_samples;
        if outcome.dropped_samples > 0 {
            st.registry
                .counter(
                    "fedwatch_receiver_ha_deduplicated_samples_total",
                    "Received samples dropped because another replica of their cluster is elected.",
                    &[],
                )
                .add(outcome.dropped_samples);
        }
        for f in &outcome.failovers {
            st.registry
                .counter(
                    "fedwatch_receiver_ha_failovers_total",
                    "Times the elected replica of a cluster changed after the failover timeout.",
                    &[],
                )
                .inc();
            tracing::info!(cluster = %f.cluster, from = %f.from, to = %f.to, "HA failover: new elected replica");
        }
        only_duplicates = outcome.dropped_samples > 0 && outcome.series.is_empty() && invalid.is_empty() && histograms == 0;
        series = outcome.series;
    }

    if let Some(extra) = &st.ingest_labels {
        for ts in &mut series {
            let mut b = ts.labels.builder();
            for l in extra.iter() {
                b.set(l.name.clone(), l.value.clone());
            }
            ts.labels = b.build();
        }
    }
    let samples: u64 = series.iter().map(|s| s.samples.len() as u64).sum();

    if let Some(budget) = &st.budget
        && samples > 0
        && let Err(over) = budget.take(samples)
    {
        st.registry
            .counter(
                "fedwatch_receiver_over_budget_samples_total",
                "Received samples refused with 429 because the tier was over its ingestion budget.",
                &[],
            )
            .add(samples);
        let mut r = Refusal::new(StatusCode::TOO_MANY_REQUESTS, "over_budget", over.to_string());
        r.retry_after = Some(over.retry_after);
        return Err(r);
    }

    // Problems that make the answer a 400 once the good data is stored.
    let mut problems: Vec<String> = Vec::new();
    let mut problem_reason = "invalid_labels";
    written.samples = deduplicated;
    if !series.is_empty() {
        let (stats, mut store_refused) = append_refusing_series(st, series).await?;
        let refused_samples: u64 = store_refused.iter().map(|i| i.samples as u64).sum();
        let stored = samples - refused_samples;
        st.registry
            .counter(
                "fedwatch_receiver_samples_total",
                "Samples received in valid series and handed to storage.",
                &[],
            )
            .add(stored);
        st.registry
            .counter(
                "fedwatch_receiver_out_of_order_samples_total",
                "Received samples the store dropped as out of order.",
                &[],
            )
            .add(stats.out_of_order);
        st.registry
            .counter(
                "fedwatch_receiver_duplicate_samples_total",
                "Received samples the store dropped as a different value for an existing timestamp.",
                &[],
            )
            .add(stats.duplicates);
        let dropped = stats.out_of_order + stats.duplicates;
        written.samples += stored.saturating_sub(dropped);
        if proto == Proto::V2 && dropped > 0 {
            problems.push(format!(
                "{dropped} samples not written: {} out of order, {} with a different value for an existing timestamp",
                stats.out_of_order, stats.duplicates
            ));
            problem_reason = "out_of_order";
        }
        invalid.append(&mut store_refused);
    }
    // Exemplars are accepted (and dropped) with the request's valid series; when series were
    // refused, the exemplars on them are not counted.
    written.exemplars = if invalid.is_empty() { exemplars } else { 0 };

    if histograms > 0 {
        st.registry
            .counter(
                "fedwatch_receiver_histogram_samples_refused_total",
                "Received native histogram samples (remote_write 2.0) not written: Fedwatch stores float samples only.",
                &[],
            )
            .add(histograms);
        problems.insert(
            0,
            format!("{histograms} native histogram samples not written: this receiver stores float samples only"),
        );
        problem_reason = "histograms";
    }
    if !invalid.is_empty() {
        let invalid_samples: usize = invalid.iter().map(|i| i.samples).sum();
        st.registry
            .counter(
                "fedwatch_receiver_invalid_labels_samples_total",
                "Received samples dropped because their series' labels were invalid or over a limit.",
                &[],
            )
            .add(invalid_samples as u64);
        invalid.sort_by_key(|i| i.index);
        let mut msg: Vec<String> = invalid.iter().take(INVALID_SERIES_IN_ANSWER).map(|i| i.to_string()).collect();
        if invalid.len() > INVALID_SERIES_IN_ANSWER {
            msg.push(format!("and {} more invalid series", invalid.len() - INVALID_SERIES_IN_ANSWER));
        }
        if proto == Proto::V2 {
            msg.insert(
                0,
                format!("{invalid_samples} samples in {} invalid series not written", invalid.len()),
            );
        }
        problems.insert(0, msg.join("; "));
        problem_reason = "invalid_labels";
    }
    if !problems.is_empty() {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, problem_reason, problems.join("; ")));
    }
    Ok(if only_duplicates {
        StatusCode::ACCEPTED
    } else {
        StatusCode::NO_CONTENT
    })
}

/// For each series that passed decoding, its index in the request as sent.
fn wire_indexes(valid: usize, invalid: &[InvalidSeries]) -> Vec<usize> {
    let mut skip: Vec<usize> = invalid.iter().map(|i| i.index).collect();
    skip.sort_unstable();
    let mut out = Vec::with_capacity(valid);
    let mut i = 0;
    let mut k = 0;
    while out.len() < valid {
        if k < skip.len() && skip[k] == i {
            k += 1;
        } else {
            out.push(i);
        }
        i += 1;
    }
    out
}

/// Appends `series`; when the store refuses one series over its label limits, takes that
/// series out and appends the rest again, so one bad series does not cost the others.
async fn append_refusing_series(st: &ReceiverState, mut series: Vec<TimeSeries>) -> Result<(AppendStats, Vec<InvalidSeries>), Refusal> {
    let mut refused = Vec::new();
    loop {
        let appender = st.appender.clone();
        let (result, back) = tokio::task::spawn_blocking(move || {
            let r = appender.append(&series);
            (r, series)
        })
        .await
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", format!("append task failed: {e}")))?;
        series = back;
        match result {
            Ok(stats) => return Ok((stats, refused)),
            Err(AppendError::LabelLimit { series: name, reason }) => {
                let pos = series.iter().position(|s| s.labels.to_string() == name);
                let (Some(pos), true) = (pos, refused.len() < MAX_STORE_REFUSALS) else {
                    // Not one of ours (a store that renders labels differently) or too many:
                    // refuse the request; the message names the series.
                    return Err(Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "label_limit",
                        format!("series {name} exceeds the store's label limits: {reason}"),
                    ));
                };
                let bad = series.remove(pos);
                refused.push(InvalidSeries {
                    index: usize::MAX,
                    labels: name,
                    problem: LabelProblem::Refused(reason),
                    samples: bad.samples.len(),
                });
                if series.is_empty() {
                    return Ok((AppendStats::default(), refused));
                }
            }
            Err(e) => return Err(Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", e.to_string())),
        }
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<Proto, Refusal> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Proto::V1);
    };
    let unsupported = |why: String| Refusal::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", why);
    let ct = value.to_str().map_err(|_| unsupported("Content-Type is not ASCII".into()))?.trim();
    if ct.is_empty() {
        return Ok(Proto::V1);
    }
    let mut parts = ct.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(PROTOBUF_CONTENT_TYPE) {
        return Err(unsupported(format!(
            "expected {PROTOBUF_CONTENT_TYPE} as the media type, got {ct:?}"
        )));
    }
    let mut proto = Proto::V1;
    for p in parts {
        let Some((k, v)) = p.split_once('=') else {
            return Err(unsupported(format!(
                "expected key=value parameters in Content-Type, got {p:?} in {ct:?}"
            )));
        };
        if !k.trim().eq_ignore_ascii_case("proto") {
            continue;
        }
        // RFC 9110 allows a quoted parameter value.
        let v = v.trim();
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
        proto = match v {
            V1_PROTO_MESSAGE => Proto::V1,
            V2_PROTO_MESSAGE => Proto::V2,
            other => {
                return Err(unsupported(format!(
                    "{other} protobuf message is not accepted by this server; accepted: {V1_PROTO_MESSAGE}, {V2_PROTO_MESSAGE}"
                )));
            }
        };
    }
    Ok(proto)
}

fn check_content_encoding(headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(());
    };
    let enc = value.to_str().unwrap_or("<not ASCII>").trim();
    if enc.is_empty() || enc.eq_ignore_ascii_case("snappy") {
        return Ok(());
    }
    Err(Refusal::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("{enc} encoding (compression) is not accepted by this server; only snappy is acceptable"),
    ))
}
