//! Rules a parsed file must satisfy, checked in the order and with the messages of
//! Prometheus's `config.Load`, plus the ones Fedwatch adds (URL and scheme checks). Also
//! resolves scrape intervals and timeouts from `global`.

use std::collections::HashSet;

use crate::duration::PromDuration;
use crate::relabel::is_valid_label_name;
use crate::schema::{Config, FileSdConfig, StaticConfig};

type Failure = (Option<u64>, String);

/// The 1-based line of the `nth` (0-based) line that reads `key: value` (value possibly
/// quoted), so errors found after parsing still point into the file.
fn find_line(text: &str, key: &str, value: &str, nth: usize) -> Option<u64> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ").trim();
            t.strip_prefix(key)
                .and_then(|r| r.trim_start().strip_prefix(':'))
                .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == value)
                .unwrap_or(false)
        })
        .nth(nth)
        .map(|(i, _)| i as u64 + 1)
}

fn find_key(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches("- ");
            let t = t.strip_prefix(['"', '\'']).unwrap_or(t);
            let t = t.strip_prefix(key).map(|r| r.strip_prefix(['"', '\'']).unwrap_or(r));
            t.map(|r| r.trim_start().starts_with(':')).unwrap_or(false)
        })
        // Flow mappings (`{a: b}`) put keys mid-line.
        .or_else(|| text.lines().position(|l| l.contains(&format!("{key}:"))))
        .map(|i| i as u64 + 1)
}

pub(crate) fn validate(cfg: &mut Config, text: &str) -> Result<(), Failure> {
    let g = &mut cfg.global;
    if g.scrape_interval.0.is_zero() {
        g.scrape_interval = PromDuration::from_secs(60);
    }
    if g.scrape_timeout.0 > g.scrape_interval.0 {
        return Err((
            find_key(text, "scrape_timeout"),
            "global scrape timeout greater than scrape interval".into(),
        ));
    }
    if g.scrape_timeout.0.is_zero() {
        g.scrape_timeout = PromDuration::from_secs(10).min(g.scrape_interval);
    }
    if g.evaluation_interval.0.is_zero() {
        g.evaluation_interval = PromDuration::from_secs(60);
    }
    for name in g.external_labels.keys() {
        if !is_valid_label_name(name) {
            return Err((find_key(text, name), format!("{name:?} is not a valid label name")));
        }
    }
    let (global_interval, global_timeout) = (g.scrape_interval, g.scrape_timeout);

    let mut jobs = HashSet::new();
    for sc in &mut cfg.scrape_configs {
        let job = sc.job_name.clone();
        let at = || find_line(text, "job_name", &job, 0);
        if job.is_empty() {
            return Err((None, "job_name is empty".into()));
        }
        if !jobs.insert(job.clone()) {
            return Err((
                find_line(text, "job_name", &job, 1),
                format!("found multiple scrape configs with job name {job:?}"),
            ));
        }
        if sc.scrape_interval.0.is_zero() {
            sc.scrape_interval = global_interval;
        }
        if sc.scrape_timeout.0 > sc.scrape_interval.0 {
            return Err((
                at(),
                format!("scrape timeout greater than scrape interval for scrape config with job name {job:?}"),
            ));
        }
        if sc.scrape_timeout.0.is_zero() {
            sc.scrape_timeout = global_timeout.min(sc.scrape_interval);
        }
        if sc.scheme != "http" && sc.scheme != "https" {
            return Err((
                find_line(text, "scheme", &sc.scheme, 0).or_else(at),
                format!(
                    "scrape config for job {job:?}: unsupported scheme {:?}, expected \"http\" or \"https\"",
                    sc.scheme
                ),
            ));
        }
        if !sc.metrics_path.starts_with('/') {
            return Err((
                at(),
                format!(
                    "scrape config for job {job:?}: metrics_path {:?} must start with \"/\"",
                    sc.metrics_path
                ),
            ));
        }
        if sc.bearer_token.is_some() && sc.bearer_token_file.is_some() {
            return Err((at(), "at most one of bearer_token & bearer_token_file must be configured".into()));
        }
        check_static(&sc.static_configs).map_err(|m| (at(), m))?;
        check_file_sd(&sc.file_sd_configs).map_err(|m| (at(), m))?;
    }

    for am in &cfg.alerting.alertmanagers {
        check_static(&am.static_configs).map_err(|m| (None, m))?;
        check_file_sd(&am.file_sd_configs).map_err(|m| (None, m))?;
    }

    let mut names = HashSet::new();
    for (i, rw) in cfg.remote_write.iter().enumerate() {
        let where_ = find_line(text, "url", &rw.url, 0);
        check_url(&rw.url).map_err(|m| (where_, format!("remote_write[{i}]: {m}")))?;
        if !rw.name.is_empty() && !names.insert(rw.name.clone()) {
            return Err((
                find_line(text, "name", &rw.name, 1),
                format!("found multiple remote write configs with job name {:?}", rw.name),
            ));
        }
        if !matches!(
            rw.protobuf_message.as_str(),
            "" | "prometheus.WriteRequest" | "io.prometheus.write.v2.Request"
        ) {
            return Err((
                find_line(text, "protobuf_message", &rw.protobuf_message, 0),
                format!(
                    "remote_write[{i}]: unknown remote write protobuf message {:?}; expected \"prometheus.WriteRequest\" or \"io.prometheus.write.v2.Request\"",
                    rw.protobuf_message
                ),
            ));
        }
        for h in rw.headers.keys() {
            if is_reserved_header(h) {
                return Err((find_key(text, h), format!("{h} is a reserved header. It must not be changed")));
            }
        }
    }
    for (i, rr) in cfg.remote_read.iter().enumerate() {
        check_url(&rr.url).map_err(|m| (find_line(text, "url", &rr.url, 0), format!("remote_read[{i}]: {m}")))?;
    }
    Ok(())
}

