//! Integration tests for fedwatch-wire: the codec on tables of series and hand-made bodies,
//! and the receiver and forwarder over real HTTP on 127.0.0.1.

mod wire {
    pub mod codec;
    pub mod downsample;
    pub mod forwarder;
    pub mod ingest;
    pub mod receiver;
}

use std::net::SocketAddr;

use fedwatch_model::{Labels, MatchOp, Matcher, Sample, TimeSeries};
use fedwatch_tsdb::{MemStore, Querier, SelectHints};

/// A series from label pairs and (timestamp, value) pairs.
pub fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: Labels::from_pairs(labels.iter().copied()),
        samples: samples.iter().map(|&(t, v)| Sample { t, v }).collect(),
    }
}

/// Every series in `store`, sorted by labels.
pub fn stored(store: &MemStore) -> Vec<TimeSeries> {
    let all = Matcher::new(MatchOp::RegexMatch, "__name__", ".+").expect("valid regex");
    store
        .select(
            &[all],
            SelectHints {
                start: i64::MIN,
                end: i64::MAX,
                ..Default::default()
            },
        )
        .expect("memstore select")
}

/// Serves `router` on an ephemeral loopback port until the test's runtime ends.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// Values compared bit for bit, so NaN payloads (the stale marker) count.
pub fn bits(ts: &[TimeSeries]) -> Vec<(String, Vec<(i64, u64)>)> {
    ts.iter()
        .map(|s| (s.labels.to_string(), s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect()))
        .collect()
}
