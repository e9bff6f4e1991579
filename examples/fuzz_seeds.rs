//! Regenerates the committed fuzz seed corpora (`fuzz/corpus/<target>/`)
//! from the official vectors in `tests/vectors/` and a few typical inputs:
//! `cargo run --example fuzz_seeds`. Run by hand when the vectors or the
//! fuzzing input encodings change; `tests/fuzz_corpus.rs` replays the result.

use std::fs;
use std::path::{Path, PathBuf};

use starfish::fuzzing::{self, OwnedRequest};
use starfish::proto::encoding::hex_decode;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn vectors(name: &str) -> Vec<serde_json::Value> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap()
}

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = fuzz_dir().join("corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    fs::write(dir.join(name), data).unwrap();
}

/// Regenerates `fuzz/corpus/*/` from the vectors (run by hand).
fn main() {
    // http_head: typical and hostile heads.
    let heads: &[(&str, &str)] = &[
        ("get", "GET /v1/pull/notes HTTP/1.1\r\nHost: 127.0.0.1:8787\r\nAccept: */*\r\n\r\n"),
        ("get-query", "GET /pull/users/abc/settings?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive\r\n\r\n"),
        ("http10", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
        ("http10-nohost", "HEAD /health HTTP/1.0\r\n\r\n"),
        ("post-cl", "POST /v1/push/notes HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 13\r\nX-Starfish-Ts: 1700000000000\r\n\r\n{\"data\":{}}\r\n"),
        ("post-chunked", "POST /push/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\n"),
        ("chunked-bad", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ChUnKeD\r\n\r\nffffffffffffffff\r\nx"),
        ("expect", "PUT /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        ("absolute", "GET http://h:1/p?q HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("absolute-https", "OPTIONS https://[::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n"),
        ("cl-te", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("cl-cl", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        ("cl-list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc"),
        ("te-te", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("te-gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
        ("te-10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("host-host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        ("obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n"),
        ("bare-lf", "GET / HTTP/1.1\nHost: h\n\n"),
        ("leading-crlf", "\r\n\r\nDELETE /x HTTP/1.1\r\nHost: h\r\nAuthorization: Cap e30=\r\n\r\n"),
        ("lower-method", "get / HTTP/1.1\r\nHost: h\r\n\r\n"),
        ("asterisk", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"),
        ("partial", "GET /v1/pull/notes HTTP/1.1\r\nHost: 127.0.0.1"),
    ];
    for (n, h) in heads {
        write("http_head", n, h.as_bytes());
    }

    // canonical_request: the signing vectors, each with one field changed.
    for (i, v) in vectors("request-signing.json").iter().enumerate() {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let r = OwnedRequest {
            method: s("method"),
            path_and_query: s("path_and_query"),
            host: s("host"),
            body: hex_decode(&s("body_hex")).unwrap(),
            ts: v["ts"].as_f64().unwrap(),
            nonce_b64: s("nonce_b64"),
        };
        let field = (i % 6) as u8;
        let new: Vec<u8> = match field {
            4 => (v["ts"].as_i64().unwrap() + 1).to_le_bytes().to_vec(),
            _ => b"/v1/pull/notes".to_vec(),
        };
        write(
            "canonical_request",
            v["name"].as_str().unwrap(),
            &fuzzing::encode_canonical_request(&r, field, &new),
        );
    }

    // verify_request: every method and mutation once.
    let bodies: [&[u8]; 3] = [b"", br#"{"data":{"a":1},"baseHash":null}"#, b"\x00\xff"];
    for mutation in 0..11u8 {
        for (mi, body) in bodies.iter().enumerate() {
            let method = (mutation as usize + mi * 2) % 6;
            let flags = mutation.wrapping_mul(3) ^ (mi as u8) << 2;
            let data: &[u8] = match mutation {
                10 => b"\x02\x00Cap e30=",
                _ => b"\x01\x05\x41\x00\x03",
            };
            write(
                "verify_request",
                &format!("m{mutation}-{mi}"),
                &fuzzing::encode_verify_request(
                    method as u8,
                    flags,
                    "users/abc/settings",
                    "127.0.0.1:8787",
                    (mutation as i32 - 5) * 1000,
                    [mutation; 16],
                    body,
                    mutation,
                    data,
                ),
            );
        }
    }

    // cap_cert: the official headers, and minting parameters.
    for v in vectors("cap-cert.json") {
        if let Some(h) = v["authorization_header"].as_str() {
            write("cap_cert", v["name"].as_str().unwrap(), h.as_bytes());
        }
    }
    for (i, (nbf, ttl)) in [(1_700_000_000, 2_592_000), (0, 1), (-5, 10)]
        .into_iter()
        .enumerate()
    {
        let paths: &[&str] = &["users/{identity}/**", "!secret"];
        write(
            "cap_cert",
            &format!("mint-{i}"),
            &fuzzing::encode_cap_mint(
                [i as u8 + 1; 32],
                (i == 1).then_some([9; 32]),
                i as u8 + 5,
                &["*", "notes"],
                (i != 2).then_some(paths),
                nbf,
                ttl,
                [3; 16],
                &[i as u8, 7, 1, 2],
            ),
        );
    }

    // stable_stringify: the vector inputs.
    for v in vectors("stable-stringify.json") {
        write(
            "stable_stringify",
            v["name"].as_str().unwrap(),
            v["input_json"].as_str().unwrap().as_bytes(),
        );
    }

    // config: the default and the official example configs, and a few odd ones.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    write(
        "config",
        "default",
        starfish::config::DEFAULT_CONFIG_JSON.as_bytes(),
    );
    write(
        "config",
        "official",
        &fs::read(root.join("tests/config-official.json")).unwrap(),
    );
    for (n, c) in [
        ("empty", "{}"),
        ("not-object", "[]"),
        ("bad-namespaces", r#"{"collections":[],"namespaces":[]}"#),
        (
            "namespace",
            r#"{"collections":[],"namespaces":{"demo":{"collections":[{"name":"n","storagePath":"demo/{id}/n","readRoles":["public"],"writeRoles":["self"],"maxBodyBytes":null,"bundle":"b","rateLimit":true,"appendOnly":true}]}}}"#,
        ),
        (
            "dup",
            r#"{"collections":[{"name":"a","storagePath":"a/{identity}","readRoles":["self"],"writeRoles":["self"]},{"name":"a","storagePath":"a/{identity}","readRoles":[],"writeRoles":[]}]}"#,
        ),
    ] {
        write("config", n, c.as_bytes());
    }

    // push_body: typical pushes, the body checks' edge cases, and the shapes
    // whose cost depends on the input (many keys, repeated keys, nesting,
    // escapes, long numbers).
    let mut many = String::from("{\"data\":{");
    for i in 0..300 {
        many.push_str(&format!("\"k{i}\":{i},"));
    }
    many.push_str("\"k0\":{\"__proto__\":1}},\"baseHash\":null}");
    for (n, b) in [
        ("create", r#"{"data":{"text":"hello","n":1.5,"list":[1,{"a":null}]},"baseHash":null}"#.to_owned()),
        ("update", format!(r#"{{"data":{{"a":1}},"baseHash":"{}"}}"#, "ab".repeat(32))),
        ("empty-hash", r#"{"data":{},"baseHash":""}"#.to_owned()),
        ("no-hash", r#"{"data":{"2":1,"10":2,"b":3,"a":4}}"#.to_owned()),
        ("unsafe", r#"{"data":{"__proto__":{"x":1},"k":{"constructor":2,"prototype":3,"z":[{"__dict__":4}]}},"baseHash":null}"#.to_owned()),
        ("dup-keys", r#"{"data":{"a":1,"b":2,"a":3,"a":{"c":4}},"baseHash":null,"baseHash":null}"#.to_owned()),
        ("escapes", r#"{"data":{"s":"\ud800\udc00\ud800 \u00e9\n\"\\","\u0000":"\t"},"baseHash":null}"#.to_owned()),
        ("numbers", r#"{"data":{"a":-0,"b":1e400,"c":0.1e-7,"d":12345678901234567890,"e":-1.5E+21},"baseHash":null}"#.to_owned()),
        ("deep", format!(r#"{{"data":{}1{},"baseHash":null}}"#, "{\"a\":".repeat(60), "}".repeat(60))),
        ("too-deep", format!(r#"{{"data":{}1{},"baseHash":null}}"#, "[".repeat(70), "]".repeat(70))),
        ("bad-base", r#"{"data":{},"baseHash":1}"#.to_owned()),
        ("no-data", r#"{"data":[],"baseHash":null}"#.to_owned()),
        ("author-half", r#"{"data":{},"authorPubkey":"00"}"#.to_owned()),
        ("bom", "\u{feff}{\"data\":{}}".to_owned()),
        ("many-keys", many),
    ] {
        write("push_body", n, b.as_bytes());
    }
}
