//! remote_write 2.0 bodies: protobuf `io.prometheus.write.v2.Request` (a symbols table and
//! series whose labels are pairs of indexes into it), snappy block compressed like 1.0.
//!
//! Written by hand from `io/prometheus/write/v2/types.proto` (no `protoc` in the build), and
//! only as far as Fedwatch reads it:
//! - `Request.symbols` and `timeseries`; `TimeSeries.labels_refs`, `samples`, `histograms`
//!   and `exemplars`.
//! - `TimeSeries.metadata` (type, help, unit) is not declared, so prost skips its bytes
//!   without allocating: no tier stores metadata, and the cheapest metadata handling is none.
//!   Its symbol references are therefore not checked either.
//! - A histogram is declared with no fields: prost skips its contents, and the receiver only
//!   needs how many there were, to refuse them (Fedwatch stores float samples only).
//! - Exemplars are decoded far enough to check their label references (so a malformed one is
//!   a 400, not silently accepted) and are then dropped; the receiver counts them as written,
//!   as Prometheus does with its exemplar storage off (see `receiver.rs`).
//! - `Sample.start_timestamp` is decoded and ignored: the store keeps no start times.
//!
//! Validation per series matches 1.0 (`codec.rs`): a series with a reference outside the
//! symbols table, an odd number of references, an empty or duplicate name or no `__name__`
//! is refused alone; the others are kept. prost checks that every symbol is UTF-8, so an
//! invalid string refuses the whole request as a protobuf error.

use fedwatch_model::{Labels, METRIC_NAME, Sample, TimeSeries};
use prost::Message as _;

use crate::codec::{DecodeError, DecodedRequest, InvalidSeries, LabelProblem, render_pairs, short};

/// The `proto` parameter of `Content-Type` naming this message.
pub const V2_PROTO_MESSAGE: &str = "io.prometheus.write.v2.Request";

/// `io.prometheus.write.v2.Request`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    #[prost(string, repeated, tag = "4")]
    pub symbols: Vec<String>,
    #[prost(message, repeated, tag = "5")]
    pub timeseries: Vec<WireSeries>,
}

/// `io.prometheus.write.v2.TimeSeries` (without `metadata`, which is skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WireSeries {
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<WireSample>,
    #[prost(message, repeated, tag = "3")]
    pub histograms: Vec<HistogramSkipped>,
    #[prost(message, repeated, tag = "4")]
    pub exemplars: Vec<Exemplar>,
}

/// `io.prometheus.write.v2.Sample`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct WireSample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
    #[prost(int64, tag = "3")]
    pub start_timestamp: i64,
}

/// A native histogram sample, its fields skipped: only the count of them matters here.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct HistogramSkipped {
    /// `Histogram.timestamp`, kept so tests can build one that is not empty on the wire.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

/// `io.prometheus.write.v2.Exemplar`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exemplar {
    #[prost(uint32, repeated, tag = "1")]
    pub labels_refs: Vec<u32>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

/// A decoded 2.0 request: the series as 1.0 would give them, plus what 2.0 adds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecodedV2 {
    /// Valid series (float samples only) and the refused ones.
    pub request: DecodedRequest,
    /// Exemplars on valid series (checked, then dropped).
    pub exemplars: u64,
    /// Native histogram samples in the request, none of which is written.
    pub histograms: u64,
}

