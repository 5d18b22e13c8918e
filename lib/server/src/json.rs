//! Hand-written JSON for query results: Prometheus renders sample times as bare numbers of
//! seconds (`1435781451.781`, never `1435781451.0`) and values as strings (`"+Inf"`), which
//! a generic serializer would not do, and results can be large.

use std::fmt::Write as _;

use fedwatch_model::Labels;
use fedwatch_model::selfmetrics::format_value;

/// Appends `s` as a JSON string literal.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a label set as a JSON object in label-name order.
pub fn push_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, &l.name);
        out.push(':');
        push_str(out, &l.value);
    }
    out.push('}');
}

/// Appends `[<seconds>,"<value>"]`.
pub fn push_point(out: &mut String, t_ms: i64, v: f64) {
    let _ = write!(out, "[{},\"{}\"]", t_ms as f64 / 1000.0, format_value(v));
}

/// Appends a JSON array of strings.
pub fn push_str_array<'a>(out: &mut String, items: impl IntoIterator<Item = &'a str>) {
    out.push('[');
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, s);
    }
    out.push(']');
}

pub use fedwatch_model::format_go_float;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_render_like_prometheus() {
        let cases = [
            (1_435_781_451_781, 1.0, r#"[1435781451.781,"1"]"#),
            (1_435_781_451_000, f64::INFINITY, r#"[1435781451,"+Inf"]"#),
            (1_000, f64::NEG_INFINITY, r#"[1,"-Inf"]"#),
            (1_500, f64::NAN, r#"[1.5,"NaN"]"#),
            (0, 0.1 + 0.2, r#"[0,"0.30000000000000004"]"#),
            (10, 1e21, r#"[0.01,"1000000000000000000000"]"#),
        ];
        for (t, v, want) in cases {
            let mut s = String::new();
            push_point(&mut s, t, v);
            assert_eq!(s, want);
        }
    }

    #[test]
    fn strings_escape_control_characters() {
        let mut s = String::new();
        push_labels(&mut s, &Labels::from_pairs([("a", "x\"y\n\u{1}")]));
        assert_eq!(s, r#"{"a":"x\"y\n\u0001"}"#);
    }
}
