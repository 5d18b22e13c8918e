use super::*;

const M: i64 = 60_000;
const T0: i64 = 1_767_225_600_000;

fn m(name: &str, op: &str, value: &str) -> SilenceMatcher {
    let (is_regex, is_equal) = match op {
        "=" => (false, true),
        "!=" => (false, false),
        "=~" => (true, true),
        "!~" => (true, false),
        _ => panic!("op {op}"),
    };
    SilenceMatcher {
        name: name.into(),
        value: value.into(),
        is_regex,
        is_equal,
    }
}

fn silence(matchers: Vec<SilenceMatcher>, starts: i64, ends: i64) -> Silence {
    Silence {
        id: String::new(),
        matchers,
        starts_at: starts,
        ends_at: ends,
        updated_at: 0,
        created_by: "me".into(),
        comment: "test".into(),
        annotations: BTreeMap::new(),
    }
}

fn labels(s: &str) -> Labels {
    Labels::from_pairs(s.split(',').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap()))
}

#[test]
fn matching_table() {
    // (matchers, alert labels, silenced)
    type Case<'a> = (Vec<SilenceMatcher>, &'a str, bool);
    let cases: Vec<Case> = vec![
        (vec![m("alertname", "=", "X")], "alertname=X,job=a", true),
        (vec![m("alertname", "=", "X")], "alertname=Y", false),
        (vec![m("alertname", "=", "X"), m("job", "=", "a")], "alertname=X,job=b", false),
        (vec![m("alertname", "=", "X"), m("job", "!=", "a")], "alertname=X,job=b", true),
        (vec![m("alertname", "=", "X"), m("job", "!=", "a")], "alertname=X", true),
        (vec![m("alertname", "=~", "Disk.*")], "alertname=DiskFull", true),
        // Regexes are anchored.
        (vec![m("alertname", "=~", "Disk")], "alertname=DiskFull", false),
        (
            vec![m("job", "=", "a"), m("alertname", "!~", "Disk.*")],
            "alertname=CPU,job=a",
            true,
        ),
        (
            vec![m("job", "=", "a"), m("alertname", "!~", "Disk.*")],
            "alertname=DiskFull,job=a",
            false,
        ),
        // A missing label is the empty string.
        (vec![m("alertname", "=", "X"), m("team", "=~", "|ops")], "alertname=X", true),
    ];
    for (i, (ms, alert, want)) in cases.into_iter().enumerate() {
        let mut s = Silences::new();
        s.set(silence(ms, T0, T0 + M), T0).unwrap();
        assert_eq!(!s.silenced_by(&labels(alert), T0).is_empty(), want, "case {i}: {alert}");
    }
}

#[test]
fn states_follow_start_and_end() {
    let mut s = Silences::new();
    let id = s.set(silence(vec![m("a", "=", "1")], T0 + M, T0 + 2 * M), T0).unwrap();
    let sil = s.get(&id).unwrap().clone();
    for (now, want) in [
        (T0, SilenceState::Pending),
        (T0 + M - 1, SilenceState::Pending),
        (T0 + M, SilenceState::Active),
        (T0 + 2 * M - 1, SilenceState::Active),
        (T0 + 2 * M, SilenceState::Expired),
    ] {
        assert_eq!(sil.state(now), want, "at +{}ms", now - T0);
        assert_eq!(!s.silenced_by(&labels("a=1"), now).is_empty(), want == SilenceState::Active);
    }
}

#[test]
fn validation_rejects_what_alertmanager_rejects() {
    let cases: Vec<(Silence, &str)> = vec![
        (silence(vec![], T0, T0 + M), "at least one matcher required"),
        (silence(vec![m("a", "=~", "(")], T0, T0 + M), "invalid label matcher 0"),
        (silence(vec![m("0a", "=", "x")], T0, T0 + M), "invalid label name"),
        (
            silence(vec![m("a", "=", "")], T0, T0 + M),
            "at least one matcher must not match the empty string",
        ),
        (
            silence(vec![m("a", "=~", ".*"), m("b", "!=", "x")], T0, T0 + M),
            "must not match the empty string",
        ),
        (silence(vec![m("a", "=", "1")], T0, 0), "invalid zero end timestamp"),
        (
            silence(vec![m("a", "=", "1")], T0 + M, T0),
            "end time must not be before start time",
        ),
    ];
    for (sil, needle) in cases {
        let e = Silences::new().set(sil, T0).unwrap_err().to_string();
        assert!(e.contains(needle), "{e} should contain {needle}");
    }
    let mut unknown = silence(vec![m("a", "=", "1")], T0, T0 + M);
    unknown.id = "nope".into();
    assert_eq!(Silences::new().set(unknown, T0), Err(SilenceError::NotFound("nope".into())));
}

#[test]
fn new_silences_start_no_earlier_than_now() {
    let mut s = Silences::new();
    let id = s.set(silence(vec![m("a", "=", "1")], T0 - 10 * M, T0 + M), T0).unwrap();
    assert_eq!(s.get(&id).unwrap().starts_at, T0);
    assert_eq!(s.get(&id).unwrap().updated_at, T0);
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4", "a version-4 UUID: {id}");
}

