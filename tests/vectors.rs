//! The official test vectors (`tests/vectors/*.json`, produced by the
//! official JavaScript packages) run case by case against the protocol core.
//! Expected values come only from those files.

use serde_json::Value as J;
use starfish::proto::{
    canonical::stable_stringify,
    cap::{self, CapCert},
    encoding::{b64_decode, hex_decode},
    hash::{document_hash, sha256_hex},
    identity::{derive_root_identity, user_id_from_pub_hex},
    json::{self, parse_body, Value},
    merge::deep_merge,
    request_sig::{self, RequestToSign},
    scope,
};

fn load(name: &str) -> Vec<J> {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    match serde_json::from_str(&text).unwrap() {
        J::Array(cases) => cases,
        _ => panic!("{name} is not an array"),
    }
}

fn s<'a>(case: &'a J, key: &str) -> &'a str {
    case[key]
        .as_str()
        .unwrap_or_else(|| panic!("case field {key} missing: {case}"))
}

fn name(case: &J) -> String {
    case.get("name")
        .and_then(J::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| case.to_string())
}

/// Convert a vector's JSON (trusted, valid UTF-8) to our value type by
/// re-parsing its text with our parser.
fn ours(v: &J) -> Value {
    json::parse(serde_json::to_string(v).unwrap().as_bytes()).unwrap()
}

/// Runs `check` on every case, collecting failures so one run names them all.
fn run_all(file: &str, check: impl Fn(&J) -> Result<(), String>) -> usize {
    let cases = load(file);
    assert!(!cases.is_empty(), "{file} has no cases");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(c).err().map(|e| format!("{}: {e}", name(c))))
        .collect();
    assert!(
        failures.is_empty(),
        "{file}: {} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{file}: {} of {} cases passed", cases.len(), cases.len());
    cases.len()
}

fn expect_eq<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

#[test]
fn stable_stringify_vectors() {
    run_all("stable-stringify.json", |c| {
        let v =
            parse_body(s(c, "input_json").as_bytes(), 1000).map_err(|e| format!("parse: {e}"))?;
        expect_eq(
            "stableStringify",
            stable_stringify(&v).as_str(),
            s(c, "expected"),
        )?;
        expect_eq(
            "sha256 of expected",
            sha256_hex(s(c, "expected").as_bytes()).as_str(),
            s(c, "sha256"),
        )?;
        expect_eq("computeHash", document_hash(&v).as_str(), s(c, "sha256"))
    });
}

#[test]
fn user_id_vectors() {
    run_all("user-id.json", |c| {
        let got = user_id_from_pub_hex(s(c, "pubkey_hex"));
        match c["user_id"].as_str() {
            Some(want) => {
                expect_eq(
                    "userId",
                    got.as_deref().map_err(|e| e.to_string()),
                    Ok(want),
                )?;
                if let Some(seed) = c.get("seed_hex").and_then(J::as_str) {
                    let seed: [u8; 32] = hex_decode(seed).unwrap().try_into().unwrap();
                    expect_eq(
                        "pubkey from seed",
                        request_sig::public_key_hex(&seed).as_str(),
                        s(c, "pubkey_hex"),
                    )?;
                }
                Ok(())
            }
            None => expect_eq(
                "error",
                got.map_err(|e| e.to_string()),
                Err(s(c, "error").to_owned()),
            ),
        }
    });
}

#[test]
fn path_glob_vectors() {
    run_all("path-glob.json", |c| {
        let want = c["expected"].as_bool().unwrap();
        match s(c, "kind") {
            "pathGlobMatch" => expect_eq(
                "pathGlobMatch",
                scope::glob_match(s(c, "glob"), s(c, "target")),
                want,
            ),
            "matchScopePath" => {
                let raw: Option<Vec<String>> = c.get("scope_paths").map(|p| {
                    p.as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_str().unwrap().to_owned())
                        .collect()
                });
                let paths = match (raw, c.get("identity").and_then(J::as_str)) {
                    (Some(p), Some(id)) => {
                        let expanded = scope::expand_identity(&p, id);
                        let want: Vec<String> = c["expanded_scope_paths"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|x| x.as_str().unwrap().to_owned())
                            .collect();
                        expect_eq("expanded scope paths", &expanded, &want)?;
                        Some(expanded)
                    }
                    (p, _) => p,
                };
                expect_eq(
                    "matchScopePath",
                    scope::match_scope_path(s(c, "request_path"), paths.as_deref()),
                    want,
                )
            }
            k => Err(format!("unknown kind {k}")),
        }
    });
}

