//! Table tests. The first table restates the cases of Prometheus's
//! `template/template_test.go` (text mode; HTML mode, `missingkey=error` and native
//! histograms do not apply here); the others cover Go's template language and `fmt` verbs
//! with outputs checked against Go's documented behaviour, and alert expansion as
//! Prometheus's rule evaluation does it.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::*;

/// The input (`.`) of a case.
#[derive(Clone, Copy)]
enum Input {
    None,
    Floats(&'static [f64]),
    Strs(&'static [&'static str]),
    Ints(&'static [i64]),
    Uints(&'static [u64]),
}

impl Input {
    fn value(self) -> Value {
        let list = |v: Vec<Value>| Value::List(Rc::new(v));
        match self {
            Input::None => Value::Nil,
            Input::Floats(v) => list(v.iter().map(|f| Value::Float(*f)).collect()),
            Input::Strs(v) => list(v.iter().map(|s| Value::str(*s)).collect()),
            Input::Ints(v) => list(v.iter().map(|i| Value::Int(*i)).collect()),
            Input::Uints(v) => list(v.iter().map(|u| Value::Uint(*u)).collect()),
        }
    }
}

type Series = &'static [(&'static [(&'static str, &'static str)], f64)];

struct Case {
    text: &'static str,
    input: Input,
    query: Series,
    want: Result<&'static str, &'static str>,
}

const fn ok(text: &'static str, want: &'static str) -> Case {
    Case {
        text,
        input: Input::None,
        query: &[],
        want: Ok(want),
    }
}

const fn fails(text: &'static str, err: &'static str) -> Case {
    Case {
        text,
        input: Input::None,
        query: &[],
        want: Err(err),
    }
}

const fn with_input(text: &'static str, input: Input, want: Result<&'static str, &'static str>) -> Case {
    Case {
        text,
        input,
        query: &[],
        want,
    }
}

const fn with_query(text: &'static str, query: Series, want: Result<&'static str, &'static str>) -> Case {
    Case {
        text,
        input: Input::None,
        query,
        want,
    }
}

const METRIC_A: Series = &[(&[("__name__", "metric"), ("instance", "a")], 11.0)];

fn run(case: &Case) -> Result<String, String> {
    let result: Vec<QuerySample> = case
        .query
        .iter()
        .map(|(labels, v)| QuerySample {
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            value: *v,
        })
        .collect();
    let query = move |_: &str| Ok(result.clone());
    let ctx = Ctx {
        time_ms: 1_353_755_652_000,
        external_url: "http://testhost:9090/path/prefix",
        query: Some(&query),
    };
    expand_text("test", case.text, case.input.value(), &ctx)
}

