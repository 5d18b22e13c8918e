//! The postings index: label name → label value → sorted series refs, and the set algebra
//! that turns matchers into a sorted ref list.
//!
//! Invariants: every list is sorted ascending without duplicates; an empty list is removed
//! together with its value (and a name with no values left is removed); `all` holds every
//! ref. Refs are handed out in increasing order, so adding a series is a push.
//!
//! Matchers follow Prometheus: a matcher that does not match the empty string selects the
//! union of the lists of the values it matches (intersected into the result); one that
//! matches the empty string also selects series without the label, so it is applied by
//! subtracting the union of the values it does *not* match.

use std::collections::BTreeMap;
use std::ops::Bound;

use fedwatch_model::{Labels, MatchOp, Matcher};

/// A series' id inside one head; never reused while the process runs.
pub type SeriesRef = u64;

/// Label name → value → sorted refs.
#[derive(Debug, Default)]
pub struct MemPostings {
    index: BTreeMap<String, BTreeMap<String, Vec<SeriesRef>>>,
    all: Vec<SeriesRef>,
}

impl MemPostings {
    /// Builds an index from lists read back from a block; each list must be sorted and unique.
    pub(crate) fn from_lists(all: Vec<SeriesRef>, index: BTreeMap<String, BTreeMap<String, Vec<SeriesRef>>>) -> Self {
        MemPostings { index, all }
    }

    /// Indexes `labels` under `r`; `r` must be larger than every ref added before.
    pub fn add(&mut self, r: SeriesRef, labels: &Labels) {
        insert_sorted(&mut self.all, r);
        // Names and values are almost always indexed already: find them by reference and
        // copy a string only for a new entry.
        for l in labels.iter() {
            if let Some(values) = self.index.get_mut(l.name.as_str()) {
                match values.get_mut(l.value.as_str()) {
                    Some(list) => insert_sorted(list, r),
                    None => {
                        values.insert(l.value.clone(), vec![r]);
                    }
                }
                continue;
            }
            self.index.entry(l.name.clone()).or_default().insert(l.value.clone(), vec![r]);
        }
    }

    /// Removes `r`, indexed under `labels`.
    pub fn remove(&mut self, r: SeriesRef, labels: &Labels) {
        remove_sorted(&mut self.all, r);
        for l in labels.iter() {
            let Some(values) = self.index.get_mut(&l.name) else { continue };
            if let Some(list) = values.get_mut(&l.value) {
                remove_sorted(list, r);
                if list.is_empty() {
                    values.remove(&l.value);
                }
            }
            if values.is_empty() {
                self.index.remove(&l.name);
            }
        }
    }

    /// Every ref, sorted.
    pub fn all(&self) -> &[SeriesRef] {
        &self.all
    }

    /// Label names with at least one series, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// Values of `name`, sorted, with their lists.
    pub fn values(&self, name: &str) -> impl Iterator<Item = (&str, &[SeriesRef])> {
        self.index
            .get(name)
            .into_iter()
            .flat_map(|v| v.iter().map(|(k, l)| (k.as_str(), l.as_slice())))
    }

    /// Sorted values of `name` held by at least one of `refs` (sorted): the answer to a
    /// label-values query with matchers. Walks the name's values, which is cheap when a name
    /// has few values, the common case for dashboards.
    pub fn values_among(&self, name: &str, refs: &[SeriesRef]) -> Vec<String> {
        self.values(name)
            .filter(|(_, list)| !intersect(list, refs).is_empty())
            .map(|(v, _)| v.to_string())
            .collect()
    }

