use super::*;

fn sel(text: &str) -> Selector {
    Selector::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn err(text: &str) -> SelectorError {
    match Selector::parse(text) {
        Ok(s) => panic!("{text} parsed as {s}"),
        Err(e) => e,
    }
}

const SERIES: &[(&str, &str)] = &[("__name__", "http_requests_total"), ("job", "api"), ("code", "500")];

#[test]
fn parses_every_form() {
    let s = sel(r#"http_requests_total{job="api", code!="200", path=~"/a.*", method!~'GET|HEAD',}"#);
    let got: Vec<_> = s.matchers().iter().map(|m| (m.name.as_str(), m.op, m.value.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("__name__", MatchOp::Equal, "http_requests_total"),
            ("job", MatchOp::Equal, "api"),
            ("code", MatchOp::NotEqual, "200"),
            ("path", MatchOp::Regex, "/a.*"),
            ("method", MatchOp::NotRegex, "GET|HEAD"),
        ]
    );
    assert_eq!(sel("up").matchers().len(), 1);
    assert_eq!(sel(" up { } ").matchers().len(), 1);
    assert_eq!(sel(r#"{__name__=~"node_.+"}"#).matchers()[0].op, MatchOp::Regex);
    assert_eq!(sel("ns:rate5m{a=`x\\y`}").matchers()[1].value, "x\\y", "backquotes are raw");
    assert_eq!(sel(r#"{"my.metric", "service.name"="a"}"#).matchers()[0].value, "my.metric");
    assert_eq!(sel(r#"{"service.name"="a"}"#).matchers()[0].name, "service.name");
    assert_eq!(sel(r#"{a="\"q\" \n \x41 \u00e9 \101"}"#).matchers()[0].value, "\"q\" \n A é A");
}

#[test]
fn matching_follows_prometheus() {
    assert!(sel("http_requests_total").matches_pairs(SERIES));
    assert!(sel(r#"{job="api", code=~"5.."}"#).matches_pairs(SERIES));
    assert!(!sel(r#"{job="api", code=~"5"}"#).matches_pairs(SERIES), "regexes are anchored at both ends");
    assert!(!sel(r#"{code=~"0"}"#).matches_pairs(SERIES));
    assert!(sel(r#"{__name__=~"http_.*", code!~"2.."}"#).matches_pairs(SERIES));
    assert!(!sel(r#"up{job="api"}"#).matches_pairs(SERIES));
    // A missing label is the empty string.
    assert!(sel(r#"{job="api", missing=""}"#).matches_pairs(SERIES));
    assert!(!sel(r#"{job="api", missing!=""}"#).matches_pairs(SERIES));
    assert!(sel(r#"{job="api", missing=~"|x"}"#).matches_pairs(SERIES));
    assert!(!sel(r#"{job="api", code=""}"#).matches_pairs(SERIES));
    assert!(sel(r#"{job="api", missing!~".+"}"#).matches_pairs(SERIES));
    // `.` matches a newline, as in Prometheus.
    assert!(sel(r#"{a=~"x.y"}"#).matches_pairs(&[("a", "x\ny")]));
}

#[test]
fn errors_name_the_position_and_the_problem() {
    let e = err(r#"up{job="api""#);
    assert_eq!(e.position, 13);
    assert!(e.problem.contains("expected ',' or '}'"), "{e}");
    let e = err(r#"up{job~"api"}"#);
    assert_eq!(e.position, 7, "{e}");
    assert!(e.problem.contains("=, !=, =~, !~"), "{e}");
    let e = err(r#"up{job="api}"#);
    assert_eq!((e.position, e.problem.as_str()), (8, "unterminated string"));
    let e = err(r#"up{job=api}"#);
    assert!(e.problem.contains("quoted value for label \"job\""), "{e}");
    let e = err(r#"{code=~"5(("}"#);
    assert_eq!(e.position, 8);
    assert!(e.problem.contains("invalid regular expression for label \"code\""), "{e}");
    assert!(err("").problem.contains("empty selector"));
    assert!(err("up}").problem.contains("after the selector"));
    assert!(err("9up").problem.contains("expected a metric name"));
    assert!(err(r#"up{a="\q"}"#).problem.contains("unknown escape"));
    assert!(err(r#"up{__name__="x"}"#).problem.contains("metric name must not be set twice"));
    assert!(err(r#"up{"x"}"#).problem.contains("metric name must not be set twice"));
    assert_eq!(
        err("{}").to_string(),
        "parse error at char 1: vector selector must contain at least one non-empty matcher"
    );
    assert!(err(r#"{a=""}"#).problem.contains("non-empty matcher"));
    assert!(err(r#"{a=~".*"}"#).problem.contains("non-empty matcher"));
}

#[test]
fn huge_regexes_are_refused() {
    let e = err(r"{a=~`(\w{100}){100}`}");
    assert!(e.problem.contains("invalid regular expression"), "{e}");
}