/// Decodes a 2.0 body whose decompressed size may be at most `max_decompressed_bytes`.
pub fn decode_v2_request(body: &[u8], max_decompressed_bytes: usize) -> Result<DecodedV2, DecodeError> {
    let size = snap::raw::decompress_len(body)?;
    if size > max_decompressed_bytes {
        return Err(DecodeError::TooLarge {
            size,
            limit: max_decompressed_bytes,
        });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    let req = Request::decode(raw.as_slice())?;
    Ok(from_v2(req))
}

/// Resolves references, validates each series and converts the valid ones.
pub fn from_v2(req: Request) -> DecodedV2 {
    let symbols = &req.symbols;
    let mut out = DecodedV2 {
        request: DecodedRequest {
            series: Vec::with_capacity(req.timeseries.len()),
            invalid: Vec::new(),
            metadata: Vec::new(),
        },
        ..DecodedV2::default()
    };
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (index, ts) in req.timeseries.into_iter().enumerate() {
        out.histograms += ts.histograms.len() as u64;
        let refuse = |problem: LabelProblem, labels: String| InvalidSeries {
            index,
            labels,
            problem,
            samples: ts.samples.len(),
        };
        pairs.clear();
        if let Err(problem) = resolve(&ts.labels_refs, symbols, &mut pairs) {
            out.request.invalid.push(refuse(problem, render_refs(&ts.labels_refs, symbols)));
            continue;
        }
        let problem = if !ts.histograms.is_empty() && !ts.samples.is_empty() {
            Some(LabelProblem::SamplesAndHistograms)
        } else if let Some(bad) = ts.exemplars.iter().find_map(|e| check_refs(&e.labels_refs, symbols).err()) {
            Some(LabelProblem::Exemplar(Box::new(bad)))
        } else {
            check_pairs(&pairs).err()
        };
        if let Some(problem) = problem {
            out.request.invalid.push(refuse(problem, render_pairs_slice(&pairs)));
            continue;
        }
        if !ts.histograms.is_empty() {
            // Counted above; refused by the receiver with one message for all of them.
            continue;
        }
        out.exemplars += ts.exemplars.len() as u64;
        if ts.samples.is_empty() {
            // Metadata or exemplars only: nothing to store, and no empty series created.
            continue;
        }
        out.request.series.push(TimeSeries {
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples: ts
                .samples
                .iter()
                .map(|s| Sample {
                    t: s.timestamp,
                    v: s.value,
                })
                .collect(),
        });
    }
    out
}

/// Fills `pairs` with the (name, value) strings `refs` point at.
fn resolve<'a>(refs: &[u32], symbols: &'a [String], pairs: &mut Vec<(&'a str, &'a str)>) -> Result<(), LabelProblem> {
    check_refs(refs, symbols)?;
    pairs.extend(
        refs.chunks_exact(2)
            .map(|p| (symbols[p[0] as usize].as_str(), symbols[p[1] as usize].as_str())),
    );
    Ok(())
}

fn check_refs(refs: &[u32], symbols: &[String]) -> Result<(), LabelProblem> {
    if refs.len() % 2 != 0 {
        return Err(LabelProblem::OddLabelRefs(refs.len()));
    }
    match refs.iter().find(|&&r| r as usize >= symbols.len()) {
        Some(&r) => Err(LabelProblem::SymbolOutOfRange {
            reference: r,
            symbols: symbols.len(),
        }),
        None => Ok(()),
    }
}

/// The 1.0 label rules (`codec::check_labels`) on resolved pairs.
fn check_pairs(pairs: &[(&str, &str)]) -> Result<(), LabelProblem> {
    let mut names: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    names.sort_unstable();
    if names.first() == Some(&"") {
        return Err(LabelProblem::EmptyLabelName);
    }
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(LabelProblem::DuplicateLabelName(w[0].to_string()));
    }
    if !pairs.iter().any(|&(n, v)| n == METRIC_NAME && !v.is_empty()) {
        return Err(LabelProblem::MissingMetricName);
    }
    Ok(())
}

fn render_pairs_slice(pairs: &[(&str, &str)]) -> String {
    render_pairs(pairs.iter().copied())
}

/// Renders references that may not resolve: those that do as strings, the others as `#n`.
fn render_refs(refs: &[u32], symbols: &[String]) -> String {
    let sym = |r: u32| symbols.get(r as usize).map(|s| short(s)).unwrap_or_else(|| format!("#{r}"));
    let mut parts: Vec<String> = refs
        .chunks(2)
        .take(16)
        .map(|p| match p {
            [n, v] => format!("{}={}", sym(*n).trim_matches('"'), sym(*v)),
            [n] => format!("{}=<missing>", sym(*n).trim_matches('"')),
            _ => String::new(),
        })
        .collect();
    if refs.len() / 2 > 16 {
        parts.push(format!("... {} references in all", refs.len()));
    }
    format!("{{{}}}", parts.join(", "))
}

/// Encodes series as a snappy-compressed 2.0 request: a symbols table starting with "",
/// each string once, and labels as sorted pairs of references (what the forwarder sends).
pub fn encode_v2_request(series: &[TimeSeries]) -> Vec<u8> {
    let mut symbols = SymbolTable::default();
    let timeseries = series
        .iter()
        .map(|ts| WireSeries {
            labels_refs: ts
                .labels
                .iter()
                .flat_map(|l| [symbols.get(&l.name), symbols.get(&l.value)])
                .collect(),
            samples: ts
                .samples
                .iter()
                .map(|s| WireSample {
                    value: s.v,
                    timestamp: s.t,
                    start_timestamp: 0,
                })
                .collect(),
            histograms: Vec::new(),
            exemplars: Vec::new(),
        })
        .collect();
    let req = Request {
        symbols: symbols.symbols,
        timeseries,
    };
    compress(&req)
}

/// Snappy-compresses an encoded 2.0 request.
pub fn compress(req: &Request) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        // Only fails for inputs over ~4 GiB; test and bench requests are far smaller.
        .expect("snappy block format holds bodies under 4 GiB")
}

