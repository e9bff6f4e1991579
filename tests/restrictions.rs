//! `restrictions` over HTTP, enforced as the official server does with the
//! `starfish-restrictions` plugin installed: deny wins, every applicable
//! allow list must name the caller, anonymous callers match no list,
//! `403 {"error":"identity restricted"}`; identities are resolved even on
//! public collections once any restriction exists.

mod common;

use common::*;

fn config() -> String {
    let banned = user_id(&OTHER_SEED);
    let root = user_id(&ROOT_SEED);
    format!(
        r#"{{
  "restrictions":[{{"mode":"deny","identities":["{banned}"],"actions":["push"]}}],
  "collections":[
    {{"name":"pub","storagePath":"pub/{{id}}","readRoles":["public"],"writeRoles":["public"]}},
    {{"name":"vip","storagePath":"vip/{{id}}","readRoles":["public"],"writeRoles":["public"],
     "restrictions":[{{"mode":"allow","identities":["{root}"]}}]}},
    {{"name":"caps","storagePath":"caps/{{id}}","readRoles":["cap:read:nothing"],"writeRoles":["public"],
     "restrictions":[{{"mode":"deny","identities":["{root}"]}}]}},
    {{"name":"m1","bundle":"b","storagePath":"b/{{id}}","readRoles":["public"],"writeRoles":["public"]}},
    {{"name":"m2","bundle":"b","storagePath":"b/{{id}}","readRoles":["public"],"writeRoles":["public"],
     "restrictions":[{{"mode":"deny","identities":["{root}"],"actions":["pull"]}}]}}
  ],
  "namespaces":{{"acme":{{"restrictions":[{{"mode":"allow","identities":["{banned}"]}}],
    "collections":[{{"name":"vip","storagePath":"acme/{{id}}","readRoles":["public"],"writeRoles":["public"]}}]}}}}
}}"#
    )
}

fn caps() -> (starfish::proto::cap::CapCert, starfish::proto::cap::CapCert) {
    (
        device_cap(&ROOT_SEED, scope(&["read", "write"], None)),
        device_cap(&OTHER_SEED, scope(&["read", "write"], None)),
    )
}

#[test]
fn server_wide_deny_for_one_action() {
    let s = Setup::new(&config()).start();
    let (_, other) = caps();
    let body = r#"{"data":{"a":1},"baseHash":null}"#;
    signed_post(&s, &OTHER_SEED, &other, "/v1/push/pub/x", body)
        .send(&s)
        .assert_error(403, "identity restricted");
    // Reads are not restricted, and anonymous callers never match a deny list.
    assert_eq!(
        signed_get(&s, &OTHER_SEED, &other, "/v1/pull/pub/x")
            .send(&s)
            .status,
        200
    );
    assert_eq!(s.post_json("/v1/push/pub/x", body).status, 200);
}

#[test]
fn allow_lists_refuse_everyone_else_including_anonymous_callers() {
    let s = Setup::new(&config()).start();
    let (root, other) = caps();
    s.get("/v1/pull/vip/x")
        .assert_error(403, "identity restricted");
    signed_get(&s, &OTHER_SEED, &other, "/v1/pull/vip/x")
        .send(&s)
        .assert_error(403, "identity restricted");
    let r = signed_get(&s, &ROOT_SEED, &root, "/v1/pull/vip/x").send(&s);
    assert_eq!(r.status, 200, "{}", r.text());
    // The namespace allow-list names only the other identity.
    signed_get(&s, &ROOT_SEED, &root, "/v1/acme/pull/acme/x")
        .send(&s)
        .assert_error(403, "identity restricted");
    assert_eq!(
        signed_get(&s, &OTHER_SEED, &other, "/v1/acme/pull/acme/x")
            .send(&s)
            .status,
        200
    );
}

#[test]
fn public_collections_resolve_the_caller_once_restrictions_exist() {
    let s = Setup::new(&config()).start();
    let (root, _) = caps();
    // A bad signature on a public collection is no longer ignored.
    let mut req = signed_get(&s, &ROOT_SEED, &root, "/v1/pull/pub/x");
    for (n, v) in req.headers.iter_mut() {
        if n == "X-Starfish-Sig" {
            *v = v.replace(|c: char| c.is_ascii_alphanumeric(), "A");
        }
    }
    req.send(&s).assert_error(401, "Unauthorized");
}

#[test]
fn the_role_check_comes_first() {
    let s = Setup::new(&config()).start();
    let (root, _) = caps();
    // Root is denied on "caps" but lacks the read role anyway: Forbidden.
    signed_get(&s, &ROOT_SEED, &root, "/v1/pull/caps/x")
        .send(&s)
        .assert_error(403, "Forbidden");
    signed_post(&s, &ROOT_SEED, &root, "/v1/push/caps/x", r#"{"data":{}}"#)
        .send(&s)
        .assert_error(403, "identity restricted");
}

#[test]
fn bundle_members_are_omitted_and_batch_entries_refused() {
    let s = Setup::new(&config()).start();
    let (root, _) = caps();
    for m in ["m1", "m2"] {
        assert_eq!(
            s.post_json(&format!("/v1/push/b/k/{m}"), r#"{"data":{"v":1}}"#)
                .status,
            200
        );
    }
    let r = signed_get(&s, &ROOT_SEED, &root, "/v1/pull/b/k").send(&s);
    let v = r.json();
    assert!(v["collections"]["m1"].is_object(), "{v}");
    assert!(v["collections"].get("m2").is_none(), "{v}");
    assert_eq!(
        s.get("/v1/pull/b/k").json()["collections"]["m2"]["data"]["v"],
        1
    );
    let r = signed_get(
        &s,
        &ROOT_SEED,
        &root,
        "/v1/batch/pull?collections=m2,vip,pub&params=%7B%22m2%22%3A%5B%7B%22id%22%3A%22k%22%7D%5D%2C%22vip%22%3A%5B%7B%22id%22%3A%22x%22%7D%5D%2C%22pub%22%3A%5B%7B%22id%22%3A%22x%22%7D%5D%7D",
    )
    .send(&s);
    let v = r.json();
    assert_eq!(
        v["collections"]["m2"][0],
        serde_json::json!({"error":"identity restricted"})
    );
    assert!(v["collections"]["vip"][0]["data"].is_object(), "{v}");
    let anonymous = s.get(
        "/v1/batch/pull?collections=vip&params=%7B%22vip%22%3A%5B%7B%22id%22%3A%22x%22%7D%5D%7D",
    );
    assert_eq!(
        anonymous.json()["collections"]["vip"][0],
        serde_json::json!({"error":"identity restricted"})
    );
}
