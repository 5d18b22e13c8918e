//! A series' label set packed into one allocation, for the head to hold per series.
//!
//! [`Labels`] keeps two `String`s per label: for a typical 8-label series that is 17
//! allocations and ~1 KB, more than the series' samples take. The head only ever compares,
//! iterates or copies out a series' labels, so it keeps them as one boxed byte string:
//! for each label in order, the name's length (LEB128), the name, the value's length, the
//! value (the layout Prometheus's `stringlabels` build uses). Lengths come from `String`s,
//! so every name and value slice is valid UTF-8.

use fedwatch_model::Labels;

/// Sorted labels as one length-prefixed byte string.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CompactLabels(Box<[u8]>);

impl std::fmt::Debug for CompactLabels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a length at `*at`; the bytes were written by `put_len`, so they are well formed.
fn get_len(b: &[u8], at: &mut usize) -> usize {
    let mut n = 0usize;
    let mut shift = 0;
    while let Some(&byte) = b.get(*at) {
        *at += 1;
        n |= usize::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            break;
        }
        shift += 7;
    }
    n
}

impl CompactLabels {
    /// Packs `labels` (already sorted and unique, as [`Labels`] guarantees).
    pub(crate) fn new(labels: &Labels) -> Self {
        let len: usize = labels.iter().map(|l| l.name.len() + l.value.len() + 2).sum();
        let mut out = Vec::with_capacity(len);
        for l in labels.iter() {
            put_len(&mut out, l.name.len());
            out.extend_from_slice(l.name.as_bytes());
            put_len(&mut out, l.value.len());
            out.extend_from_slice(l.value.as_bytes());
        }
        CompactLabels(out.into_boxed_slice())
    }

    /// `(name, value)` byte pairs in label order.
    fn raw(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let b = &self.0[..];
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= b.len() {
                return None;
            }
            let n = get_len(b, &mut at);
            let name = b.get(at..at + n)?;
            at += n;
            let n = get_len(b, &mut at);
            let value = b.get(at..at + n)?;
            at += n;
            Some((name, value))
        })
    }

    /// `(name, value)` pairs in label order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        // Written from `String`s, so never invalid; an empty string would only hide a bug.
        self.raw().map(|(n, v)| {
            (
                std::str::from_utf8(n).unwrap_or_default(),
                std::str::from_utf8(v).unwrap_or_default(),
            )
        })
    }

    /// True when these are exactly `labels`, compared without allocating.
    pub(crate) fn eq_labels(&self, labels: &Labels) -> bool {
        let mut mine = self.raw();
        for l in labels.iter() {
            match mine.next() {
                Some((n, v)) if n == l.name.as_bytes() && v == l.value.as_bytes() => {}
                _ => return false,
            }
        }
        mine.next().is_none()
    }

    /// The label set as an owned [`Labels`].
    pub(crate) fn to_labels(&self) -> Labels {
        Labels::from_pairs(self.iter())
    }

    /// Heap bytes held.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_compares() {
        let long = "v".repeat(300);
        let cases: [&[(&str, &str)]; 5] = [
            &[],
            &[("a", "1")],
            &[("__name__", "up"), ("instance", "10.0.0.1:9100"), ("job", "node")],
            &[("__name__", "x"), ("long", long.as_str()), ("ü", "ñ")],
            &[("a", "b=c,d"), ("e", "\"quoted\"\n")],
        ];
        for pairs in cases {
            let labels = Labels::from_pairs(pairs.iter().copied());
            let c = CompactLabels::new(&labels);
            assert_eq!(c.to_labels(), labels, "{pairs:?}");
            assert!(c.eq_labels(&labels), "{pairs:?}");
            for other in cases.iter().filter(|o| **o != pairs) {
                assert!(!c.eq_labels(&Labels::from_pairs(other.iter().copied())), "{pairs:?} vs {other:?}");
            }
        }
    }

    #[test]
    fn a_prefix_is_not_equal() {
        let ab = Labels::from_pairs([("a", "1"), ("b", "2")]);
        let a = Labels::from_pairs([("a", "1")]);
        assert!(!CompactLabels::new(&ab).eq_labels(&a));
        assert!(!CompactLabels::new(&a).eq_labels(&ab));
        assert_eq!(CompactLabels::new(&ab).heap_bytes(), 8);
    }
}
