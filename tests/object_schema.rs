//! `objectSchema` over HTTP: every object-data vector Ajv produced
//! (`tests/vectors/object-schema.json`) pushed through the real server, plus
//! where the check sits in the push pipeline (after the body checks and the
//! field permissions, before `data`/`baseHash` validation), bundles and
//! namespaces.

mod common;

use common::*;
use serde_json::json;

const VECTORS: &str = include_str!("vectors/object-schema.json");

#[test]
fn every_object_vector_gets_the_official_answer_over_http() {
    // Our own JSON type keeps key order (which Ajv's evaluation order
    // follows); serde_json's map would sort the keys.
    use starfish::proto::json::{parse, to_js_json, Object, Value as J};
    let text = |v: &J| String::from_utf8(to_js_json(v)).unwrap();
    let vectors = parse(VECTORS.as_bytes()).unwrap();
    let cases = vectors
        .as_object()
        .unwrap()
        .get("cases")
        .unwrap()
        .as_array()
        .unwrap();
    let mut collections = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let mut col = Object::new();
        col.insert("name", format!("c{i}").into());
        col.insert("storagePath", format!("s/c{i}/{{id}}").into());
        col.insert("readRoles", J::Array(vec!["public".into()]));
        col.insert("writeRoles", J::Array(vec!["public".into()]));
        col.insert(
            "objectSchema",
            c.as_object().unwrap().get("schema").unwrap().clone(),
        );
        collections.push(J::Object(col));
    }
    let mut config = Object::new();
    config.insert("collections", J::Array(collections));
    let s = Setup::new(&text(&J::Object(config))).start();
    let mut pushed = 0;
    for (i, case) in cases.iter().enumerate() {
        let case = case.as_object().unwrap();
        let name = case.get("name").unwrap().as_str().unwrap();
        for (j, r) in case
            .get("results")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let r = r.as_object().unwrap();
            let data = r.get("data").unwrap();
            if !matches!(data, J::Object(_)) {
                continue;
            }
            let res = s.post_json(
                &format!("/v1/push/s/c{i}/d{j}"),
                &format!(r#"{{"data":{},"baseHash":null}}"#, text(data)),
            );
            let status = r.get("status").unwrap().as_f64().unwrap() as u16;
            assert_eq!(res.status, status, "{name} #{j}: {}", res.text());
            if status == 200 {
                assert!(res.json()["hash"].is_string(), "{name} #{j}");
            } else {
                res.assert_json(status, &text(r.get("body").unwrap()));
            }
            pushed += 1;
        }
    }
    assert!(pushed > 100, "only {pushed} object vectors");
}

const CONFIG: &str = r#"{"collections":[
  {"name":"profile","storagePath":"profiles/{id}","readRoles":["public"],"writeRoles":["public"],
   "maxBodyBytes":300,
   "fieldPermissions":{"role":{"writeRoles":["admin"]}},
   "objectSchema":{"type":"object","required":["name"],"properties":{"name":{"type":"string"},"role":{"type":"string"}}}},
  {"name":"broken","storagePath":"broken/{id}","readRoles":["public"],"writeRoles":["public"],
   "objectSchema":{"properties":{"when":{"type":"string","format":"date-time"}}}},
  {"name":"m1","bundle":"b","storagePath":"b/{id}","readRoles":["public"],"writeRoles":["public"],
   "objectSchema":{"required":["x"]}},
  {"name":"m2","bundle":"b","storagePath":"b/{id}","readRoles":["public"],"writeRoles":["public"]}
 ],
 "namespaces":{"ns":{"collections":[
  {"name":"profile","storagePath":"ns/profiles/{id}","readRoles":["public"],"writeRoles":["public"]}]}}}"#;

