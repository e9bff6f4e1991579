//! Rough timing of the protocol core's hot paths, used to choose the release
//! profile (`cargo run --release --example proto_bench`). Not a test.

use starfish::proto::{cap, hash::document_hash, json, request_sig};
use std::time::Instant;

fn time(label: &str, iters: u32, mut f: impl FnMut()) {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(iters);
    println!("{label:<34} {ns:>10.0} ns/op");
}

fn main() {
    let mut doc = String::from("{");
    for i in 0..24 {
        doc.push_str(&format!(
            "\"key{i}\":{{\"n\":{}.25,\"s\":\"value {i} é\",\"b\":true}},",
            i * 37
        ));
    }
    doc.push_str("\"end\":null}");
    println!("document: {} bytes", doc.len());
    time("parse + hash 1 KiB document", 20_000, || {
        let v = json::parse(doc.as_bytes()).unwrap();
        std::hint::black_box(document_hash(&v));
    });
    let seed = [3u8; 32];
    let pub_hex = request_sig::public_key_hex(&seed);
    let req = request_sig::RequestToSign {
        method: "GET",
        path_and_query: "/v1/pull/users/0123456789abcdef0123456789abcdef/settings",
        host: "127.0.0.1:8787",
        body: b"",
        ts: 1.7e12,
        nonce_b64: "AQEBAQEBAQEBAQEBAQEBAQ==",
    };
    let sig = request_sig::sign_request(&req, &seed);
    time("verify request signature", 5_000, || {
        assert!(request_sig::verify_request(&req, &sig, &pub_hex));
    });
    let c = cap::mint_device_cap(
        &seed,
        &pub_hex,
        &pub_hex,
        &"00".repeat(32),
        cap::root_all_scope(),
        cap::MintOptions {
            nbf: 1_700_000_000,
            ttl_sec: 3600,
            nonce: [1; 16],
        },
    )
    .unwrap();
    let header = c.authorization_header();
    time("parse + verify cap header", 5_000, || {
        let c = cap::parse_authorization(&header, 8192).unwrap();
        assert!(cap::verify_cap_cert(&c, 1_700_000_001, 300).is_ok());
    });
}
