//! Mint a self-signed root device cap from a fixed seed and print it with
//! its key as JSON (a development helper for trying clients by hand:
//! `cargo run --example mint_cap`).

use starfish::proto::{cap, request_sig};

fn main() {
    let seed = [42u8; 32];
    let pub_hex = request_sig::public_key_hex(&seed);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let c = cap::mint_device_cap(
        &seed,
        &pub_hex,
        &pub_hex,
        &"00".repeat(32),
        cap::root_all_scope(),
        cap::MintOptions {
            nbf: now_s,
            ttl_sec: 3600,
            nonce: [1; 16],
        },
    )
    .expect("mint");
    let uid = starfish::proto::identity::user_id_from_pub_hex(&pub_hex).expect("hex");
    let cap_json = String::from_utf8(starfish::proto::json::to_js_json(c.value())).expect("utf8");
    println!(
        "{{\"cap\":{cap_json},\"priv\":\"{}\",\"uid\":\"{uid}\"}}",
        starfish::proto::encoding::hex_encode(&seed)
    );
}