/// Alertmanager's `Set` on an existing id: update in place or expire and replace.
#[test]
fn updates_in_place_or_replace_as_alertmanager() {
    let a = || vec![m("a", "=", "1")];
    // (description, existing [start, end], now, posted [matchers, start, end], same id kept, old state after)
    type Case<'a> = (&'a str, (i64, i64), i64, (Vec<SilenceMatcher>, i64, i64), bool, SilenceState);
    let cases: Vec<Case> = vec![
        (
            "active: extend the end",
            (T0, T0 + 10 * M),
            T0 + M,
            (a(), T0, T0 + 20 * M),
            true,
            SilenceState::Active,
        ),
        (
            "active: comment-only change",
            (T0, T0 + 10 * M),
            T0 + M,
            (a(), T0, T0 + 10 * M),
            true,
            SilenceState::Active,
        ),
        (
            "active: start moved",
            (T0, T0 + 10 * M),
            T0 + M,
            (a(), T0 + 2 * M, T0 + 10 * M),
            false,
            SilenceState::Expired,
        ),
        (
            "active: matchers changed",
            (T0, T0 + 10 * M),
            T0 + M,
            (vec![m("a", "=", "2")], T0, T0 + 10 * M),
            false,
            SilenceState::Expired,
        ),
        (
            "pending: move the start later",
            (T0 + 5 * M, T0 + 10 * M),
            T0,
            (a(), T0 + 6 * M, T0 + 10 * M),
            true,
            SilenceState::Pending,
        ),
        (
            "pending: start in the past",
            (T0 + 5 * M, T0 + 10 * M),
            T0 + M,
            (a(), T0, T0 + 10 * M),
            false,
            SilenceState::Expired,
        ),
        (
            "expired: always a new silence",
            (T0, T0 + M),
            T0 + 2 * M,
            (a(), T0 + 2 * M, T0 + 3 * M),
            false,
            SilenceState::Expired,
        ),
    ];
    for (name, (start, end), now, (matchers, ps, pe), same, old_state) in cases {
        let mut s = Silences::new();
        let id = s.set(silence(a(), start, end), start.min(now)).unwrap();
        let mut post = silence(matchers.clone(), ps, pe);
        post.id = id.clone();
        post.comment = "changed".into();
        let new_id = s.set(post, now).unwrap();
        assert_eq!(new_id == id, same, "{name}");
        assert_eq!(s.get(&id).unwrap().state(now), old_state, "{name}: old silence");
        let new = s.get(&new_id).unwrap();
        assert_eq!(new.comment, "changed", "{name}");
        assert_eq!(new.matchers, matchers, "{name}");
        assert_eq!(new.updated_at, now, "{name}");
        assert_eq!(s.iter().count(), if same { 1 } else { 2 }, "{name}");
    }
}

#[test]
fn expire_ends_active_and_pending_silences_now() {
    let mut s = Silences::new();
    let active = s.set(silence(vec![m("a", "=", "1")], T0, T0 + 10 * M), T0).unwrap();
    let pending = s.set(silence(vec![m("a", "=", "1")], T0 + 5 * M, T0 + 10 * M), T0).unwrap();
    s.expire(&active, T0 + M).unwrap();
    s.expire(&pending, T0 + M).unwrap();
    for id in [&active, &pending] {
        let sil = s.get(id).unwrap();
        assert_eq!(sil.state(T0 + M), SilenceState::Expired);
        assert_eq!(sil.ends_at, T0 + M);
        assert!(sil.starts_at <= sil.ends_at);
    }
    assert_eq!(s.expire(&active, T0 + 2 * M), Err(SilenceError::AlreadyExpired(active.clone())));
    assert_eq!(s.expire("x", T0), Err(SilenceError::NotFound("x".into())));
    assert!(s.silenced_by(&labels("a=1"), T0 + M).is_empty());
    assert!(!s.gc(T0 + M + RETENTION_MS - 1));
    assert!(s.gc(T0 + M + RETENTION_MS));
    assert_eq!(s.iter().count(), 0);
}

#[test]
fn save_and_load_round_trip() {
    let dir = std::env::temp_dir().join(format!("fedwatch-silences-{}", std::process::id()));
    let path = dir.join("silences.json");
    let mut s = Silences::new();
    let id = s
        .set(silence(vec![m("alertname", "=~", "X|Y"), m("job", "!=", "a")], T0, T0 + M), T0)
        .unwrap();
    s.save(&path).unwrap();
    assert!(!dir.join("silences.json.tmp").exists());
    let back = Silences::load(&path).unwrap();
    assert_eq!(back.get(&id), s.get(&id));
    assert_eq!(back.silenced_by(&labels("alertname=Y,job=b"), T0), vec![id]);
    assert_eq!(Silences::load(&dir.join("missing.json")).unwrap().iter().count(), 0);
    std::fs::write(&path, b"{not json").unwrap();
    assert!(Silences::load(&path).unwrap_err().contains("not a silences file"));
    std::fs::remove_dir_all(&dir).unwrap();
}
