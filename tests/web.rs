//! Browser-facing HTTP and operations, through the `starfish` binary and
//! its flags, over raw HTTP: CORS (off by default, preflights, the origin
//! list rule, credentials, max-age, start-up refusals), security headers,
//! the request timeout's 408, and `/metrics` scraped and parsed after a
//! known sequence of requests (exact values). The real-browser test is
//! `tests/browser/run.sh`.

mod common;

use common::{
    device_cap, fresh_nonce, now_ms, parse_response, scope, send_raw, sign_with, user_id, Req,
    Resp, ROOT_SEED,
};
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The binary

use common::bin::{bin, Bin};

/// Scrape the metrics listener of `s` and parse the exposition.
fn scrape(s: &Bin) -> Exposition {
    let addr = s.metrics.expect("a metrics listener");
    let res = send_raw(
        addr,
        &Req::new("GET", "/metrics").to_bytes(&addr.to_string()),
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    Exposition::parse(&res.text())
}

/// Run `serve` expecting it to refuse to start: (exit code, stderr).
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let out = bin()
        .args(["serve", "--memory", "--listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cors_headers(r: &Resp) -> Vec<(String, String)> {
    r.headers
        .iter()
        .filter(|(n, _)| n.starts_with("access-control-") || n == "vary")
        .cloned()
        .collect()
}

fn pairs(xs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = xs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

const ALLOW_HEADERS: &str = "Content-Type, Authorization, Accept, X-Starfish-Sig, X-Starfish-Ts, X-Starfish-Nonce, X-Starfish-Pub, X-Requested-With, If-None-Match";
const ALLOW_METHODS: &str = "GET, POST, PUT, DELETE, PATCH, OPTIONS";

fn preflight(origin: Option<&str>, path: &str) -> Req {
    let mut r = Req::new("OPTIONS", path)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "content-type,x-starfish-sig,x-starfish-ts,x-starfish-nonce,authorization",
        );
    if let Some(o) = origin {
        r = r.header("Origin", o);
    }
    r
}

// ---------------------------------------------------------------------------
// CORS

#[test]
fn cors_security_headers_and_metrics_are_off_by_default() {
    let s = Bin::start(&[]);
    s.send(&preflight(Some("http://a.test"), "/v1/pull/public/notes/x"))
        .assert_not_found();
    let r = s.send(&Req::new("GET", "/v1/health").header("Origin", "http://a.test"));
    assert_eq!(r.status, 200);
    for (n, _) in &r.headers {
        assert!(
            !n.starts_with("access-control-")
                && !n.starts_with("x-")
                && n != "strict-transport-security"
                && n != "referrer-policy"
                && n != "vary",
            "unexpected header {n}"
        );
    }
    s.get("/metrics").assert_not_found();
}

#[test]
fn preflight_is_204_with_the_official_headers_and_our_allow_list() {
    let s = Bin::start(&["--cors-origin", "*", "--security-headers"]);
    for path in ["/v1/push/public/notes/x", "/v1/nope", "/v1", "/v1/"] {
        let r = s.send(&preflight(Some("http://anywhere.test"), path));
        assert_eq!(r.status, 204, "{path}");
        assert!(r.body.is_empty());
        // Exactly these headers: no security headers on a preflight (the
        // official CORS middleware answers before they run), no Vary with *.
        let mut names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "access-control-allow-headers",
                "access-control-allow-methods",
                "access-control-allow-origin",
                "access-control-max-age",
                "connection",
            ],
            "{path}: {:?}",
            r.headers
        );
        assert_eq!(
            sorted(cors_headers(&r)),
            pairs(&[
                ("access-control-allow-origin", "*"),
                ("access-control-allow-methods", ALLOW_METHODS),
                ("access-control-allow-headers", ALLOW_HEADERS),
                ("access-control-max-age", "86400"),
            ])
        );
    }
    // A preflight without Origin is still answered (the official server
    // does not look).
    assert_eq!(s.send(&preflight(None, "/v1/health")).status, 204);
    // Outside the mount, nothing changes (the official middleware lives on
    // the mounted router).
    for path in ["/elsewhere", "/v1x/health", "/V1/health"] {
        let r = s.send(&preflight(Some("http://a.test"), path));
        r.assert_not_found();
        assert!(cors_headers(&r).is_empty(), "{path}");
    }
    // Actual responses carry the origin and the exposed headers.
    let r = s.send(&Req::new("GET", "/v1/health").header("Origin", "http://anywhere.test"));
    assert_eq!(r.status, 200);
    assert_eq!(
        sorted(cors_headers(&r)),
        pairs(&[
            ("access-control-allow-origin", "*"),
            ("access-control-expose-headers", "ETag, Retry-After"),
        ])
    );
}