#[test]
fn the_check_sits_where_the_official_router_runs_it() {
    let s = Setup::new(CONFIG).start();
    let missing = r#"{"error":"Schema validation failed: must have required property 'name'","path":[],"validator":"required"}"#;
    s.post_json("/v1/push/profiles/a", r#"{"data":{},"baseHash":null}"#)
        .assert_json(400, missing);
    s.post_json("/v1/push/profiles/a", r#"{"data":{"name":5}}"#).assert_json(
        400,
        r#"{"error":"Schema validation failed: must be string","path":["name"],"validator":"type"}"#,
    );
    // Earlier checks win: size, content type, JSON, body shape.
    Req::new("POST", "/v1/push/profiles/a")
        .header("Content-Type", "application/json")
        .body(format!(r#"{{"data":{{"pad":"{}"}}}}"#, "x".repeat(400)).as_bytes())
        .send(&s)
        .assert_error(413, "Payload too large");
    Req::new("POST", "/v1/push/profiles/a")
        .header("Content-Type", "text/plain")
        .body(br#"{"data":{}}"#)
        .send(&s)
        .assert_error(415, "Content-Type must be application/json");
    s.post_json("/v1/push/profiles/a", "[]")
        .assert_error(400, "Body must be a JSON object");
    // Field permissions come before the schema.
    s.post_json("/v1/push/profiles/a", r#"{"data":{"role":"x"}}"#)
        .assert_error(403, "Field 'role' is not writable with your roles");
    // Non-object data skips the schema and fails the data check.
    for data in ["null", "[1]", "\"x\""] {
        s.post_json("/v1/push/profiles/a", &format!(r#"{{"data":{data}}}"#))
            .assert_error(400, "Missing or invalid data");
    }
    // The schema runs before baseHash and the stored-hash comparison.
    s.post_json("/v1/push/profiles/a", r#"{"data":{},"baseHash":7}"#)
        .assert_json(400, missing);
    let ok = s.post_json(
        "/v1/push/profiles/a",
        r#"{"data":{"name":"Ann"},"baseHash":null}"#,
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    s.post_json(
        "/v1/push/profiles/a",
        r#"{"data":{"name":"Bob"},"baseHash":null}"#,
    )
    .assert_error(409, "hash_mismatch");
    // The namespaced collection of the same name has no schema.
    assert_eq!(
        s.post_json("/v1/ns/push/ns/profiles/a", r#"{"data":{}}"#)
            .status,
        200
    );
}

#[test]
fn an_uncompilable_schema_fails_closed_like_the_official_server() {
    let s = Setup::new(CONFIG).start();
    s.post_json("/v1/push/broken/a", r#"{"data":{"when":"2024-01-01"}}"#)
        .assert_error(500, "Internal schema validation error");
    s.post_json("/v1/push/broken/a", r#"{"data":{}}"#)
        .assert_error(500, "Internal schema validation error");
    // Without object data the schema is never consulted.
    s.post_json("/v1/push/broken/a", r#"{"data":[]}"#)
        .assert_error(400, "Missing or invalid data");
    // Reads are unaffected.
    assert_eq!(s.get("/v1/pull/broken/a").status, 200);
}

#[test]
fn bundle_member_pushes_are_validated() {
    let s = Setup::new(CONFIG).start();
    s.post_json("/v1/push/b/k/m1", r#"{"data":{}}"#).assert_json(
        400,
        r#"{"error":"Schema validation failed: must have required property 'x'","path":[],"validator":"required"}"#,
    );
    assert_eq!(
        s.post_json("/v1/push/b/k/m1", r#"{"data":{"x":1}}"#).status,
        200
    );
    assert_eq!(s.post_json("/v1/push/b/k/m2", r#"{"data":{}}"#).status, 200);
}

#[test]
fn deep_documents_and_recursive_schemas() {
    let config = r##"{"collections":[
      {"name":"tree","storagePath":"tree/{id}","readRoles":["public"],"writeRoles":["public"],
       "objectSchema":{"type":"object","properties":{"v":{"type":"integer"},"c":{"$ref":"#"}},"additionalProperties":false}},
      {"name":"loop","storagePath":"loop/{id}","readRoles":["public"],"writeRoles":["public"],
       "objectSchema":{"anyOf":[{"$ref":"#"}]}}]}"##;
    let s = Setup::new(config).start();
    // 60 levels of nesting (the push depth limit is 64).
    let mut doc = String::from(r#"{"v":"x"}"#);
    for _ in 0..59 {
        doc = format!(r#"{{"v":1,"c":{doc}}}"#);
    }
    let r = s.post_json("/v1/push/tree/a", &format!(r#"{{"data":{doc}}}"#));
    let path: Vec<String> = std::iter::repeat_n("c".to_owned(), 59)
        .chain(["v".to_owned()])
        .collect();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["path"], json!(path));
    assert_eq!(
        r.json()["error"],
        "Schema validation failed: must be integer"
    );
    // A reference cycle that consumes no data: JavaScript overflows its
    // stack inside the official try/catch, which answers 500.
    s.post_json("/v1/push/loop/a", r#"{"data":{}}"#)
        .assert_error(500, "Internal schema validation error");
}