#[test]
fn deep_merge_vectors() {
    run_all("deep-merge.json", |c| {
        let obj = |k: &str| match json::parse(s(c, k).as_bytes()) {
            Ok(Value::Object(o)) => Ok(o),
            other => Err(format!("{k} is not an object: {other:?}")),
        };
        let merged = Value::Object(deep_merge(&obj("local_json")?, &obj("remote_json")?));
        expect_eq(
            "JSON.stringify",
            String::from_utf8(json::to_js_json(&merged))
                .unwrap()
                .as_str(),
            s(c, "expected_json"),
        )?;
        expect_eq(
            "stableStringify",
            stable_stringify(&merged).as_str(),
            s(c, "expected_stable"),
        )
    });
}

#[test]
fn request_signing_vectors() {
    run_all("request-signing.json", |c| {
        let body = hex_decode(s(c, "body_hex")).unwrap();
        if let Some(want) = c.get("body_sha256_hex").and_then(J::as_str) {
            expect_eq("body sha256", sha256_hex(&body).as_str(), want)?;
        }
        if let Some(nonce_hex) = c.get("nonce_hex").and_then(J::as_str) {
            expect_eq(
                "nonce b64",
                b64_decode(s(c, "nonce_b64")),
                hex_decode(nonce_hex).ok(),
            )?;
        }
        let req = RequestToSign {
            method: s(c, "method"),
            path_and_query: s(c, "path_and_query"),
            host: c["host"].as_str().unwrap_or(""),
            body: &body,
            ts: c["ts"].as_f64().unwrap(),
            nonce_b64: s(c, "nonce_b64"),
        };
        let sig_key = c
            .get("verify_public_key_hex")
            .and_then(J::as_str)
            .unwrap_or(s(c, "public_key_hex"));
        let want_verify = c["expected_verify"].as_bool().unwrap();
        if s(c, "kind") == "positive" {
            expect_eq(
                "canonical input",
                request_sig::canonical_input(&req).as_str(),
                s(c, "canonical_input"),
            )?;
            expect_eq(
                "canonical input hex",
                starfish::proto::encoding::hex_encode(
                    request_sig::canonical_input(&req).as_bytes(),
                )
                .as_str(),
                s(c, "canonical_input_hex"),
            )?;
            let seed: [u8; 32] = hex_decode(s(c, "seed_hex")).unwrap().try_into().unwrap();
            expect_eq(
                "public key",
                request_sig::public_key_hex(&seed).as_str(),
                s(c, "public_key_hex"),
            )?;
            expect_eq(
                "signature",
                request_sig::sign_request(&req, &seed).as_str(),
                s(c, "signature_b64"),
            )?;
        }
        expect_eq(
            "verify",
            request_sig::verify_request(&req, s(c, "signature_b64"), sig_key),
            want_verify,
        )
    });
}

