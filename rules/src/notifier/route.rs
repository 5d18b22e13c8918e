//! The Alertmanager route tree: matching, inheritance of receiver and timing, and route keys.
//!
//! An alert enters at the root (which matches everything); children are tried in order and
//! the first matching child wins unless it has `continue: true`; a node none of whose
//! children match is itself the match. Children inherit `receiver`, `group_by`,
//! `group_wait` (30s), `group_interval` (5m) and `repeat_interval` (4h) from their parent.
//! A route's key is its parent's key, `/`, and its sorted matchers (`{}` at the root), e.g.
//! `{}/{severity="page"}`; it prefixes every group key.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use fedwatch_model::{Labels, MatchOp, Matcher};

use crate::notifier::config::RawRoute;
use fedwatch_config::parse_duration;

/// A resolved route.
#[derive(Clone, Debug)]
pub struct Route {
    pub receiver: String,
    pub group_by: Vec<String>,
    /// `group_by: ['...']`: every label groups.
    pub group_by_all: bool,
    pub matchers: Vec<Matcher>,
    pub continue_: bool,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    /// `labels:` of the route merged from its ancestors (`routeLabels` in the payload).
    pub labels: BTreeMap<String, String>,
    pub routes: Vec<Route>,
    pub key: String,
    /// Interval names during which this route sends nothing (not inherited, as in Alertmanager).
    pub mute_time_intervals: Vec<String>,
    /// Interval names outside all of which this route sends nothing.
    pub active_time_intervals: Vec<String>,
}

type RouteError = (Option<u64>, String);

impl Route {
    pub(crate) fn from_raw_root(raw: RawRoute, receivers: &HashSet<String>, intervals: &HashSet<String>) -> Result<Route, RouteError> {
        let err = |s: &str| Err((None, s.to_string()));
        if raw.match_.as_ref().is_some_and(|m| !m.is_empty())
            || raw.match_re.as_ref().is_some_and(|m| !m.is_empty())
            || raw.matchers.as_ref().is_some_and(|m| !m.is_empty())
        {
            return err("root route must not have any matchers");
        }
        if raw.mute_time_intervals.as_ref().is_some_and(|m| !m.is_empty()) {
            return err("root route must not have any mute time intervals");
        }
        if raw.active_time_intervals.as_ref().is_some_and(|m| !m.is_empty()) {
            return err("root route must not have any active time intervals");
        }
        if raw.continue_ == Some(true) {
            return err("cannot have continue in root route");
        }
        let defaults = Route {
            receiver: String::new(),
            group_by: Vec::new(),
            group_by_all: false,
            matchers: Vec::new(),
            continue_: false,
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            labels: BTreeMap::new(),
            routes: Vec::new(),
            key: String::new(),
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
        };
        if raw.receiver.as_deref().unwrap_or("").is_empty() {
            // Alertmanager reports problems inside the route (group_by, intervals) first.
            let mut with_empty = receivers.clone();
            with_empty.insert(String::new());
            Route::from_raw(raw, &defaults, None, &with_empty, intervals)?;
            return err("root route must specify a default receiver");
        }
        Route::from_raw(raw, &defaults, None, receivers, intervals)
    }

    fn from_raw(
        raw: RawRoute,
        parent: &Route,
        parent_key: Option<&str>,
        receivers: &HashSet<String>,
        intervals: &HashSet<String>,
    ) -> Result<Route, RouteError> {
        let fail = |s: String| (None, s);
        let receiver = match raw.receiver {
            Some(r) if !r.is_empty() => r,
            _ => parent.receiver.clone(),
        };
        if !receivers.contains(&receiver) {
            return Err(fail(format!("undefined receiver {receiver:?} used in route")));
        }
        for ti in raw.mute_time_intervals.iter().chain(raw.active_time_intervals.iter()).flatten() {
            if !intervals.contains(ti) {
                return Err(fail(format!("undefined time interval {ti:?} used in route")));
            }
        }
        let (mut group_by, mut group_by_all) = (parent.group_by.clone(), parent.group_by_all);
        if let Some(gb) = raw.group_by {
            group_by = Vec::new();
            group_by_all = false;
            for l in gb {
                if l == "..." {
                    group_by_all = true;
                } else if l.is_empty() || l.starts_with('-') || l.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    return Err(fail(format!("invalid label name {l:?} in group_by list")));
                } else if group_by.contains(&l) {
                    return Err(fail(format!("duplicated label {l:?} in group_by")));
                } else {
                    group_by.push(l);
                }
            }
            if group_by_all && !group_by.is_empty() {
                return Err(fail(
                    "cannot have wildcard group_by (`...`) and other labels at the same time".into(),
                ));
            }
        }
        let duration = |field: &str, v: Option<String>, inherited: Duration| -> Result<Duration, RouteError> {
            match v {
                None => Ok(inherited),
                Some(s) => {
                    let d = parse_duration(&s).map_err(|e| fail(format!("{field}: {e}")))?;
                    if d.is_zero() && field != "group_wait" {
                        return Err(fail(format!("{field} cannot be zero")));
                    }
                    Ok(d)
                }
            }
        };
        let group_wait = duration("group_wait", raw.group_wait, parent.group_wait)?;
        let group_interval = duration("group_interval", raw.group_interval, parent.group_interval)?;
        let repeat_interval = duration("repeat_interval", raw.repeat_interval, parent.repeat_interval)?;

