//! A series' label set as the head holds it: symbol ids into one table of the head's strings.
//!
//! [`Labels`] keeps two `String`s per label: for a typical 8-label series that is 17
//! allocations and ~1 KB. Most of those strings are shared by thousands of series (label
//! names, `job`, `instance`, `namespace`, ...), so the head keeps each distinct string once in
//! [`Symbols`], counted by the series that use it, and a series keeps one boxed byte string
//! of LEB128 symbol ids: name, value, name, value, ... in label order (~2–3 bytes a string
//! instead of ~10–20). A string leaves the table with the last series that used it.

use fedwatch_model::Labels;
use hashbrown::HashTable;

/// The head's distinct label names and values, each with the number of uses by series.
#[derive(Default)]
pub(crate) struct Symbols {
    /// By id: the string and its use count; a count of 0 is a free id (string emptied).
    strings: Vec<(Box<str>, u32)>,
    free: Vec<u32>,
    /// Ids with 32 bits of their string's hash, so growing the table re-reads no string
    /// (a replay interns a million strings; each re-read would be a cache miss).
    table: HashTable<(u32, u32)>,
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for Symbols {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbols").field("strings", &self.table.len()).finish()
    }
}

impl Symbols {
    /// 32 bits of `s`'s hash.
    fn hash32(&self, s: &str) -> u32 {
        use std::hash::BuildHasher;
        (self.hasher.hash_one(s) >> 32) as u32
    }

    /// The id of `s`, adding it if new; counts one more use.
    fn intern(&mut self, s: &str) -> u32 {
        let h32 = self.hash32(s);
        let strings = &self.strings;
        if let Some(&(id, _)) = self.table.find(spread(h32), |&(id, h)| h == h32 && &*strings[id as usize].0 == s) {
            self.strings[id as usize].1 += 1;
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.strings[id as usize] = (s.into(), 1);
                id
            }
            None => {
                self.strings.push((s.into(), 1));
                (self.strings.len() - 1) as u32
            }
        };
        self.table.insert_unique(spread(h32), (id, h32), |&(_, h)| spread(h));
        id
    }

    /// Counts one use less; the string goes when nothing uses it.
    fn release(&mut self, id: u32) {
        let Some(entry) = self.strings.get_mut(id as usize) else { return };
        entry.1 = entry.1.saturating_sub(1);
        if entry.1 > 0 {
            return;
        }
        let s = std::mem::take(&mut entry.0);
        let h32 = self.hash32(&s);
        if let Ok(found) = self.table.find_entry(spread(h32), |&(other, _)| other == id) {
            found.remove();
        }
        self.free.push(id);
    }

    fn get(&self, id: u32) -> &str {
        // Ids come from `intern` and are held by a series, so they are in use.
        self.strings.get(id as usize).map_or("", |(s, _)| s)
    }

    /// Distinct strings held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

/// Sorted labels as LEB128 symbol ids, name then value.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct CompactLabels(Box<[u8]>);