    /// The list for one exact pair (empty when absent).
    pub fn get(&self, name: &str, value: &str) -> &[SeriesRef] {
        self.index.get(name).and_then(|v| v.get(value)).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Refs of series satisfying every matcher, sorted.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<SeriesRef> {
        let mut positive: Vec<Vec<SeriesRef>> = Vec::new();
        let mut negative: Vec<Vec<SeriesRef>> = Vec::new();
        for m in matchers {
            if m.matches_empty() {
                negative.push(self.values_where(m, false));
            } else {
                positive.push(self.values_where(m, true));
            }
        }
        // Smallest first keeps every intersection step as cheap as possible.
        positive.sort_by_key(Vec::len);
        let mut out = match positive.split_first() {
            None => self.all.clone(),
            Some((first, rest)) => rest.iter().fold(first.clone(), |acc, l| intersect(&acc, l)),
        };
        for n in &negative {
            if out.is_empty() {
                break;
            }
            out = subtract(&out, n);
        }
        out
    }

    /// Union of the lists of `m.name`'s values for which `m.matches(value) == want`.
    fn values_where(&self, m: &Matcher, want: bool) -> Vec<SeriesRef> {
        let Some(values) = self.index.get(&m.name) else { return Vec::new() };
        let lists: Vec<&[SeriesRef]> = match literal_set(m) {
            // Equality and literal alternations: look the values up instead of scanning.
            Some((lits, positive)) if positive == want => lits.iter().filter_map(|v| values.get(*v)).map(Vec::as_slice).collect(),
            Some((lits, _)) => values
                .iter()
                .filter(|(v, _)| !lits.contains(&v.as_str()))
                .map(|(_, l)| l.as_slice())
                .collect(),
            None => match literal_prefix(m) {
                // Values the regex matches all start with its literal prefix: scan only those.
                Some(prefix) if want == (m.op == MatchOp::RegexMatch) => values
                    .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                    .take_while(|(v, _)| v.starts_with(prefix.as_str()))
                    .filter(|(v, _)| m.matches(v) == want)
                    .map(|(_, l)| l.as_slice())
                    .collect(),
                _ => values
                    .iter()
                    .filter(|(v, _)| m.matches(v) == want)
                    .map(|(_, l)| l.as_slice())
                    .collect(),
            },
        };
        union(&lists)
    }
}

/// For `=`/`!=` and `=~`/`!~` over a plain `a|b|c` alternation: the literal values and
/// whether the matcher selects them (true) or everything else (false).
fn literal_set(m: &Matcher) -> Option<(Vec<&str>, bool)> {
    match m.op {
        MatchOp::Equal => Some((vec![m.value.as_str()], true)),
        MatchOp::NotEqual => Some((vec![m.value.as_str()], false)),
        MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
            let special = |c: char| "\\.+*?()[]{}^$".contains(c);
            if m.value.contains(special) {
                return None;
            }
            Some((m.value.split('|').collect(), m.op == MatchOp::RegexMatch))
        }
    }
}

/// The literal text every match of a regex matcher must start with (e.g. `10.0.1` for
/// `10\.0\.1.*`), when the regex has no alternation and the prefix is not empty.
fn literal_prefix(m: &Matcher) -> Option<String> {
    if !matches!(m.op, MatchOp::RegexMatch | MatchOp::RegexNoMatch) || m.value.contains('|') {
        return None;
    }
    let mut prefix = String::new();
    let mut chars = m.value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&e) if e.is_ascii_punctuation() => {
                    prefix.push(e);
                    chars.next();
                }
                _ => break,
            },
            c if "\\.+*?()[]{}^$".contains(c) => {
                // A quantifier applies to the last literal, which is then optional or repeated.
                if matches!(c, '*' | '?' | '{') {
                    prefix.pop();
                }
                break;
            }
            c => prefix.push(c),
        }
    }
    (!prefix.is_empty()).then_some(prefix)
}

/// Adds `r` to a sorted list. Lists grow by an eighth rather than doubling: the head's lists
/// together hold a ref per label of every series, and the longest ones (a job's, a region's)
/// would otherwise carry up to as much unused room as refs.
fn insert_sorted(list: &mut Vec<SeriesRef>, r: SeriesRef) {
    if list.len() == list.capacity() {
        list.reserve_exact((list.len() / 8).max(3));
    }
    match list.last() {
        None => list.push(r),
        Some(&last) if last < r => list.push(r),
        _ => {
            if let Err(i) = list.binary_search(&r) {
                list.insert(i, r);
            }
        }
    }
}

