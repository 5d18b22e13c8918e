//! An in-memory store: a map from label set to its samples. Simple on purpose: it holds the
//! seams' contract (ordering, duplicates, stale markers kept as written) until the real
//! engine arrives.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use fedwatch_model::{Labels, Matcher, Sample, TimeSeries};

use crate::{AppendError, AppendStats, Appender, Querier, SelectError, SelectHints};

/// Series in memory, with an optional retention cut applied on append.
#[derive(Debug, Default)]
pub struct MemStore {
    series: RwLock<HashMap<Labels, Vec<Sample>>>,
    retention_ms: Option<i64>,
    max_series: Option<usize>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops samples older than `retention_ms` behind the newest sample of each series.
    pub fn with_retention(mut self, retention_ms: i64) -> Self {
        self.retention_ms = Some(retention_ms);
        self
    }

    /// Refuses batches that would create more than `max` series.
    pub fn with_series_limit(mut self, max: usize) -> Self {
        self.max_series = Some(max);
        self
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.read().len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Labels, Vec<Sample>>> {
        self.series.read().unwrap_or_else(|e| e.into_inner())
    }

    fn matching<'a>(map: &'a HashMap<Labels, Vec<Sample>>, matchers: &'a [Matcher]) -> impl Iterator<Item = (&'a Labels, &'a Vec<Sample>)> {
        map.iter().filter(move |(l, _)| matchers.iter().all(|m| m.matches_labels(l)))
    }
}

impl Appender for MemStore {
    fn append(&self, batch: &[TimeSeries]) -> Result<AppendStats, AppendError> {
        let mut map = self.series.write().unwrap_or_else(|e| e.into_inner());
        if let Some(limit) = self.max_series {
            let new = batch.iter().filter(|s| !map.contains_key(&s.labels)).count();
            if map.len() + new > limit {
                return Err(AppendError::SeriesLimit { limit });
            }
        }
        let mut stats = AppendStats::default();
        for ts in batch {
            if ts.samples.is_empty() {
                continue;
            }
            let samples = map.entry(ts.labels.clone()).or_insert_with(|| {
                stats.series_created += 1;
                Vec::new()
            });
            for s in &ts.samples {
                match samples.last() {
                    Some(last) if s.t < last.t => stats.out_of_order += 1,
                    Some(last) if s.t == last.t => {
                        if s.v.to_bits() != last.v.to_bits() {
                            stats.duplicates += 1;
                        }
                    }
                    _ => {
                        samples.push(*s);
                        stats.samples_appended += 1;
                    }
                }
            }
            if let (Some(retention), Some(newest)) = (self.retention_ms, samples.last().map(|s| s.t)) {
                let cut = samples.partition_point(|s| s.t < newest - retention);
                samples.drain(..cut);
            }
        }
        Ok(stats)
    }
}

impl Querier for MemStore {
    fn select(&self, matchers: &[Matcher], hints: SelectHints) -> Result<Vec<TimeSeries>, SelectError> {
        let map = self.read();
        let mut out: Vec<TimeSeries> = Self::matching(&map, matchers)
            .filter_map(|(labels, samples)| {
                let lo = samples.partition_point(|s| s.t < hints.start);
                let hi = samples.partition_point(|s| s.t <= hints.end);
                (lo < hi).then(|| TimeSeries {
                    labels: labels.clone(),
                    samples: samples[lo..hi].to_vec(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>, SelectError> {
        let map = self.read();
        let names: BTreeSet<String> = Self::matching(&map, matchers)
            .flat_map(|(l, _)| l.iter().map(|l| l.name.clone()))
            .collect();
        Ok(names.into_iter().collect())
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>, SelectError> {
        let map = self.read();
        let values: BTreeSet<String> = Self::matching(&map, matchers)
            .filter_map(|(l, _)| l.get(name).map(str::to_string))
            .collect();
        Ok(values.into_iter().collect())
    }

    fn series(&self, matchers: &[Matcher]) -> Result<Vec<Labels>, SelectError> {
        let map = self.read();
        let mut out: Vec<Labels> = Self::matching(&map, matchers).map(|(l, _)| l.clone()).collect();
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedwatch_model::{MatchOp, is_stale_nan, stale_nan};

    fn ts(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples: samples.iter().map(|&(t, v)| Sample { t, v }).collect(),
        }
    }

    #[test]
    fn append_select_with_out_of_order_duplicates_and_stale_markers() {
        let store = MemStore::new();
        let a = [("__name__", "up"), ("job", "a")];
        let stats = store.append(&[ts(&a, &[(10, 1.0), (20, 2.0)])]).unwrap();
        assert_eq!((stats.samples_appended, stats.series_created), (2, 1));
        let stats = store
            .append(&[ts(&a, &[(15, 9.0), (20, 3.0), (20, 2.0), (30, stale_nan())])])
            .unwrap();
        assert_eq!((stats.out_of_order, stats.duplicates, stats.samples_appended), (1, 1, 1));
        let got = store
            .select(
                &[Matcher::equal("job", "a")],
                SelectHints {
                    start: 15,
                    end: 30,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples[0], Sample { t: 20, v: 2.0 });
        assert!(is_stale_nan(got[0].samples[1].v));
        let none = store
            .select(
                &[Matcher::new(MatchOp::NotEqual, "job", "a").unwrap()],
                SelectHints {
                    start: 0,
                    end: 100,
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn series_limit_refuses_the_whole_batch() {
        let store = MemStore::new().with_series_limit(1);
        store.append(&[ts(&[("a", "1")], &[(1, 1.0)])]).unwrap();
        assert!(matches!(
            store.append(&[ts(&[("a", "2")], &[(1, 1.0)])]),
            Err(AppendError::SeriesLimit { limit: 1 })
        ));
        assert_eq!(store.series_count(), 1);
    }
}
