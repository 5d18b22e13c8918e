//! Inhibition (`inhibit_rules`), as Alertmanager's inhibitor decides it: an alert is muted
//! while some *firing* alert matches a rule's source side, the alert matches the rule's
//! target side, and both carry the same value (absent counts as empty) for every label in
//! `equal`. When the muted alert also matches the source side, source alerts that also
//! match the target side are not considered, so an alert never inhibits itself and two
//! alerts matching both sides do not silence each other.
//!
//! The deprecated `source_match`/`target_match` (equality) and `*_match_re` (anchored
//! regex) maps are turned into matchers and combined with `source_matchers` /
//! `target_matchers`; all of a side's matchers must match. Rules are evaluated at flush
//! and API time over the notifier's current alerts, so there is no cache to go stale.

use std::collections::BTreeMap;

use fedwatch_model::{Labels, MatchOp, Matcher};

/// One resolved `inhibit_rules` entry.
#[derive(Clone, Debug)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

/// What a rule says as written; validated into an [`InhibitRule`].
pub(crate) struct RawSides<'a> {
    pub source_match: &'a Option<BTreeMap<String, String>>,
    pub source_match_re: &'a Option<BTreeMap<String, Option<String>>>,
    pub source_matchers: &'a Option<Vec<String>>,
    pub target_match: &'a Option<BTreeMap<String, String>>,
    pub target_match_re: &'a Option<BTreeMap<String, Option<String>>>,
    pub target_matchers: &'a Option<Vec<String>>,
    pub equal: &'a Option<Vec<String>>,
}

impl InhibitRule {
    /// Validates one rule; errors name the field and the offending label or value.
    pub(crate) fn from_raw(raw: RawSides<'_>) -> Result<InhibitRule, String> {
        let side = |name: &str,
                    eq: &Option<BTreeMap<String, String>>,
                    re: &Option<BTreeMap<String, Option<String>>>,
                    lines: &Option<Vec<String>>|
         -> Result<Vec<Matcher>, String> {
            let mut out = Vec::new();
            for (k, v) in eq.iter().flatten() {
                check_label_name(k).map_err(|e| format!("{name}_match: {e}"))?;
                out.push(Matcher::equal(k.clone(), v.clone()));
            }
            for (k, v) in re.iter().flatten() {
                let v = v
                    .as_ref()
                    .ok_or_else(|| format!("invalid regexp value for {k:?} in {name}_match_re"))?;
                check_label_name(k).map_err(|e| format!("{name}_match_re: {e}"))?;
                out.push(Matcher::new(MatchOp::RegexMatch, k.clone(), v.clone()).map_err(|e| format!("{name}_match_re: {e}"))?);
            }
            for line in lines.iter().flatten() {
                out.extend(super::route::parse_matchers(line).map_err(|e| format!("{name}_matchers: {e}"))?);
            }
            Ok(out)
        };
        let source = side("source", raw.source_match, raw.source_match_re, raw.source_matchers)?;
        let target = side("target", raw.target_match, raw.target_match_re, raw.target_matchers)?;
        let mut equal = Vec::new();
        for l in raw.equal.iter().flatten() {
            check_label_name(l).map_err(|e| format!("equal: {e}"))?;
            if !equal.contains(l) {
                equal.push(l.clone());
            }
        }
        Ok(InhibitRule { source, target, equal })
    }

    fn source_matches(&self, labels: &Labels) -> bool {
        self.source.iter().all(|m| m.matches_labels(labels))
    }

    fn target_matches(&self, labels: &Labels) -> bool {
        self.target.iter().all(|m| m.matches_labels(labels))
    }

    /// The fingerprints among `firing` (fingerprint, labels) that inhibit `labels` by this rule.
    pub fn inhibitors<'a>(&self, labels: &Labels, firing: impl IntoIterator<Item = (u64, &'a Labels)>) -> Vec<u64> {
        if !self.target_matches(labels) {
            return Vec::new();
        }
        let two_sided = self.source_matches(labels);
        firing
            .into_iter()
            .filter(|(_, src)| self.source_matches(src))
            .filter(|(_, src)| self.equal.iter().all(|n| src.get(n).unwrap_or("") == labels.get(n).unwrap_or("")))
            .filter(|(_, src)| !(two_sided && self.target_matches(src)))
            .map(|(fp, _)| fp)
            .collect()
    }
}

/// The fingerprints of the firing alerts that inhibit `labels` under any of `rules`, sorted
/// and without repeats; empty when the alert is not inhibited.
pub fn inhibited_by(rules: &[InhibitRule], labels: &Labels, firing: &[(u64, &Labels)]) -> Vec<u64> {
    let mut out: Vec<u64> = rules.iter().flat_map(|r| r.inhibitors(labels, firing.iter().copied())).collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn check_label_name(name: &str) -> Result<(), String> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid label name {name:?}: expected [a-zA-Z_][a-zA-Z0-9_]*"))
    }
}

#[cfg(test)]
mod tests;
