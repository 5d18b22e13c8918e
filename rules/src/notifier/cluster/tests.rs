use std::collections::HashSet;

use super::*;

fn set(v: &[u64]) -> HashSet<u64> {
    v.iter().copied().collect()
}

fn entry(firing: &[u64], resolved: &[u64], at: i64) -> LogEntry {
    LogEntry {
        firing: set(firing),
        resolved: set(resolved),
        at,
    }
}

fn key(g: &str) -> LogKey {
    LogKey {
        group_key: g.into(),
        receiver: "hook".into(),
        integration: 0,
    }
}

const ME: &str = "http://b:9090";
const PEER: &str = "http://a:9090";
const H: i64 = 3600 * 1000;

#[test]
fn decisions_after_the_wait() {
    let claim = |firing: &[u64], resolved: &[u64], peer: &str, expires_at: i64| Claim {
        peer: peer.into(),
        entry: entry(firing, resolved, 100),
        expires_at,
    };
    // (case, log entry, claim, firing, resolved, send_resolved, now, decision)
    let held = Decision::HeldByPeer(PEER.into());
    let cases: Vec<(&str, Option<LogEntry>, Option<Claim>, &[u64], &[u64], bool, i64, Decision)> = vec![
        (
            "nothing logged, nobody busy",
            None,
            None,
            &[1],
            &[],
            true,
            1000,
            Decision::Send("first notification"),
        ),
        (
            "peer logged the same firing set",
            Some(entry(&[1], &[], 900)),
            None,
            &[1],
            &[],
            true,
            1000,
            Decision::Deduplicated,
        ),
        (
            "peer logged a subset",
            Some(entry(&[1], &[], 900)),
            None,
            &[1, 2],
            &[],
            true,
            1000,
            Decision::Send("new alerts added"),
        ),
        (
            "peer logged, repeat interval passed",
            Some(entry(&[1], &[], 0)),
            None,
            &[1],
            &[],
            true,
            H,
            Decision::Send("repeat interval elapsed"),
        ),
        (
            "peer logged the resolution",
            Some(entry(&[], &[1], 900)),
            None,
            &[],
            &[1],
            true,
            1000,
            Decision::Deduplicated,
        ),
        (
            "peer is sending the same",
            None,
            Some(claim(&[1], &[], PEER, 5000)),
            &[1],
            &[],
            true,
            1000,
            held.clone(),
        ),
        (
            "peer is sending more",
            None,
            Some(claim(&[1, 2], &[], PEER, 5000)),
            &[1],
            &[],
            true,
            1000,
            held.clone(),
        ),
        (
            "peer is sending less",
            None,
            Some(claim(&[1], &[], PEER, 5000)),
            &[1, 2],
            &[],
            true,
            1000,
            Decision::Send("first notification"),
        ),
        (
            "peer's claim lapsed (it died)",
            None,
            Some(claim(&[1], &[], PEER, 1000)),
            &[1],
            &[],
            true,
            1000,
            Decision::Send("first notification"),
        ),
        (
            "our own claim never holds us",
            None,
            Some(claim(&[1], &[], ME, 5000)),
            &[1],
            &[],
            true,
            1000,
            Decision::Send("first notification"),
        ),
        (
            "peer is sending without the resolution we would add",
            Some(entry(&[1, 2], &[], 0)),
            Some(claim(&[1], &[], PEER, 5000)),
            &[1],
            &[2],
            true,
            1000,
            Decision::Send("some alerts resolved"),
        ),
        (
            "same, but resolutions are not sent: nothing new",
            Some(entry(&[1, 2], &[], 0)),
            Some(claim(&[1], &[], PEER, 5000)),
            &[1],
            &[2],
            false,
            1000,
            Decision::Deduplicated,
        ),
    ];
    for (case, e, c, firing, resolved, send_resolved, now, want) in cases {
        let got = decide(e.as_ref(), c.as_ref(), ME, &set(firing), &set(resolved), H, send_resolved, now);
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn log_merge_keeps_the_newer_entry() {
    // (case, ours, theirs, taken, at afterwards)
    let cases: Vec<(&str, Option<i64>, i64, bool, i64)> = vec![
        ("new key", None, 500, true, 500),
        ("theirs newer", Some(400), 500, true, 500),
        ("ours newer", Some(600), 500, false, 600),
        ("same time: ours stays", Some(500), 500, false, 500),
        ("theirs past retention", None, -nflog_retention(), false, -1),
    ];
    for (case, ours, theirs, taken, at) in cases {
        let mut log = super::super::nflog::NotificationLog::default();
        if let Some(t) = ours {
            log.log(key("g"), entry(&[1], &[], t));
        }
        assert_eq!(log.merge(key("g"), entry(&[2], &[], theirs), 1000), taken, "{case}");
        assert_eq!(log.get(&key("g")).map(|e| e.at).unwrap_or(-1), at, "{case}");
    }
}

fn nflog_retention() -> i64 {
    super::super::nflog::RETENTION_MS
}

fn silence(id: &str, updated_at: i64, comment: &str) -> Silence {
    Silence {
        id: id.into(),
        matchers: vec![super::super::silence::SilenceMatcher {
            name: "alertname".into(),
            value: "X".into(),
            is_regex: false,
            is_equal: true,
        }],
        starts_at: 1000,
        ends_at: 10 * H,
        updated_at,
        created_by: "t".into(),
        comment: comment.into(),
        annotations: Default::default(),
    }
}

#[test]
fn silence_merge_keeps_the_newer_copy() {
    use super::super::silence::Silences;
    // (case, ours, theirs, taken, comment afterwards)
    let cases: Vec<(&str, Option<Silence>, Silence, bool, &str)> = vec![
        ("new silence", None, silence("s1", 2000, "theirs"), true, "theirs"),
        (
            "theirs newer (e.g. expired there)",
            Some(silence("s1", 2000, "ours")),
            silence("s1", 3000, "theirs"),
            true,
            "theirs",
        ),
        (
            "ours newer",
            Some(silence("s1", 4000, "ours")),
            silence("s1", 3000, "theirs"),
            false,
            "ours",
        ),
        (
            "same update: ours stays",
            Some(silence("s1", 3000, "ours")),
            silence("s1", 3000, "theirs"),
            false,
            "ours",
        ),
    ];
    for (case, ours, theirs, taken, comment) in cases {
        let mut s = Silences::new();
        if let Some(o) = ours {
            assert!(s.merge(o, 1000).unwrap());
        }
        assert_eq!(s.merge(theirs, 1000).unwrap(), taken, "{case}");
        assert_eq!(s.get("s1").unwrap().comment, comment, "{case}");
    }
    let mut s = Silences::new();
    let mut bad = silence("s2", 1, "x");
    bad.matchers[0].value = String::new();
    assert!(s.merge(bad, 1000).is_err(), "an invalid silence from a peer is refused");
    let mut old = silence("s3", 1, "x");
    old.ends_at = 0;
    assert_eq!(s.merge(old, 200 * H), Ok(false), "a silence past retention is not taken");
}

#[test]
fn claims_settle_release_and_lapse() {
    let mut c = Claims::default();
    let claim = |peer: &str, at: i64, exp: i64| Claim {
        peer: peer.into(),
        entry: entry(&[1], &[], at),
        expires_at: exp,
    };
    assert!(!c.claim(key("g"), claim(PEER, 100, 50), 100), "a lapsed claim is not taken");
    assert!(c.claim(key("g"), claim(PEER, 100, 5000), 100));
    assert!(
        !c.claim(key("g"), claim(ME, 50, 5000), 100),
        "an older claim does not replace a newer one"
    );
    c.release(&key("g"), ME);
    assert!(c.get(&key("g"), 200).is_some(), "only the claimer releases");
    c.settled(&key("g"), 99);
    assert!(
        c.get(&key("g"), 200).is_some(),
        "a log entry older than the claim does not settle it"
    );
    c.settled(&key("g"), 100);
    assert!(c.get(&key("g"), 200).is_none(), "its log entry settles it");
    c.claim(key("g"), claim(PEER, 100, 5000), 100);
    c.release(&key("g"), PEER);
    assert!(c.get(&key("g"), 200).is_none(), "the claimer's release");
    c.claim(key("g"), claim(PEER, 100, 5000), 100);
    assert!(c.get(&key("g"), 5000).is_none(), "lapsed at expiry");
    c.gc(5000);
    assert_eq!(c.iter(0).count(), 0);
}

#[test]
fn positions_and_names() {
    // (advertise, peers, position, normalised peers)
    let cases: Vec<(&str, Vec<&str>, usize, Vec<&str>)> = vec![
        ("http://a:9090", vec!["http://b:9090"], 0, vec!["http://b:9090"]),
        ("http://b:9090/", vec!["a:9090"], 1, vec!["http://a:9090"]),
        (
            "b:9090",
            vec!["http://a:9090", "http://b:9090", "http://c:9090"],
            1,
            vec!["http://a:9090", "http://c:9090"],
        ),
        (
            "http://c:9090",
            vec!["http://b:9090", "http://a:9090/", "http://a:9090"],
            2,
            vec!["http://b:9090", "http://a:9090"],
        ),
    ];
    for (me, peers, pos, want) in cases {
        let peers: Vec<String> = peers.into_iter().map(String::from).collect();
        let c = ClusterConfig::new(me, &peers).unwrap();
        assert_eq!(c.position(), pos, "{me} among {peers:?}");
        assert_eq!(c.peers, want, "{me} among {peers:?}");
        assert_eq!(c.wait(), DEFAULT_PEER_TIMEOUT * pos as u32);
    }
    for bad in ["ftp://a:1", "", "http://a b"] {
        assert!(ClusterConfig::new(bad, &[]).is_err(), "{bad} accepted");
        assert!(ClusterConfig::new("http://a:1", &[bad.to_string()]).is_err(), "peer {bad} accepted");
    }
}

#[test]
fn wire_state_round_trips() {
    let w = WireState {
        peer: PEER.into(),
        nflog: vec![SavedEntry::new(&key("g"), &entry(&[0xabc], &[], 5))],
        silences: vec![silence("s1", 2, "c")],
        claims: vec![WireClaim {
            entry: SavedEntry::new(&key("h"), &entry(&[1], &[2], 6)),
            expires_at: 9,
        }],
        released: vec![WireKey {
            group_key: "k".into(),
            receiver: "hook".into(),
            integration: 1,
        }],
    };
    let text = serde_json::to_string(&w).unwrap();
    assert!(text.contains("\"firing\":[\"0000000000000abc\"]"), "{text}");
    assert!(text.contains("\"expires_at\":9"), "{text}");
    let back: WireState = serde_json::from_str(&text).unwrap();
    assert_eq!(back, w);
    let minimal: WireState = serde_json::from_str(r#"{"peer":"x"}"#).unwrap();
    assert!(minimal.is_empty());
}

// Two notifiers over real HTTP on 127.0.0.1, driven with a fake clock for their groups.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use fedwatch_model::Labels;
use fedwatch_model::selfmetrics::Registry;

use super::super::webhook::Backoff;
use super::super::{PostableAlert, config};

/// The members merge what they hear on the wall clock, so the groups' clock starts at it too.
fn t0() -> i64 {
    now_ms()
}

/// A webhook that answers 500 until `fail_for` has passed since it started, then 200;
/// returns its URL and the count of accepted notifications.
async fn hook(fail_for: Duration) -> (String, Arc<AtomicUsize>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let until = std::time::Instant::now() + fail_for;
    let acc = accepted.clone();
    let app = Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let acc = acc.clone();
            async move {
                if std::time::Instant::now() < until {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                acc.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), accepted)
}

/// A notifier in a cluster of `me` and `peers`, serving its API (and the state exchange) on `listener`.
fn member(url: &str, me: &str, peers: &[String], listener: Option<tokio::net::TcpListener>) -> super::super::Notifier {
    let src = format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1m\n  repeat_interval: 1h\n\
         receivers:\n- name: hook\n  webhook_configs:\n  - url: {url}\n"
    );
    let cfg = config::parse(Path::new("am.yml"), &src).unwrap();
    let mut cc = ClusterConfig::new(me, peers).unwrap();
    cc.peer_timeout = Duration::from_millis(300);
    let n = super::super::Notifier::new(cfg, "http://fw:9090", Registry::new())
        .with_backoff(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(20),
        })
        .with_cluster(cc)
        .unwrap();
    if let Some(l) = listener {
        let app = super::super::api::router(n.clone());
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    }
    n
}

fn firing(t0: i64, labels: &[(&str, &str)]) -> Vec<PostableAlert> {
    vec![PostableAlert {
        labels: Labels::from_pairs(labels.iter().copied()),
        annotations: Default::default(),
        starts_at: t0,
        ends_at: t0 + 24 * H,
        generator_url: String::new(),
    }]
}

async fn flush_both(a: &super::super::Notifier, b: &super::super::Notifier, t: i64) {
    let mut hs = a.flush_due(t);
    hs.extend(b.flush_due(t));
    for h in hs {
        h.await.unwrap();
    }
}

/// Two members on fresh ports, in position order.
async fn pair(url: &str) -> (super::super::Notifier, super::super::Notifier) {
    let la = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (ua, ub) = (
        format!("http://{}", la.local_addr().unwrap()),
        format!("http://{}", lb.local_addr().unwrap()),
    );
    let a = member(url, &ua, std::slice::from_ref(&ub), Some(la));
    let b = member(url, &ub, std::slice::from_ref(&ua), Some(lb));
    if a.cluster().unwrap().config.position() == 0 {
        (a, b)
    } else {
        (b, a)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_up_one_notification_even_when_the_receiver_is_retried() {
    // Failing for longer than the peer timeout: without claims the second member would send too.
    let (url, accepted) = hook(Duration::from_millis(900)).await;
    let (first, second) = pair(&url).await;
    let t0 = t0();
    let down = [("alertname", "Down")];
    first.receive(firing(t0, &down), t0);
    second.receive(firing(t0, &down), t0);
    flush_both(&first, &second, t0 + 1000).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one notification for the pair");
    // The log entry travelled: the next group_interval sends nothing from either member.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while second.cluster_state(t0).nflog.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(second.cluster_state(t0).nflog, first.cluster_state(t0).nflog, "the log is shared");
    flush_both(&first, &second, t0 + 61_000).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "deduplicated at the next group_interval");
    // A new alert in the group is news: one more, from one member.
    let more = [("alertname", "Down"), ("instance", "b")];
    first.receive(firing(t0, &more), t0 + 62_000);
    second.receive(firing(t0, &more), t0 + 62_000);
    flush_both(&first, &second, t0 + 121_000).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "one notification for the new alert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_alone_sends_after_its_wait_and_silences_travel() {
    let (url, accepted) = hook(Duration::ZERO).await;
    let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ub = format!("http://{}", lb.local_addr().unwrap());
    // The peer at position 0 is down (nothing listens on port 1).
    let dead = "http://127.0.0.1:1".to_string();
    let b = member(&url, &ub, std::slice::from_ref(&dead), Some(lb));
    assert_eq!(b.cluster().unwrap().config.position(), 1);
    let t0 = t0();
    b.receive(firing(t0, &[("alertname", "Down")]), t0);
    let started = std::time::Instant::now();
    for h in b.flush_due(t0 + 1000) {
        h.await.unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "the survivor sends");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "after waiting its position's peer timeout"
    );

    // A silence set on one member reaches the other through the state endpoint.
    let (_url2, _) = hook(Duration::ZERO).await;
    let (first, second) = pair(&url).await;
    let mut s = silence("", t0, "maintenance");
    s.starts_at = now_ms();
    s.ends_at = now_ms() + H;
    let id = first.set_silence(s, now_ms()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while second.silence(&id).is_none() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(second.silence(&id), first.silence(&id), "the silence was replicated");
    second.expire_silence(&id, now_ms()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while first.silence(&id).is_some_and(|s| s.ends_at > now_ms()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(first.silence(&id).unwrap().ends_at <= now_ms(), "the expiry was replicated back");
}
