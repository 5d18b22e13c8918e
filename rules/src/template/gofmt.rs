//! Go's `fmt` as templates reach it: `Sprint`/`Sprintln`/`Sprintf` (verbs, flags, width,
//! precision and the `%!verb(type=value)` complaints), `strconv`'s float formatting
//! (`%g` with Go's exponent rules), `strconv.Quote`/`ParseFloat`, and the `String()` of
//! `time.Time` and `time.Duration`.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::value::Value;

/// `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `strconv.ParseFloat(s, 64)`, with Go's error texts.
pub fn parse_float(s: &str) -> Result<f64, String> {
    let syntax = || format!("strconv.ParseFloat: parsing {}: invalid syntax", quote(s));
    let (sign, body) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    match body.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => return Ok(sign * f64::INFINITY),
        "nan" => return Ok(f64::NAN),
        _ => {}
    }
    let ok = body
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        && body.bytes().next().is_some_and(|c| c.is_ascii_digit() || c == b'.');
    if !ok {
        return Err(syntax());
    }
    let v: f64 = body.parse().map_err(|_| syntax())?;
    if v.is_infinite() {
        return Err(format!("strconv.ParseFloat: parsing {}: value out of range", quote(s)));
    }
    Ok(sign * v)
}

/// Decimal digits of a finite non-zero `v` (rounded to `prec` significant digits, or the
/// shortest that round-trips) without trailing zeros, and the decimal point position.
fn decimal_digits(v: f64, prec: Option<usize>) -> (Vec<u8>, i32) {
    if v == 0.0 {
        return (Vec::new(), 0);
    }
    let s = match prec {
        None => format!("{:e}", v.abs()),
        Some(p) => format!("{:.*e}", p.max(1) - 1, v.abs()),
    };
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let mut digits: Vec<u8> = m.bytes().filter(u8::is_ascii_digit).collect();
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    (digits, e.parse::<i32>().unwrap_or(0) + 1)
}

fn digits_e(d: &[u8], dp: i32, prec: usize, upper: bool) -> String {
    let mut out = String::new();
    out.push(d.first().map(|&c| c as char).unwrap_or('0'));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(d.get(i).map(|&c| c as char).unwrap_or('0'));
        }
    }
    let exp = if d.is_empty() { 0 } else { dp - 1 };
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.abs());
    out
}

