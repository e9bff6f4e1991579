//! What a rate limit costs per request, without the network: the service
//! (memory store) answers `N` pulls of a 1 KiB public document, in a
//! collection without a rate limit (`pull1k`) or with a pull rule that is
//! never reached (`pullrl`). For deterministic figures on a busy machine,
//! count instructions:
//!
//! ```sh
//! cargo build --release --example rate_limit_cost
//! valgrind --tool=callgrind target/release/examples/rate_limit_cost pull1k 20000
//! valgrind --tool=callgrind target/release/examples/rate_limit_cost pullrl 20000
//! ```
//!
//! (the difference of the two totals divided by N is the cost of the check).
//! Without valgrind it prints wall-clock ns per request. Not a test.

use starfish::auth::Anonymous;
use starfish::config::parse_config;
use starfish::http::service::{Service, ServiceOptions};
use starfish::http::{Handler, PeerAddr, Request};
use starfish::store::MemoryStore;
use std::sync::Arc;
use std::time::Instant;

const CONFIG: &str = r#"{"collections":[
  {"name":"pub","storagePath":"bench/pub/{id}","readRoles":["public"],"writeRoles":["public"]},
  {"name":"rl","storagePath":"bench/rl/{id}","readRoles":["public"],"writeRoles":["public"],
   "rateLimit":{"pull":{"windowMs":60000,"maxRequests":1000000000}}}]}"#;

fn request(method: http_types::Method, path: &str, body: Option<String>) -> Request {
    let url = http_types::Url::parse(&format!("http://127.0.0.1:8787{path}")).unwrap();
    let mut req = Request::new(method, url);
    req.insert_header("Host", "127.0.0.1:8787");
    req.ext_mut()
        .insert(PeerAddr("127.0.0.1:40000".parse().unwrap()));
    if let Some(b) = body {
        req.insert_header("Content-Length", b.len().to_string());
        req.set_body(b);
        req.insert_header("Content-Type", "application/json");
    }
    req
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "both".into());
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let config = Arc::new(parse_config(CONFIG.as_bytes()).unwrap().config);
    let service = Service::new(
        config,
        Arc::new(MemoryStore::new()),
        Arc::new(Anonymous),
        ServiceOptions::default(),
    );
    let doc = format!(
        r#"{{"data":{{"v":"{}"}},"baseHash":null}}"#,
        "x".repeat(1000)
    );
    futures_lite::future::block_on(async {
        for coll in ["pub", "rl"] {
            let path = format!("/v1/push/bench/{coll}/doc1k");
            let res = service
                .handle(request(http_types::Method::Post, &path, Some(doc.clone())))
                .await;
            assert_eq!(u16::from(res.status()), 200);
        }
        for (label, coll) in [("pull1k", "pub"), ("pullrl", "rl")] {
            if which != "both" && which != label {
                continue;
            }
            let path = format!("/v1/pull/bench/{coll}/doc1k");
            let start = Instant::now();
            for _ in 0..n {
                let res = service
                    .handle(request(http_types::Method::Get, &path, None))
                    .await;
                assert_eq!(u16::from(res.status()), 200);
            }
            let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
            println!("{label}: {ns:.0} ns/request over {n}");
        }
    });
}
