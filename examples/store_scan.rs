//! How long the start-up scan of a quota takes: fills a filesystem store
//! with N documents (default 10 000, about 300 bytes each, spread over 100
//! directories), then times `FsStore::open` and the `QuotaStore` start-up
//! measurement (`Store::measure`, one walk of the tree). The page cache is
//! warm (the files were just written); a cold cache on slow flash costs
//! more. Writing the documents takes a while (each write is synced:
//! about 90 s for 10 000 on a loaded 2-core machine); 10 000 of 319 bytes
//! scanned in 68-94 ms there.
//!
//! ```sh
//! cargo run --release --example store_scan -- 10000
//! ```

use starfish::store::{FsStore, QuotaLimits, QuotaStore, Store};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N: a number of documents"))
        .unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("starfish-store-scan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = FsStore::open(&dir).unwrap();
    let doc = format!(
        r#"{{"v":1,"data":{{"text":"{}"}},"ts":1700000000000,"hash":"{}"}}"#,
        "x".repeat(200),
        "0".repeat(64)
    );
    let t = Instant::now();
    for i in 0..n {
        store
            .put(&format!("notes/d{}/doc{i}", i % 100), doc.as_bytes())
            .unwrap();
    }
    println!("wrote {n} documents in {:?}", t.elapsed());
    drop(store);

    for round in 1..=3 {
        let t = Instant::now();
        let store: Arc<dyn Store> = Arc::new(FsStore::open(&dir).unwrap());
        let opened = t.elapsed();
        let limits = QuotaLimits {
            max_documents: Some(u64::MAX),
            ..QuotaLimits::default()
        };
        let t = Instant::now();
        let q = QuotaStore::new(store, limits, None).unwrap();
        let measured = t.elapsed();
        let u = q.usage();
        println!(
            "round {round}: FsStore::open {opened:?}, quota start-up scan {measured:?} \
             ({} documents, {} bytes)",
            u.values, u.bytes
        );
        assert_eq!(u.values, n as u64);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
