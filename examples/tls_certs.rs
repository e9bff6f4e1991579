//! Write a throw-away CA and a server certificate signed by it, as PEM
//! files, for the HTTPS interop runs and the benchmark (`scripts/tls-certs`
//! runs this). Test material only.
//!
//! ```text
//! cargo run --example tls_certs -- DIR [--names 127.0.0.1,localhost] [--key ecdsa|ed25519|rsa]
//! ```
//!
//! Writes `DIR/ca.pem`, `DIR/cert.pem` (the leaf, valid from yesterday for a
//! year) and `DIR/key.pem`.

#[path = "../tests/common/certs.rs"]
mod certs;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut names = "127.0.0.1,localhost".to_owned();
    let mut kind = certs::KeyKind::EcdsaP256;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--names" => match args.next() {
                Some(v) => names = v,
                None => return usage("--names needs a value"),
            },
            "--key" => match args.next().as_deref().and_then(certs::KeyKind::parse) {
                Some(k) => kind = k,
                None => return usage("--key takes ecdsa, ed25519 or rsa"),
            },
            _ if dir.is_none() && !a.starts_with("--") => dir = Some(PathBuf::from(a)),
            other => return usage(&format!("unexpected argument {other:?}")),
        }
    }
    let Some(dir) = dir else {
        return usage("give the output directory");
    };
    let names: Vec<&str> = names.split(',').filter(|n| !n.is_empty()).collect();
    let ca = certs::Ca::new("starfish throw-away test CA");
    let leaf = ca.leaf(&names, kind, certs::Validity::Current);
    if let Err(e) = certs::write_set(&dir, &ca, &leaf) {
        eprintln!("tls_certs: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    eprintln!(
        "tls_certs: wrote ca.pem, cert.pem, key.pem ({kind:?} for {}) to {}",
        names.join(", "),
        dir.display()
    );
    ExitCode::SUCCESS
}

fn usage(m: &str) -> ExitCode {
    eprintln!("tls_certs: {m}\nusage: tls_certs DIR [--names a,b] [--key ecdsa|ed25519|rsa]");
    ExitCode::from(2)
}
