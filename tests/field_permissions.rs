//! `fieldPermissions` over HTTP: unreadable top-level fields are stripped
//! from the standalone, bundle and batch pulls; writing a protected field is
//! refused with the official 403 body. Roles are the caller's effective
//! roles for the collection, empty on the public fast path.

mod common;

use common::*;

const CONFIG: &str = r#"{"collections":[
  {"name":"doc","storagePath":"users/{identity}/doc","readRoles":["self"],"writeRoles":["self"],
   "fieldPermissions":{
     "secret":{"readRoles":["cap:read:admin"]},
     "mine":{"readRoles":["self"],"writeRoles":["self"]},
     "note":{"writeRoles":["cap:write:admin"]},
     "open":{"readRoles":["public"]}}},
  {"name":"pub","storagePath":"pub/{id}","readRoles":["public"],"writeRoles":["public"],
   "fieldPermissions":{"mine":{"readRoles":["self"]},"tag":{"readRoles":["public","admin"]},
     "adm":{"writeRoles":["admin"]}}},
  {"name":"quirk","storagePath":"quirk/{id}","readRoles":["public"],"writeRoles":["public"],
   "fieldPermissions":{"toString":{"writeRoles":["nobody"]}}},
  {"name":"caps","storagePath":"caps/{id}","readRoles":["cap:read:*"],"writeRoles":["cap:write:*"],
   "fieldPermissions":{"wild":{"readRoles":["cap:read:*"]},"hidden":{"readRoles":["cap:read:x"]}}},
  {"name":"p1","bundle":"bu","storagePath":"bu/{identity}","readRoles":["self"],"writeRoles":["self"],
   "fieldPermissions":{"s":{"readRoles":["cap:read:admin"]}}},
  {"name":"p2","bundle":"bu","storagePath":"bu/{identity}","readRoles":["self"],"writeRoles":["self"]}
 ],
 "namespaces":{"ns":{"collections":[
  {"name":"pub","storagePath":"ns/pub/{id}","readRoles":["public"],"writeRoles":["public"]}]}}}"#;

fn root() -> (starfish::proto::cap::CapCert, String) {
    (
        device_cap(&ROOT_SEED, scope(&["read", "write"], None)),
        user_id(&ROOT_SEED),
    )
}

#[test]
fn pulls_strip_the_fields_the_caller_cannot_read() {
    let s = Setup::new(CONFIG).start();
    let (cap, uid) = root();
    let path = format!("/v1/push/users/{uid}/doc");
    let body = r#"{"data":{"secret":1,"mine":2,"open":3,"plain":{"secret":4}},"baseHash":null}"#;
    let pushed = signed_post(&s, &ROOT_SEED, &cap, &path, body).send(&s);
    assert_eq!(pushed.status, 200, "{}", pushed.text());
    let hash = pushed.json()["hash"].as_str().unwrap().to_owned();
    // The owner holds self and cap:read:* but not cap:read:admin.
    let target = format!("/v1/pull/users/{uid}/doc");
    let r = signed_get(&s, &ROOT_SEED, &cap, &target).send(&s);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["data"],
        serde_json::json!({"mine":2,"open":3,"plain":{"secret":4}}),
        "only top-level fields are filtered"
    );
    // The hash and ETag are the stored document's.
    assert_eq!(r.json()["hash"], hash.as_str());
    assert_eq!(r.header("etag"), Some(format!("\"{hash}\"").as_str()));
    let r = signed_get(&s, &ROOT_SEED, &cap, &target)
        .header("If-None-Match", &format!("\"{hash}\""))
        .send(&s);
    assert_eq!(r.status, 304);
}

