//! Cap revocation with `--revocations FILE`: signed lists (the official
//! `buildRevocationList` format) by issuer, subject and cap nonce; a revoked
//! cap gets the official 401 even after it was verified and cached; the
//! file is re-read when it changes, without a restart; bad files never
//! loosen what is in force.

mod common;

use common::*;
use starfish::proto::json::{to_js_json, Value};
use starfish::proto::revocation::build_list;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"{"collections":[
  {"name":"notes","storagePath":"users/{identity}/notes","readRoles":["self"],"writeRoles":["self"]},
  {"name":"pub","storagePath":"pub/{id}","readRoles":["public"],"writeRoles":["public"]}]}"#;

fn write_lists(path: &std::path::Path, lists: &[Value]) {
    // Write-then-rename, as an operator's tool would.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, to_js_json(&Value::Array(lists.to_vec()))).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn pull(s: &TestServer, cap: &starfish::proto::cap::CapCert) -> Resp {
    let target = format!("/v1/pull/users/{}/notes", user_id(&ROOT_SEED));
    signed_get(s, &ROOT_SEED, cap, &target).send(s)
}

/// Poll until `f` holds (the server checks the file every second).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_revoked_cap_is_refused_after_a_file_change_without_restart() {
    let dir = temp_dir("revocations");
    let file = dir.join("revoked.json");
    let root_pub = pub_hex(&ROOT_SEED);
    write_lists(&file, &[build_list(&ROOT_SEED, 1.0, &[], None)]);
    let s = Setup::new(CONFIG).revocations(&file).start();
    let cap = device_cap(&ROOT_SEED, scope(&["read", "write"], None));
    let spare = device_cap(&ROOT_SEED, scope(&["read", "write"], None));
    // Verified (and cached) before the revocation.
    assert_eq!(pull(&s, &cap).status, 200);
    assert_eq!(pull(&s, &cap).status, 200);
    let nonce = cap.nonce().unwrap().to_owned();
    write_lists(
        &file,
        &[build_list(
            &ROOT_SEED,
            2.0,
            &[(&root_pub, &nonce, 2e9)],
            None,
        )],
    );
    eventually("the revocation takes effect", || {
        pull(&s, &cap).status == 401
    });
    pull(&s, &cap).assert_error(401, "Unauthorized");
    // Another cap of the same subject (another nonce) still works; public
    // collections never look at caps.
    assert_eq!(pull(&s, &spare).status, 200);
    assert_eq!(
        signed_get(&s, &ROOT_SEED, &cap, "/v1/pull/pub/x")
            .send(&s)
            .status,
        200
    );
    // A stale generation (a rollback to a list without the entry) is
    // ignored; the other issuer's list in the same file shows the file was
    // read.
    let other = device_cap(&OTHER_SEED, scope(&["read"], None));
    let other_pull = |s: &TestServer| {
        let target = format!("/v1/pull/users/{}/notes", user_id(&OTHER_SEED));
        signed_get(s, &OTHER_SEED, &other, &target).send(s).status
    };
    assert_eq!(other_pull(&s), 200);
    write_lists(
        &file,
        &[
            build_list(&ROOT_SEED, 1.0, &[], None),
            build_list(
                &OTHER_SEED,
                1.0,
                &[(&pub_hex(&OTHER_SEED), other.nonce().unwrap(), 2e9)],
                None,
            ),
        ],
    );
    eventually("the other issuer's list takes effect", || {
        other_pull(&s) == 401
    });
    assert_eq!(pull(&s, &cap).status, 401, "rollback refused");
    // A broken file changes nothing.
    std::fs::write(&file, b"{not json").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(pull(&s, &cap).status, 401);
    assert_eq!(other_pull(&s), 401);
    assert_eq!(pull(&s, &spare).status, 200);
    // A higher generation revoking the whole subject refuses every cap of it.
    write_lists(
        &file,
        &[build_list(&ROOT_SEED, 3.0, &[], Some(&[(&root_pub, 2e9)]))],
    );
    eventually("the subject-wide revocation takes effect", || {
        pull(&s, &spare).status == 401
    });
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lists_of_other_issuers_and_forged_lists_do_not_revoke() {
    let dir = temp_dir("revocations-forged");
    let file = dir.join("revoked.json");
    let cap = device_cap(&ROOT_SEED, scope(&["read"], None));
    let root_pub = pub_hex(&ROOT_SEED);
    let nonce = cap.nonce().unwrap().to_owned();
    // Issued by another identity: it cannot revoke the root's caps.
    write_lists(
        &file,
        &[build_list(
            &OTHER_SEED,
            1.0,
            &[(&root_pub, &nonce, 2e9)],
            None,
        )],
    );
    let s = Setup::new(CONFIG).revocations(&file).start();
    assert_eq!(pull(&s, &cap).status, 200);
    drop(s);
    // A forged list (iss claims the root, signed by someone else) stops
    // start-up with exit status 2.
    let mut forged = build_list(&OTHER_SEED, 1.0, &[(&root_pub, &nonce, 2e9)], None);
    forged
        .as_object_mut()
        .unwrap()
        .insert("iss", root_pub.as_str().into());
    write_lists(&file, &[forged]);
    let opts = starfish::server::ServeOptions {
        config: None,
        listen: "127.0.0.1:0".parse().unwrap(),
        store: starfish::server::StoreChoice::Memory,
        revocations: Some(file.clone()),
        ..Default::default()
    };
    let err = starfish::server::Server::bind(opts).err().expect("refused");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("signature"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
