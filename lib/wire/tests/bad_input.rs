//! Hostile and broken requests against the receiver over real HTTP: each gets its status and
//! a precise, bounded message; the receiver keeps serving and a good request sent after it
//! is stored. One receiver serves the whole table, as a tier would.

use std::sync::Arc;

use fedwatch_model::selfmetrics::Registry;
use fedwatch_model::{Labels, MatchOp, Matcher, Sample, TimeSeries};
use fedwatch_tsdb::{MemStore, Querier};
use fedwatch_wire::{IngestLimits, ReceiverState, encode_v2_request, encode_write_request, prompb, v2, write_router};
use prost::Message as _;

const V1: &str = "application/x-protobuf";
const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

fn series(labels: &[(&str, &str)], t: i64) -> TimeSeries {
    TimeSeries {
        labels: Labels::from_pairs(labels.iter().copied()),
        samples: vec![Sample { t, v: 1.0 }],
    }
}

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).expect("compress")
}

/// A 1.0 body from raw protobuf labels (any order, duplicates, anything).
fn v1_raw(labels: &[(&str, &str)]) -> Vec<u8> {
    let req = prompb::WriteRequest {
        timeseries: vec![prompb::TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| prompb::Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: vec![prompb::Sample { value: 1.0, timestamp: 1 }],
        }],
        metadata: vec![],
    };
    snappy(&req.encode_to_vec())
}

/// A 1.0 body whose one label value is the given bytes (not necessarily UTF-8), by hand:
/// WriteRequest{1: TimeSeries{1: Label{1: "__name__", 2: value}}}.
fn v1_with_value_bytes(value: &[u8]) -> Vec<u8> {
    fn ld(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        prost::encoding::encode_varint(body.len() as u64, &mut out);
        out.extend_from_slice(body);
        out
    }
    let label = [ld(0x0a, b"__name__"), ld(0x12, value)].concat();
    let ts = ld(0x0a, &label);
    snappy(&ld(0x0a, &ts))
}

/// A 2.0 body with the given symbols and one series of `refs`.
fn v2_raw(symbols: Vec<String>, refs: Vec<u32>) -> Vec<u8> {
    v2::compress(&v2::Request {
        symbols,
        timeseries: vec![v2::WireSeries {
            labels_refs: refs,
            samples: vec![v2::WireSample {
                value: 1.0,
                timestamp: 1,
                start_timestamp: 0,
            }],
            histograms: vec![],
            exemplars: vec![],
        }],
    })
}

struct Case {
    name: &'static str,
    content_type: &'static str,
    encoding: &'static str,
    body: Vec<u8>,
    status: u16,
    message: &'static str,
}

fn ten_mb_one_value() -> Vec<u8> {
    let big = "x".repeat(10 << 20);
    encode_write_request(&[series(&[("__name__", "big_value"), ("blob", &big)], 1)])
}

/// 10 MB as ~450k distinct labels on one series.
fn ten_mb_many_labels(v2: bool) -> Vec<u8> {
    let names: Vec<String> = (0..450_000).map(|i| format!("l{i:09}")).collect();
    let mut pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v1234567890")).collect();
    pairs.push(("__name__", "many_labels"));
    if v2 {
        encode_v2_request(&[series(&pairs, 1)])
    } else {
        encode_write_request(&[series(&pairs, 1)])
    }
}

