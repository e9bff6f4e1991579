//! Config loader, validation and warnings. Expected messages for valid and
//! invalid configs come from `tests/config-official.json` (the official
//! `parseConfigJson` run under node); the rest covers starfish-rs behaviour
//! where the official loader crashes, and the storage-path helpers.

use serde_json::Value as J;
use starfish::config::{
    bundle_groups, default_config, parse_config, resolve_document_key, route_segments,
    validate_config, CollectionConfig, ConfigError, Segment, DEFAULT_CONFIG_JSON,
};
use starfish::proto::json::Value;

const UNSUPPORTED: &str = "is not supported by starfish-rs and is ignored";

/// The official IP-bucketing warning ends with a caveat about the
/// TypeScript server having no socket address; ours keys on the TCP peer,
/// so its caveat is the reverse proxy's (COMPATIBILITY.md). Every other
/// official warning is ours verbatim.
fn ours(official: &str) -> String {
    const TS: &str = "The TypeScript server has no portable socket IP — without an X-Forwarded-For header the ip part collapses to a shared \"anonymous\" bucket (a per-IP limit becomes global). Run behind a proxy that sets X-Forwarded-For.";
    const RS: &str = "starfish-rs keys the ip part on the TCP peer address — behind a reverse proxy every client shares the proxy's address unless the proxy is listed with --trusted-proxy (X-Forwarded-For is believed only from those addresses).";
    official.replace(TS, RS)
}

#[test]
fn official_cases() {
    let path = format!("{}/tests/config-official.json", env!("CARGO_MANIFEST_DIR"));
    let doc: J = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let text = case["config_json"].as_str().unwrap();
        let expected_warnings: Vec<String> = case["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| ours(w.as_str().unwrap()))
            .collect();
        match (parse_config(text.as_bytes()), case["ok"].as_bool().unwrap()) {
            (Ok(loaded), true) => {
                // The official warnings come first; starfish-rs only appends
                // its "not supported" warnings.
                let n = expected_warnings.len();
                assert!(loaded.warnings.len() >= n, "{name}: {:?}", loaded.warnings);
                assert_eq!(loaded.warnings[..n], expected_warnings[..], "{name}");
                assert!(loaded.warnings.iter().all(|w| !w.contains("TypeScript")));
                for w in &loaded.warnings[n..] {
                    assert!(w.ends_with(UNSUPPORTED), "{name}: extra warning {w}");
                }
            }
            (Err(e), false) => {
                let expected = case["error"].as_str().unwrap();
                let got = e.to_string();
                // V8's JSON parser message is not reproduced, only the prefix.
                let json_prefix = "Failed to parse sync config as JSON: ";
                if expected.starts_with(json_prefix) {
                    assert!(matches!(e, ConfigError::Json(_)), "{name}: {got}");
                    assert!(got.starts_with(json_prefix), "{name}: {got}");
                    continue;
                }
                assert_eq!(got, expected, "{name}");
            }
            (Ok(_), false) => panic!("{name}: accepted, official rejects: {}", case["error"]),
            (Err(e), true) => panic!("{name}: rejected, official accepts: {e}"),
        }
    }
}

fn err(text: &str) -> String {
    parse_config(text.as_bytes()).unwrap_err().to_string()
}

fn col_json(extra: &str) -> String {
    format!(
        r#"{{"collections":[{{"name":"c","storagePath":"p/{{id}}","readRoles":["r"],"writeRoles":["w"]{extra}}}]}}"#
    )
}

#[test]
fn section_4_5_example() {
    let text = r#"{"collections":[],"namespaces":{
        "bad.name":{"collections":[{"name":"a","storagePath":"a","readRoles":["r"],"writeRoles":["w"]}]},
        "pull":{"collections":[{"name":"a","storagePath":"a","readRoles":["r"],"writeRoles":["w"]}]},
        "empty":{"collections":[]},
        "list":{"collections":[{"name":"a","storagePath":"a","readRoles":["r"],"writeRoles":["w"]},
                               {"name":"a","storagePath":"a","readRoles":["r"],"writeRoles":["w"]}]}}}"#;
    assert_eq!(
        err(text),
        "Invalid sync config:\n\
         Namespace \"bad.name\": name must only contain letters, digits, hyphens, and underscores\n\
         Namespace \"pull\": name is reserved and cannot be used as a namespace\n\
         Namespace \"empty\": must contain at least one collection\n\
         Namespace \"list\": name is reserved and cannot be used as a namespace\n\
         Namespace \"list\": Duplicate collection name: \"a\""
    );
}

