//! The room rules that keep the code base honest, checked on the source:
//! `src/proto/` is sans-I/O (no files, sockets, clocks, randomness or async,
//! and nothing else from this crate), `src/sync/` knows no HTTP, and
//! `src/metrics/` knows no HTTP and uses nothing of the crate but the store.

use std::path::Path;

fn sources(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "rs") {
            out.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
    assert!(!out.is_empty(), "no sources under {dir}");
    out
}

fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter(|(_, l)| {
        let t = l.trim_start();
        !t.starts_with("//") && !t.starts_with("///") && !t.starts_with("//!")
    })
}

#[test]
fn proto_does_no_io_and_imports_nothing_else_from_the_crate() {
    let forbidden = [
        "std::fs",
        "std::net",
        "std::io",
        "SystemTime",
        "Instant",
        "std::thread",
        "std::env",
        "getrandom",
        "async",
        "await",
        "smol",
        "async_io",
        "async_net",
        "futures",
        "blocking",
    ];
    for (path, text) in sources("src/proto") {
        for (n, line) in code_lines(&text) {
            for word in forbidden {
                assert!(
                    !line.contains(word),
                    "{path}:{}: `{word}` in the sans-I/O core: {line}",
                    n + 1
                );
            }
            if let Some(pos) = line.find("crate::") {
                assert!(
                    line[pos..].starts_with("crate::proto"),
                    "{path}:{}: proto may only use crate::proto: {line}",
                    n + 1
                );
            }
        }
    }
}

#[test]
fn sync_rules_know_no_http() {
    for (path, text) in sources("src/sync") {
        for (n, line) in code_lines(&text) {
            for word in ["crate::http", "http_types", "async_net"] {
                assert!(
                    !line.contains(word),
                    "{path}:{}: `{word}` in the sync rules: {line}",
                    n + 1
                );
            }
        }
    }
}

#[test]
fn metrics_know_no_http_and_sit_on_the_store_only() {
    for (path, text) in sources("src/metrics") {
        for (n, line) in code_lines(&text) {
            if let Some(pos) = line.find("crate::") {
                let rest = &line[pos..];
                assert!(
                    rest.starts_with("crate::store") || rest.starts_with("crate::metrics"),
                    "{path}:{}: metrics may only use crate::store: {line}",
                    n + 1
                );
            }
            for word in ["http_types", "async_net", "async_io"] {
                assert!(
                    !line.contains(word),
                    "{path}:{}: `{word}` in the metrics: {line}",
                    n + 1
                );
            }
        }
    }
}

/// Two import circles that were broken on purpose stay broken: the response
/// builders know nothing of the service, and the JSON value module knows
/// nothing of the canonical form built on it.
#[test]
fn no_import_circles_between_response_and_service_or_json_and_canonical() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, word) in [
        ("src/http/response.rs", "service"),
        ("src/proto/json.rs", "canonical::"),
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for (n, line) in code_lines(&text) {
            let t = line.trim_start();
            let imports =
                t.starts_with("use ") || t.starts_with("pub use ") || line.contains("crate::");
            assert!(
                !(imports && line.contains(word)),
                "{file}:{}: `{word}` would close an import circle: {line}",
                n + 1
            );
        }
    }
}
