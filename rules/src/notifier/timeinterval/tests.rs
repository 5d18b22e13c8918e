use chrono::{NaiveDateTime, TimeZone, Utc};
use serde_json::json;

use super::*;

fn at(s: &str) -> i64 {
    let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    Utc.from_utc_datetime(&t).timestamp_millis()
}

fn spec(v: Json) -> Vec<TimeInterval> {
    parse_specs(&json!([v])).unwrap()
}

/// (spec, instant in UTC, contained?)
#[test]
fn contains_table() {
    let cases: &[(Json, &str, bool)] = &[
        // times: start inclusive, end exclusive, 24:00 allowed.
        (
            json!({"times": [{"start_time": "09:00", "end_time": "17:00"}]}),
            "2024-03-04 09:00",
            true,
        ),
        (
            json!({"times": [{"start_time": "09:00", "end_time": "17:00"}]}),
            "2024-03-04 16:59",
            true,
        ),
        (
            json!({"times": [{"start_time": "09:00", "end_time": "17:00"}]}),
            "2024-03-04 17:00",
            false,
        ),
        (
            json!({"times": [{"start_time": "09:00", "end_time": "17:00"}]}),
            "2024-03-04 08:59",
            false,
        ),
        (
            json!({"times": [{"start_time": "22:00", "end_time": "24:00"}]}),
            "2024-03-04 23:59",
            true,
        ),
        (
            json!({"times": [{"start_time": "00:00", "end_time": "01:00"}, {"start_time": "22:00", "end_time": "24:00"}]}),
            "2024-03-04 00:30",
            true,
        ),
        // weekdays: 2024-03-04 is a Monday, 2024-03-09 a Saturday, 2024-03-10 a Sunday.
        (json!({"weekdays": ["monday:friday"]}), "2024-03-04 12:00", true),
        (json!({"weekdays": ["monday:friday"]}), "2024-03-09 12:00", false),
        (json!({"weekdays": ["Saturday", "sunday"]}), "2024-03-10 00:00", true),
        (json!({"weekdays": ["saturday", "SUNDAY"]}), "2024-03-08 23:59", false),
        // days_of_month, positive and from the end; 2024 is a leap year.
        (json!({"days_of_month": ["1:5"]}), "2024-03-05 12:00", true),
        (json!({"days_of_month": ["1:5"]}), "2024-03-06 12:00", false),
        (json!({"days_of_month": [-1]}), "2024-02-29 12:00", true),
        (json!({"days_of_month": [-1]}), "2023-02-28 12:00", true),
        (json!({"days_of_month": [-1]}), "2024-02-28 12:00", false),
        (json!({"days_of_month": ["-3:-1"]}), "2024-04-28 00:00", true),
        (json!({"days_of_month": ["-3:-1"]}), "2024-04-27 23:59", false),
        (json!({"days_of_month": ["7:-1"]}), "2024-04-30 10:00", true),
        (json!({"days_of_month": ["7:-1"]}), "2024-04-06 10:00", false),
        // 31 does not exist in April: the range is skipped, not clamped onto the 30th.
        (json!({"days_of_month": ["31"]}), "2024-04-30 10:00", false),
        (json!({"days_of_month": ["30:31"]}), "2024-04-30 10:00", true),
        // months by name, number and range.
        (json!({"months": ["november:december"]}), "2024-01-15 00:00", false),
        (json!({"months": ["january:march"]}), "2024-02-15 00:00", true),
        (json!({"months": ["1", "october:12"]}), "2024-11-01 00:00", true),
        (json!({"months": ["May"]}), "2024-06-01 00:00", false),
        // years.
        (json!({"years": ["2020:2024"]}), "2024-12-31 23:59", true),
        (json!({"years": ["2020:2024"]}), "2025-01-01 00:00", false),
        (json!({"years": [2025]}), "2025-06-01 00:00", true),
        // Every field given must match.
        (
            json!({"weekdays": ["monday:friday"], "times": [{"start_time": "09:00", "end_time": "17:00"}]}),
            "2024-03-09 10:00",
            false,
        ),
        (
            json!({"weekdays": ["monday:friday"], "times": [{"start_time": "09:00", "end_time": "17:00"}]}),
            "2024-03-08 10:00",
            true,
        ),
        // An empty spec is always active.
        (json!({}), "1999-12-31 23:59", true),
        // location: Etc/GMT-2 is UTC+2, so 07:30 UTC is 09:30 there.
        (
            json!({"times": [{"start_time": "09:00", "end_time": "17:00"}], "location": "Etc/GMT-2"}),
            "2024-03-04 07:30",
            true,
        ),
        (
            json!({"times": [{"start_time": "09:00", "end_time": "17:00"}], "location": "Etc/GMT-2"}),
            "2024-03-04 15:30",
            false,
        ),
        (
            json!({"times": [{"start_time": "09:00", "end_time": "17:00"}], "location": "Etc/GMT+5"}),
            "2024-03-04 21:59",
            true,
        ),
        // The calendar fields move with the zone: Sunday 23:00 UTC is Monday 01:00 in UTC+2.
        (json!({"weekdays": ["monday"], "location": "Etc/GMT-2"}), "2024-03-10 23:00", true),
        (json!({"weekdays": ["monday"], "location": "UTC"}), "2024-03-10 23:00", false),
        (
            json!({"days_of_month": [1], "months": ["january"], "years": ["2025"], "location": "Etc/GMT-3"}),
            "2024-12-31 21:30",
            true,
        ),
    ];
    for (raw, t, want) in cases {
        let specs = spec(raw.clone());
        assert_eq!(specs[0].contains(at(t)), *want, "{raw} at {t}");
    }
}

