//! `listable`: the `GET /list/...` route end to end (real server, raw
//! HTTP). Expected answers are the official server's (route-builder.js
//! list handler, checked against 3.0.0-alpha.65 with its filesystem store).

mod common;

use common::*;

const CONFIG: &str = r#"{
  "version": 1,
  "collections": [
    {"name": "days", "storagePath": "days/{user}/{day}", "readRoles": ["public"], "writeRoles": ["public"],
     "listable": true},
    {"name": "dayring", "storagePath": "days/{user}/{day}/_keyring", "readRoles": ["public"], "writeRoles": ["public"]},
    {"name": "plain", "storagePath": "plain/{id}", "readRoles": ["public"], "writeRoles": ["public"]},
    {"name": "whole", "storagePath": "{day}", "readRoles": ["public"], "writeRoles": ["public"], "listable": true},
    {"name": "notes", "storagePath": "users/{identity}/notes/{n}", "readRoles": ["self"], "writeRoles": ["self"],
     "listable": 1},
    {"name": "capped", "storagePath": "capped/{id}", "readRoles": ["public"], "writeRoles": ["public"],
     "listable": true, "rateLimit": {"list": {"windowMs": 60000, "maxRequests": 2}}}
  ],
  "namespaces": {
    "team": {"collections": [
      {"name": "docs", "storagePath": "team/docs/{id}", "readRoles": ["public"], "writeRoles": ["public"], "listable": true}
    ]}
  }
}"#;

fn push(s: &TestServer, path: &str) {
    let r = s.post_json(
        &format!("/v1/push/{path}"),
        r#"{"data":{"x":1},"baseHash":null}"#,
    );
    assert_eq!(r.status, 200, "{path}: {}", r.text());
}

