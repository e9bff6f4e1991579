//! In-memory TLS handshakes and bulk transfer through one rustls crypto
//! provider (chosen by cargo feature), so providers can be compared on the
//! same machine without sockets. Prints one line per measurement.
//!
//! Usage: tls-provider-bench [HANDSHAKES] [BULK_MIB]

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

#[cfg(feature = "ring")]
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}
#[cfg(all(feature = "aws-lc-rs", not(feature = "ring")))]
fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

fn configs(alg: &'static rcgen::SignatureAlgorithm) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let ca_key = rcgen::KeyPair::generate_for(alg).unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let params = rcgen::CertificateParams::new(vec!["bench.example".to_string()]).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let p = Arc::new(provider());
    let server = ServerConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone(), ca_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca_cert.der().to_vec())).unwrap();
    let client = ClientConfig::builder_with_provider(p)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// Move every pending TLS record from one side to the other.
fn pump(c: &mut ClientConnection, s: &mut ServerConnection) {
    let mut buf = Vec::new();
    loop {
        let mut moved = false;
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            let mut r = &buf[..];
            while !r.is_empty() {
                s.read_tls(&mut r).unwrap();
                s.process_new_packets().unwrap();
            }
            moved = true;
        }
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            let mut r = &buf[..];
            while !r.is_empty() {
                c.read_tls(&mut r).unwrap();
                c.process_new_packets().unwrap();
            }
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

fn connect(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> (ClientConnection, ServerConnection) {
    let name = ServerName::try_from("bench.example").unwrap();
    let mut c = ClientConnection::new(client.clone(), name).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    pump(&mut c, &mut s);
    assert!(!c.is_handshaking() && !s.is_handshaking());
    (c, s)
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let handshakes = args.first().copied().unwrap_or(300);
    let bulk_mib = args.get(1).copied().unwrap_or(64);
    let name = if cfg!(feature = "ring") { "ring" } else { "aws-lc-rs" };
    for (label, alg) in [
        ("ecdsa-p256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("ed25519", &rcgen::PKCS_ED25519),
    ] {
        let (server, client) = configs(alg);
        let (c, _) = connect(&server, &client);
        let suite = c.negotiated_cipher_suite().unwrap().suite();
        let kx = c.negotiated_key_exchange_group().map(|g| g.name());
        let t = Instant::now();
        for _ in 0..handshakes {
            connect(&server, &client);
        }
        let per = t.elapsed().as_secs_f64() / handshakes as f64;
        println!(
            "{name}: {label} full handshake (client+server, {kx:?}): {:.0} us, {:.0}/s",
            per * 1e6,
            1.0 / per
        );
        if label == "ecdsa-p256" {
            let (mut c, mut s) = connect(&server, &client);
            let chunk = vec![0x5au8; 16 * 1024];
            let mut sink = vec![0u8; 64 * 1024];
            let total = bulk_mib * 1024 * 1024;
            let t = Instant::now();
            let mut sent = 0;
            let mut got = 0;
            let mut wire = Vec::new();
            while sent < total {
                s.writer().write_all(&chunk).unwrap();
                sent += chunk.len();
                wire.clear();
                while s.wants_write() {
                    s.write_tls(&mut wire).unwrap();
                }
                let mut r = &wire[..];
                while !r.is_empty() {
                    c.read_tls(&mut r).unwrap();
                    c.process_new_packets().unwrap();
                    loop {
                        match c.reader().read(&mut sink) {
                            Ok(0) => break,
                            Ok(n) => got += n,
                            Err(_) => break,
                        }
                    }
                }
            }
            assert_eq!(got, total);
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{name}: bulk {suite:?} encrypt+decrypt: {:.0} MiB/s",
                bulk_mib as f64 / secs
            );
        }
    }
}
