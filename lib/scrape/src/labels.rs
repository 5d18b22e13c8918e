//! The labels a scraped sample is stored under: the target's labels merged in (Prometheus's
//! `mutateSampleLabels`), then `metric_relabel_configs`, then the label limits.

use fedwatch_config::RelabelConfig;
use fedwatch_config::relabel;
use std::borrow::Cow;

use fedwatch_model::textparse::Series;
use fedwatch_model::{Labels, LabelsBuilder, METRIC_NAME};

/// The labels a line exposes, `__name__` included, refusing a repeated label name with the
/// error Prometheus's TSDB gives such a sample (`Labels` cannot hold duplicates).
pub(crate) fn exposed_labels(s: &Series<'_>) -> Result<Labels, String> {
    let mut b = LabelsBuilder::default();
    b.set(METRIC_NAME, s.name.as_ref());
    let mut names: Vec<Cow<'_, str>> = Vec::new();
    for (n, v) in s.labels() {
        if n == METRIC_NAME || names.contains(&n) {
            return Err(format!("label name {:?} is not unique: invalid sample", n.as_ref()));
        }
        b.set(n.as_ref(), v.as_ref());
        names.push(n);
    }
    Ok(b.build())
}

/// Merges `target` into `scraped`. With `honor_labels` the scraped value wins; otherwise
/// the target's value wins and a conflicting scraped label moves to `exported_<name>`
/// (with more `exported_` prefixes until the name is free). Then applies `metric_relabel`;
/// `None` when relabeling drops the sample.
pub(crate) fn sample_labels(scraped: &Labels, target: &Labels, honor_labels: bool, metric_relabel: &[RelabelConfig]) -> Option<Labels> {
    let mut lb = scraped.builder();
    if honor_labels {
        for l in target.iter() {
            if scraped.get(&l.name).is_none() {
                lb.set(l.name.clone(), l.value.clone());
            }
        }
    } else {
        let mut conflicts = Vec::new();
        for l in target.iter() {
            if let Some(v) = scraped.get(&l.name) {
                conflicts.push((l.name.clone(), v.to_string()));
            }
            lb.set(l.name.clone(), l.value.clone());
        }
        for (name, value) in conflicts {
            let mut new_name = format!("exported_{name}");
            while scraped.get(&new_name).is_some() || target.get(&new_name).is_some() {
                new_name = format!("exported_{new_name}");
            }
            lb.set(new_name, value);
        }
    }
    let merged = lb.build();
    relabel::process(&merged, metric_relabel)
}

/// The configured label limits of a scrape config (0 = unlimited).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LabelLimits {
    pub labels: u64,
    pub name_length: u64,
    pub value_length: u64,
}

impl LabelLimits {
    /// Prometheus's `verifyLabelLimits`, with its messages.
    pub(crate) fn check(&self, lset: &Labels) -> Result<(), String> {
        let metric: String = lset.metric_name().unwrap_or("").chars().take(50).collect();
        if self.labels > 0 && lset.len() as u64 > self.labels {
            return Err(format!(
                "label_limit exceeded (metric: {metric}, number of labels: {}, limit: {})",
                lset.len(),
                self.labels
            ));
        }
        if self.name_length == 0 && self.value_length == 0 {
            return Ok(());
        }
        for l in lset.iter() {
            if self.name_length > 0 && l.name.len() as u64 > self.name_length {
                let name: String = l.name.chars().take(50).collect();
                return Err(format!(
                    "label_name_length_limit exceeded (metric: {metric}, label name: {name}, length: {}, limit: {})",
                    l.name.len(),
                    self.name_length
                ));
            }
            if self.value_length > 0 && l.value.len() as u64 > self.value_length {
                let value: String = l.value.chars().take(50).collect();
                return Err(format!(
                    "label_value_length_limit exceeded (metric: {metric}, label name: {}, value: {value:?}, length: {}, limit: {})",
                    l.name,
                    l.value.len(),
                    self.value_length
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn target_labels_merge_table() {
        let target = l(&[("job", "node"), ("instance", "h:1")]);
        type Pairs<'a> = &'a [(&'a str, &'a str)];
        // (scraped, honor_labels, want)
        let cases: &[(Pairs, bool, Pairs)] = &[
            (
                &[("__name__", "m"), ("a", "1")],
                false,
                &[("__name__", "m"), ("a", "1"), ("instance", "h:1"), ("job", "node")],
            ),
            (
                &[("__name__", "m"), ("job", "pushed")],
                false,
                &[("__name__", "m"), ("exported_job", "pushed"), ("instance", "h:1"), ("job", "node")],
            ),
            (
                &[("__name__", "m"), ("job", "pushed"), ("exported_job", "x")],
                false,
                &[
                    ("__name__", "m"),
                    ("exported_exported_job", "pushed"),
                    ("exported_job", "x"),
                    ("instance", "h:1"),
                    ("job", "node"),
                ],
            ),
            (
                &[("__name__", "m"), ("job", "pushed")],
                true,
                &[("__name__", "m"), ("instance", "h:1"), ("job", "pushed")],
            ),
        ];
        for (scraped, honor, want) in cases {
            assert_eq!(
                sample_labels(&l(scraped), &target, *honor, &[]),
                Some(l(want)),
                "{scraped:?} honor={honor}"
            );
        }
    }

    #[test]
    fn label_limits() {
        let lset = l(&[("__name__", "metric"), ("a", "1234567"), ("long_name", "v")]);
        let cases = [
            (
                LabelLimits {
                    labels: 3,
                    ..Default::default()
                },
                None,
            ),
            (
                LabelLimits {
                    labels: 2,
                    ..Default::default()
                },
                Some("label_limit exceeded (metric: metric, number of labels: 3, limit: 2)"),
            ),
            (
                LabelLimits {
                    name_length: 8,
                    ..Default::default()
                },
                Some("label_name_length_limit exceeded (metric: metric, label name: long_name, length: 9, limit: 8)"),
            ),
            (
                LabelLimits {
                    value_length: 6,
                    ..Default::default()
                },
                Some("label_value_length_limit exceeded (metric: metric, label name: a, value: \"1234567\", length: 7, limit: 6)"),
            ),
        ];
        for (limits, want) in cases {
            assert_eq!(limits.check(&lset).err().as_deref(), want, "{limits:?}");
        }
    }
}
