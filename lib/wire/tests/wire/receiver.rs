//! The receiver over real HTTP: statuses, messages, counters and what reaches the store.

use std::sync::Arc;

use fedwatch_model::TimeSeries;
use fedwatch_model::selfmetrics::Registry;
use fedwatch_tsdb::{AppendError, AppendStats, Appender, MemStore};
use fedwatch_wire::{ReceiverState, encode_write_request, prompb, write_router};

use crate::{bits, series, serve, stored};

/// An appender whose storage always fails.
struct BrokenStore;

impl Appender for BrokenStore {
    fn append(&self, _: &[TimeSeries]) -> Result<AppendStats, AppendError> {
        Err(AppendError::Storage("disk on fire".into()))
    }
}

fn raw_body(req: &prompb::WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&prost::Message::encode_to_vec(req))
        .expect("compress")
}

fn invalid_labels_body() -> Vec<u8> {
    let mut req = fedwatch_wire::codec::to_proto(&[series(&[("__name__", "good")], &[(1, 1.0)])]);
    req.timeseries.push(prompb::TimeSeries {
        labels: vec![
            prompb::Label {
                name: "__name__".into(),
                value: "dup".into(),
            },
            prompb::Label {
                name: "job".into(),
                value: "a".into(),
            },
            prompb::Label {
                name: "job".into(),
                value: "b".into(),
            },
        ],
        samples: vec![prompb::Sample { value: 1.0, timestamp: 1 }],
    });
    raw_body(&req)
}

struct Case {
    name: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Vec<u8>,
    status: u16,
    /// A part of the plain-text answer ("" for none).
    message: &'static str,
    /// The `reason` label counted in fedwatch_receiver_rejected_requests_total.
    reason: Option<&'static str>,
    /// Metric names expected in the store afterwards.
    stored: &'static [&'static str],
}

const SNAPPY_PROTO: &[(&str, &str)] = &[("Content-Encoding", "snappy"), ("Content-Type", "application/x-protobuf")];

#[tokio::test]
async fn receiver_answers_like_prometheus() {
    let good = vec![series(&[("__name__", "up"), ("job", "node")], &[(1000, 1.0), (2000, 0.0)])];
    let cases = vec![
        Case {
            name: "valid",
            headers: SNAPPY_PROTO,
            body: encode_write_request(&good),
            status: 204,
            message: "",
            reason: None,
            stored: &["up"],
        },
        Case {
            name: "no headers (old senders)",
            headers: &[],
            body: encode_write_request(&good),
            status: 204,
            message: "",
            reason: None,
            stored: &["up"],
        },
        Case {
            name: "explicit v1 proto parameter",
            headers: &[("Content-Type", "application/x-protobuf;proto=prometheus.WriteRequest")],
            body: encode_write_request(&good),
            status: 204,
            message: "",
            reason: None,
            stored: &["up"],
        },
        Case {
            name: "empty request",
            headers: SNAPPY_PROTO,
            body: encode_write_request(&[]),
            status: 204,
            message: "",
            reason: None,
            stored: &[],
        },
        Case {
            name: "garbage",
            headers: SNAPPY_PROTO,
            body: b"\x05garbage!".to_vec(),
            status: 400,
            message: "snappy: corrupt input",
            reason: Some("snappy"),
            stored: &[],
        },
        Case {
            name: "empty body",
            headers: SNAPPY_PROTO,
            body: vec![],
            status: 400,
            message: "snappy: corrupt input (empty)",
            reason: Some("snappy"),
            stored: &[],
        },
        Case {
            name: "uncompressed protobuf",
            headers: SNAPPY_PROTO,
            body: prost::Message::encode_to_vec(&fedwatch_wire::codec::to_proto(&good)),
            status: 400,
            message: "snappy: corrupt input",
            reason: Some("snappy"),
            stored: &[],
        },
        Case {
            name: "snappy but not protobuf",
            headers: SNAPPY_PROTO,
            body: snap::raw::Encoder::new().compress_vec(b"\x0a\x7fshort").expect("compress"),
            status: 400,
            message: "failed to decode Protobuf message",
            reason: Some("protobuf"),
            stored: &[],
        },
        Case {
            name: "invalid labels: good series kept, bad named",
            headers: SNAPPY_PROTO,
            body: invalid_labels_body(),
            status: 400,
            message: r#"invalid labels for series {__name__="dup", job="a", job="b"} (timeseries[1]): duplicated label job"#,
            reason: Some("invalid_labels"),
            stored: &["good"],
        },
        Case {
            name: "gzip encoding",
            headers: &[("Content-Encoding", "gzip")],
            body: encode_write_request(&good),
            status: 415,
            message: "gzip encoding (compression) is not accepted by this server; only snappy is acceptable",
            reason: Some("unsupported_media_type"),
            stored: &[],
        },
        Case {
            name: "json content type",
            headers: &[("Content-Type", "application/json")],
            body: encode_write_request(&good),
            status: 415,
            message: "expected application/x-protobuf as the media type",
            reason: Some("unsupported_media_type"),
            stored: &[],
        },
        Case {
            name: "1.0 body sent as 2.0 decodes as empty (reserved fields 1-3)",
            headers: &[("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")],
            body: encode_write_request(&good),
            status: 204,
            message: "",
            reason: None,
            stored: &[],
        },
        Case {
            name: "2.0 message",
            headers: &[("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")],
            body: fedwatch_wire::encode_v2_request(&good),
            status: 204,
            message: "",
            reason: None,
            stored: &["up"],
        },
        Case {
            name: "unknown proto",
            headers: &[("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v3.Request")],
            body: encode_write_request(&good),
            status: 415,
            message: "io.prometheus.write.v3.Request protobuf message is not accepted by this server; accepted: prometheus.WriteRequest, io.prometheus.write.v2.Request",
            reason: Some("unsupported_media_type"),
            stored: &[],
        },
    ];
    let client = fedwatch_config::http::client();
    for case in cases {
        let store = Arc::new(MemStore::new());
        let registry = Registry::new();
        let addr = serve(write_router(ReceiverState::new(store.clone(), registry.clone()))).await;
        let mut req = client.post(format!("http://{addr}/api/v1/write")).body(case.body);
        for (k, v) in case.headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        assert_eq!(status, case.status, "{}: answer {text:?}", case.name);
        assert!(
            text.contains(case.message),
            "{}: answer {text:?} lacks {:?}",
            case.name,
            case.message
        );
        let names: Vec<String> = stored(&store)
            .iter()
            .map(|s| s.labels.metric_name().unwrap_or("").to_string())
            .collect();
        assert_eq!(names, case.stored, "{}", case.name);
        let code = status.to_string();
        assert_eq!(
            registry.counter("fedwatch_receiver_requests_total", "", &[("code", &code)]).get(),
            1,
            "{}",
            case.name
        );
        if let Some(reason) = case.reason {
            assert_eq!(
                registry
                    .counter("fedwatch_receiver_rejected_requests_total", "", &[("reason", reason)])
                    .get(),
                1,
                "{}",
                case.name
            );
        }
    }
}