        let mut matchers = Vec::new();
        for (k, v) in raw.match_.unwrap_or_default() {
            check_label_name(&k)?;
            matchers.push(Matcher::equal(k, v));
        }
        for (k, v) in raw.match_re.unwrap_or_default() {
            check_label_name(&k)?;
            let v = v.ok_or_else(|| fail(format!("invalid regexp value for {k:?}")))?;
            // Alertmanager anchors legacy `match_re` values and shows them anchored in keys.
            matchers.push(Matcher::new(MatchOp::RegexMatch, k, format!("^(?:{v})$")).map_err(|e| fail(e.to_string()))?);
        }
        for line in raw.matchers.unwrap_or_default() {
            matchers.extend(parse_matchers(&line).map_err(fail)?);
        }
        matchers.sort_by(|a, b| (&a.name, &a.value, op_rank(a.op)).cmp(&(&b.name, &b.value, op_rank(b.op))));
        let mut labels = parent.labels.clone();
        for (k, v) in raw.labels.unwrap_or_default() {
            if k.is_empty() || k.starts_with('-') {
                return Err(fail(format!("invalid label name {k:?} in route labels")));
            }
            labels.insert(k, v);
        }
        let matchers_str = format!("{{{}}}", matchers.iter().map(matcher_string).collect::<Vec<_>>().join(","));
        let key = match parent_key {
            Some(p) => format!("{p}/{matchers_str}"),
            None => matchers_str,
        };
        let mut route = Route {
            receiver,
            group_by,
            group_by_all,
            matchers,
            continue_: raw.continue_.unwrap_or(false),
            group_wait,
            group_interval,
            repeat_interval,
            labels,
            routes: Vec::new(),
            key,
            mute_time_intervals: raw.mute_time_intervals.unwrap_or_default(),
            active_time_intervals: raw.active_time_intervals.unwrap_or_default(),
        };
        let mut children = Vec::new();
        for child in raw.routes.unwrap_or_default() {
            let line = child.referenced.line();
            let c = Route::from_raw(child.value, &route, Some(&route.key), receivers, intervals).map_err(|(l, e)| (l.or(Some(line)), e))?;
            children.push(c);
        }
        route.routes = children;
        Ok(route)
    }

    /// The routes an alert with `labels` goes to, in order.
    pub fn matching(&self, labels: &Labels) -> Vec<&Route> {
        if !self.matchers.iter().all(|m| m.matches_labels(labels)) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for child in &self.routes {
            let matched = child.matching(labels);
            let any = !matched.is_empty();
            all.extend(matched);
            if any && !child.continue_ {
                break;
            }
        }
        if all.is_empty() {
            all.push(self);
        }
        all
    }

    /// The labels an alert is grouped on under this route.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        if self.group_by_all {
            return labels.clone();
        }
        Labels::from_pairs(
            self.group_by
                .iter()
                .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.to_string()))),
        )
    }
}

fn check_label_name(name: &str) -> Result<(), RouteError> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err((None, format!("invalid label name {name:?}")))
    }
}

fn op_rank(op: MatchOp) -> u8 {
    match op {
        MatchOp::Equal => 0,
        MatchOp::NotEqual => 1,
        MatchOp::RegexMatch => 2,
        MatchOp::RegexNoMatch => 3,
    }
}

fn op_str(op: MatchOp) -> &'static str {
    match op {
        MatchOp::Equal => "=",
        MatchOp::NotEqual => "!=",
        MatchOp::RegexMatch => "=~",
        MatchOp::RegexNoMatch => "!~",
    }
}

fn matcher_string(m: &Matcher) -> String {
    format!("{}{}{}", m.name, op_str(m.op), go_quote(&m.value))
}

/// Go's `%q` for the ASCII cases that matter in keys.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parses one `matchers:` entry: `{a="b", c=~"d"}` or `a=b,c!~"d"` (values may be unquoted).
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, String> {
    let bad = |why: &str| format!("bad matcher {input:?}: {why}");
    let mut s = input.trim();
    if let Some(inner) = s.strip_prefix('{') {
        s = inner.strip_suffix('}').ok_or_else(|| bad("missing closing '}'"))?;
    }
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && !matches!(chars[i], '=' | '!' | '~') {
            i += 1;
        }
        let mut name: String = chars[start..i].iter().collect::<String>().trim().to_string();
        if name.starts_with('"') && name.ends_with('"') && name.len() >= 2 {
            name = name[1..name.len() - 1].to_string();
        }
        if name.is_empty() {
            return Err(bad("missing label name"));
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let (op, len) = if rest.starts_with("=~") {
            (MatchOp::RegexMatch, 2)
        } else if rest.starts_with("!~") {
            (MatchOp::RegexNoMatch, 2)
        } else if rest.starts_with("!=") {
            (MatchOp::NotEqual, 2)
        } else if rest.starts_with('=') {
            (MatchOp::Equal, 1)
        } else {
            return Err(bad("expected one of =, !=, =~, !~"));
        };
        i += len;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < chars.len() && chars[i] == '"' {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(bad("unterminated quoted value")),
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        match chars.get(i + 1) {
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some(c) => value.push(*c),
                            None => return Err(bad("dangling escape")),
                        }
                        i += 2;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < chars.len() && chars[i] != ',' {
                value.push(chars[i]);
                i += 1;
            }
            value = value.trim().to_string();
        }
        out.push(Matcher::new(op, name, value).map_err(|e| bad(&e.to_string()))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