fn check_table(cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let got = run(c);
        let want = c.want.map(str::to_string).map_err(str::to_string);
        if got != want {
            failures.push(format!("{:?}\n   got  {got:?}\n   want {want:?}", c.text));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn prometheus_template_test_cases() {
    use Input::*;
    let inf_nan = "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:";
    let cases = [
        ok("plain text", "plain text"),
        ok("{{ 1 }}", "1"),
        fails(
            "{{\u{a0}}}",
            "error parsing template test: template: test:1: unrecognized character in action: U+00A0",
        ),
        ok("{{ \"<b>\" }}", "<b>"),
        ok("{{define \"x\"}}{{.arg0}} {{.arg1}}{{end}}{{template \"x\" (args 1 \"2\")}}", "1 2"),
        with_query("{{ query \"1.5\" | first | value }}", &[(&[], 1.5)], Ok("1.5")),
        with_query("{{ query \"metric{instance='a'}\" | first | value }}", METRIC_A, Ok("11")),
        with_query(
            "{{ query \"metric{instance='a'}\" | first | label \"instance\" }}",
            METRIC_A,
            Ok("a"),
        ),
        with_query(
            "{{ query \"metric{__value__='a'}\" | first | strvalue }}",
            &[(&[("__name__", "metric"), ("__value__", "a")], 11.0)],
            Ok("a"),
        ),
        with_query("{{ query \"metric{instance='a'}\" | first | label \"foo\" }}", METRIC_A, Ok("")),
        with_query("{{ $x := query \"metric\" | first }}{{ $x.Labels.foo }}", METRIC_A, Ok("")),
        with_query(
            "{{ range query \"metric\" | sortByLabel \"instance\" }}{{.Labels.instance}}:{{.Value}}: {{end}}",
            &[
                (&[("__name__", "metric"), ("instance", "b")], 21.0),
                (&[("__name__", "metric"), ("instance", "a")], 11.0),
            ],
            Ok("a:11: b:21: "),
        ),
        ok("{{ \"foo.example.com\" | stripPort }}", "foo.example.com"),
        ok("{{ \"foo.example.com:12345\" | stripPort }}", "foo.example.com"),
        ok("{{ \"192.0.2.1\" | stripPort }}", "192.0.2.1"),
        ok("{{ \"192.0.2.1:12345\" | stripPort }}", "192.0.2.1"),
        ok("{{ \"2001:0DB8::1\" | stripPort }}", "2001:0DB8::1"),
        ok("{{ \"[2001:0DB8::1]:12345\" | stripPort }}", "2001:0DB8::1"),
        ok("{{ \"[2001:0DB8::1]::12345\" | stripPort }}", "[2001:0DB8::1]::12345"),
        ok("{{ .Foo }}", "<no value>"),
        fails("{{", "error parsing template test: template: test:1: unclosed action"),
        with_query(
            "{{ query \"missing\" | first }}",
            &[],
            Err(
                "error executing template test: template: test:1:21: executing \"test\" at <first>: error calling first: first() called on vector with no elements",
            ),
        ),
        ok("{{ reReplaceAll \"(a)b\" \"x$1\" \"ab\" }}", "xa"),
        with_input(
            "{{ range . }}{{ humanize . }}:{{ end }}",
            Floats(&[0.0, 1.0, 1234567.0, 0.12]),
            Ok("0:1:1.235M:120m:"),
        ),
        with_input(
            "{{ range . }}{{ humanize . }}:{{ end }}",
            Strs(&["0.0", "1.0", "1234567.0", ".12"]),
            Ok("0:1:1.235M:120m:"),
        ),
        fails(
            "{{ humanize \"one\" }}",
            "error executing template test: template: test:1:3: executing \"test\" at <humanize \"one\">: error calling humanize: strconv.ParseFloat: parsing \"one\": invalid syntax",
        ),
        with_input(
            "{{ range . }}{{ humanize . }}:{{ end }}",
            Ints(&[0, -1, 1, 1234567, i64::MAX]),
            Ok("0:-1:1:1.235M:9.223E:"),
        ),
        with_input(
            "{{ range . }}{{ humanize . }}:{{ end }}",
            Uints(&[0, 1, 1234567, u64::MAX]),
            Ok("0:1:1.235M:18.45E:"),
        ),
        with_input(
            "{{ range . }}{{ humanize1024 . }}:{{ end }}",
            Floats(&[0.0, 1.0, 1048576.0, 0.12]),
            Ok("0:1:1Mi:0.12:"),
        ),
        with_input(
            "{{ range . }}{{ humanize1024 . }}:{{ end }}",
            Strs(&["0.0", "1.0", "1048576.0", ".12"]),
            Ok("0:1:1Mi:0.12:"),
        ),
        fails(
            "{{ humanize1024 \"one\" }}",
            "error executing template test: template: test:1:3: executing \"test\" at <humanize1024 \"one\">: error calling humanize1024: strconv.ParseFloat: parsing \"one\": invalid syntax",
        ),
        with_input(
            "{{ range . }}{{ humanize1024 . }}:{{ end }}",
            Ints(&[0, -1, 1, 1234567, i64::MAX]),
            Ok("0:-1:1:1.177Mi:8Ei:"),
        ),
        with_input(
            "{{ range . }}{{ humanize1024 . }}:{{ end }}",
            Uints(&[0, 1, 1234567, u64::MAX]),
            Ok("0:1:1.177Mi:16Ei:"),
        ),
        with_input(
            "{{ range . }}{{ humanizeDuration . }}:{{ end }}",
            Floats(&[
                0.0,
                1.0,
                60.0,
                3600.0,
                86400.0,
                86400.0 + 3600.0,
                -(86400.0 * 2.0 + 3600.0 * 3.0 + 60.0 * 4.0 + 5.0),
                899.99,
            ]),
            Ok("0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s:"),
        ),
        with_input(
            "{{ range . }}{{ humanizeDuration . }}:{{ end }}",
            Strs(&["0", "1", "60", "3600", "86400"]),
            Ok("0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:"),
        ),
        with_input(
            "{{ range . }}{{ humanizeDuration . }}:{{ end }}",
            Floats(&[0.1, 0.0001, 0.12345, 60.1, 60.5, 1.2345, 12.345]),
            Ok("100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:"),
        ),
        with_input(
            "{{ range . }}{{ humanizeDuration . }}:{{ end }}",
            Strs(&[".1", ".0001", ".12345", "60.1", "60.5", "1.2345", "12.345"]),
            Ok("100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:"),
        ),
        fails(
            "{{ humanizeDuration \"one\" }}",
            "error executing template test: template: test:1:3: executing \"test\" at <humanizeDuration \"one\">: error calling humanizeDuration: strconv.ParseFloat: parsing \"one\": invalid syntax",
        ),
        with_input(
            "{{ range . }}{{ humanizeDuration . }}:{{ end }}",
            Ints(&[0, -1, 1, 1234567]),
            Ok("0s:-1s:1s:14d 6h 56m 7s:"),
        ),
        with_input(
            "{{ range . }}{{ humanizeDuration . }}:{{ end }}",
            Uints(&[0, 1, 1234567]),
            Ok("0s:1s:14d 6h 56m 7s:"),
        ),
        with_input(
            "{{ range . }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{humanizeTimestamp .}}:{{ end }}",
            Floats(&[f64::INFINITY, f64::NEG_INFINITY, f64::NAN]),
            Ok(inf_nan),
        ),
        with_input(
            "{{ range . }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{humanizeTimestamp .}}:{{ end }}",
            Strs(&["+Inf", "-Inf", "NaN"]),
            Ok(inf_nan),
        ),
        ok(
            "{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}",
            "-22.22%:0%:12.35%:123.5%",
        ),
        with_input(
            "{{ range . }}{{ humanizePercentage . }}:{{ end }}",
            Ints(&[0, -1, 1, 1234567, i64::MAX]),
            Ok("0%:-100%:100%:1.235e+08%:9.223e+20%:"),
        ),
        with_input(
            "{{ range . }}{{ humanizePercentage . }}:{{ end }}",
            Uints(&[0, 1, 1234567, u64::MAX]),
            Ok("0%:100%:1.235e+08%:1.845e+21%:"),
        ),
        ok(
            "{{ \"-0.22222\" | humanizePercentage }}:{{ \"0.0\" | humanizePercentage }}:{{ \"0.1234567\" | humanizePercentage }}:{{ \"1.23456\" | humanizePercentage }}",
            "-22.22%:0%:12.35%:123.5%",
        ),
        fails(
            "{{ \"one\" | humanizePercentage }}",
            "error executing template test: template: test:1:11: executing \"test\" at <humanizePercentage>: error calling humanizePercentage: strconv.ParseFloat: parsing \"one\": invalid syntax",
        ),
        with_input(
            "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
            Ints(&[0, -1, 1, 1234567, 9223372036]),
            Ok(
                "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:",
            ),
        ),
        with_input(
            "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
            Uints(&[0, 1, 1234567, 9223372036]),
            Ok("1970-01-01 00:00:00 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:"),
        ),
        with_input(
            "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
            Ints(&[i64::MIN, i64::MAX]),
            Err(
                "error executing template test: template: test:1:16: executing \"test\" at <humanizeTimestamp .>: error calling humanizeTimestamp: -9.223372036854776e+18 cannot be represented as a nanoseconds timestamp since it overflows int64",
            ),
        ),
        with_input(
            "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
            Uints(&[u64::MAX]),
            Err(
                "error executing template test: template: test:1:16: executing \"test\" at <humanizeTimestamp .>: error calling humanizeTimestamp: 1.8446744073709552e+19 cannot be represented as a nanoseconds timestamp since it overflows int64",
            ),
        ),
        ok("{{ 1435065584.128 | humanizeTimestamp }}", "2015-06-23 13:19:44.128 +0000 UTC"),
        ok("{{ \"1435065584.128\" | humanizeTimestamp }}", "2015-06-23 13:19:44.128 +0000 UTC"),
        ok("{{ (1435065584.128 | toTime).Format \"2006\" }}", "2015"),
        ok("{{ (\"1435065584.128\" | toTime).Format \"2006\" }}", "2015"),
        ok("{{ (1800 | toDuration).String }}", "30m0s"),
        ok("{{ (\"1800\" | toDuration).String }}", "30m0s"),
        ok("{{ now }}", "1.353755652e+09"),
        ok(
            "{{ (now | toTime).Format \"Mon Jan 2 15:04:05 2006\" }}",
            "Sat Nov 24 11:14:12 2012",
        ),
        ok(
            "{{ (\"-30m\" | parseDuration | toDuration | (now | toTime).Add).UnixMilli }}",
            "1353753852000",
        ),
        ok("{{ \"aa bb CC\" | title }}", "Aa Bb CC"),
        ok("{{ \"aa bb CC\" | toUpper }}", "AA BB CC"),
        ok("{{ \"aA bB CC\" | toLower }}", "aa bb cc"),
        ok("{{ match \"a+\" \"aa\" }} {{ match \"a+\" \"b\" }}", "true false"),
        ok("{{ graphLink \"up\" }}", "/graph?g0.expr=up&g0.tab=0"),
        ok("{{ tableLink \"up\" }}", "/graph?g0.expr=up&g0.tab=1"),
        ok("{{ pathPrefix }}", "/path/prefix"),
        ok("{{ externalURL }}", "http://testhost:9090/path/prefix"),
        ok("{{ printf \"%0.2f\" (parseDuration \"1h2m10ms\") }}", "3720.01"),
        ok("{{ printf \"%0.2f\" (parseDuration \"-1h2m10ms\") }}", "-3720.01"),
        ok("{{ \"foo.example.com\" | stripDomain }}", "foo"),
        ok("{{ \"foo.example.com:12345\" | stripDomain }}", "foo:12345"),
        ok("{{ \"192.0.2.1\" | stripDomain }}", "192.0.2.1"),
        ok("{{ \"192.0.2.1:12345\" | stripDomain }}", "192.0.2.1:12345"),
        ok("{{ \"2001:0DB8::1\" | stripDomain }}", "2001:0DB8::1"),
        ok("{{ \"[2001:0DB8::1]:12345\" | stripDomain }}", "[2001:0DB8::1]:12345"),
        ok("{{ \"[2001:0DB8::1]::12345\" | stripDomain }}", "[2001:0DB8::1]::12345"),
    ];
    check_table(&cases);
}

#[test]
fn go_template_language() {
    use Input::*;
    let cases = [
        // Control structures and variables.
        ok("{{ if eq 1 1 }}yes{{ else }}no{{ end }}", "yes"),
        ok("{{ if lt 2 1 }}a{{ else if gt 2 1 }}b{{ else }}c{{ end }}", "b"),
        ok("{{ if false }}a{{ else if false }}b{{ else }}c{{ end }}", "c"),
        ok("{{ with $x := \"hi\" }}{{ $x }}{{ . }}{{ end }}", "hihi"),
        ok("{{ with \"\" }}a{{ else }}b{{ end }}", "b"),
        ok("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2"),
        ok("{{ if true }}{{ $y := 3 }}{{ $y }}{{ end }}", "3"),
        with_input(
            "{{ range $i, $e := . }}{{ $i }}={{ $e }};{{ end }}",
            Strs(&["a", "b"]),
            Ok("0=a;1=b;"),
        ),
        with_input("{{ range $e := . }}{{ $e }}{{ end }}", Strs(&["a", "b"]), Ok("ab")),
        with_input(
            "{{ range . }}{{ if eq . 2 }}{{ break }}{{ end }}{{ . }}{{ end }}",
            Ints(&[1, 2, 3]),
            Ok("1"),
        ),
        with_input(
            "{{ range . }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ . }}{{ end }}",
            Ints(&[1, 2, 3]),
            Ok("13"),
        ),
        with_input("{{ range . }}x{{ else }}empty{{ end }}", Strs(&[]), Ok("empty")),
        ok("{{ range $k, $v := args \"a\" 2 }}{{ $k }}={{ $v }} {{ end }}", "arg0=a arg1=2 "),
        ok("{{ range 3 }}{{ . }}{{ end }}", "012"),
        ok(
            "{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" \"x\" }}{{ template \"t\" 2 }}",
            "[x][2]",
        ),
        ok("{{ block \"b\" \"y\" }}<{{ . }}>{{ end }}", "<y>"),
        // Whitespace trimming, comments and literals.
        ok("x  {{- 1 -}}  y", "x1y"),
        ok("a\n{{- /* gone */ -}}\n b", "ab"),
        ok("{{/* a comment */}}z", "z"),
        ok("{{ `raw \\n` }}", "raw \\n"),
        ok("{{ \"tab\\tquote\\\"\" }}", "tab\tquote\""),
        ok(
            "{{ 0x10 }} {{ 1e3 }} {{ 'a' }} {{ -1.5 }} {{ 1.0 }} {{ 1_000 }}",
            "16 1000 97 -1.5 1 1000",
        ),
        ok("{{ true }} {{ print nil }}", "true <nil>"),
        // Builtins.
        ok(
            "{{ and 1 0 }} {{ and 1 2 }} {{ or 0 \"\" \"x\" }} {{ or 0 false }} {{ not 0 }}",
            "0 2 x false true",
        ),
        ok("{{ len \"abc\" }} {{ len (args 1 2) }}", "3 2"),
        with_input("{{ index . 1 }}", Strs(&["a", "b"]), Ok("b")),
        ok("{{ index (args \"v\") \"arg0\" }}", "v"),
        ok(
            "{{ eq \"a\" \"b\" \"a\" }} {{ ne 1 2 }} {{ le 2 2 }} {{ ge 1.5 2.5 }} {{ lt \"a\" \"b\" }}",
            "true true true false true",
        ),
        ok("{{ print 1 2 \"a\" 3 }}|{{ println 1 \"a\" }}|", "1 2a3|1 a\n|"),
        ok("{{ html \"<a href='x'>&</a>\" }}", "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"),
        ok("{{ urlquery \"a b&c\" }} {{ js \"it's\" }}", "a+b%26c it\\'s"),
        ok("{{ \"a.b.c\" | reReplaceAll \"\\\\.\" \"-\" }}", "a-b-c"),
        ok("{{ safeHtml \"<b>\" }}", "<b>"),
        ok("{{ \"hello world\" | title }}", "Hello World"),
        ok(
            "{{ parseDuration \"1d\" }} {{ parseDuration \"90s\" }} {{ parseDuration \"1w2d\" }}",
            "86400 90 777600",
        ),
        ok(
            "{{ humanize 1048576 }} {{ humanize1024 1048576 }} {{ humanizeDuration 135.3563 }} {{ humanizePercentage 0.959 }}",
            "1.049M 1Mi 2m 15s 95.9%",
        ),
        ok(
            "{{ humanizeDuration 0.5 }} {{ humanizeDuration 1.5 }} {{ humanize 0.0012 }} {{ humanize -2500 }}",
            "500ms 1.5s 1.2m -2.5k",
        ),
        // Errors, worded as Go words them.
        fails(
            "{{ $x }}",
            "error parsing template test: template: test:1: undefined variable \"$x\"",
        ),
        fails(
            "{{ foo }}",
            "error parsing template test: template: test:1: function \"foo\" not defined",
        ),
        fails("{{ if 1 }}", "error parsing template test: template: test:1: unexpected EOF"),
        fails("{{ end }}", "error parsing template test: template: test:1: unexpected {{end}}"),
        fails(
            "a\n{{ .X * 2 }}",
            "error parsing template test: template: test:2: unexpected \"*\" in operand",
        ),
        fails(
            "{{ \"x }}",
            "error parsing template test: template: test:1: unterminated quoted string",
        ),
        fails(
            "{{ break }}",
            "error parsing template test: template: test:1: {{break}} outside {{range}}",
        ),
        fails(
            "{{ 1 | 2 }}",
            "error parsing template test: template: test:1: non executable command in pipeline stage 2",
        ),
        fails(
            "{{/* x */ 1 }}",
            "error parsing template test: template: test:1: comment ends before closing delimiter",
        ),
        fails(
            "{{ gt 1.5 1 }}",
            "error executing template test: template: test:1:3: executing \"test\" at <gt 1.5 1>: error calling gt: incompatible types for comparison",
        ),
        fails(
            "{{ toUpper 1 }}",
            "error executing template test: template: test:1:11: executing \"test\" at <1>: expected string; found 1",
        ),
        fails(
            "{{ 1 | toUpper }}",
            "error executing template test: template: test:1:7: executing \"test\" at <toUpper>: wrong type for value; expected string; got int",
        ),
        fails(
            "{{ template \"nope\" }}",
            "error executing template test: template: test:1:3: executing \"test\" at <{{template \"nope\"}}>: template \"nope\" not defined",
        ),
        fails(
            "{{ len 3 }}",
            "error executing template test: template: test:1:3: executing \"test\" at <len 3>: error calling len: len of type int",
        ),
        fails(
            "{{ range 1.5 }}{{ end }}",
            "error executing template test: template: test:1:9: executing \"test\" at <{{range 1.5}}{{end}}>: range can't iterate over 1.5",
        ),
        fails(
            "{{ nil | print }}",
            "error executing template test: template: test:1:3: executing \"test\" at <nil>: nil is not a command",
        ),
        // A field of a nil dot is no value, whatever it is given.
        ok("{{ 1.5 | printf \"%d\" | .Foo }}", "<no value>"),
    ];
    check_table(&cases);
}

#[test]
fn printf_verbs_like_go() {
    let cases = [
        ("{{ printf \"%.2f\" 3.14159 }}", "3.14"),
        ("{{ printf \"%5.1f|%-6s|%6s|\" 3.14159 \"ab\" \"cd\" }}", "  3.1|ab    |    cd|"),
        (
            "{{ printf \"%d %05d %+d %x %X %o %b\" 42 -42 5 255 255 8 5 }}",
            "42 -0042 +5 ff FF 10 101",
        ),
        ("{{ printf \"%x %q %v\" \"hi\" \"a\\\"b\" 1e6 }}", "6869 \"a\\\"b\" 1e+06"),
        (
            "{{ printf \"%e %E %g %.3g %G\" 1234.5678 0.000123 1234.5678 1234.5678 1e-7 }}",
            "1.234568e+03 1.230000E-04 1234.5678 1.23e+03 1E-07",
        ),
        (
            "{{ printf \"%8.3f|%08.3f|% .1f\" -3.14159 -3.14159 2.0 }}",
            "  -3.142|-003.142| 2.0",
        ),
        (
            "{{ printf \"%s|%d|%f\" 1.5 1.5 80 }}",
            "%!s(float64=1.5)|%!d(float64=1.5)|%!f(int=80)",
        ),
        (
            "{{ printf \"%d\" }}|{{ printf \"%d\" 1 2 }}|{{ printf \"100%%\" }}",
            "%!d(MISSING)|1%!(EXTRA int=2)|100%",
        ),
        ("{{ printf \"%t %v %.2s %5.2f%%\" true \"a\" \"abcdef\" 99.5 }}", "true a ab 99.50%"),
        ("{{ printf \"%v %v %v\" 100000.0 1234567.0 0.00001 }}", "100000 1.234567e+06 1e-05"),
        ("{{ printf \"%.4g %.4g %.4g %.4g\" 100000.0 120.0 0.0 1000.0 }}", "1e+05 120 0 1000"),
        ("{{ printf \"%v %.1f %.0f\" 1.0 0.25 2.5 }}", "1 0.2 2"),
        ("{{ printf \"%s %v\" (args 1 \"x\") $.Nope }}", "map[arg0:%!s(int=1) arg1:x] <nil>"),
    ];
    let table: Vec<Case> = cases.iter().map(|(t, w)| ok(t, w)).collect();
    check_table(&table);
}

#[test]
fn alert_templates_expand_as_prometheus_rules_do() {
    let labels = Labels::from_pairs([("__name__", "up"), ("instance", "a.example.com:9100"), ("job", "node")]);
    let ext = Labels::from_pairs([("region", "eu")]);
    let data = TemplateData {
        labels: &labels,
        value: 0.9512,
        external_labels: &ext,
        external_url: "http://fw:9090/prom",
    };
    let query = |q: &str| -> Result<Vec<QuerySample>, String> {
        match q {
            "up" => Ok(vec![QuerySample {
                labels: BTreeMap::from([("job".to_string(), "node".to_string())]),
                value: 3.0,
            }]),
            _ => Err(format!("1:1: parse error: unexpected {q:?}")),
        }
    };
    let cases = [
        ("Instance {{ $labels.instance }} down", "Instance a.example.com:9100 down"),
        (
            "{{$labels.job}}/{{ .Labels.instance | stripPort }}/{{ $.Labels.job }}",
            "node/a.example.com/node",
        ),
        (
            "v={{ $value }} {{ .Value }} {{ $value | humanizePercentage }} {{ humanize $value }}",
            "v=0.9512 0.9512 95.12% 951.2m",
        ),
        ("{{ printf \"%.1f\" $value }}%", "1.0%"),
        ("{{ $labels.missing }}|", "|"),
        (
            "{{ $externalLabels.region }} {{ $externalURL }} {{ pathPrefix }}",
            "eu http://fw:9090/prom /prom",
        ),
        ("{{ $labels }}", "map[__name__:up instance:a.example.com:9100 job:node]"),
        ("{{ if gt $value 0.9 }}high{{ else }}ok{{ end }}", "high"),
        (
            "{{ with query \"up\" }}{{ . | first | value }} {{ . | first | label \"job\" }}{{ end }}",
            "3 node",
        ),
        ("{{ range $k, $v := $labels }}{{ $k }};{{ end }}", "__name__;instance;job;"),
        ("{{ $labels.instance | stripDomain | toUpper }}", "A:9100"),
        (
            "{{ if gt $value 80 }}x{{ end }}",
            "<error expanding template: error executing template __alert_HighLoad: template: __alert_HighLoad:1:118: executing \"__alert_HighLoad\" at <gt $value 80>: error calling gt: incompatible types for comparison>",
        ),
        (
            "{{ query \"bad(\" }}",
            "<error expanding template: error executing template __alert_HighLoad: template: __alert_HighLoad:1:115: executing \"__alert_HighLoad\" at <query \"bad(\">: error calling query: 1:1: parse error: unexpected \"bad(\">",
        ),
        (
            "{{ $value | nope }}",
            "<error expanding template: error parsing template __alert_HighLoad: template: __alert_HighLoad:1: function \"nope\" not defined>",
        ),
    ];
    let mut failures = Vec::new();
    for (text, want) in cases {
        let got = expand_alert("HighLoad", text, &data, 1_700_000_000_000, Some(&query));
        if got != want {
            failures.push(format!("{text:?}\n   got  {got:?}\n   want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn check_rejects_what_go_rejects_at_parse_time() {
    for ok in [
        "{{ $labels.instance }}",
        "{{ $value | humanize }}",
        "{{ printf \"%.2f\" $value }}",
        "{{ $x := 1 }}{{ $x }}",
        "{{ range $i, $v := query \"up\" }}{{ $i }}{{ end }}",
        "{{ define \"t\" }}{{ .arg0 }}{{ end }}{{ template \"t\" (args 1) }}",
        "{{ graphLink \"up\" }}{{ tableLink \"up\" }}{{ safeHtml \"x\" }}{{ pathPrefix }}{{ strvalue (query \"x\" | first) }}",
        "plain",
    ] {
        assert!(check(ok).is_ok(), "{ok}: {:?}", check(ok));
    }
    for (bad, why) in [
        ("{{ $label.foo }}", "undefined variable \"$label\""),
        ("{{$this_is_wrong}}", "undefined variable \"$this_is_wrong\""),
        ("{{$labels.quantile * 100}}", "unexpected \"*\" in operand"),
        ("{{ $labels.x ", "unclosed action"),
        ("{{ if $value }}", "unexpected EOF"),
        ("{{ nosuchfunc 1 }}", "function \"nosuchfunc\" not defined"),
        ("a\n{{ $nope }}", "line 2: undefined variable \"$nope\""),
    ] {
        let err = check(bad).unwrap_err();
        assert!(err.contains(why), "{bad}: {err}");
    }
}

#[test]
fn fields_templates_render_notifier_text() {
    let fields = BTreeMap::from([("Subject", "[FIRING:1] Down".to_string()), ("Status", "firing".to_string())]);
    let cases = [
        ("{{ .Subject }}{{ .Summary }}", Ok("[FIRING:1] Down")),
        (
            "{{ if eq .Status \"firing\" }}ALERT{{ else }}ok{{ end }}: {{ .Subject | toUpper }}",
            Ok("ALERT: [FIRING:1] DOWN"),
        ),
        (
            "{{ .Subject",
            Err("error parsing template message: template: message:1: unclosed action"),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(
            expand_fields(text, &fields),
            want.map(str::to_string).map_err(str::to_string),
            "{text}"
        );
    }
}

#[test]
fn floats_print_like_go() {
    let cases = [
        (1.0, "1"),
        (0.5, "0.5"),
        (-2.25, "-2.25"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (123456.0, "123456"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (1e21, "1e+21"),
        (f64::INFINITY, "+Inf"),
        (f64::NAN, "NaN"),
        (-0.0, "-0"),
    ];
    for (v, want) in cases {
        assert_eq!(go_float(v), want, "{v}");
    }
}