#[test]
fn loader_messages() {
    assert!(err("{").starts_with("Failed to parse sync config as JSON: "));
    assert_eq!(
        err(r#"{"namespaces":[]}"#),
        "Invalid sync config: \"namespaces\" must be an object"
    );
    assert_eq!(
        err(r#"{"namespaces":{"a":null}}"#),
        "Invalid sync config: namespace \"a\" must be an object, got null"
    );
    assert_eq!(
        err(r#"{"namespaces":{"a":[]}}"#),
        "Invalid sync config: namespace \"a\" must be an object, got object"
    );
    assert_eq!(
        err(r#"{"namespaces":{"a":1}}"#),
        "Invalid sync config: namespace \"a\" must be an object, got number"
    );
    // null namespaces = absent; BOM skipped; empty object is a valid, empty config.
    let loaded = parse_config(b"\xEF\xBB\xBF{\"namespaces\":null}").unwrap();
    assert!(loaded.config.namespaces.is_empty() && loaded.config.collections.is_empty());
    assert!(err("[]").starts_with("Invalid sync config: the top level"));
}

#[test]
fn type_errors_name_the_collection_and_field() {
    assert_eq!(
        err(r#"{"collections":[{"name":"c","storagePath":"p"}]}"#),
        "Invalid sync config:\n\
         Collection \"c\": readRoles must be an array of strings\n\
         Collection \"c\": writeRoles must be an array of strings"
    );
    assert_eq!(
        err(
            r#"{"namespaces":{"n":{"collections":[{"storagePath":1,"readRoles":["x",2],"writeRoles":"public"}]}}}"#
        ),
        "Invalid sync config:\n\
         Namespace \"n\": collections[0]: name must be a string\n\
         Namespace \"n\": collections[0]: storagePath must be a string\n\
         Namespace \"n\": collections[0]: readRoles must be an array of strings\n\
         Namespace \"n\": collections[0]: writeRoles must be an array of strings"
    );
    assert_eq!(
        err(r#"{"collections":[null]}"#),
        "Invalid sync config:\ncollections[0] must be an object"
    );
    assert_eq!(
        err(r#"{"collections":{}}"#),
        "Invalid sync config:\ncollections must be an array"
    );
    assert_eq!(
        err(&col_json(
            r#","maxBodyBytes":"100","allowedMimeTypes":[1],"bundle":2"#
        )),
        "Invalid sync config:\n\
         Collection \"c\": allowedMimeTypes must be an array of strings\n\
         Collection \"c\": bundle must be a string\n\
         Collection \"c\": maxBodyBytes must be a number"
    );
    assert_eq!(
        err(&col_json(r#","restrictions":{}"#)),
        "Invalid sync config:\nCollection \"c\": restrictions must be an array"
    );
}

#[test]
fn coercions_and_defaults() {
    let c = &parse_config(col_json("").as_bytes())
        .unwrap()
        .config
        .collections[0];
    assert_eq!(c.allowed_mime_types, ["application/json"]);
    assert!(!c.is_binary() && !c.pull_only && !c.push_only && !c.root_only);
    assert_eq!(
        (c.max_body_bytes, c.cache_duration_ms, &c.bundle),
        (None, None, &None)
    );
    assert_eq!(c.encryption, None);

    let text = col_json(
        r#","allowedMimeTypes":null,"cacheDurationMs":null,"bundle":null,"pullOnly":null,
           "maxBodyBytes":null,"encryption":"delegated","rateLimit":false,"appendOnly":null,
           "listable":null,"objectSchema":null,"keyringPath":"k","forceFullFetch":1"#,
    );
    let loaded = parse_config(text.as_bytes()).unwrap();
    let c = &loaded.config.collections[0];
    assert_eq!(c.allowed_mime_types, ["application/json"]);
    assert_eq!(c.max_body_bytes, Some(0.0), "explicit null compares as 0");
    assert_eq!(c.encryption.as_deref(), Some("delegated"));
    assert_eq!(c.keyring_path.as_deref(), Some("k"));
    assert!(c.force_full_fetch);
    assert_eq!(c.extended, Default::default());
    assert!(loaded.warnings.is_empty());

    // true → {} / {"type":"by_timestamp"}; an object gets its type defaulted.
    let loaded = parse_config(
        col_json(r#","rateLimit":true,"appendOnly":{"field":"ev"},"pullOnly":"yes","bundle":"""#)
            .as_bytes(),
    );
    let err = loaded.unwrap_err().to_string();
    assert!(
        err.contains("appendOnly cannot be used with pullOnly"),
        "{err}"
    );
    let loaded =
        parse_config(col_json(r#","rateLimit":true,"appendOnly":true"#).as_bytes()).unwrap();
    let ext = &loaded.config.collections[0].extended;
    assert_eq!(ext.rate_limit, Some(Value::Object(Default::default())));
    let ao = ext.append_only.as_ref().unwrap().as_object().unwrap();
    assert_eq!(ao.get("type").and_then(Value::as_str), Some("by_timestamp"));
    let loaded = parse_config(col_json(r#","appendOnly":{"field":"ev"}"#).as_bytes()).unwrap();
    let ao = loaded.config.collections[0]
        .extended
        .append_only
        .clone()
        .unwrap();
    assert_eq!(
        starfish::proto::canonical::stable_stringify(&ao),
        r#"{"field":"ev","type":"by_timestamp"}"#
    );

    // Top-level rateLimit: any falsy value is absent.
    let loaded = parse_config(br#"{"rateLimit":0,"version":"x"}"#).unwrap();
    assert_eq!(loaded.config.rate_limit, None);
    assert_eq!(loaded.config.version, Some(Value::from("x")));
}

#[test]
fn unsupported_extended_fields_warn() {
    let text = r#"{"rateLimit":{"windowMs":1,"maxRequests":1},"restrictions":[{"mode":"deny","identities":["x"]}],
      "collections":[{"name":"c","storagePath":"p/{id}","readRoles":["r"],"writeRoles":["w"],
        "rateLimit":{},"objectSchema":{},"appendOnly":true,"ttlMs":5,"fieldPermissions":{},
        "listable":true,"restrictions":[{"mode":"deny","identities":["x"]}]},
        {"name":"d","storagePath":"q","readRoles":["r"],"writeRoles":["w"],"listable":false,"restrictions":[]}],
      "namespaces":{"n":{"restrictions":[{"mode":"allow","identities":["y"]}],
        "collections":[{"name":"e","storagePath":"q","readRoles":["r"],"writeRoles":["w"],"ttlMs":0}]}}}"#;
    let loaded = parse_config(text.as_bytes()).unwrap();
    // rateLimit (global and per collection), ttlMs, listable, appendOnly,
    // objectSchema, fieldPermissions and restrictions (every level) are
    // implemented: no warning for them.
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.config.collections[0].extended.active(),
        [
            "rateLimit",
            "objectSchema",
            "appendOnly",
            "ttlMs",
            "fieldPermissions",
            "listable",
            "restrictions"
        ]
    );
    assert!(loaded.config.collections[1].extended.active().is_empty());
}

#[test]
fn ip_bucketing_warning_names_the_peer_rule() {
    // The official warning says the TypeScript server has no socket IP; ours
    // keys on the peer, so the caveat that remains is the reverse proxy's.
    let text = r#"{"collections":[
        {"name":"a","storagePath":"a/{id}","readRoles":["r"],"writeRoles":["w"],"rateLimit":{"windowMs":1,"maxRequests":1,"bucket":"ip"}},
        {"name":"b","storagePath":"b/{id}","readRoles":["r"],"writeRoles":["w"],"rateLimit":{"pull":{"windowMs":1,"maxRequests":1,"ip":{}}}},
        {"name":"c","storagePath":"c/{id}","readRoles":["r"],"writeRoles":["w"],"rateLimit":{"windowMs":1,"maxRequests":1}}]}"#;
    let loaded = parse_config(text.as_bytes()).unwrap();
    let expected = |n: &str| {
        format!(
            "Collection \"{n}\": rateLimit uses IP-based bucketing (bucket \"ip\"/\"identity+ip\" or an \"ip\" sub-limit). starfish-rs keys the ip part on the TCP peer address — behind a reverse proxy every client shares the proxy's address unless the proxy is listed with --trusted-proxy (X-Forwarded-For is believed only from those addresses)."
        )
    };
    assert_eq!(loaded.warnings, [expected("a"), expected("b")]);
}

#[test]
fn default_config_is_valid() {
    let loaded = default_config();
    let cfg = &loaded.config;
    assert!(validate_config(cfg).is_empty());
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    assert!(loaded
        .warnings
        .iter()
        .all(|w| w.contains("writeRoles contains \"public\"")));
    let notes = &cfg.collections[0];
    assert_eq!(
        (notes.name.as_str(), notes.storage_path.as_str()),
        ("notes", "public/notes/{id}")
    );
    assert!(notes.is_public(false) && notes.is_public(true));
    assert_eq!(notes.max_body_bytes, Some(65536.0));
    let settings = cfg
        .scope(None)
        .unwrap()
        .iter()
        .find(|c| c.name == "settings")
        .unwrap();
    assert!(settings.has_identity_param());
    assert_eq!(settings.read_roles, ["self"]);
    let demo = cfg.scope(Some("demo")).unwrap();
    assert!(demo.iter().all(|c| c.storage_path.starts_with("demo/")));
    let bundles = bundle_groups(&cfg.collections);
    assert_eq!(bundles.len(), 1);
    assert_eq!(bundles[0].0, "profile");
    assert_eq!(bundles[0].1.len(), 2);
    assert_eq!(cfg.all_collections().count(), 6);
    assert!(DEFAULT_CONFIG_JSON.contains("\"demo\""));
}

fn col(path: &str) -> CollectionConfig {
    CollectionConfig::new("c", path, vec!["r".into()], vec!["w".into()])
}

#[test]
fn route_segments_and_params() {
    use Segment::*;
    assert_eq!(
        route_segments("users/{identity}/settings"),
        [
            Literal("users".into()),
            Param("identity".into()),
            Literal("settings".into())
        ]
    );
    // Embedded params are literal after the {x} → :x rewrite.
    assert_eq!(
        route_segments("files/file-{id}.json"),
        [Literal("files".into()), Literal("file-:id.json".into())]
    );
    // Non-\w names stay literal; a rewritten segment starting with ':' is a
    // Hono param that binds nothing.
    assert_eq!(
        route_segments("a/{a-b}/{id}.json/*/{}"),
        [
            Literal("a".into()),
            Literal("{a-b}".into()),
            Unbound(":id.json".into()),
            Unbound("*".into()),
            Literal("{}".into()),
        ]
    );
    let c = col("d/{owner}/x-{id}/{dataset}/{owner}");
    assert_eq!(c.param_names(), ["owner", "dataset"]);
    assert!(!c.has_identity_param());
    assert!(!col("u/file-{identity}.json").has_identity_param());
    assert!(col("u/{identity}").has_identity_param());
    assert!(col("blob").param_names().is_empty());

    let c = col("users/{identity}/settings");
    assert_eq!(
        c.match_route(&["users", "abc", "settings"]),
        Some(vec![("identity", "abc")])
    );
    assert_eq!(c.match_route(&["users", "", "settings"]), None);
    assert_eq!(c.match_route(&["users", "abc"]), None);
    assert_eq!(c.match_route(&["user", "abc", "settings"]), None);
}

#[test]
fn resolve_keys() {
    let c = col("datasets/{owner}/{dataset}");
    assert_eq!(
        c.resolve_key(&[("owner", "alice"), ("dataset", "sales.parquet")]),
        "datasets/alice/sales.parquet"
    );
    // Every occurrence is replaced, embedded ones included; unknown params ignored.
    assert_eq!(
        resolve_document_key("{id}/file-{id}.json", &[("id", "7"), ("zz", "q")]),
        "7/file-7.json"
    );
    // Unbound names stay as written.
    assert_eq!(resolve_document_key("a/{x}", &[("y", "1")]), "a/{x}");
    // Sequential plain-text replacement, in JS object order (index-like names first).
    assert_eq!(
        resolve_document_key("{a}/{b}", &[("a", "{b}"), ("b", "x")]),
        "x/x"
    );
    assert_eq!(
        resolve_document_key("{b}/{0}", &[("b", "{0}"), ("0", "z")]),
        "{0}/z"
    );
}

#[test]
fn binary_detection() {
    let mut c = col("x");
    c.allowed_mime_types = vec!["image/*".into(), "APPLICATION/Json".into()];
    assert!(!c.is_binary());
    c.allowed_mime_types = vec!["image/*".into()];
    assert!(c.is_binary());
    c.allowed_mime_types.clear();
    assert!(c.is_binary());
}