#[test]
fn an_origin_list_answers_listed_origins_and_the_first_to_anyone_else() {
    let s = Bin::start(&[
        "--cors-origin",
        "http://a.test",
        "--cors-origin",
        "http://b.test:8080",
    ]);
    let allowed = |r: &Resp| r.header("access-control-allow-origin").map(str::to_owned);
    for (origin, expect) in [
        (Some("http://b.test:8080"), "http://b.test:8080"),
        (Some("http://a.test"), "http://a.test"),
        (Some("http://evil.test"), "http://a.test"),
        (Some("http://b.test"), "http://a.test"),
        (Some("http://B.TEST:8080"), "http://a.test"),
        (None, "http://a.test"),
    ] {
        let r = s.send(&preflight(origin, "/v1/pull/public/notes/x"));
        assert_eq!(r.status, 204);
        assert_eq!(allowed(&r).as_deref(), Some(expect), "preflight {origin:?}");
        assert_eq!(r.header("vary"), Some("Origin"));
        assert_eq!(r.header("access-control-allow-credentials"), None);
        let mut get = Req::new("GET", "/v1/pull/public/notes/x");
        if let Some(o) = origin {
            get = get.header("Origin", o);
        }
        let r = s.send(&get);
        assert_eq!(r.status, 200);
        assert_eq!(allowed(&r).as_deref(), Some(expect), "GET {origin:?}");
        assert_eq!(r.header("vary"), Some("Origin"));
    }
    // Errors carry the headers too, so a browser can read a 409 or a 404.
    let push = |base: &str| {
        Req::new("POST", "/v1/push/public/notes/c")
            .header("Origin", "http://b.test:8080")
            .header("Content-Type", "application/json")
            .body(format!(r#"{{"data":{{"x":1}},"baseHash":{base}}}"#).as_bytes())
    };
    assert_eq!(s.send(&push("null")).status, 200);
    let r = s.send(&push("null"));
    r.assert_error(409, "hash_mismatch");
    assert_eq!(allowed(&r).as_deref(), Some("http://b.test:8080"));
    let r = s.send(&Req::new("GET", "/v1/nope").header("Origin", "http://b.test:8080"));
    r.assert_not_found();
    assert_eq!(allowed(&r).as_deref(), Some("http://b.test:8080"));
    // Several Origin fields never match a listed origin.
    let r = s.send(
        &Req::new("GET", "/v1/health")
            .header("Origin", "http://b.test:8080")
            .header("Origin", "http://b.test:8080"),
    );
    assert_eq!(allowed(&r).as_deref(), Some("http://a.test"));
}

#[test]
fn credentials_and_max_age() {
    let s = Bin::start(&[
        "--cors-origin",
        "http://a.test",
        "--cors-credentials",
        "--cors-max-age",
        "600",
    ]);
    let r = s.send(&preflight(Some("http://a.test"), "/v1/push/public/notes/x"));
    assert_eq!(r.status, 204);
    assert_eq!(
        sorted(cors_headers(&r)),
        pairs(&[
            ("access-control-allow-origin", "http://a.test"),
            ("access-control-allow-methods", ALLOW_METHODS),
            ("access-control-allow-headers", ALLOW_HEADERS),
            ("access-control-max-age", "600"),
            ("access-control-allow-credentials", "true"),
            ("vary", "Origin"),
        ])
    );
    let r = s.send(&Req::new("GET", "/v1/health").header("Origin", "http://a.test"));
    assert_eq!(
        sorted(cors_headers(&r)),
        pairs(&[
            ("access-control-allow-origin", "http://a.test"),
            ("access-control-expose-headers", "ETag, Retry-After"),
            ("access-control-allow-credentials", "true"),
            ("vary", "Origin"),
        ])
    );
}

#[test]
fn impossible_cors_settings_stop_start_up_with_status_2() {
    let (code, err) = refused(&["--cors-origin", "*", "--cors-credentials"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("CORS misconfiguration: credentials cannot be used with wildcard origin '*'. Specify explicit origins."),
        "{err}"
    );
    let (code, err) = refused(&["--cors-origin", "*", "--cors-origin", "http://a.test"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("'*' cannot be combined"), "{err}");
    let (code, err) = refused(&["--cors-origin", "http://a.test/"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("is not an origin"), "{err}");
    for args in [
        &["--cors-credentials"][..],
        &["--cors-max-age", "10"],
        &["--cors-origin", "http://a.test", "--cors-max-age", "ten"],
        &["--security-header", "X-Powered-By=me"],
        &["--security-header", "frameOptions"],
        &["--no-security-header", "nope"],
        &["--request-timeout-ms", "soon"],
        &["--metrics-listen", "nowhere"],
    ] {
        let (code, err) = refused(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
    }
}

// ---------------------------------------------------------------------------
// Security headers

fn security(r: &Resp) -> Vec<(String, String)> {
    const NAMES: [&str; 5] = [
        "x-content-type-options",
        "x-frame-options",
        "strict-transport-security",
        "x-xss-protection",
        "referrer-policy",
    ];
    sorted(
        r.headers
            .iter()
            .filter(|(n, _)| NAMES.contains(&n.as_str()))
            .cloned()
            .collect(),
    )
}

#[test]
fn security_headers_have_the_official_defaults_and_each_can_be_switched() {
    let s = Bin::start(&["--security-headers"]);
    let defaults = pairs(&[
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        (
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        ),
        ("x-xss-protection", "1; mode=block"),
        ("referrer-policy", "strict-origin-when-cross-origin"),
    ]);
    assert_eq!(security(&s.get("/v1/health")), defaults);
    let r = s.get("/v1/nope");
    r.assert_not_found();
    assert_eq!(security(&r), defaults, "404s under the mount too");
    let r = s.send(
        &Req::new("POST", "/v1/push/public/notes/s")
            .header("Content-Type", "text/plain")
            .body(b"x"),
    );
    assert_eq!(r.status, 415);
    assert_eq!(security(&r), defaults);
    assert!(
        security(&s.get("/outside")).is_empty(),
        "not outside the mount"
    );
    drop(s);

    let s = Bin::start(&[
        "--no-security-header",
        "X-Frame-Options",
        "--no-security-header",
        "strictTransportSecurity",
        "--security-header",
        "referrerPolicy=no-referrer",
        "--security-header",
        "x-xss-protection=0",
    ]);
    assert_eq!(
        security(&s.get("/v1/health")),
        pairs(&[
            ("x-content-type-options", "nosniff"),
            ("x-xss-protection", "0"),
            ("referrer-policy", "no-referrer"),
        ])
    );
}

// ---------------------------------------------------------------------------
// Request timeout

/// A "primary" that accepts connections and never answers.
#[cfg(feature = "client")]
fn black_hole() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    addr
}

#[cfg(feature = "client")]
fn temp_file(name: &str, content: &str) -> String {
    let dir = common::temp_dir("web");
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.display().to_string()
}

#[test]
#[cfg(feature = "client")] // the replica needs the HTTP client
fn a_request_that_takes_too_long_is_answered_408_with_the_official_body() {
    // A push-through replica whose primary never answers: the push hangs
    // in the application until the request timeout.
    let hole = black_hole();
    let config = temp_file(
        "config.json",
        r#"{"version":1,"collections":[
 {"name":"wiki","storagePath":"replica/wiki","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536}]}"#,
    );
    let settings = temp_file(
        "replica.json",
        &format!(
            r#"{{"collections":{{"wiki":{{"url":"http://{hole}/v1","pullPath":"/pull/primary/wiki","pushPath":"/push/primary/wiki","intervalMs":3600000,"headers":{{}},"writeMode":"push_through","syncTriggers":["on_pull"]}}}}}}"#
        ),
    );
    let s = Bin::start(&[
        "--config",
        &config,
        "--replica",
        &settings,
        "--request-timeout-ms",
        "300",
        "--cors-origin",
        "*",
        "--security-headers",
    ]);
    let started = Instant::now();
    let r = s.send(
        &Req::new("POST", "/v1/push/replica/wiki")
            .header("Origin", "http://a.test")
            .header("Content-Type", "application/json")
            .body(br#"{"data":{"x":1},"baseHash":null}"#),
    );
    let took = started.elapsed();
    r.assert_error(408, "Request timeout");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );
    // The official middleware order: the 408 gets the security and CORS headers.
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    // Quick requests are unaffected while the timed-out one still runs.
    assert_eq!(s.get("/v1/health").status, 200);
    // A pull whose on_pull sync waits on the silent primary times out too.
    s.get("/v1/pull/replica/wiki")
        .assert_error(408, "Request timeout");
    assert_eq!(s.get("/v1/health").status, 200);
}

// ---------------------------------------------------------------------------
// Metrics

/// A parsed Prometheus text exposition (format 0.0.4), checked while
/// parsing: metric and label names, label escapes, values, `# TYPE` before
/// a family's samples and at most once, every sample in a typed family,
/// counters named `_total`, and histograms with cumulative buckets ending
/// in `+Inf` equal to `_count`.
#[derive(Debug)]
struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

fn is_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn parse_value(s: &str) -> f64 {
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => s.parse().unwrap_or_else(|_| panic!("bad value {s:?}")),
    }
}

/// `{a="x",b="y\"z"}` → labels and the rest of the line.
fn parse_labels(s: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').unwrap();
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('}') {
            return (labels, r);
        }
        let eq = rest.find('=').expect("label =");
        let name = rest[..eq].trim();
        assert!(is_label_name(name), "bad label name {name:?}");
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .expect("quoted label value");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next().expect("unterminated label value");
            match c {
                '"' => break i,
                '\\' => match chars.next().expect("escape").1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    e => panic!("bad escape \\{e}"),
                },
                '\n' => panic!("raw newline in label value"),
                c => value.push(c),
            }
        };
        assert!(
            labels.insert(name.to_owned(), value).is_none(),
            "label {name} twice"
        );
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut types: HashMap<String, String> = HashMap::new();
        let mut seen_samples: Vec<String> = Vec::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.trim().is_empty() {
                continue;
            }
            if let Some(c) = line.strip_prefix('#') {
                let mut w = c.trim_start().splitn(3, ' ');
                match (w.next(), w.next(), w.next()) {
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        assert!(is_metric_name(name), "{line}");
                        assert!(
                            ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                            "{line}"
                        );
                        assert!(
                            !seen_samples.iter().any(|s| s == name),
                            "TYPE after samples: {line}"
                        );
                        assert!(
                            types.insert(name.to_owned(), kind.to_owned()).is_none(),
                            "TYPE twice: {line}"
                        );
                    }
                    (Some("HELP"), Some(name), _) => assert!(is_metric_name(name), "{line}"),
                    _ => {}
                }
                continue;
            }
            let name_end = line.find(['{', ' ']).expect("sample line");
            let name = &line[..name_end];
            assert!(is_metric_name(name), "bad metric name in {line:?}");
            let (labels, rest) = if line[name_end..].starts_with('{') {
                parse_labels(&line[name_end..])
            } else {
                (BTreeMap::new(), &line[name_end..])
            };
            let mut fields = rest.split_whitespace();
            let value = parse_value(fields.next().expect("value"));
            if let Some(ts) = fields.next() {
                ts.parse::<i64>().expect("timestamp");
            }
            assert!(fields.next().is_none(), "trailing text in {line:?}");
            let family = family_of(name, &types)
                .unwrap_or_else(|| panic!("sample {name} has no # TYPE before it"));
            seen_samples.push(family.clone());
            if types[&family] == "counter" {
                assert!(family.ends_with("_total"), "counter {family}");
            }
            samples.push((name.to_owned(), labels, value));
        }
        let e = Exposition { types, samples };
        e.check_histograms();
        e
    }

    fn check_histograms(&self) {
        for (family, kind) in &self.types {
            if kind != "histogram" {
                continue;
            }
            let bucket = format!("{family}_bucket");
            // Labels but `le` -> (le, cumulative count) in order.
            let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
            for (name, labels, v) in &self.samples {
                if *name == bucket {
                    let le = parse_value(&labels["le"]);
                    let key: Vec<_> = labels
                        .iter()
                        .filter(|(k, _)| *k != "le")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    series.entry(key).or_default().push((le, *v));
                }
            }
            assert!(!series.is_empty(), "histogram {family} without buckets");
            for (key, buckets) in series {
                for w in buckets.windows(2) {
                    assert!(w[0].0 < w[1].0 && w[0].1 <= w[1].1, "{family} {key:?}");
                }
                let last = buckets.last().unwrap();
                assert_eq!(last.0, f64::INFINITY, "{family} {key:?} ends in +Inf");
                let labels: Vec<(&str, &str)> =
                    key.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                assert_eq!(
                    self.value(&format!("{family}_count"), &labels),
                    last.1,
                    "{family} {key:?}"
                );
                self.value(&format!("{family}_sum"), &labels);
            }
        }
    }

    /// The value of the one sample with exactly these labels.
    #[track_caller]
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map(|(_, _, v)| *v)
    }

    /// Sum over every sample of `name` (any labels).
    fn total(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, _, v)| v)
            .sum()
    }
}

