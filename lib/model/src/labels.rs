//! Label sets, kept sorted by name so equality, hashing and rendering are canonical.
//!
//! The representation is private: the storage engine issue swaps it for interned strings
//! without touching callers.

use std::fmt;

/// The label that carries the metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

/// A set of labels sorted by name, with unique names and no empty values.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// Builds a label set from pairs; later duplicates win and empty values are dropped,
    /// as Prometheus treats an empty value as an absent label.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        // Sort then keep the last of each name: O(n log n), where setting one by one would be
        // O(n^2) and let one request with 500k labels occupy a core for minutes.
        let mut labels: Vec<Label> = pairs
            .into_iter()
            .map(|(n, v)| Label {
                name: n.into(),
                value: v.into(),
            })
            .collect();
        // Stable, so equal names keep their input order and the last one is the later pair.
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(labels.len());
        for l in labels {
            match out.last_mut() {
                Some(last) if last.name == l.name => *last = l,
                _ => out.push(l),
            }
        }
        out.retain(|l| !l.value.is_empty());
        Labels(out)
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// The metric name, if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A builder seeded with these labels.
    pub fn builder(&self) -> LabelsBuilder {
        LabelsBuilder { labels: self.0.clone() }
    }

    /// A stable 64-bit fingerprint (xxh3 over name/value pairs with separators).
    pub fn fingerprint(&self) -> u64 {
        let mut buf = Vec::with_capacity(64);
        for l in &self.0 {
            buf.extend_from_slice(l.name.as_bytes());
            buf.push(0xff);
            buf.extend_from_slice(l.value.as_bytes());
            buf.push(0xff);
        }
        xxhash_rust::xxh3::xxh3_64(&buf)
    }

    /// The labels without `__name__`.
    pub fn without_metric_name(&self) -> Labels {
        Labels(self.0.iter().filter(|l| l.name != METRIC_NAME).cloned().collect())
    }
}

impl fmt::Display for Labels {
    /// Renders as `name{a="b", ...}` the way Prometheus prints series.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for l in self.0.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

/// Collects label changes and produces a sorted [`Labels`].
#[derive(Clone, Debug, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    /// Sets `name` to `value`; an empty value deletes the label.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let (name, value) = (name.into(), value.into());
        match self.labels.iter().position(|l| l.name == name) {
            Some(i) if value.is_empty() => {
                self.labels.remove(i);
            }
            Some(i) => self.labels[i].value = value,
            None if value.is_empty() => {}
            None => self.labels.push(Label { name, value }),
        }
        self
    }

    /// Removes `name` if present.
    pub fn del(&mut self, name: &str) -> &mut Self {
        self.labels.retain(|l| l.name != name);
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|l| l.name == name).map(|l| l.value.as_str())
    }

    /// Keeps only labels for which `keep` answers true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Label) -> bool) -> &mut Self {
        self.labels.retain(|l| keep(l));
        self
    }

    pub fn build(mut self) -> Labels {
        self.labels.sort_by(|a, b| a.name.cmp(&b.name));
        Labels(self.labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_deduplicated_and_empty_values_dropped() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("b", "3")]);
        let names: Vec<_> = l.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
        assert_eq!(names, vec![("a", "1"), ("b", "3")]);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
        // A later empty value deletes, a later value revives: the last pair of a name decides.
        let l = Labels::from_pairs([("d", "1"), ("e", ""), ("d", ""), ("e", "5")]);
        assert_eq!(l.to_string(), "{e=\"5\"}");
    }

    #[test]
    fn display_like_prometheus() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "node"), ("instance", "a:1")]);
        assert_eq!(l.to_string(), r#"up{instance="a:1", job="node"}"#);
        assert_ne!(l.fingerprint(), l.without_metric_name().fingerprint());
    }
}