/// The table's 64-bit hash from the 32 stored bits (an odd multiplier spreads them into the
/// high bits, where the table takes its tag).
fn spread(h32: u32) -> u64 {
    u64::from(h32).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn put_id(out: &mut Vec<u8>, mut n: u32) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

impl CompactLabels {
    /// Packs `labels` (already sorted and unique, as [`Labels`] guarantees), counting a use
    /// of each string in `symbols`; give them back with [`CompactLabels::release`].
    pub(crate) fn new(labels: &Labels, symbols: &mut Symbols) -> Self {
        let mut out = Vec::with_capacity(labels.len() * 4);
        for l in labels.iter() {
            put_id(&mut out, symbols.intern(&l.name));
            put_id(&mut out, symbols.intern(&l.value));
        }
        CompactLabels(out.into_boxed_slice())
    }

    /// Gives back the uses counted by [`CompactLabels::new`].
    pub(crate) fn release(&self, symbols: &mut Symbols) {
        for id in self.ids() {
            symbols.release(id);
        }
    }

    fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        let b = &self.0[..];
        let mut at = 0;
        std::iter::from_fn(move || {
            let mut n = 0u32;
            let mut shift = 0;
            loop {
                let byte = *b.get(at)?;
                at += 1;
                n |= u32::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return Some(n);
                }
                shift += 7;
            }
        })
    }

    /// `(name, value)` pairs in label order.
    pub(crate) fn iter<'a>(&'a self, symbols: &'a Symbols) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let mut ids = self.ids();
        std::iter::from_fn(move || Some((symbols.get(ids.next()?), symbols.get(ids.next()?))))
    }

    /// True when these are exactly `labels`, compared without allocating.
    pub(crate) fn eq_labels(&self, labels: &Labels, symbols: &Symbols) -> bool {
        let mut mine = self.iter(symbols);
        for l in labels.iter() {
            match mine.next() {
                Some((n, v)) if n == l.name && v == l.value => {}
                _ => return false,
            }
        }
        mine.next().is_none()
    }

    /// The label set as an owned [`Labels`].
    pub(crate) fn to_labels(&self, symbols: &Symbols) -> Labels {
        Labels::from_pairs(self.iter(symbols))
    }

    /// Heap bytes held by the series itself.
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
        let mut symbols = Symbols::default();
        for pairs in cases {
            let labels = Labels::from_pairs(pairs.iter().copied());
            let c = CompactLabels::new(&labels, &mut symbols);
            assert_eq!(c.to_labels(&symbols), labels, "{pairs:?}");
            assert!(c.eq_labels(&labels, &symbols), "{pairs:?}");
            for other in cases.iter().filter(|o| **o != pairs) {
                assert!(
                    !c.eq_labels(&Labels::from_pairs(other.iter().copied()), &symbols),
                    "{pairs:?} vs {other:?}"
                );
            }
        }
    }

    #[test]
    fn a_prefix_is_not_equal() {
        let mut symbols = Symbols::default();
        let ab = Labels::from_pairs([("a", "1"), ("b", "2")]);
        let a = Labels::from_pairs([("a", "1")]);
        let cab = CompactLabels::new(&ab, &mut symbols);
        let ca = CompactLabels::new(&a, &mut symbols);
        assert!(!cab.eq_labels(&a, &symbols));
        assert!(!ca.eq_labels(&ab, &symbols));
        assert_eq!(cab.heap_bytes(), 4);
    }

    #[test]
    fn strings_are_shared_and_leave_with_their_last_series() {
        let mut symbols = Symbols::default();
        let x = Labels::from_pairs([("job", "node"), ("pod", "a")]);
        let y = Labels::from_pairs([("job", "node"), ("pod", "b")]);
        let cx = CompactLabels::new(&x, &mut symbols);
        let cy = CompactLabels::new(&y, &mut symbols);
        assert_eq!(symbols.len(), 5); // job, node, pod, a, b
        cx.release(&mut symbols);
        assert_eq!(cy.to_labels(&symbols), y);
        assert_eq!(symbols.len(), 4);
        // A freed id is reused for a new string and the old string is not found any more.
        let z = Labels::from_pairs([("job", "api"), ("pod", "a")]);
        let cz = CompactLabels::new(&z, &mut symbols);
        assert_eq!((cz.to_labels(&symbols), cy.to_labels(&symbols)), (z, y));
        cy.release(&mut symbols);
        cz.release(&mut symbols);
        assert_eq!(symbols.len(), 0);
    }

    #[test]
    fn many_ids_take_several_bytes_and_round_trip() {
        let mut symbols = Symbols::default();
        let all: Vec<CompactLabels> = (0..40_000)
            .map(|i| CompactLabels::new(&Labels::from_pairs([("id", i.to_string())]), &mut symbols))
            .collect();
        for (i, c) in all.iter().enumerate().step_by(997) {
            assert_eq!(c.to_labels(&symbols), Labels::from_pairs([("id", i.to_string())]));
        }
        assert_eq!(symbols.len(), 40_001);
    }
}