#[tokio::test]
async fn valid_request_stores_exact_values_and_counts_samples() {
    let store = Arc::new(MemStore::new());
    let registry = Registry::new();
    let mut state = ReceiverState::new(store.clone(), registry.clone());
    state.ingest_labels = Some(fedwatch_model::Labels::from_pairs([("tenant", "t1"), ("job", "forced")]));
    let addr = serve(write_router(state)).await;
    let sent = vec![series(
        &[("__name__", "up"), ("job", "node")],
        &[(1000, 1.0), (2000, fedwatch_model::stale_nan())],
    )];
    let resp = fedwatch_config::http::client()
        .post(format!("http://{addr}/api/v1/write"))
        .body(encode_write_request(&sent))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 204);
    let want = vec![series(
        &[("__name__", "up"), ("job", "forced"), ("tenant", "t1")],
        &[(1000, 1.0), (2000, fedwatch_model::stale_nan())],
    )];
    assert_eq!(bits(&stored(&store)), bits(&want));
    assert_eq!(registry.counter("fedwatch_receiver_samples_total", "", &[]).get(), 2);
}

#[tokio::test]
async fn oversize_body_is_413() {
    let registry = Registry::new();
    let mut state = ReceiverState::new(Arc::new(MemStore::new()), registry.clone());
    state.max_body_bytes = 1024;
    let addr = serve(write_router(state)).await;
    let client = fedwatch_config::http::client();
    // (case, body): random-ish values compress badly so the compressed body itself is over;
    // repeated values compress well, so only the declared decompressed size is over.
    let noisy: Vec<_> = (0..200)
        .map(|i| series(&[("__name__", "n"), ("i", &format!("{i}"))], &[(i, (i as f64).sqrt())]))
        .collect();
    let repetitive = vec![series(&[("__name__", "r")], &(0..500).map(|_| (0, 1.0)).collect::<Vec<_>>())];
    let cases = [
        ("compressed body over", noisy, "compressed bytes (limit 1024 decompressed)"),
        ("decompressed size over", repetitive, "more than the limit of 1024 bytes"),
    ];
    for (name, body, want) in cases {
        let body = encode_write_request(&body);
        let resp = client
            .post(format!("http://{addr}/api/v1/write"))
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 413, "{name}");
        let text = resp.text().await.expect("body");
        assert!(text.contains(want), "{name}: {text}");
    }
    assert_eq!(
        registry
            .counter("fedwatch_receiver_rejected_requests_total", "", &[("reason", "too_large")])
            .get(),
        2
    );
}

#[tokio::test]
async fn storage_failure_is_500() {
    let registry = Registry::new();
    let addr = serve(write_router(ReceiverState::new(Arc::new(BrokenStore), registry.clone()))).await;
    let resp = fedwatch_config::http::client()
        .post(format!("http://{addr}/api/v1/write"))
        .body(encode_write_request(&[series(&[("__name__", "up")], &[(1, 1.0)])]))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 500);
    assert_eq!(resp.text().await.expect("body"), "storage failed: disk on fire\n");
    assert_eq!(registry.counter("fedwatch_receiver_samples_total", "", &[]).get(), 0);
    assert_eq!(
        registry
            .counter("fedwatch_receiver_rejected_requests_total", "", &[("reason", "storage")])
            .get(),
        1
    );
}