/// Interns strings into a symbols table that starts with "" as the spec asks.
#[derive(Clone, Debug)]
pub struct SymbolTable {
    symbols: Vec<String>,
    index: std::collections::HashMap<String, u32>,
}

impl Default for SymbolTable {
    fn default() -> Self {
        let mut t = Self {
            symbols: Vec::new(),
            index: std::collections::HashMap::new(),
        };
        t.get("");
        t
    }
}

impl SymbolTable {
    /// The reference of `s`, added if new.
    pub fn get(&mut self, s: &str) -> u32 {
        if let Some(&r) = self.index.get(s) {
            return r;
        }
        let r = self.symbols.len() as u32;
        self.symbols.push(s.to_string());
        self.index.insert(s.to_string(), r);
        r
    }

    /// The table, in reference order.
    pub fn into_symbols(self) -> Vec<String> {
        self.symbols
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(symbols: &[&str], series: Vec<WireSeries>) -> Request {
        Request {
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            timeseries: series,
        }
    }

    fn ts(refs: &[u32], samples: usize, histograms: usize, exemplars: Vec<Vec<u32>>) -> WireSeries {
        WireSeries {
            labels_refs: refs.to_vec(),
            samples: (0..samples)
                .map(|i| WireSample {
                    value: i as f64,
                    timestamp: i as i64,
                    start_timestamp: 0,
                })
                .collect(),
            histograms: (0..histograms).map(|i| HistogramSkipped { timestamp: i as i64 }).collect(),
            exemplars: exemplars
                .into_iter()
                .map(|labels_refs| Exemplar {
                    labels_refs,
                    value: 1.0,
                    timestamp: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn series_problems_table() {
        let symbols = ["", "__name__", "up", "job", "a", "b"];
        // (case, series, problem or None when accepted)
        let cases: Vec<(&str, WireSeries, Option<&str>)> = vec![
            ("valid", ts(&[1, 2, 3, 4], 1, 0, vec![]), None),
            ("unsorted refs are fine", ts(&[3, 4, 1, 2], 1, 0, vec![]), None),
            ("odd refs", ts(&[1, 2, 3], 1, 0, vec![]), Some("labels_refs has 3 entries")),
            (
                "ref past the table",
                ts(&[1, 2, 3, 9], 1, 0, vec![]),
                Some("reference 9 is outside the symbols table of 6"),
            ),
            (
                "duplicate name",
                ts(&[1, 2, 3, 4, 3, 5], 1, 0, vec![]),
                Some("duplicated label job"),
            ),
            ("empty name", ts(&[1, 2, 0, 4], 1, 0, vec![]), Some("empty label name")),
            ("no name", ts(&[3, 4], 1, 0, vec![]), Some("missing or empty __name__ label")),
            (
                "empty name value",
                ts(&[1, 0], 1, 0, vec![]),
                Some("missing or empty __name__ label"),
            ),
            ("both kinds", ts(&[1, 2], 1, 1, vec![]), Some("both samples and histograms")),
            (
                "bad exemplar ref",
                ts(&[1, 2], 1, 0, vec![vec![3, 7]]),
                Some("exemplar: symbol reference 7 is outside"),
            ),
            (
                "odd exemplar refs",
                ts(&[1, 2], 1, 0, vec![vec![3]]),
                Some("exemplar: labels_refs has 1 entries"),
            ),
        ];
        for (name, series, want) in cases {
            let got = from_v2(req(&symbols, vec![series]));
            match want {
                None => assert_eq!((got.request.series.len(), got.request.invalid.len()), (1, 0), "{name}"),
                Some(w) => {
                    assert_eq!(got.request.invalid.len(), 1, "{name}");
                    let msg = got.request.invalid[0].to_string();
                    assert!(msg.contains(w), "{name}: {msg}");
                    assert!(msg.contains("timeseries[0]"), "{name}: {msg}");
                }
            }
        }
    }

    #[test]
    fn counts_and_roundtrip() {
        let symbols = ["", "__name__", "up", "h"];
        let got = from_v2(req(
            &symbols,
            vec![
                ts(&[1, 2], 2, 0, vec![vec![], vec![1, 3]]),
                ts(&[1, 3], 0, 3, vec![]),
                ts(&[1, 3], 0, 0, vec![vec![]]),
            ],
        ));
        assert_eq!((got.exemplars, got.histograms), (3, 3));
        assert_eq!(got.request.series.len(), 1);
        assert_eq!(got.request.series[0].labels.metric_name(), Some("up"));

        let series = vec![TimeSeries {
            labels: Labels::from_pairs([("__name__", "x"), ("job", "j")]),
            samples: vec![Sample { t: 5, v: 2.5 }],
        }];
        let back = decode_v2_request(&encode_v2_request(&series), 1 << 20).expect("decodes");
        assert_eq!(back.request.series, series);
    }
}