#[test]
fn the_public_fast_path_has_no_roles() {
    let s = Setup::new(CONFIG).start();
    let (cap, _) = root();
    assert_eq!(
        s.post_json(
            "/v1/push/pub/a",
            r#"{"data":{"mine":1,"tag":2,"x":3},"baseHash":null}"#
        )
        .status,
        200
    );
    let anonymous = s.get("/v1/pull/pub/a");
    assert_eq!(anonymous.json()["data"], serde_json::json!({"tag":2,"x":3}));
    // A signed pull of a public collection is never resolved: still no roles.
    let signed = signed_get(&s, &ROOT_SEED, &cap, "/v1/pull/pub/a").send(&s);
    assert_eq!(signed.json()["data"], serde_json::json!({"tag":2,"x":3}));
    // A cap:read:* caller of a cap collection reads "wild" but not "hidden".
    let w = signed_post(
        &s,
        &ROOT_SEED,
        &cap,
        "/v1/push/caps/c",
        r#"{"data":{"wild":1,"hidden":2},"baseHash":null}"#,
    )
    .send(&s);
    assert_eq!(w.status, 200, "{}", w.text());
    let r = signed_get(&s, &ROOT_SEED, &cap, "/v1/pull/caps/c").send(&s);
    assert_eq!(r.json()["data"], serde_json::json!({"wild":1}));
    // The namespaced collection of the same name has no permissions.
    assert_eq!(
        s.post_json("/v1/ns/push/ns/pub/a", r#"{"data":{"mine":1}}"#)
            .status,
        200
    );
    assert_eq!(
        s.get("/v1/ns/pull/ns/pub/a").json()["data"],
        serde_json::json!({"mine":1})
    );
}

#[test]
fn writes_to_protected_fields_are_refused() {
    let s = Setup::new(CONFIG).start();
    let (cap, uid) = root();
    let path = format!("/v1/push/users/{uid}/doc");
    signed_post(&s, &ROOT_SEED, &cap, &path, r#"{"data":{"note":"x"}}"#)
        .send(&s)
        .assert_error(403, "Field 'note' is not writable with your roles");
    // self may write "mine".
    let ok = signed_post(
        &s,
        &ROOT_SEED,
        &cap,
        &path,
        r#"{"data":{"mine":"x"},"baseHash":null}"#,
    )
    .send(&s);
    assert_eq!(ok.status, 200, "{}", ok.text());
    // Public collection: anonymous callers have no roles.
    s.post_json("/v1/push/pub/b", r#"{"data":{"adm":1}}"#)
        .assert_error(403, "Field 'adm' is not writable with your roles");
    // JavaScript `"toString" in data` is true for every object: a
    // write-restricted "toString" refuses every push the caller cannot
    // satisfy, as on the official server.
    s.post_json("/v1/push/quirk/c", r#"{"data":{"x":1}}"#)
        .assert_error(403, "Field 'toString' is not writable with your roles");
}

#[test]
fn bundle_and_batch_pulls_are_filtered_too() {
    let s = Setup::new(CONFIG).start();
    let (cap, uid) = root();
    for (m, body) in [
        ("p1", r#"{"data":{"s":1,"t":2}}"#),
        ("p2", r#"{"data":{"s":3}}"#),
    ] {
        let w = signed_post(
            &s,
            &ROOT_SEED,
            &cap,
            &format!("/v1/push/bu/{uid}/{m}"),
            body,
        )
        .send(&s);
        assert_eq!(w.status, 200, "{}", w.text());
    }
    let r = signed_get(&s, &ROOT_SEED, &cap, &format!("/v1/pull/bu/{uid}")).send(&s);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["collections"]["p1"]["data"], serde_json::json!({"t":2}));
    assert_eq!(v["collections"]["p2"]["data"], serde_json::json!({"s":3}));
    let w = signed_post(
        &s,
        &ROOT_SEED,
        &cap,
        &format!("/v1/push/users/{uid}/doc"),
        r#"{"data":{"secret":1,"open":2},"baseHash":null}"#,
    )
    .send(&s);
    assert_eq!(w.status, 200);
    let r = signed_get(&s, &ROOT_SEED, &cap, "/v1/batch/pull?collections=doc,p1").send(&s);
    let v = r.json();
    assert_eq!(
        v["collections"]["doc"][0]["data"],
        serde_json::json!({"open":2})
    );
    assert_eq!(
        v["collections"]["p1"][0]["data"],
        serde_json::json!({"t":2})
    );
}

/// Append-only collections: the write check and the schema look at the
/// pushed element's `data` (the official `runPush` checks both before its
/// append branch), and pulls strip unreadable fields from the log's `data`
/// and from every element's `data` (the official `applyFieldReadFilter`
/// with the append field), standalone and in a batch with `appendParams`.
#[cfg(feature = "object-schema")]
#[test]
fn append_logs_are_checked_and_filtered_per_element() {
    const LOG: &str = r#"{"collections":[
      {"name":"log","storagePath":"log/{id}","readRoles":["public"],"writeRoles":["public"],
       "appendOnly":{"requireAuthorSignature":false},
       "objectSchema":{"type":"object","properties":{"x":{"type":"integer"}}},
       "fieldPermissions":{"secret":{"readRoles":["admin"]},"adm":{"writeRoles":["admin"]}}}]}"#;
    let s = Setup::new(LOG).start();
    let push = |body: &str| s.post_json("/v1/push/log/a", body);
    for body in [
        r#"{"data":{"x":1,"secret":"s1"}}"#,
        r#"{"data":{"x":2,"secret":"s2"}}"#,
    ] {
        let r = push(body);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    push(r#"{"data":{"adm":1}}"#).assert_error(403, "Field 'adm' is not writable with your roles");
    let r = push(r#"{"data":{"x":"no"}}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"error":"Schema validation failed: must be integer","path":["x"],"validator":"type"})
    );
    let elements = |data: &serde_json::Value| -> Vec<serde_json::Value> {
        data["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no items in {data}"))
            .iter()
            .map(|e| e["data"].clone())
            .collect()
    };
    let pulled = s.get("/v1/pull/log/a?last=10");
    assert_eq!(pulled.status, 200, "{}", pulled.text());
    assert_eq!(
        elements(&pulled.json()["data"]),
        [serde_json::json!({"x":1}), serde_json::json!({"x":2})]
    );
    let q = "/v1/batch/pull?collections=log&params=%7B%22log%22%3A%5B%7B%22id%22%3A%22a%22%7D%5D%7D&appendParams=%7B%22log%22%3A%5B%7B%22last%22%3A10%7D%5D%7D";
    let b = s.get(q);
    assert_eq!(b.status, 200, "{}", b.text());
    let entry = &b.json()["collections"]["log"][0];
    assert_eq!(
        elements(&entry["data"]),
        [serde_json::json!({"x":1}), serde_json::json!({"x":2})],
        "{entry}"
    );
}