/// (spec, part of the expected error)
#[test]
fn invalid_specs_are_rejected() {
    let cases: &[(Json, &str)] = &[
        (
            json!({"times": [{"start_time": "09:00"}]}),
            "both start and end times must be provided",
        ),
        (
            json!({"times": [{"start_time": "17:00", "end_time": "09:00"}]}),
            "start time cannot be equal or greater than end time",
        ),
        (
            json!({"times": [{"start_time": "09:00", "end_time": "09:00"}]}),
            "start time cannot be equal or greater than end time",
        ),
        (
            json!({"times": [{"start_time": "9:00", "end_time": "17:00"}]}),
            "couldn't parse timestamp 9:00",
        ),
        (
            json!({"times": [{"start_time": "00:00", "end_time": "24:01"}]}),
            "couldn't parse timestamp 24:01",
        ),
        (
            json!({"times": [{"start_time": "00:60", "end_time": "01:00"}]}),
            "couldn't parse timestamp 00:60",
        ),
        (json!({"weekdays": ["friday:monday"]}), "start day cannot be after end day"),
        (json!({"weekdays": ["saturday:sunday"]}), "start day cannot be after end day"),
        (json!({"weekdays": ["funday"]}), "funday is not a valid weekday"),
        (json!({"weekdays": ["monday:tuesday:friday"]}), "invalid format"),
        (json!({"days_of_month": [0]}), "0 is not a valid day of the month"),
        (json!({"days_of_month": ["32"]}), "32 is not a valid day of the month"),
        (json!({"days_of_month": ["-32:-1"]}), "-32 is not a valid day of the month"),
        (
            json!({"days_of_month": ["-1:5"]}),
            "end day must be negative if start day is negative",
        ),
        (json!({"days_of_month": ["10:5"]}), "end day 5 is always before start day 10"),
        (json!({"days_of_month": ["-1:-3"]}), "end day -3 is always before start day -1"),
        (
            json!({"months": ["march:january"]}),
            "end month january is before start month march",
        ),
        (json!({"months": ["13"]}), "13 is not a valid month"),
        (json!({"months": ["smarch"]}), "smarch is not a valid month"),
        (json!({"years": ["2025:2020"]}), "end year 2020 is before start year 2025"),
        (json!({"location": "Europe/Berlin"}), "time zone \"Europe/Berlin\" is not supported"),
        (json!({"location": "+02:00"}), "is not supported"),
        (json!({"location": "Etc/GMT-15"}), "is not supported"),
        (json!({"weekday": ["monday"]}), "unknown field `weekday`"),
    ];
    for (raw, want) in cases {
        let err = parse_specs(&json!([raw])).unwrap_err();
        assert!(err.contains(want), "{raw}: {err:?} does not contain {want:?}");
    }
}

#[test]
fn locations() {
    assert_eq!(parse_location("UTC").unwrap(), Location::Utc);
    assert_eq!(parse_location("Local").unwrap(), Location::Local);
    assert_eq!(
        parse_location("Etc/GMT+12").unwrap(),
        Location::Fixed(FixedOffset::west_opt(12 * 3600).unwrap())
    );
    assert_eq!(
        parse_location("Etc/GMT-14").unwrap(),
        Location::Fixed(FixedOffset::east_opt(14 * 3600).unwrap())
    );
}

#[test]
fn a_named_interval_is_active_when_any_spec_is() {
    let mut intervals = TimeIntervals::new();
    intervals.insert(
        "weekends".into(),
        parse_specs(&json!([{"weekdays": ["saturday"]}, {"weekdays": ["sunday"]}])).unwrap(),
    );
    intervals.insert("never".into(), parse_specs(&json!([{"years": ["1990"]}])).unwrap());
    let names = vec!["weekends".to_string(), "never".to_string(), "unknown".to_string()];
    assert_eq!(active(&intervals, &names, at("2024-03-10 12:00")), vec!["weekends"]);
    assert!(active(&intervals, &names, at("2024-03-11 12:00")).is_empty());
}
