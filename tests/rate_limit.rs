//! `rateLimit` end to end: which routes count, bucket modes, the
//! two-dimension form, the 429 answer, windows, and the client address rule
//! (TCP peer; `X-Forwarded-For` only from `--trusted-proxy`). Expected
//! answers are the official server's (middleware.js `RateLimiter`,
//! route-builder.js `buildActionRateLimiters`), except the address rule,
//! which is ours (COMPATIBILITY.md).

mod common;

use common::*;
use starfish::http::client_ip::TrustedProxies;

const CONFIG: &str = r#"{
  "version": 1,
  "rateLimit": {"windowMs": 60000, "maxRequests": 2},
  "collections": [
    {"name": "pulls", "storagePath": "pulls/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "maxBodyBytes": 100, "rateLimit": {"pull": {"maxRequests": 2}}},
    {"name": "implicit", "storagePath": "implicit/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "maxBodyBytes": 100, "rateLimit": {"maxRequests": 1}},
    {"name": "free", "storagePath": "free/{id}", "readRoles": ["public"], "writeRoles": ["public"]},
    {"name": "mine", "storagePath": "users/{identity}/mine", "readRoles": ["self"], "writeRoles": ["self"],
     "rateLimit": {"pull": {"maxRequests": 1}}},
    {"name": "byip", "storagePath": "byip/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "rateLimit": {"pull": {"maxRequests": 1, "bucket": "ip"}}},
    {"name": "pair", "storagePath": "pair/{identity}", "readRoles": ["cap:read:*"], "writeRoles": ["cap:write:*"],
     "rateLimit": {"pull": {"maxRequests": 1, "bucket": "identity+ip"}}},
    {"name": "twodim", "storagePath": "twodim/{id}", "readRoles": ["cap:read:*"], "writeRoles": ["public"],
     "rateLimit": {"pull": {"identity": {"maxRequests": 2}, "ip": {"maxRequests": 3}}}},
    {"name": "short", "storagePath": "short/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "rateLimit": {"pull": {"windowMs": 300, "maxRequests": 1}}},
    {"name": "bin", "storagePath": "bin/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "allowedMimeTypes": ["text/plain"], "rateLimit": {"push": {"maxRequests": 1}}},
    {"name": "m1", "bundle": "bun", "storagePath": "bun/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "rateLimit": {"push": {"maxRequests": 1}, "pull": {"maxRequests": 1}}},
    {"name": "m2", "bundle": "bun", "storagePath": "bun/{id}", "readRoles": ["public"], "writeRoles": ["public"]}
  ],
  "namespaces": {
    "ns": {"collections": [
      {"name": "pulls", "storagePath": "ns/pulls/{id}", "readRoles": ["public"], "writeRoles": ["public"],
       "rateLimit": {"pull": {"maxRequests": 1}}}
    ]}
  }
}"#;

fn server() -> TestServer {
    Setup::new(CONFIG).start()
}

/// A server that believes `X-Forwarded-For` from 127.0.0.1 (the tests'
/// own address), so a test can play many clients behind one proxy.
fn proxied() -> TestServer {
    Setup::new(CONFIG)
        .tweak(|o| o.trusted_proxies = TrustedProxies::new(vec!["127.0.0.1".parse().unwrap()]))
        .start()
}

fn get_from(s: &TestServer, target: &str, client: &str) -> Resp {
    Req::new("GET", target)
        .header("X-Forwarded-For", client)
        .send(s)
}

const PUSH: &str = r#"{"data":{"a":1},"baseHash":null}"#;

#[test]
fn the_429_answer_is_the_official_one() {
    let s = server();
    assert_eq!(s.get("/v1/pull/pulls/a").status, 200);
    assert_eq!(
        s.get("/v1/pull/pulls/b").status,
        200,
        "one bucket for the collection"
    );
    let r = s.get("/v1/pull/pulls/a");
    r.assert_error(429, "Rate limit exceeded");
    let mut names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["connection", "content-length", "content-type"],
        "no Retry-After or RateLimit headers, as the official server"
    );
    // Refused requests keep counting; other collections are not affected.
    s.get("/v1/pull/pulls/a")
        .assert_error(429, "Rate limit exceeded");
    for _ in 0..5 {
        assert_eq!(s.get("/v1/pull/free/a").status, 200);
    }
    // The collection has no push entry, but a global rateLimit is set: the
    // implicit push rule applies, with the global's numbers (2 a minute).
    assert_eq!(s.post_json("/v1/push/pulls/a", PUSH).status, 200);
    assert_eq!(
        s.post_json("/v1/push/pulls/b", r#"{"data":{},"baseHash":null}"#)
            .status,
        200
    );
    s.post_json("/v1/push/pulls/c", PUSH)
        .assert_error(429, "Rate limit exceeded");
}

#[test]
fn the_implicit_push_rule_and_its_order_against_body_checks() {
    let s = server();
    // Checked after the Content-Length limit: a 413 does not count.
    let big = format!(
        r#"{{"data":{{"a":"{}"}},"baseHash":null}}"#,
        "x".repeat(200)
    );
    s.post_json("/v1/push/implicit/a", &big)
        .assert_error(413, "Payload too large");
    assert_eq!(s.post_json("/v1/push/implicit/a", PUSH).status, 200);
    s.post_json("/v1/push/implicit/b", PUSH)
        .assert_error(429, "Rate limit exceeded");
    // ... and before the content checks: a refused push is 429 even when
    // its body is bad.
    let r = Req::new("POST", "/v1/push/implicit/a")
        .header("Content-Type", "text/plain")
        .body(b"nope")
        .send(&s);
    r.assert_error(429, "Rate limit exceeded");
    // Pulls of the collection are not limited (no pull rule).
    for _ in 0..4 {
        assert_eq!(s.get("/v1/pull/implicit/a").status, 200);
    }
}

#[test]
fn binary_pushes_and_bundle_member_pushes_are_counted_bundle_and_batch_pulls_are_not() {
    let s = server();
    let bin = |s: &TestServer| {
        Req::new("POST", "/v1/push/bin/x")
            .header("Content-Type", "text/plain")
            .body(b"hello")
            .send(s)
    };
    assert_eq!(bin(&s).status, 200);
    bin(&s).assert_error(429, "Rate limit exceeded");

    assert_eq!(s.post_json("/v1/push/bun/1/m1", PUSH).status, 200);
    s.post_json("/v1/push/bun/2/m1", PUSH)
        .assert_error(429, "Rate limit exceeded");
    for _ in 0..3 {
        let r = s.post_json("/v1/push/bun/1/m2", r#"{"data":{},"baseHash":null}"#);
        assert_ne!(r.status, 429, "m2 has no rate limit");
    }
    for _ in 0..4 {
        assert_eq!(
            s.get("/v1/pull/bun/1").status,
            200,
            "bundle pulls are never counted"
        );
        let r = s.get("/v1/batch/pull?collections=pulls,m1");
        assert_eq!(r.status, 200, "batch pulls are never counted");
    }
    assert_eq!(
        s.get("/v1/pull/pulls/a").status,
        200,
        "batch did not use the pull budget"
    );
}

#[test]
fn namespaces_have_their_own_counters() {
    let s = server();
    assert_eq!(s.get("/v1/ns/pull/ns/pulls/a").status, 200);
    s.get("/v1/ns/pull/ns/pulls/a")
        .assert_error(429, "Rate limit exceeded");
    assert_eq!(s.get("/v1/pull/pulls/a").status, 200);
    assert_eq!(s.get("/v1/pull/pulls/a").status, 200);
}

#[test]
fn identity_buckets_follow_the_caller() {
    let s = server();
    let alice = user_id(&ROOT_SEED);
    let bob = user_id(&OTHER_SEED);
    let ca = device_cap(&ROOT_SEED, scope(&["read", "write"], None));
    let cb = device_cap(&OTHER_SEED, scope(&["read", "write"], None));
    let pull = |seed, cert, who: &str| {
        signed_get(&s, seed, cert, &format!("/v1/pull/users/{who}/mine")).send(&s)
    };
    assert_eq!(pull(&ROOT_SEED, &ca, &alice).status, 200);
    pull(&ROOT_SEED, &ca, &alice).assert_error(429, "Rate limit exceeded");
    assert_eq!(
        pull(&OTHER_SEED, &cb, &bob).status,
        200,
        "bob has his own budget"
    );
    // The rate check comes after the access check: a refused caller does
    // not spend anyone's budget.
    s.get(&format!("/v1/pull/users/{bob}/mine"))
        .assert_error(403, "Forbidden");
    pull(&OTHER_SEED, &cb, &bob).assert_error(429, "Rate limit exceeded");
}

#[test]
fn without_a_trusted_proxy_forwarded_for_is_ignored() {
    let s = server();
    assert_eq!(get_from(&s, "/v1/pull/byip/a", "198.51.100.1").status, 200);
    // A different X-Forwarded-For from the same peer is the same client.
    get_from(&s, "/v1/pull/byip/a", "198.51.100.2").assert_error(429, "Rate limit exceeded");
    s.get("/v1/pull/byip/a")
        .assert_error(429, "Rate limit exceeded");
}

#[test]
fn behind_a_trusted_proxy_each_forwarded_client_has_a_bucket() {
    let s = proxied();
    assert_eq!(get_from(&s, "/v1/pull/byip/a", "198.51.100.1").status, 200);
    get_from(&s, "/v1/pull/byip/a", "198.51.100.1").assert_error(429, "Rate limit exceeded");
    assert_eq!(get_from(&s, "/v1/pull/byip/a", "198.51.100.2").status, 200);
    // A client cannot escape by prepending a spoofed hop: the proxy's own
    // entry (the rightmost untrusted one) is the client.
    get_from(&s, "/v1/pull/byip/a", "203.0.113.50, 198.51.100.2")
        .assert_error(429, "Rate limit exceeded");
    // No header: the proxy itself is the client.
    assert_eq!(s.get("/v1/pull/byip/a").status, 200);
    s.get("/v1/pull/byip/a")
        .assert_error(429, "Rate limit exceeded");
}

#[test]
fn identity_plus_ip_counts_each_pair() {
    let s = proxied();
    let alice = user_id(&ROOT_SEED);
    let cert = device_cap(&ROOT_SEED, scope(&["read"], None));
    let pull = |ip: &str| {
        signed_get(&s, &ROOT_SEED, &cert, &format!("/v1/pull/pair/{alice}"))
            .header("X-Forwarded-For", ip)
            .send(&s)
    };
    assert_eq!(pull("198.51.100.1").status, 200);
    pull("198.51.100.1").assert_error(429, "Rate limit exceeded");
    assert_eq!(
        pull("198.51.100.2").status,
        200,
        "same identity, other address"
    );
    let bob_cert = device_cap(&OTHER_SEED, scope(&["read"], None));
    let r = signed_get(
        &s,
        &OTHER_SEED,
        &bob_cert,
        &format!("/v1/pull/pair/{alice}"),
    )
    .header("X-Forwarded-For", "198.51.100.1")
    .send(&s);
    assert_eq!(r.status, 403, "the {{identity}} binding still applies");
    let r = signed_get(
        &s,
        &OTHER_SEED,
        &bob_cert,
        &format!("/v1/pull/pair/{}", user_id(&OTHER_SEED)),
    )
    .header("X-Forwarded-For", "198.51.100.1")
    .send(&s);
    assert_eq!(r.status, 200, "same address, other identity");
}

#[test]
fn two_dimensions_refuse_when_either_is_over() {
    let s = proxied();
    const CAROL_SEED: [u8; 32] = [11; 32];
    let certs: Vec<([u8; 32], _)> = [ROOT_SEED, OTHER_SEED, CAROL_SEED]
        .into_iter()
        .map(|seed| (seed, device_cap(&seed, scope(&["read"], None))))
        .collect();
    let pull = |who: usize, ip: &str| {
        let (seed, cert) = &certs[who];
        signed_get(&s, seed, cert, "/v1/pull/twodim/a")
            .header("X-Forwarded-For", ip)
            .send(&s)
    };
    // Per identity: 2, from any address.
    assert_eq!(pull(0, "198.51.100.1").status, 200);
    assert_eq!(pull(0, "198.51.100.2").status, 200);
    pull(0, "198.51.100.3").assert_error(429, "Rate limit exceeded");
    // Per address: 3, whoever asks (every request counts in both).
    assert_eq!(pull(1, "198.51.100.1").status, 200);
    assert_eq!(pull(1, "198.51.100.1").status, 200);
    pull(2, "198.51.100.1").assert_error(429, "Rate limit exceeded");
    assert_eq!(
        pull(2, "198.51.100.7").status,
        200,
        "carol (1 used) from a fresh address"
    );
    // Anonymous callers are refused by the role check before counting.
    get_from(&s, "/v1/pull/twodim/a", "198.51.100.8").assert_error(403, "Forbidden");
    // Carol has now used her 2 (the refused request counted).
    pull(2, "198.51.100.8").assert_error(429, "Rate limit exceeded");
}

#[test]
fn windows_end() {
    let s = server();
    assert_eq!(s.get("/v1/pull/short/a").status, 200);
    s.get("/v1/pull/short/a")
        .assert_error(429, "Rate limit exceeded");
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(s.get("/v1/pull/short/a").status, 200);
}

#[test]
fn the_bucket_bound_drops_the_oldest_bucket() {
    // --rate-limit-buckets 2: a third client's bucket pushes out the first
    // one's, whose count restarts (memory stays bounded; nobody is locked out).
    let s = Setup::new(CONFIG)
        .tweak(|o| {
            o.trusted_proxies = TrustedProxies::new(vec!["127.0.0.1".parse().unwrap()]);
            o.rate_limit_buckets = 2;
        })
        .start();
    let pull = |ip: &str| get_from(&s, "/v1/pull/byip/a", ip);
    assert_eq!(pull("198.51.100.1").status, 200);
    assert_eq!(pull("198.51.100.2").status, 200);
    pull("198.51.100.1").assert_error(429, "Rate limit exceeded");
    pull("198.51.100.2").assert_error(429, "Rate limit exceeded");
    assert_eq!(
        pull("198.51.100.3").status,
        200,
        "a new client is always admitted"
    );
    assert_eq!(
        pull("198.51.100.1").status,
        200,
        "the oldest bucket was dropped"
    );
    pull("198.51.100.3").assert_error(429, "Rate limit exceeded");
}
