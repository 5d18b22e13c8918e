//! Named time intervals (`time_intervals`, and the older `mute_time_intervals`) and the
//! test whether one contains an instant, with Alertmanager's semantics.
//!
//! A named interval is a list of specs and is active when any spec contains the instant. A
//! spec restricts by `times` (minutes of the day, end exclusive, `24:00` allowed),
//! `weekdays`, `days_of_month` (negative counts from the month's end), `months` and
//! `years`; every field given must match (an absent one matches all), and within a field any
//! range may. Ranges are inclusive and written `a:b`; names are case-insensitive.
//!
//! `location` is evaluated without a time zone database: `UTC`, `Etc/UTC`, `GMT`,
//! `Etc/GMT`, `Etc/GMT+N`/`Etc/GMT-N` (POSIX sign: `Etc/GMT-2` is two hours *east* of UTC)
//! and `Local` (the machine's zone) are accepted, each also valid for Alertmanager; other
//! IANA names are configuration errors that say so, rather than silently evaluating in UTC.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, FixedOffset, Local, NaiveDate, TimeZone, Timelike, Utc};
use serde::Deserialize;
use serde_json::Value as Json;

/// Where a spec's calendar fields are evaluated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Location {
    Utc,
    /// The machine's local zone, daylight saving included.
    Local,
    Fixed(FixedOffset),
}

/// One spec of a named interval; empty lists mean "any".
#[derive(Clone, Debug, PartialEq)]
pub struct TimeInterval {
    /// Minutes of the day `[start, end)`.
    pub times: Vec<(u32, u32)>,
    /// Inclusive, 0 = Sunday.
    pub weekdays: Vec<(u32, u32)>,
    /// Inclusive; negative values count from the month's end (-1 = last day).
    pub days_of_month: Vec<(i32, i32)>,
    /// Inclusive, 1 = January.
    pub months: Vec<(u32, u32)>,
    pub years: Vec<(i32, i32)>,
    pub location: Location,
}

/// Named intervals as configured, by name.
pub type TimeIntervals = BTreeMap<String, Vec<TimeInterval>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    times: Option<Vec<RawTimes>>,
    weekdays: Option<Vec<Json>>,
    days_of_month: Option<Vec<Json>>,
    months: Option<Vec<Json>>,
    years: Option<Vec<Json>>,
    location: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimes {
    start_time: Option<String>,
    end_time: Option<String>,
}

const WEEKDAYS: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Parses the `time_intervals:` list of one named interval (`null` is an empty list).
pub fn parse_specs(raw: &Json) -> Result<Vec<TimeInterval>, String> {
    let specs: Option<Vec<RawSpec>> = serde_json::from_value(raw.clone()).map_err(|e| e.to_string())?;
    specs.unwrap_or_default().into_iter().map(build).collect()
}

fn build(raw: RawSpec) -> Result<TimeInterval, String> {
    let mut out = TimeInterval {
        times: Vec::new(),
        weekdays: Vec::new(),
        days_of_month: Vec::new(),
        months: Vec::new(),
        years: Vec::new(),
        location: Location::Utc,
    };
    for t in raw.times.unwrap_or_default() {
        let (Some(start), Some(end)) = (t.start_time.filter(|s| !s.is_empty()), t.end_time.filter(|s| !s.is_empty())) else {
            return Err("both start and end times must be provided".into());
        };
        let (start, end) = (parse_time(&start)?, parse_time(&end)?);
        if start >= end {
            return Err("start time cannot be equal or greater than end time".into());
        }
        out.times.push((start, end));
    }
    for w in raw.weekdays.unwrap_or_default() {
        let s = scalar(&w, "weekday")?;
        let (b, e) = range(&s, |m| {
            WEEKDAYS
                .iter()
                .position(|d| *d == m)
                .map(|i| i as i64)
                .ok_or_else(|| format!("{m} is not a valid weekday (sunday..saturday)"))
        })?;
        if b > e {
            return Err(format!(
                "weekday range {s:?}: start day cannot be after end day (weeks run sunday to saturday)"
            ));
        }
        out.weekdays.push((b as u32, e as u32));
    }
    for d in raw.days_of_month.unwrap_or_default() {
        let s = scalar(&d, "day of month")?;
        let (b, e) = range(&s, int)?;
        for v in [b, e] {
            if v == 0 || !(-31..=31).contains(&v) {
                return Err(format!("{v} is not a valid day of the month: out of range (1..31 or -31..-1)"));
            }
        }
        if b < 0 && e > 0 {
            return Err(format!("days_of_month {s:?}: end day must be negative if start day is negative"));
        }
        // Negative days are judged against the shortest month, as Alertmanager does.
        let norm = |v: i64| if v < 0 { 28 + v } else { v };
        if norm(b) > norm(e) {
            return Err(format!("days_of_month {s:?}: end day {e} is always before start day {b}"));
        }
        out.days_of_month.push((b as i32, e as i32));
    }
    for m in raw.months.unwrap_or_default() {
        let s = scalar(&m, "month")?;
        let (b, e) = range(&s, |m| match MONTHS.iter().position(|x| *x == m) {
            Some(i) => Ok(i as i64 + 1),
            None => m
                .parse::<i64>()
                .map_err(|_| format!("{m} is not a valid month (january..december or 1..12)")),
        })?;
        for v in [b, e] {
            if !(1..=12).contains(&v) {
                return Err(format!("{v} is not a valid month: out of range (1..12)"));
            }
        }
        if b > e {
            return Err(format!(
                "months {s:?}: end month {} is before start month {}",
                MONTHS[e as usize - 1],
                MONTHS[b as usize - 1]
            ));
        }
        out.months.push((b as u32, e as u32));
    }
    for y in raw.years.unwrap_or_default() {
        let s = scalar(&y, "year")?;
        let (b, e) = range(&s, int)?;
        if b > e {
            return Err(format!("years {s:?}: end year {e} is before start year {b}"));
        }
        let clamp = |v: i64| v.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        out.years.push((clamp(b), clamp(e)));
    }
    if let Some(loc) = raw.location {
        out.location = parse_location(&loc)?;
    }
    Ok(out)
}