fn remove_sorted(list: &mut Vec<SeriesRef>, r: SeriesRef) {
    if let Ok(i) = list.binary_search(&r) {
        list.remove(i);
    }
}

/// Refs in both sorted lists; gallops through the longer list when sizes differ a lot.
pub fn intersect(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    if small.len() * 32 < large.len() {
        // Exponential search forward from the last position, then binary search inside the
        // bracket: nearby memory first, unlike a binary search over the whole rest.
        let mut rest = large;
        for &r in small {
            let mut hi = 1;
            while hi < rest.len() && rest[hi - 1] < r {
                hi *= 2;
            }
            let lo = hi / 2;
            let hi = hi.min(rest.len());
            match rest[lo..hi].binary_search(&r) {
                Ok(i) => {
                    out.push(r);
                    rest = &rest[lo + i + 1..];
                }
                Err(i) => rest = &rest[lo + i..],
            }
            if rest.is_empty() {
                break;
            }
        }
        return out;
    }
    let (mut i, mut j) = (0, 0);
    while i < small.len() && j < large.len() {
        match small[i].cmp(&large[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(small[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Refs in sorted `a` that are not in sorted `b`.
pub fn subtract(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &r in a {
        while j < b.len() && b[j] < r {
            j += 1;
        }
        if j >= b.len() || b[j] != r {
            out.push(r);
        }
    }
    out
}

/// The sorted union of sorted lists: pairwise merges for a few lists, sort for many.
pub fn union(lists: &[&[SeriesRef]]) -> Vec<SeriesRef> {
    match lists {
        [] => Vec::new(),
        [one] => one.to_vec(),
        _ if lists.len() <= 8 => {
            let mut out = lists[0].to_vec();
            for l in &lists[1..] {
                out = merge(&out, l);
            }
            out
        }
        _ => {
            let mut out: Vec<SeriesRef> = lists.iter().flat_map(|l| l.iter().copied()).collect();
            out.sort_unstable();
            out.dedup();
            out
        }
    }
}

/// Merges two sorted lists without duplicates.
fn merge(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;

    #[test]
    fn set_algebra_table() {
        let cases: [(&[u64], &[u64], &[u64], &[u64], &[u64]); 5] = [
            // a, b, a∩b, a−b, a∪b
            (&[], &[1, 2], &[], &[], &[1, 2]),
            (&[1, 3, 5], &[2, 3, 4, 5], &[3, 5], &[1], &[1, 2, 3, 4, 5]),
            (&[1, 2, 3], &[1, 2, 3], &[1, 2, 3], &[], &[1, 2, 3]),
            (
                &[7],
                &[
                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
                    33, 34,
                ],
                &[7],
                &[],
                &[
                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
                    33, 34,
                ],
            ),
            (
                &[100],
                &[
                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
                    33, 34,
                ],
                &[],
                &[100],
                &[
                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
                    33, 34, 100,
                ],
            ),
        ];
        for (a, b, i, s, u) in cases {
            assert_eq!(intersect(a, b), i, "{a:?} ∩ {b:?}");
            assert_eq!(intersect(b, a), i, "{b:?} ∩ {a:?}");
            assert_eq!(subtract(a, b), s, "{a:?} − {b:?}");
            assert_eq!(union(&[a, b]), u, "{a:?} ∪ {b:?}");
            assert_eq!(union(&[a, b, a, b, a, b, a, b, a]), u, "{a:?} ∪ {b:?} via sort");
        }
    }

    fn sorted_set(max_len: usize, spread: u64) -> impl proptest::strategy::Strategy<Value = Vec<u64>> {
        use proptest::prelude::*;
        prop::collection::btree_set(0..spread, 0..max_len).prop_map(|s| s.into_iter().collect())
    }

    proptest::proptest! {
        #[test]
        fn set_algebra_matches_btreeset(a in sorted_set(40, 5_000), b in sorted_set(3_000, 5_000)) {
            use std::collections::BTreeSet;
            let (sa, sb): (BTreeSet<u64>, BTreeSet<u64>) = (a.iter().copied().collect(), b.iter().copied().collect());
            proptest::prop_assert_eq!(intersect(&a, &b), sa.intersection(&sb).copied().collect::<Vec<_>>());
            proptest::prop_assert_eq!(intersect(&b, &a), sa.intersection(&sb).copied().collect::<Vec<_>>());
            proptest::prop_assert_eq!(subtract(&a, &b), sa.difference(&sb).copied().collect::<Vec<_>>());
            proptest::prop_assert_eq!(subtract(&b, &a), sb.difference(&sa).copied().collect::<Vec<_>>());
            proptest::prop_assert_eq!(union(&[&a, &b]), sa.union(&sb).copied().collect::<Vec<_>>());
        }
    }

    #[test]
    fn literal_prefixes_table() {
        let cases = [
            ("10\\.0\\.1.*", Some("10.0.1")),
            ("nodee?", Some("node")),
            ("nod{1}e", Some("no")),
            ("ab+c", Some("ab")),
            ("foo(bar)?", Some("foo")),
            ("api|n.*", None),
            ("(?i)API", None),
            ("\\w+", None),
            (".*x", None),
        ];
        for (re, want) in cases {
            let m = Matcher::new(MatchOp::RegexMatch, "a", re).unwrap();
            assert_eq!(literal_prefix(&m).as_deref(), want, "{re}");
        }
    }

    #[test]
    fn matchers_select_like_a_scan() {
        let series = [
            vec![("__name__", "up"), ("job", "node"), ("env", "prod")],
            vec![("__name__", "up"), ("job", "node"), ("env", "dev")],
            vec![("__name__", "up"), ("job", "api")],
            vec![("__name__", "rate"), ("job", "api"), ("env", "prod")],
        ];
        let mut p = MemPostings::default();
        let labels: Vec<Labels> = series.iter().map(|s| Labels::from_pairs(s.iter().copied())).collect();
        for (i, l) in labels.iter().enumerate() {
            p.add(i as u64, l);
        }
        let m = |op, n: &str, v: &str| Matcher::new(op, n, v).unwrap();
        use MatchOp::*;
        let cases: Vec<Vec<Matcher>> = vec![
            vec![],
            vec![m(Equal, "job", "node")],
            vec![m(NotEqual, "env", "prod")],
            vec![m(Equal, "env", "")],
            vec![m(NotEqual, "env", "")],
            vec![m(RegexMatch, "env", "prod|dev")],
            vec![m(RegexMatch, "env", "prod|")],
            vec![m(RegexNoMatch, "env", "prod|dev")],
            vec![m(RegexMatch, "job", "n.*")],
            vec![m(RegexMatch, "job", "no.+")],
            vec![m(RegexMatch, "job", "nodee?")],
            vec![m(RegexMatch, "job", "nodx*e")],
            vec![m(RegexMatch, "job", "nod{1}e")],
            vec![m(RegexMatch, "job", "api|n.*")],
            vec![m(RegexNoMatch, "job", "a.*")],
            vec![m(RegexMatch, "job", "\\w+")],
            vec![m(RegexMatch, "job", "(?i)API")],
            vec![m(RegexNoMatch, "job", ".*")],
            vec![m(RegexMatch, "missing", ".*")],
            vec![m(Equal, "__name__", "up"), m(RegexNoMatch, "env", "p.*"), m(NotEqual, "job", "api")],
            vec![m(RegexMatch, "job", "api|node"), m(Equal, "env", "prod")],
        ];
        for ms in cases {
            let want: Vec<u64> = (0..labels.len() as u64)
                .filter(|&i| ms.iter().all(|m| m.matches_labels(&labels[i as usize])))
                .collect();
            assert_eq!(p.select(&ms), want, "{ms:?}");
        }
        p.remove(1, &labels[1]);
        assert_eq!(p.values("env").map(|(v, _)| v).collect::<Vec<_>>(), vec!["prod"]);
        assert_eq!(p.all(), &[0, 2, 3]);
    }
}
