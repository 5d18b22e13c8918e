//! Go's `strconv.FormatFloat(v, fmt, -1, 64)`: how Prometheus prints floats outside JSON
//! sample values (the text exposition format, alert values, syntax trees).

/// Formats `v` as Go's `strconv.FormatFloat(v, fmt, -1, 64)` does for `fmt` `'e'`, `'g'`
/// or `'f'`: shortest round-trip digits, `NaN`, `+Inf`, `-Inf`.
pub fn format_go_float(v: f64, fmt: char) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if fmt == 'f' {
        // Rust's Display prints the shortest round-trip digits and never an exponent.
        return format!("{v}");
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. `-1.2345e-7`.
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // Go's shortest `'g'` switches to the exponent form below 1e-4 and from 1e6 up.
    if fmt == 'e' || !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    format!("{v}")
}

#[cfg(test)]
mod tests {
    use super::format_go_float;

    #[test]
    fn go_float_formats() {
        let cases = [
            (1.0, 'e', "1e+00"),
            (25.0, 'e', "2.5e+01"),
            (-0.00012, 'e', "-1.2e-04"),
            (f64::INFINITY, 'e', "+Inf"),
            (f64::NAN, 'g', "NaN"),
            (1.0, 'g', "1"),
            (123456.0, 'g', "123456"),
            (1234567.0, 'g', "1.234567e+06"),
            (1e21, 'g', "1e+21"),
            (0.0001, 'g', "0.0001"),
            (0.00001, 'g', "1e-05"),
            (1.5e-300, 'g', "1.5e-300"),
            (-0.0, 'g', "-0"),
            (1e21, 'f', "1000000000000000000000"),
            (0.1, 'f', "0.1"),
            (f64::NEG_INFINITY, 'f', "-Inf"),
            (-3.0, 'f', "-3"),
        ];
        for (v, f, want) in cases {
            assert_eq!(format_go_float(v, f), want, "{v} {f}");
        }
    }
}
