//! `GET /config` (the official `configEndpoint`) behind
//! `--config-endpoint public|role-filtered`. Expected bodies: the official
//! router's `toCollectionClientInfo` and visibility rule, 3.0.0-alpha.65.

mod common;

use common::*;
use starfish::sync::config_endpoint::ConfigEndpoint;

const CONFIG: &str = r#"{
  "version": 1,
  "collections": [
    {"name": "notes", "storagePath": "notes/{id}", "readRoles": ["public"], "writeRoles": ["editor"],
     "encryption": "none", "maxBodyBytes": 65536, "cacheDurationMs": 1000, "rateLimit": true, "ttlMs": 86400000},
    {"name": "settings", "storagePath": "users/{identity}/settings", "readRoles": ["self"], "writeRoles": ["self"],
     "encryption": "delegated", "maxBodyBytes": 1e4, "forceFullFetch": true},
    {"name": "feed", "storagePath": "feed/{day}", "readRoles": ["cap:read:feed"], "writeRoles": ["cap:write:feed"],
     "appendOnly": {"field": "events", "maxItems": 10}, "pushOnly": 1},
    {"name": "files", "storagePath": "files/{id}", "readRoles": ["cap:read:*"], "writeRoles": ["admin"],
     "allowedMimeTypes": ["image/*", "text/plain"], "pullOnly": true}
  ],
  "namespaces": {
    "team": {"collections": [
      {"name": "board", "storagePath": "team/board", "readRoles": ["public"], "writeRoles": ["public"],
       "maxBodyBytes": 1000}
    ]}
  }
}"#;

const NOTES: &str = r#"{"name":"notes","maxBodyBytes":65536,"encryption":"none","allowedMimeTypes":["application/json"],"ttlMs":86400000}"#;
const SETTINGS: &str = r#"{"name":"settings","maxBodyBytes":10000,"encryption":"delegated","allowedMimeTypes":["application/json"],"forceFullFetch":true}"#;
const FEED: &str = r#"{"name":"feed","allowedMimeTypes":["application/json"],"pushOnly":true,"appendOnly":{"field":"events","maxItems":10,"type":"by_timestamp"}}"#;
const FILES: &str =
    r#"{"name":"files","allowedMimeTypes":["image/*","text/plain"],"pullOnly":true}"#;
const BOARD: &str =
    r#"{"name":"board","maxBodyBytes":1000,"allowedMimeTypes":["application/json"]}"#;

fn with_mode(mode: ConfigEndpoint) -> Setup {
    let setup = Setup::new(CONFIG);
    match mode {
        ConfigEndpoint::Public => setup.tweak(|o| o.config_endpoint = Some(ConfigEndpoint::Public)),
        ConfigEndpoint::RoleFiltered => {
            setup.tweak(|o| o.config_endpoint = Some(ConfigEndpoint::RoleFiltered))
        }
    }
}

#[test]
fn off_by_default() {
    let s = Setup::new(CONFIG).start();
    s.get("/v1/config").assert_not_found();
}

#[test]
fn public_mode_lists_every_collection() {
    let s = with_mode(ConfigEndpoint::Public).start();
    let expected = format!(
        r#"{{"collections":[{NOTES},{SETTINGS},{FEED},{FILES}],"namespaces":{{"team":{{"collections":[{BOARD}]}}}}}}"#
    );
    s.get("/v1/config").assert_json(200, &expected);
    let head = Req::new("HEAD", "/v1/config").send(&s);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    s.get("/v1/team/config").assert_not_found();
    s.get("/v1/config/").assert_not_found();
    Req::new("POST", "/v1/config").send(&s).assert_not_found();
    // At the root mount too.
    let s = with_mode(ConfigEndpoint::Public).base_path("/").start();
    s.get("/config").assert_json(200, &expected);
}

#[test]
fn role_filtered_mode_shows_what_the_caller_shares_a_role_with() {
    let s = with_mode(ConfigEndpoint::RoleFiltered).start();
    // Anonymous callers have the role `public`.
    s.get("/v1/config").assert_json(
        200,
        &format!(
            r#"{{"collections":[{NOTES}],"namespaces":{{"team":{{"collections":[{BOARD}]}}}}}}"#
        ),
    );
    // A cap for every collection with read: cap:read:* (files); the `self`
    // role is never granted here, so settings stays hidden.
    let cert = device_cap(&ROOT_SEED, scope(&["read"], None));
    signed_get(&s, &ROOT_SEED, &cert, "/v1/config")
        .send(&s)
        .assert_json(
            200,
            &format!(r#"{{"collections":[{FILES}],"namespaces":{{"team":{{"collections":[]}}}}}}"#),
        );
    // A bad signature: the resolver refuses, and the answer is empty lists.
    let mut req = signed_get(&s, &ROOT_SEED, &cert, "/v1/config");
    for (n, v) in req.headers.iter_mut() {
        if n == "X-Starfish-Sig" {
            *v = "A".repeat(v.len());
        }
    }
    req.send(&s).assert_json(
        200,
        r#"{"collections":[],"namespaces":{"team":{"collections":[]}}}"#,
    );
    // Without anonymous access an unsigned caller sees nothing either.
    let s = with_mode(ConfigEndpoint::RoleFiltered)
        .no_anonymous()
        .start();
    s.get("/v1/config").assert_json(
        200,
        r#"{"collections":[],"namespaces":{"team":{"collections":[]}}}"#,
    );
}

#[test]
fn the_flag_on_the_command_line() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_starfish"))
        .args(["serve", "--memory", "--config-endpoint", "everyone"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"--config-endpoint: expected "public" or "role-filtered", got "everyone""#),
        "{err}"
    );
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_starfish"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--config-endpoint MODE",
        "--trusted-proxy CIDR",
        "--rate-limit-buckets N",
        "--ttl-sweep-ms N",
    ] {
        assert!(help.contains(flag), "{flag} in --help");
    }
    for bad in [
        ["--trusted-proxy", "10.0.0.0/33"],
        ["--rate-limit-buckets", "0"],
        ["--ttl-sweep-ms", "soon"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_starfish"))
            .args(["serve", "--memory"])
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}