/// A label set as sorted pairs.
type Labels = Vec<(String, String)>;

fn family_of(name: &str, types: &HashMap<String, String>) -> Option<String> {
    if types.contains_key(name) {
        return Some(name.to_owned());
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|k| k == "histogram") {
                return Some(base.to_owned());
            }
        }
    }
    None
}

#[test]
fn the_exposition_parser_rejects_what_prometheus_would() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\\\"\\n\\\\\"} 1\n";
    let e = Exposition::parse(ok);
    assert_eq!(e.value("a_total", &[("k", "v\"\n\\")]), 1.0);
    for bad in [
        "a_total 1\n",                                // no TYPE
        "# TYPE a_total counter\na_total{k=\"v} 1\n", // unterminated
        "# TYPE a_total counter\na_total{k=v} 1\n",   // unquoted
        "# TYPE a_total counter\na_total one\n",      // value
        "# TYPE a counter\na 1\n",                    // counter name
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 1\nh_sum 0\n",
        "# TYPE g gauge\ng 1\n# TYPE g gauge\n",
    ] {
        let r = std::panic::catch_unwind(|| Exposition::parse(bad));
        assert!(r.is_err(), "accepted {bad:?}");
    }
}

/// Read one response with a `Content-Length` body from a kept-alive connection.
fn read_one(s: &mut TcpStream) -> Resp {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed");
        buf.push(byte[0]);
    }
    let head = parse_response(&buf);
    let n: usize = head.header("content-length").unwrap().parse().unwrap();
    let mut body = vec![0u8; n];
    s.read_exact(&mut body).unwrap();
    buf.extend_from_slice(&body);
    parse_response(&buf)
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn metrics_count_a_known_sequence_exactly() {
    let s = Bin::start(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--max-connections",
        "2",
        "--max-connections-per-ip",
        "3",
        "--cors-origin",
        "*",
    ]);
    // Nothing yet.
    let e = scrape(&s);
    assert_eq!(e.total("starfish_http_requests_total"), 0.0);
    assert_eq!(
        e.value("starfish_http_connections_accepted_total", &[]),
        0.0
    );
    assert_eq!(e.value("starfish_auth_nonce_cache_entries", &[]), 0.0);

    // One request per connection (Connection: close), each once the
    // previous connection has ended: the cap of 2 is for the end of the test.
    let open = |e: &Exposition| e.value("starfish_http_connections_open", &[]);
    let one = |req: &Req| {
        eventually("the previous connection to end", || {
            open(&scrape(&s)) == 0.0
        });
        s.send(req)
    };
    assert_eq!(one(&Req::new("GET", "/v1/health")).status, 200);
    assert_eq!(one(&Req::new("GET", "/v1/health")).status, 200);
    assert_eq!(
        one(&Req::new("GET", "/v1/pull/public/notes/m1")).status,
        200
    );
    let push = Req::new("POST", "/v1/push/public/notes/m1")
        .header("Content-Type", "application/json")
        .body(br#"{"data":{"a":1},"baseHash":null}"#);
    assert_eq!(one(&push).status, 200);
    assert_eq!(one(&push).status, 409);
    let r = one(&Req::new("GET", "/v1/pull/public/notes/m1"));
    assert_eq!(r.status, 200);
    let etag = r.header("etag").unwrap().to_owned();
    let r = one(&Req::new("GET", "/v1/pull/public/notes/m1").header("If-None-Match", &etag));
    assert_eq!(r.status, 304);
    one(&Req::new("GET", "/v1/nope")).assert_not_found();
    assert_eq!(
        one(&preflight(
            Some("http://a.test"),
            "/v1/pull/public/notes/m1"
        ))
        .status,
        204
    );
    // With a separate metrics listener, the main one has no /metrics (the
    // 404 is counted under route="metrics").
    one(&Req::new("GET", "/metrics")).assert_not_found();
    // Two signed pulls with one cap: two nonces, one verified cap.
    let cert = device_cap(&ROOT_SEED, scope(&["read", "write"], None));
    let target = format!("/v1/pull/users/{}/settings", user_id(&ROOT_SEED));
    for _ in 0..2 {
        let h = sign_with(
            &ROOT_SEED,
            &cert,
            "GET",
            &target,
            &s.host(),
            None,
            b"",
            &fresh_nonce(),
            now_ms(),
        );
        let r = one(&Req::new("GET", &target).headers(&h));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    const CONNS: f64 = 12.0;

    eventually("closed connections to end", || open(&scrape(&s)) == 0.0);
    let e = scrape(&s);
    let req = |route: &str, status: &str| {
        e.find(
            "starfish_http_requests_total",
            &[("route", route), ("status", status)],
        )
        .unwrap_or(0.0)
    };
    let expected = [
        ("health", "200", 2.0),
        ("pull", "200", 4.0),
        ("pull", "304", 1.0),
        ("push", "200", 1.0),
        ("push", "409", 1.0),
        ("other", "404", 1.0),
        ("metrics", "404", 1.0),
        ("options", "204", 1.0),
    ];
    for (route, status, n) in expected {
        assert_eq!(req(route, status), n, "{route} {status}");
    }
    assert_eq!(
        e.total("starfish_http_requests_total"),
        expected.iter().map(|x| x.2).sum::<f64>(),
        "no other series"
    );
    let latency_count = |route: &str| {
        e.value(
            "starfish_http_request_duration_seconds_count",
            &[("route", route)],
        )
    };
    for (route, n) in [
        ("health", 2.0),
        ("pull", 5.0),
        ("push", 2.0),
        ("batch", 0.0),
        ("config", 0.0),
        ("list", 0.0),
        ("options", 1.0),
        ("metrics", 1.0),
        ("other", 1.0),
    ] {
        assert_eq!(latency_count(route), n, "{route}");
    }
    assert_eq!(
        e.value("starfish_http_connections_accepted_total", &[]),
        CONNS
    );
    assert_eq!(
        e.value("starfish_http_connections_rejected_total", &[]),
        0.0
    );
    assert_eq!(e.value("starfish_auth_nonce_cache_entries", &[]), 2.0);
    assert_eq!(e.value("starfish_auth_cap_cache_entries", &[]), 1.0);
    // Store calls: every pull (including the 304) reads once, a push reads
    // and (unless 409) writes.
    let store_calls = |op: &str| {
        e.value(
            "starfish_store_operation_duration_seconds_count",
            &[("op", op)],
        )
    };
    assert_eq!(store_calls("get"), 7.0);
    assert_eq!(store_calls("put"), 1.0);
    for op in ["get_bytes", "put_bytes", "delete", "list_keys"] {
        assert_eq!(store_calls(op), 0.0, "{op}");
    }
    assert_eq!(e.total("starfish_store_operation_errors_total"), 0.0);
    assert!(
        e.find("starfish_replica_syncs_total", &[]).is_none()
            && !e.types.contains_key("starfish_replica_syncs_total"),
        "no replica, no replica series"
    );

    // Fill the connection cap (2) with kept-alive connections that are
    // mid-request (a push head sent, its body not): none can be closed to
    // make room, so the next is closed at once and counted as rejected.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(format!("GET /v1/health HTTP/1.1\r\nHost: {}\r\n\r\n", s.host()).as_bytes())
            .unwrap();
        assert_eq!(read_one(&mut c).status, 200);
        c.write_all(
            format!(
                "POST /v1/push/public/notes/m2 HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
                s.host()
            )
            .as_bytes(),
        )
        .unwrap();
        held.push(c);
    }
    eventually("two open connections", || open(&scrape(&s)) == 2.0);
    let mut extra = TcpStream::connect(s.addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sink = Vec::new();
    let _ = extra.read_to_end(&mut sink);
    assert!(sink.is_empty(), "a rejected connection gets no answer");
    let e = scrape(&s);
    assert_eq!(
        e.value("starfish_http_connections_rejected_total", &[]),
        1.0
    );
    assert_eq!(
        e.value("starfish_http_connections_accepted_total", &[]),
        CONNS + 2.0
    );
    assert_eq!(open(&e), 2.0);
    assert_eq!(
        e.value(
            "starfish_http_requests_total",
            &[("route", "health"), ("status", "200")]
        ),
        4.0
    );
    // The metrics listener answers nothing else, and its own connections
    // and scrapes are not counted.
    let m = s.metrics.unwrap();
    let r = send_raw(m, &Req::new("GET", "/v1/health").to_bytes(&m.to_string()));
    r.assert_not_found();
    let r = send_raw(m, &Req::new("HEAD", "/metrics").to_bytes(&m.to_string()));
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(
        scrape(&s).value("starfish_http_connections_accepted_total", &[]),
        CONNS + 2.0
    );
    drop(held);
    assert!(s.log.lock().unwrap().contains("connection cap reached"));
}

#[cfg(feature = "client")]
const PRIMARY: &str = r#"{"version":1,"collections":[
 {"name":"feed","storagePath":"primary/feed","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536}]}"#;
#[cfg(feature = "client")]
const REPLICA: &str = r#"{"version":1,"collections":[
 {"name":"feed","storagePath":"replica/feed","readRoles":["public"],"writeRoles":["public"],"encryption":"none","maxBodyBytes":65536}]}"#;