fn many_series(n: usize) -> Vec<TimeSeries> {
    (0..n).map(|i| series(&[("__name__", "wide"), ("i", &i.to_string())], 1)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_precise_answers_and_the_receiver_keeps_serving() {
    let store = Arc::new(MemStore::new());
    let mut state = ReceiverState::new(store.clone(), Registry::new());
    state.limits = IngestLimits {
        max_series_per_request: 50_000,
        max_labels_per_series: 100,
        max_label_value_length: 4096,
        ..IngestLimits::default()
    };
    let limited = serve(write_router(state)).await;
    let open_store = Arc::new(MemStore::new());
    let open = serve(write_router(ReceiverState::new(open_store.clone(), Registry::new()))).await;

    let mut rng = 0x9e3779b97f4a7c15u64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u8
        })
        .collect();
    let good = encode_write_request(&many_series(100));
    let truncated = good[..good.len() / 2].to_vec();
    let gzip_body = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
    // (receiver, case): `limited` has the limits above, `open` the defaults (no limits).
    let cases: Vec<(bool, Case)> = vec![
        (
            true,
            Case {
                name: "random bytes (1.0)",
                content_type: V1,
                encoding: "snappy",
                body: random.clone(),
                status: 400,
                message: "snappy: corrupt input",
            },
        ),
        (
            true,
            Case {
                name: "random bytes (2.0)",
                content_type: V2,
                encoding: "snappy",
                body: random,
                status: 400,
                message: "snappy: corrupt input",
            },
        ),
        (
            true,
            Case {
                name: "truncated snappy",
                content_type: V1,
                encoding: "snappy",
                body: truncated,
                status: 400,
                message: "snappy: corrupt input",
            },
        ),
        (
            true,
            Case {
                name: "invalid UTF-8 label value (1.0)",
                content_type: V1,
                encoding: "snappy",
                body: v1_with_value_bytes(b"up\xff\xfe"),
                status: 400,
                message: "failed to decode Protobuf message: Label.value: TimeSeries.labels: WriteRequest.timeseries: invalid string value: data is not UTF-8 encoded",
            },
        ),
        (
            true,
            Case {
                name: "invalid UTF-8 symbol (2.0)",
                content_type: V2,
                encoding: "snappy",
                body: {
                    // symbols ["", "__name__", <bad>] written by hand: field 4, length-delimited.
                    let mut raw = prost::Message::encode_to_vec(&v2::Request {
                        symbols: vec![String::new(), "__name__".into()],
                        timeseries: vec![],
                    });
                    raw.extend_from_slice(&[0x22, 2, 0xc3, 0x28]);
                    snappy(&raw)
                },
                status: 400,
                message: "invalid string value: data is not UTF-8 encoded",
            },
        ),
        (
            true,
            Case {
                name: "unsorted labels are sorted and stored",
                content_type: V1,
                encoding: "snappy",
                body: v1_raw(&[("zone", "a"), ("job", "j"), ("__name__", "unsorted")]),
                status: 204,
                message: "",
            },
        ),
        (
            true,
            Case {
                name: "duplicate labels (1.0)",
                content_type: V1,
                encoding: "snappy",
                body: v1_raw(&[("__name__", "dup"), ("job", "a"), ("job", "b")]),
                status: 400,
                message: r#"invalid labels for series {__name__="dup", job="a", job="b"} (timeseries[0]): duplicated label job"#,
            },
        ),
        (
            true,
            Case {
                name: "duplicate labels (2.0)",
                content_type: V2,
                encoding: "snappy",
                body: v2_raw(
                    vec!["".into(), "__name__".into(), "dup".into(), "job".into(), "a".into(), "b".into()],
                    vec![1, 2, 3, 4, 3, 5],
                ),
                status: 400,
                message: r#"1 samples in 1 invalid series not written; invalid labels for series {__name__="dup", job="a", job="b"} (timeseries[0]): duplicated label job"#,
            },
        ),
        (
            true,
            Case {
                name: "symbol reference out of range (2.0)",
                content_type: V2,
                encoding: "snappy",
                body: v2_raw(vec!["".into(), "__name__".into()], vec![1, 7]),
                status: 400,
                message: "(timeseries[0]): symbol reference 7 is outside the symbols table of 2 entries",
            },
        ),
        (
            true,
            Case {
                name: "10 MB label value, over max_label_value_length",
                content_type: V1,
                encoding: "snappy",
                body: ten_mb_one_value(),
                status: 400,
                message: r#"value of label "blob" is 10485760 bytes, more than the limit of 4096"#,
            },
        ),
        (
            false,
            Case {
                name: "10 MB label value, no limit: stored",
                content_type: V1,
                encoding: "snappy",
                body: ten_mb_one_value(),
                status: 204,
                message: "",
            },
        ),
        (
            true,
            Case {
                name: "10 MB as 450k labels, over max_labels_per_series (1.0)",
                content_type: V1,
                encoding: "snappy",
                body: ten_mb_many_labels(false),
                status: 400,
                message: "450001 labels, more than the limit of 100",
            },
        ),
        (
            true,
            Case {
                name: "10 MB as 450k labels, over max_labels_per_series (2.0)",
                content_type: V2,
                encoding: "snappy",
                body: ten_mb_many_labels(true),
                status: 400,
                message: "450001 labels, more than the limit of 100",
            },
        ),
        (
            false,
            Case {
                name: "10 MB as 450k labels, no limit: stored",
                content_type: V1,
                encoding: "snappy",
                body: ten_mb_many_labels(false),
                status: 204,
                message: "",
            },
        ),
        (
            true,
            Case {
                name: "100k series, over max_series_per_request",
                content_type: V1,
                encoding: "snappy",
                body: encode_write_request(&many_series(100_000)),
                status: 400,
                message: "request has 100000 series, more than max_series_per_request=50000",
            },
        ),
        (
            false,
            Case {
                name: "100k series, no limit: stored (2.0)",
                content_type: V2,
                encoding: "snappy",
                body: encode_v2_request(&many_series(100_000)),
                status: 204,
                message: "",
            },
        ),
        (
            true,
            Case {
                name: "gzip content encoding",
                content_type: V1,
                encoding: "gzip",
                body: gzip_body,
                status: 415,
                message: "gzip encoding (compression) is not accepted by this server; only snappy is acceptable",
            },
        ),
        (
            true,
            Case {
                name: "snappy framed format instead of block",
                content_type: V1,
                encoding: "snappy",
                body: {
                    let mut w = snap::write::FrameEncoder::new(Vec::new());
                    std::io::Write::write_all(
                        &mut w,
                        &prost::Message::encode_to_vec(&fedwatch_wire::codec::to_proto(&many_series(3))),
                    )
                    .expect("frame");
                    w.into_inner().expect("frame")
                },
                status: 400,
                message: "snappy: corrupt input",
            },
        ),
    ];

    let client = fedwatch_config::http::client();
    for (round, (is_limited, case)) in cases.into_iter().enumerate() {
        let addr = if is_limited { limited } else { open };
        let resp = client
            .post(format!("http://{addr}/api/v1/write"))
            .header("Content-Type", case.content_type)
            .header("Content-Encoding", case.encoding)
            .body(case.body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: request failed: {e}", case.name));
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("answer body");
        assert_eq!(status, case.status, "{}: answer {text:?}", case.name);
        assert!(
            text.contains(case.message),
            "{}: answer {text:?} lacks {:?}",
            case.name,
            case.message
        );
        // Precise, not an echo of the input: bounded whatever was sent.
        assert!(text.len() < 2048, "{}: answer of {} bytes", case.name, text.len());

        // The receiver keeps serving: a good request right after is stored.
        let marker = format!("after_{round}");
        let resp = client
            .post(format!("http://{addr}/api/v1/write"))
            .body(encode_write_request(&[series(&[("__name__", &marker)], 1)]))
            .send()
            .await
            .unwrap_or_else(|e| panic!("after {}: request failed: {e}", case.name));
        assert_eq!(resp.status().as_u16(), 204, "after {}", case.name);
        let s = if is_limited { &store } else { &open_store };
        let found = s
            .series(&[Matcher::new(MatchOp::Equal, "__name__", &marker).expect("matcher")])
            .expect("series");
        assert_eq!(found.len(), 1, "after {}: good request not stored", case.name);
    }
    // What the accepted bad-looking requests stored.
    let names = |s: &MemStore, name: &str| {
        s.series(&[Matcher::new(MatchOp::Equal, "__name__", name).expect("matcher")])
            .expect("series")
    };
    assert_eq!(names(&store, "unsorted")[0].to_string(), r#"unsorted{job="j", zone="a"}"#);
    assert_eq!(names(&open_store, "wide").len(), 100_000);
    assert_eq!(names(&open_store, "many_labels")[0].len(), 450_001);
    assert!(names(&store, "dup").is_empty() && names(&store, "wide").is_empty());
}

async fn serve(router: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}