#[test]
fn lists_keys_under_the_prefix_in_order_with_paging() {
    let s = Setup::new(CONFIG).start();
    for day in ["2024-03-02", "2024-03-01", "2024-03-03"] {
        push(&s, &format!("days/alice/{day}"));
    }
    push(&s, "days/alice/2024-03-03/_keyring");
    push(&s, "days/bob/2024-01-01");
    s.get("/v1/list/days/alice").assert_json(
        200,
        r#"{"items":["2024-03-01","2024-03-02","2024-03-03","2024-03-03/_keyring"],"hasMore":false}"#,
    );
    s.get("/v1/list/days/alice?limit=2").assert_json(
        200,
        r#"{"items":["2024-03-01","2024-03-02"],"hasMore":true}"#,
    );
    s.get("/v1/list/days/alice?limit=2&after=2024-03-02")
        .assert_json(
            200,
            r#"{"items":["2024-03-03","2024-03-03/_keyring"],"hasMore":false}"#,
        );
    s.get("/v1/list/days/alice?after=2024-03-03/_keyring")
        .assert_json(200, r#"{"items":[],"hasMore":false}"#);
    s.get("/v1/list/days/alice?limit=5000&after=2024")
        .assert_json(200, r#"{"items":["2024-03-01","2024-03-02","2024-03-03","2024-03-03/_keyring"],"hasMore":false}"#);
    s.get("/v1/list/days/bob")
        .assert_json(200, r#"{"items":["2024-01-01"],"hasMore":false}"#);
    s.get("/v1/list/days/nobody")
        .assert_json(200, r#"{"items":[],"hasMore":false}"#);
    // Percent-encoded parameters are decoded like pull parameters.
    s.get("/v1/list/days/%61lice?limit=1")
        .assert_json(200, r#"{"items":["2024-03-01"],"hasMore":true}"#);
    // HEAD: the same status and headers, no body.
    let head = Req::new("HEAD", "/v1/list/days/alice").send(&s);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[test]
fn a_long_listing_pages_through_every_key_exactly_once() {
    let s = Setup::new(CONFIG).start();
    let mut expected: Vec<String> = (0..23).map(|i| format!("k{i:03}")).collect();
    for k in &expected {
        push(&s, &format!("days/carol/{k}"));
    }
    expected.sort();
    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let target = match &after {
            Some(a) => format!("/v1/list/days/carol?limit=5&after={a}"),
            None => "/v1/list/days/carol?limit=5".to_owned(),
        };
        let r = s.get(&target);
        assert_eq!(r.status, 200);
        let v = r.json();
        let items: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect();
        seen.extend(items.iter().cloned());
        if !v["hasMore"].as_bool().unwrap() {
            break;
        }
        after = items.last().cloned();
    }
    assert_eq!(seen, expected);
}

#[test]
fn bad_limits_and_parameters_get_the_official_errors() {
    let s = Setup::new(CONFIG).start();
    push(&s, "days/alice/d1");
    for bad in [
        "0",
        "-1",
        "010",
        "+5",
        "%205",
        "5abc",
        "1e3",
        "1.5",
        "",
        "abc",
        "12345678901234567890",
    ] {
        s.get(&format!("/v1/list/days/alice?limit={bad}"))
            .assert_error(400, "Invalid limit parameter");
    }
    s.get("/v1/list/days/alice?limit")
        .assert_error(400, "Invalid limit parameter");
    // The first `limit` wins, as in the official query parser.
    s.get("/v1/list/days/alice?limit=1&limit=x")
        .assert_json(200, r#"{"items":["d1"],"hasMore":false}"#);
    s.get("/v1/list/days/al%20ice")
        .assert_error(400, "Invalid path parameter");
    s.get("/v1/list/days/%E2%82%AC")
        .assert_error(400, "Invalid path parameter");
    // The parameter check comes before the limit check.
    s.get("/v1/list/days/al%20ice?limit=0")
        .assert_error(400, "Invalid path parameter");
}

#[test]
fn only_listable_collections_have_list_routes() {
    let s = Setup::new(CONFIG).start();
    push(&s, "plain/p1");
    for target in [
        "/v1/list/plain",
        "/v1/list/days",
        "/v1/list/days/alice/extra",
        "/v1/list/days/alice/",
        "/v1/list",
        "/v1/list/team/docs",
        "/list/days/alice",
    ] {
        s.get(target).assert_not_found();
    }
    let r = Req::new("POST", "/v1/list/days/alice").send(&s);
    r.assert_not_found();
    // A one-segment storage path lists at `/list/` only, and refuses to
    // list the whole store (the official filesystem store's plain 500).
    let r = s.get("/v1/list/");
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "Internal Server Error")
    );
    // A `..` is removed by URL normalisation before routing (as in the
    // official server): `/list/days/..` is `/list/`.
    let r = s.get("/v1/list/days/..");
    assert_eq!(r.status, 500);
}

#[test]
fn namespaced_list_routes() {
    let s = Setup::new(CONFIG).start();
    let r = s.post_json(
        "/v1/team/push/team/docs/one",
        r#"{"data":{},"baseHash":null}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    s.get("/v1/team/list/team/docs")
        .assert_json(200, r#"{"items":["one"],"hasMore":false}"#);
    s.get("/v1/list/team/docs").assert_not_found();
}

#[test]
fn the_read_roles_decide_who_may_list() {
    let s = Setup::new(CONFIG).start();
    let alice = user_id(&ROOT_SEED);
    let bob = user_id(&OTHER_SEED);
    let cert = device_cap(&ROOT_SEED, scope(&["read", "write"], None));
    for n in ["n2", "n1"] {
        let target = format!("/v1/push/users/{alice}/notes/{n}");
        let r = signed_post(
            &s,
            &ROOT_SEED,
            &cert,
            &target,
            r#"{"data":{},"baseHash":null}"#,
        )
        .send(&s);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Anonymous callers have only `public`.
    s.get(&format!("/v1/list/users/{alice}/notes"))
        .assert_error(403, "Forbidden");
    // The owner lists her own notes (`self` from the prefix's {identity}).
    let target = format!("/v1/list/users/{alice}/notes?limit=10");
    signed_get(&s, &ROOT_SEED, &cert, &target)
        .send(&s)
        .assert_json(200, r#"{"items":["n1","n2"],"hasMore":false}"#);
    // Someone else's prefix: the cap is bound to its identity.
    let target = format!("/v1/list/users/{bob}/notes");
    signed_get(&s, &ROOT_SEED, &cert, &target)
        .send(&s)
        .assert_error(403, "Forbidden");
    // A cap whose paths do not cover the prefix.
    let narrow = device_cap(&ROOT_SEED, scope(&["read"], Some(&["elsewhere/**"])));
    let target = format!("/v1/list/users/{alice}/notes");
    signed_get(&s, &ROOT_SEED, &narrow, &target)
        .send(&s)
        .assert_error(403, "Forbidden");
    // Without anonymous access an unsigned list is 401.
    let s = Setup::new(CONFIG).no_anonymous().start();
    s.get(&format!("/v1/list/users/{alice}/notes"))
        .assert_error(401, "Unauthorized");
}

#[test]
fn the_list_action_has_its_own_rate_limit() {
    let s = Setup::new(CONFIG).start();
    push(&s, "capped/a");
    push(&s, "capped/b");
    s.get("/v1/list/capped?limit=1")
        .assert_json(200, r#"{"items":["a"],"hasMore":true}"#);
    // Even a refused request counts, and comes after the access check.
    s.get("/v1/list/capped?limit=0")
        .assert_error(400, "Invalid limit parameter");
    s.get("/v1/list/capped")
        .assert_error(429, "Rate limit exceeded");
    // Pulls and pushes of the collection are not limited by the list rule.
    for _ in 0..3 {
        assert_eq!(s.get("/v1/pull/capped/a").status, 200);
    }
    push(&s, "capped/c");
}