#[test]
#[cfg(feature = "client")] // the replica needs the HTTP client
fn replica_syncs_are_counted_per_collection_and_result() {
    let primary = common::Setup::new(PRIMARY).start();
    let config = temp_file("config.json", REPLICA);
    let settings = temp_file(
        "replica.json",
        &format!(
            r#"{{"collections":{{"feed":{{"url":"http://{}/v1","pullPath":"/pull/primary/feed","intervalMs":3600000,"headers":{{}},"writeMode":"pull_only","syncTriggers":["on_pull"]}}}}}}"#,
            primary.addr
        ),
    );
    // Metrics on the main listener this time.
    let s = Bin::start(&["--config", &config, "--replica", &settings, "--metrics"]);
    let scrape = || {
        let r = s.get("/metrics");
        assert_eq!(r.status, 200);
        Exposition::parse(&r.text())
    };
    let syncs = |e: &Exposition, result: &str| {
        e.value(
            "starfish_replica_syncs_total",
            &[("collection", "feed"), ("result", result)],
        )
    };
    // The scheduler syncs every collection once at start (within its
    // jitter): the primary has no document yet, which is a sync that ends ok.
    eventually("the start-up sync", || syncs(&scrape(), "ok") == 1.0);
    let e = scrape();
    assert_eq!(syncs(&e, "failed"), 0.0);
    assert_eq!(syncs(&e, "not_modified"), 0.0);
    let r = primary.post_json(
        "/v1/push/primary/feed",
        r#"{"data":{"v":1},"baseHash":null}"#,
    );
    assert_eq!(r.status, 200);
    // An on_pull sync that writes (ok), then one the primary answers 304.
    let r = s.get("/v1/pull/replica/feed");
    assert_eq!(r.json()["data"]["v"], 1);
    s.get("/v1/pull/replica/feed");
    // The primary goes away: the sync fails, the local copy is served.
    drop(primary);
    let r = s.get("/v1/pull/replica/feed");
    assert_eq!(r.json()["data"]["v"], 1);
    let before = scrape()
        .find(
            "starfish_http_requests_total",
            &[("route", "metrics"), ("status", "200")],
        )
        .unwrap_or(0.0);
    let e = scrape();
    assert_eq!(syncs(&e, "ok"), 2.0);
    assert_eq!(syncs(&e, "not_modified"), 1.0);
    assert_eq!(syncs(&e, "failed"), 1.0);
    // A scrape is counted by the time of the next one.
    assert_eq!(
        e.value(
            "starfish_http_requests_total",
            &[("route", "metrics"), ("status", "200")]
        ),
        before + 1.0
    );
}

#[test]
fn help_lists_the_new_flags() {
    let out = bin().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--cors-origin",
        "--cors-credentials",
        "--cors-max-age",
        "--security-headers",
        "--security-header NAME=VALUE",
        "--no-security-header",
        "--request-timeout-ms",
        "--metrics",
        "--metrics-listen",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