fn is_reserved_header(h: &str) -> bool {
    const RESERVED: [&str; 6] = [
        "authorization",
        "host",
        "content-encoding",
        "content-length",
        "content-type",
        "user-agent",
    ];
    let lower = h.to_ascii_lowercase();
    RESERVED.contains(&lower.as_str()) || lower == "x-prometheus-remote-write-version" || lower == "x-prometheus-remote-read-version"
}

/// Accepts `http://host[:port][/path][?query]` and the same with https.
fn check_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("url for remote_write is empty".into());
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("invalid url {url:?}: expected http:// or https:// followed by a host"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("invalid url {url:?}: missing or bad host"));
    }
    if let Some((h, port)) = host.rsplit_once(':')
        && !h.ends_with(']')
        && !h.contains(':')
        && port.parse::<u16>().is_err()
    {
        return Err(format!("invalid url {url:?}: bad port {port:?}"));
    }
    Ok(())
}

fn check_static(groups: &[StaticConfig]) -> Result<(), String> {
    for g in groups {
        for name in g.labels.keys() {
            if !is_valid_label_name(name) {
                return Err(format!("{name:?} is not a valid label name"));
            }
        }
    }
    Ok(())
}

fn check_file_sd(cfgs: &[FileSdConfig]) -> Result<(), String> {
    for c in cfgs {
        if c.files.is_empty() {
            return Err("file service discovery config must contain at least one path name".into());
        }
        for f in &c.files {
            if !is_valid_sd_file_pattern(f) {
                return Err(format!(
                    "path name {f:?} is not valid for file discovery: expected a .json, .yml or .yaml file, with \"*\" only in the last path component"
                ));
            }
        }
    }
    Ok(())
}

/// `^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$`, as Prometheus requires.
pub(crate) fn is_valid_sd_file_pattern(f: &str) -> bool {
    let ext_ok = ["json", "yml", "yaml", "JSON", "YML", "YAML"]
        .iter()
        .any(|e| f.strip_suffix(e).is_some_and(|s| s.ends_with('.')));
    let glob_ok = match f.find('*') {
        None => true,
        Some(i) => !f[i + 1..].contains(['*', '/']),
    };
    ext_ok && glob_ok
}

/// The file checks `promtool check config` makes beyond syntax: rule files, credential and
/// TLS files must exist, and every static target must produce a valid scrape target.
/// Returns every problem found, each naming the file or job.
pub fn check_files(cfg: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    for rf in &cfg.rule_files {
        if rf.contains(['*', '?', '[']) {
            continue;
        }
        if !cfg.resolve_path(rf).is_file() {
            problems.push(format!("{rf:?} does not point to an existing file"));
        }
    }
    for sc in &cfg.scrape_configs {
        let mut files: Vec<(&str, &str)> = Vec::new();
        if let Some(t) = &sc.tls_config {
            for (what, f) in [("CA", &t.ca_file), ("client cert", &t.cert_file), ("client key", &t.key_file)] {
                if let Some(f) = f {
                    files.push((what, f));
                }
            }
        }
        if let Some(f) = sc.authorization.as_ref().and_then(|a| a.credentials_file.as_ref()) {
            files.push(("authorization credentials or bearer token", f));
        }
        if let Some(f) = &sc.bearer_token_file {
            files.push(("authorization credentials or bearer token", f));
        }
        if let Some(f) = sc.basic_auth.as_ref().and_then(|b| b.password_file.as_ref()) {
            files.push(("basic auth password", f));
        }
        for (what, f) in files {
            if let Err(e) = std::fs::metadata(cfg.resolve_path(f)) {
                problems.push(format!("job {:?}: error checking {what} file {f:?}: {e}", sc.job_name));
            }
        }
        let groups = crate::discovery::static_groups(sc);
        for (gi, group) in groups.iter().enumerate() {
            for (ti, target) in group.targets.iter().enumerate() {
                if let Err(e) = crate::targets::populate_labels(sc, group, target) {
                    problems.push(format!("job {:?}: instance {ti} in group {gi}: {e}", sc.job_name));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd_file_patterns() {
        let cases = [
            ("targets.json", true),
            ("dir/*.yml", true),
            ("dir/a*b.YAML", true),
            ("*/x.yml", false),
            ("a*b*.json", false),
            ("targets.txt", false),
            ("json", false),
        ];
        for (f, want) in cases {
            assert_eq!(is_valid_sd_file_pattern(f), want, "{f}");
        }
    }

    #[test]
    fn urls() {
        let cases = [
            ("http://x", true),
            ("https://user:pw@central.example:9090/api/v1/write?x=1", true),
            ("http://[::1]:9090/api", true),
            ("not a url", false),
            ("ftp://x", false),
            ("http://", false),
            ("http://x:port/", false),
            ("", false),
        ];
        for (u, want) in cases {
            assert_eq!(check_url(u).is_ok(), want, "{u}");
        }
    }
}