fn digits_f(d: &[u8], dp: i32, prec: usize) -> String {
    let mut out = String::new();
    if dp > 0 {
        for i in 0..dp as usize {
            out.push(d.get(i).map(|&c| c as char).unwrap_or('0'));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 0..prec as i32 {
            let j = dp + i;
            out.push(if j < 0 {
                '0'
            } else {
                d.get(j as usize).map(|&c| c as char).unwrap_or('0')
            });
        }
    }
    out
}

/// `strconv.FormatFloat(v, verb, prec, 64)` for `e`, `E`, `f`, `F`, `g`, `G`; `prec`
/// `None` is Go's -1 (shortest). Infinities are `+Inf`/`-Inf`.
pub fn format_float(v: f64, verb: char, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let neg = v.is_sign_negative();
    let body = match verb {
        'e' | 'E' => {
            let (d, dp) = decimal_digits(v, prec.map(|p| p + 1));
            let p = prec.unwrap_or(d.len().saturating_sub(1));
            digits_e(&d, dp, p, verb == 'E')
        }
        'f' | 'F' => match prec {
            Some(p) => format!("{:.*}", p, v.abs()),
            None => {
                let (d, dp) = decimal_digits(v, None);
                digits_f(&d, dp, (d.len() as i32 - dp).max(0) as usize)
            }
        },
        _ => {
            let shortest = prec.is_none();
            let (d, dp) = decimal_digits(v, prec.map(|p| p.max(1)));
            let nd = d.len();
            let mut prec = prec.map(|p| p.max(1)).unwrap_or(nd);
            let mut eprec = prec;
            if eprec > nd && nd as i32 >= dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = dp - 1;
            if exp < -4 || exp >= eprec as i32 {
                if prec > nd {
                    prec = nd;
                }
                digits_e(&d, dp, prec.saturating_sub(1), verb == 'G')
            } else {
                if prec as i32 > dp {
                    prec = nd;
                }
                digits_f(&d, dp, (prec as i32 - dp).max(0) as usize)
            }
        }
    };
    if neg { format!("-{body}") } else { body }
}

/// Go's `%v` of a float64 (the workspace's one shortest-`'g'` formatter).
pub fn go_float(v: f64) -> String {
    fedwatch_model::format_go_float(v, 'g')
}

/// `time.Duration.String()`.
pub fn duration_string(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let frac = |v: u64, digits: u32| {
        let unit = 10u64.pow(digits);
        let (int, rem) = (v / unit, v % unit);
        if rem == 0 {
            int.to_string()
        } else {
            let f = format!("{rem:0width$}", width = digits as usize);
            format!("{int}.{}", f.trim_end_matches('0'))
        }
    };
    let body = if u < 1_000_000_000 {
        if u < 1_000 {
            format!("{u}ns")
        } else if u < 1_000_000 {
            format!("{}µs", frac(u, 3))
        } else {
            format!("{}ms", frac(u, 6))
        }
    } else {
        let secs = u / 1_000_000_000;
        let sub = u % 1_000_000_000;
        let s = frac((secs % 60) * 1_000_000_000 + sub, 9);
        let m = secs / 60 % 60;
        let h = secs / 3600;
        if h > 0 {
            format!("{h}h{m}m{s}s")
        } else if m > 0 {
            format!("{m}m{s}s")
        } else {
            format!("{s}s")
        }
    };
    if neg { format!("-{body}") } else { body }
}

/// `time.Time.String()` for a UTC time: `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub fn time_string(t: &DateTime<Utc>) -> String {
    format_time(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// `time.Time.Format(layout)` for a UTC time, with Go's reference-time layout elements.
pub fn format_time(t: &DateTime<Utc>, layout: &str) -> String {
    const ELEMENTS: &[&str] = &[
        "January",
        "Monday",
        "2006",
        "-07:00:00",
        "-0700",
        "-07:00",
        "Z07:00:00",
        "Z0700",
        "Z07:00",
        "-07",
        "Z07",
        "MST",
        "Jan",
        "Mon",
        "002",
        "__2",
        "01",
        "02",
        "03",
        "04",
        "05",
        "06",
        "_2",
        "15",
        "PM",
        "pm",
        "1",
        "2",
        "3",
        "4",
        "5",
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        // Fractional seconds: `.000`/`,000` keep zeros, `.999` trims them.
        for sep in ['.', ','] {
            if let Some(after) = rest.strip_prefix(sep) {
                let n0 = after.bytes().take_while(|&c| c == b'0').count();
                let n9 = after.bytes().take_while(|&c| c == b'9').count();
                let n = n0.max(n9);
                if n > 0 && !after[n..].starts_with(|c: char| c.is_ascii_digit()) && out.ends_with(|c: char| c.is_ascii_digit()) {
                    let digits = format!("{:09}", t.nanosecond() % 1_000_000_000);
                    let digits = &digits[..n];
                    if n9 > 0 {
                        let trimmed = digits.trim_end_matches('0');
                        if !trimmed.is_empty() {
                            out.push(sep);
                            out.push_str(trimmed);
                        }
                    } else {
                        out.push(sep);
                        out.push_str(digits);
                    }
                    rest = &after[n..];
                    continue 'outer;
                }
            }
        }
        for e in ELEMENTS {
            if let Some(after) = rest.strip_prefix(e) {
                let h12 = match t.hour() % 12 {
                    0 => 12,
                    h => h,
                };
                let s = match *e {
                    "January" => t.format("%B").to_string(),
                    "Monday" => t.format("%A").to_string(),
                    "2006" => format!("{:04}", t.year()),
                    "-07:00:00" => "+00:00:00".into(),
                    "-0700" => "+0000".into(),
                    "-07:00" => "+00:00".into(),
                    "-07" => "+00".into(),
                    "Z07:00:00" | "Z0700" | "Z07:00" | "Z07" => "Z".into(),
                    "MST" => "UTC".into(),
                    "Jan" => t.format("%b").to_string(),
                    "Mon" => t.format("%a").to_string(),
                    "002" => format!("{:03}", t.ordinal()),
                    "__2" => format!("{:>3}", t.ordinal()),
                    "01" => format!("{:02}", t.month()),
                    "02" => format!("{:02}", t.day()),
                    "03" => format!("{h12:02}"),
                    "04" => format!("{:02}", t.minute()),
                    "05" => format!("{:02}", t.second()),
                    "06" => format!("{:02}", t.year().rem_euclid(100)),
                    "_2" => format!("{:>2}", t.day()),
                    "15" => format!("{:02}", t.hour()),
                    "PM" => (if t.hour() >= 12 { "PM" } else { "AM" }).into(),
                    "pm" => (if t.hour() >= 12 { "pm" } else { "am" }).into(),
                    "1" => t.month().to_string(),
                    "2" => t.day().to_string(),
                    "3" => h12.to_string(),
                    "4" => t.minute().to_string(),
                    _ => t.second().to_string(),
                };
                out.push_str(&s);
                rest = after;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// `fmt.Sprint`: spaces between operands when neither side is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = |v: &Value| matches!(v, Value::Str(_) | Value::Html(_));
        if i > 0 && !is_str(a) && !is_str(&args[i - 1]) {
            out.push(' ');
        }
        out.push_str(&print_v(a, true));
    }
    out
}

/// `fmt.Sprintln`: always spaces, and a newline.
pub fn sprintln(args: &[Value]) -> String {
    let parts: Vec<String> = args.iter().map(|a| print_v(a, true)).collect();
    format!("{}\n", parts.join(" "))
}

/// `%v` of a value; `top` is false inside a container (nil prints as `<nil>` there and
/// as an argument of Sprint, as Go does).
pub fn print_v(v: &Value, top: bool) -> String {
    let _ = top;
    match v {
        Value::Nil => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Float(f) => go_float(*f),
        Value::Str(s) | Value::Html(s) => s.clone(),
        Value::StrMap(m) => {
            let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("map[{}]", inner.join(" "))
        }
        Value::Map(m) => {
            let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{}", print_v(v, false))).collect();
            format!("map[{}]", inner.join(" "))
        }
        Value::List(l) => {
            let inner: Vec<String> = l.iter().map(|v| print_v(v, false)).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Samples(s) => {
            let inner: Vec<String> = s.iter().map(|s| format!("&{}", sample_struct(s))).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Sample(s) => format!("&{}", sample_struct(s)),
        Value::Time(t) => time_string(t),
        Value::Duration(d) => duration_string(*d),
        Value::Alert(a) => format!(
            "{{{} {} {} {}}}",
            print_v(&Value::StrMap(a.labels.clone()), false),
            print_v(&Value::StrMap(a.external_labels.clone()), false),
            a.external_url,
            go_float(a.value)
        ),
    }
}

/// A `sample` struct as `%v` prints it: `{map[a:b] 1.5}`.
pub fn sample_struct(s: &super::value::QuerySample) -> String {
    let inner: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{{map[{}] {}}}", inner.join(" "), go_float(s.value))
}

#[derive(Default, Clone, Copy)]
struct Flags {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut argi = 0;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut f = Flags::default();
        while let Some(&(_, c)) = chars.peek() {
            match c {
                '-' => f.minus = true,
                '+' => f.plus = true,
                ' ' => f.space = true,
                '0' => f.zero = true,
                '#' => f.sharp = true,
                _ => break,
            }
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, argi: &mut usize| -> Option<usize> {
            if chars.peek().is_some_and(|&(_, c)| c == '*') {
                chars.next();
                let v = match args.get(*argi) {
                    Some(Value::Int(i)) => Some((*i).max(0) as usize),
                    _ => None,
                };
                *argi += 1;
                return v;
            }
            let mut n: Option<usize> = None;
            while let Some(&(_, c)) = chars.peek() {
                let Some(d) = c.to_digit(10) else { break };
                n = Some(n.unwrap_or(0) * 10 + d as usize);
                chars.next();
            }
            n
        };
        f.width = number(&mut chars, &mut argi);
        if chars.peek().is_some_and(|&(_, c)| c == '.') {
            chars.next();
            f.prec = Some(number(&mut chars, &mut argi).unwrap_or(0));
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        out.push_str(&format_arg(verb, f, arg));
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), print_v(a, false)))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn bad_verb(verb: char, v: &Value) -> String {
    match v {
        Value::Nil => format!("%!{verb}(<nil>)"),
        _ => format!("%!{verb}({}={})", v.type_name(), print_v(v, false)),
    }
}

fn pad(s: String, f: Flags) -> String {
    let len = s.chars().count();
    match f.width {
        Some(w) if w > len => {
            let fill = " ".repeat(w - len);
            if f.minus { s + &fill } else { fill + &s }
        }
        _ => s,
    }
}

/// Pads a number: sign first, then zeros when the `0` flag asks for them.
fn pad_number(body: String, negative: bool, f: Flags) -> String {
    let sign = if negative {
        "-"
    } else if f.plus {
        "+"
    } else if f.space {
        " "
    } else {
        ""
    };
    match f.width {
        Some(w) if f.zero && !f.minus && w > body.len() + sign.len() => format!("{sign}{}{body}", "0".repeat(w - body.len() - sign.len())),
        _ => pad(format!("{sign}{body}"), f),
    }
}

fn format_arg(verb: char, f: Flags, v: &Value) -> String {
    match v {
        Value::Str(s) | Value::Html(s) => match verb {
            'v' | 's' => pad(truncate(s, f.prec), f),
            'q' => pad(quote(truncate(s, f.prec).as_str()), f),
            'x' | 'X' => {
                let hex: String = s
                    .bytes()
                    .map(|b| if verb == 'x' { format!("{b:02x}") } else { format!("{b:02X}") })
                    .collect();
                pad(hex, f)
            }
            _ => bad_verb(verb, v),
        },
        Value::Bool(b) => match verb {
            'v' | 't' => pad(b.to_string(), f),
            _ => bad_verb(verb, v),
        },
        Value::Int(_) | Value::Uint(_) => {
            let (neg, mag) = match v {
                Value::Int(i) => (*i < 0, i.unsigned_abs()),
                Value::Uint(u) => (false, *u),
                _ => (false, 0),
            };
            let body = match verb {
                'v' | 'd' => mag.to_string(),
                'b' => format!("{mag:b}"),
                'o' => format!("{mag:o}"),
                'O' => format!("0o{mag:o}"),
                'x' => format!("{}{mag:x}", if f.sharp { "0x" } else { "" }),
                'X' => format!("{}{mag:X}", if f.sharp { "0X" } else { "" }),
                'c' => return pad(char::from_u32(mag as u32).unwrap_or('\u{FFFD}').to_string(), f),
                'q' => return pad(format!("'{}'", char::from_u32(mag as u32).unwrap_or('\u{FFFD}')), f),
                'U' => return pad(format!("U+{mag:04X}"), f),
                _ => return bad_verb(verb, v),
            };
            let body = match f.prec {
                Some(p) if body.len() < p => format!("{}{body}", "0".repeat(p - body.len())),
                _ => body,
            };
            pad_number(body, neg, f)
        }
        Value::Float(x) => {
            let (fverb, prec) = match verb {
                'v' => ('g', f.prec),
                'g' | 'G' => (verb, f.prec),
                'e' | 'E' | 'f' | 'F' => (verb, Some(f.prec.unwrap_or(6))),
                _ => return bad_verb(verb, v),
            };
            let s = format_float(*x, fverb, prec);
            if x.is_nan() {
                let s = if f.plus {
                    "+NaN".to_string()
                } else if f.space {
                    " NaN".into()
                } else {
                    s
                };
                return pad(s, f);
            }
            if x.is_infinite() {
                return pad(s, f);
            }
            let (neg, body) = match s.strip_prefix('-') {
                Some(b) => (true, b.to_string()),
                None => (false, s),
            };
            pad_number(body, neg, f)
        }
        Value::Nil => match verb {
            'v' => pad("<nil>".into(), f),
            _ => bad_verb(verb, v),
        },
        Value::Time(_) | Value::Duration(_) => match verb {
            'v' | 's' => pad(print_v(v, false), f),
            'q' => pad(quote(&print_v(v, false)), f),
            _ => bad_verb(verb, v),
        },
        Value::StrMap(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, x)| {
                    format!(
                        "{}:{}",
                        format_arg(verb, f, &Value::Str(k.clone())),
                        format_arg(verb, f, &Value::Str(x.clone()))
                    )
                })
                .collect();
            format!("map[{}]", inner.join(" "))
        }
        Value::Map(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, x)| format!("{}:{}", format_arg(verb, f, &Value::Str(k.clone())), format_arg(verb, f, x)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
        Value::List(l) => {
            let inner: Vec<String> = l.iter().map(|x| format_arg(verb, f, x)).collect();
            format!("[{}]", inner.join(" "))
        }
        _ => match verb {
            'v' | 's' => pad(print_v(v, false), f),
            _ => bad_verb(verb, v),
        },
    }
}

fn truncate(s: &str, prec: Option<usize>) -> String {
    match prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    }
}
