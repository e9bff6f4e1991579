//! Pre-sign cap-cert requests for the benchmark (`scripts/bench`), so the
//! load generator only replays headers and is never the bottleneck.
//!
//! ```text
//! presign uid                                   print the bench identity (root userId)
//! presign one  HOST METHOD PATH [BODY_FILE]     print one signed request's headers
//!                                               (curl `-H @file` format)
//! presign pool HOST PATH N OUT [FIRST_KEY]      write N signed GETs of PATH to OUT,
//!                                               signed by device keys FIRST_KEY.. (default 1)
//! ```
//!
//! `PATH` is the full path as sent (with the mount, e.g. `/v1/pull/...`);
//! `{uid}` in it is replaced by the bench identity. `HOST` is the `Host`
//! header the client sends (`127.0.0.1:PORT`). Timestamps are "now": a pool
//! must be used within the server's 5-minute skew.
//!
//! The server keeps at most 4096 live nonces per signing key (10 minutes),
//! so the pool is spread over K = ceil(N / 4000) device caps, all issued by
//! one root key for its own identity (`sub` = the device key): every cap
//! acts as the same user, so one `users/{uid}/...` document serves all.
//! Successive pools against one server must use disjoint keys (FIRST_KEY),
//! or the earlier pool's nonces count against the later one's limit. The
//! `K` used is printed on stdout. `one` signs with device key 0.
//!
//! Pool file, tab-separated, one record a line: first the K caps as
//! `C<TAB>authorization-value`, then the N requests as
//! `R<TAB>cap-index(1-based)<TAB>path<TAB>sig<TAB>ts<TAB>nonce`.

use ed25519_dalek::{Signer, SigningKey};
use starfish::proto::{
    cap::{mint_device_cap, root_all_scope, CapCert, MintOptions},
    encoding::b64_encode,
    identity::user_id_from_pub_hex,
    request_sig::{canonical_input, public_key_hex, signed_body, RequestToSign},
};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

const ROOT_SEED: [u8; 32] = [0xB5; 32];
const PER_KEY: usize = 4000;

fn device_seed(j: usize) -> [u8; 32] {
    let mut s = [0xD7u8; 32];
    s[..8].copy_from_slice(&(j as u64).to_le_bytes());
    s
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn uid() -> String {
    user_id_from_pub_hex(&public_key_hex(&ROOT_SEED)).expect("root key")
}

fn device_cap(j: usize, now_s: i64) -> CapCert {
    let root_pub = public_key_hex(&ROOT_SEED);
    let dev_pub = public_key_hex(&device_seed(j));
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&(j as u64).to_le_bytes());
    nonce[8..].copy_from_slice(&(now_s as u64).to_le_bytes());
    mint_device_cap(
        &ROOT_SEED,
        &root_pub,
        &dev_pub,
        &"00".repeat(32),
        root_all_scope(),
        MintOptions {
            nbf: now_s - 60,
            ttl_sec: 3600,
            nonce,
        },
    )
    .expect("mint")
}

/// A nonce unique across pools: the pool's start time (ns) and an index.
fn nonce_b64(epoch_ns: u64, i: u64) -> String {
    let mut n = [0u8; 16];
    n[..8].copy_from_slice(&epoch_ns.to_le_bytes());
    n[8..].copy_from_slice(&i.to_le_bytes());
    b64_encode(&n)
}

fn sign(
    key: &SigningKey,
    method: &str,
    host: &str,
    path: &str,
    body: &[u8],
    ts: i64,
    nonce: &str,
) -> String {
    let body = signed_body(method, Some("application/json"), body);
    let req = RequestToSign {
        method,
        path_and_query: path,
        host,
        body,
        ts: ts as f64,
        nonce_b64: nonce,
    };
    b64_encode(&key.sign(canonical_input(&req).as_bytes()).to_bytes())
}

fn epoch_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn one(host: &str, method: &str, path: &str, body_file: Option<&str>) {
    let body = body_file
        .map(|f| std::fs::read(f).expect("read body"))
        .unwrap_or_default();
    let ts = now_ms();
    let cap = device_cap(0, ts / 1000);
    let nonce = nonce_b64(epoch_ns(), u64::MAX);
    let sig = sign(
        &SigningKey::from_bytes(&device_seed(0)),
        method,
        host,
        path,
        &body,
        ts,
        &nonce,
    );
    println!("Authorization: {}", cap.authorization_header());
    println!("X-Starfish-Sig: {sig}");
    println!("X-Starfish-Ts: {ts}");
    println!("X-Starfish-Nonce: {nonce}");
}

fn pool(host: &str, path: &str, n: usize, out: &str, first_key: usize) {
    let ts = now_ms();
    let k = n.div_ceil(PER_KEY).max(1);
    let keys: Vec<SigningKey> = (0..k)
        .map(|j| SigningKey::from_bytes(&device_seed(first_key + j)))
        .collect();
    let epoch = epoch_ns();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let chunk = n.div_ceil(threads).max(1);
    let parts: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let keys = &keys;
                s.spawn(move || {
                    let mut text = String::new();
                    for i in (t * chunk)..((t + 1) * chunk).min(n) {
                        let j = i / PER_KEY;
                        let nonce = nonce_b64(epoch, i as u64);
                        let sig = sign(&keys[j], "GET", host, path, b"", ts, &nonce);
                        text.push_str(&format!("R\t{}\t{path}\t{sig}\t{ts}\t{nonce}\n", j + 1));
                    }
                    text
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("signer"))
            .collect()
    });
    let mut f = std::io::BufWriter::new(std::fs::File::create(out).expect("create pool file"));
    for j in 0..k {
        let cap = device_cap(first_key + j, ts / 1000);
        writeln!(f, "C\t{}", cap.authorization_header()).expect("write");
    }
    for p in parts {
        f.write_all(p.as_bytes()).expect("write");
    }
    f.flush().expect("flush");
    println!("{k}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let with_uid = |p: &str| p.replace("{uid}", &uid());
    match a.as_slice() {
        ["uid"] => println!("{}", uid()),
        ["one", host, method, path] => one(host, method, &with_uid(path), None),
        ["one", host, method, path, body] => one(host, method, &with_uid(path), Some(body)),
        ["pool", host, path, n, out] => pool(host, &with_uid(path), n.parse().expect("N"), out, 1),
        ["pool", host, path, n, out, first] => pool(
            host,
            &with_uid(path),
            n.parse().expect("N"),
            out,
            first.parse().expect("FIRST_KEY"),
        ),
        _ => {
            eprintln!(
                "usage: presign uid | one HOST METHOD PATH [BODY_FILE] | pool HOST PATH N OUT [FIRST_KEY]"
            );
            std::process::exit(2);
        }
    }
}