#[test]
fn cap_cert_vectors() {
    run_all("cap-cert.json", |c| {
        let cert = CapCert::from_value(ours(&c["cert"]));
        expect_eq(
            "signing input",
            cert.signing_input().as_str(),
            s(c, "canonical_signing_input"),
        )?;
        expect_eq(
            "authorization header",
            cert.authorization_header().as_str(),
            s(c, "authorization_header"),
        )?;
        let parsed = cap::parse_authorization(s(c, "authorization_header"), usize::MAX)
            .map_err(|e| e.to_string())?;
        expect_eq("header round trip", &parsed, &cert)?;
        expect_eq(
            "signature_valid",
            cap::verify_cap_signature(&cert),
            c["signature_valid"].as_bool().unwrap(),
        )?;
        expect_eq(
            "is_root_device_cap",
            cert.is_root_device_cap(),
            c["is_root_device_cap"].as_bool().unwrap(),
        )?;
        let skew = c["clock_skew_sec"].as_i64().unwrap();
        for check in c["checks"].as_array().unwrap() {
            let now = check["now"].as_i64().unwrap();
            let got = cap::verify_cap_cert(&cert, now, skew).map_err(|r| r.code().to_owned());
            let want = match check["ok"].as_bool().unwrap() {
                true => Ok(()),
                false => Err(s(check, "reason").to_owned()),
            };
            expect_eq(&format!("verifyCapCert at {now}"), got, want)?;
        }
        Ok(())
    });
}

#[test]
fn cap_cert_minting_reproduces_the_official_certs() {
    // Cases minted by mintDeviceCap carry their inputs; re-minting must give
    // byte-identical certs (Ed25519 signatures are deterministic).
    let cases = load("cap-cert.json");
    let keys = &cases[0]["keys"];
    let mut reminted = 0;
    for c in &cases {
        let Some(m) = c.get("minted_with") else {
            continue;
        };
        let cert = &c["cert"];
        // keys: {"<who>_pub_hex": ..., "<who>_seed_hex": ...}
        let iss_seed_hex = keys
            .as_object()
            .unwrap()
            .iter()
            .find(|(k, v)| k.ends_with("_pub_hex") && v.as_str() == cert["iss"].as_str())
            .and_then(|(k, _)| keys.get(k.replace("_pub_hex", "_seed_hex")))
            .and_then(J::as_str);
        let Some(iss_seed_hex) = iss_seed_hex else {
            continue;
        };
        let seed: [u8; 32] = hex_decode(iss_seed_hex).unwrap().try_into().unwrap();
        let nonce: [u8; 16] = b64_decode(cert["nonce"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let nbf = cert["nbf"].as_i64().unwrap();
        let scope = match ours(&cert["scope"]) {
            Value::Object(o) => o,
            _ => panic!("scope"),
        };
        let minted = cap::mint_device_cap(
            &seed,
            cert["iss"].as_str().unwrap(),
            cert["sub"].as_str().unwrap(),
            cert["subKem"].as_str().unwrap(),
            scope,
            cap::MintOptions {
                nbf,
                ttl_sec: cert["exp"].as_i64().unwrap() - nbf,
                nonce,
            },
        )
        .unwrap_or_else(|e| panic!("{}: {e} ({m})", name(c)));
        assert_eq!(
            stable_stringify(minted.value()),
            stable_stringify(&ours(cert)),
            "{}",
            name(c)
        );
        reminted += 1;
    }
    assert!(reminted >= 1, "no minted case could be re-minted");
}

#[test]
fn root_identity_vectors() {
    run_all("root-identity.json", |c| {
        let pass = String::from_utf8(hex_decode(s(c, "passphrase_utf8_hex")).unwrap()).unwrap();
        expect_eq("passphrase text", pass.as_str(), s(c, "passphrase"))?;
        let id = derive_root_identity(&pass).map_err(|e| e.to_string())?;
        expect_eq("user_id", id.user_id.as_str(), s(c, "user_id"))?;
        if let Some(nfc) = c.get("nfc_user_id").and_then(J::as_str) {
            expect_eq("nfc_user_id", id.user_id.as_str(), nfc)?;
        }
        expect_eq("ed_pub", id.ed_pub.as_str(), s(c, "ed_pub"))?;
        expect_eq("kem_pub", id.kem_pub.as_str(), s(c, "kem_pub"))?;
        expect_eq("ed_priv", id.ed_priv.as_str(), s(c, "ed_priv"))?;
        expect_eq("kem_priv", id.kem_priv.as_str(), s(c, "kem_priv"))?;
        expect_eq(
            "rootAll scope",
            stable_stringify(&Value::Object(cap::root_all_scope())),
            stable_stringify(&ours(&c["root_all_scope"])),
        )
    });
}