/// A YAML scalar as a string: Go's YAML decoder reads `1` into a string field as "1".
fn scalar(v: &Json, what: &str) -> Result<String, String> {
    match v {
        Json::String(s) => Ok(s.to_lowercase()),
        Json::Number(n) => Ok(n.to_string()),
        other => Err(format!("{what} must be a string or number, got {other}")),
    }
}

fn int(s: &str) -> Result<i64, String> {
    s.trim().parse::<i64>().map_err(|_| format!("{s:?} is not an integer"))
}

/// `a` or `a:b`, members parsed by `member`.
fn range(s: &str, member: impl Fn(&str) -> Result<i64, String>) -> Result<(i64, i64), String> {
    match s.split_once(':') {
        None => {
            let v = member(s)?;
            Ok((v, v))
        }
        Some((a, b)) if !b.contains(':') => Ok((member(a)?, member(b)?)),
        Some(_) => Err(format!("couldn't parse range {s}, invalid format (want start:end)")),
    }
}

/// `HH:MM` (two-digit hour 00-23, or exactly `24:00`) to minutes of the day.
fn parse_time(s: &str) -> Result<u32, String> {
    let bad = || format!("couldn't parse timestamp {s}, invalid format (want HH:MM from 00:00 to 24:00)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if (h < 24 && m < 60) || (h == 24 && m == 0) {
        Ok(h * 60 + m)
    } else {
        Err(bad())
    }
}

/// The zones we can evaluate without a time zone database.
pub fn parse_location(s: &str) -> Result<Location, String> {
    match s {
        "" | "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT" | "Etc/UCT" | "UCT" | "Etc/Zulu" | "Zulu" | "Etc/Universal" | "Universal" => {
            return Ok(Location::Utc);
        }
        "Local" => return Ok(Location::Local),
        _ => {}
    }
    if let Some(rest) = s.strip_prefix("Etc/GMT")
        && let Some(sign) = rest.chars().next().filter(|c| *c == '+' || *c == '-')
        && let Ok(hours) = rest[1..].parse::<i32>()
        && !rest[1..].starts_with(['+', '-'])
    {
        // POSIX-style names invert the sign: Etc/GMT-14 is UTC+14, Etc/GMT+12 is UTC-12.
        let east = if sign == '-' { hours } else { -hours };
        if (sign == '-' && hours <= 14) || (sign == '+' && hours <= 12) {
            if let Some(off) = FixedOffset::east_opt(east * 3600) {
                return Ok(Location::Fixed(off));
            }
        }
    }
    Err(format!(
        "time zone {s:?} is not supported: Fedwatch has no time zone database; use UTC, Local or Etc/GMT±N \
         (Etc/GMT-2 is UTC+2)"
    ))
}

impl TimeInterval {
    /// True when the instant `ms` (since the epoch) falls inside this spec.
    pub fn contains(&self, ms: i64) -> bool {
        let Some(utc) = DateTime::<Utc>::from_timestamp_millis(ms) else {
            return false;
        };
        match self.location {
            Location::Utc => self.contains_local(&utc),
            Location::Local => self.contains_local(&utc.with_timezone(&Local)),
            Location::Fixed(off) => self.contains_local(&utc.with_timezone(&off)),
        }
    }

    fn contains_local<Tz: TimeZone>(&self, t: &DateTime<Tz>) -> bool {
        let minute = t.hour() * 60 + t.minute();
        if !self.times.is_empty() && !self.times.iter().any(|(s, e)| *s <= minute && minute < *e) {
            return false;
        }
        if !self.days_of_month.is_empty() {
            let days = days_in_month(t.year(), t.month()) as i32;
            let day = t.day() as i32;
            let hit = self.days_of_month.iter().any(|&(b, e)| {
                let b = if b < 0 { days + b + 1 } else { b };
                let e = if e < 0 { days + e + 1 } else { e };
                // A range starting past this month's end (e.g. 31 in April) is skipped.
                b <= days && b <= day && day <= e.min(days)
            });
            if !hit {
                return false;
            }
        }
        if !self.months.is_empty() && !self.months.iter().any(|(b, e)| (*b..=*e).contains(&t.month())) {
            return false;
        }
        let weekday = t.weekday().num_days_from_sunday();
        if !self.weekdays.is_empty() && !self.weekdays.iter().any(|(b, e)| (*b..=*e).contains(&weekday)) {
            return false;
        }
        if !self.years.is_empty() && !self.years.iter().any(|(b, e)| (*b..=*e).contains(&t.year())) {
            return false;
        }
        true
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    match (NaiveDate::from_ymd_opt(year, month, 1), next) {
        (Some(a), Some(b)) => (b - a).num_days() as u32,
        _ => 31,
    }
}

/// The names among `names` whose interval is active at `ms` (unknown names are inactive).
pub fn active<'a>(intervals: &TimeIntervals, names: &'a [String], ms: i64) -> Vec<&'a String> {
    names
        .iter()
        .filter(|n| intervals.get(*n).is_some_and(|specs| specs.iter().any(|s| s.contains(ms))))
        .collect()
}

#[cfg(test)]
mod tests;
