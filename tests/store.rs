//! Store backends: a shared conformance suite run against `MemoryStore` and
//! `FsStore`, plus filesystem-specific tests (layout, temp files, crash
//! leftovers, foreign files).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

#[cfg(feature = "postgres")]
mod common;
#[cfg(feature = "postgres")]
use common::pg;
use starfish::store::{validate_key, CacheStore, FsStore, MemoryStore, Store, StoreError};

/// A unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "starfish-store-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Run `f` against a fresh memory store and a fresh filesystem store, the
/// latter also behind the hot-document cache (and, built with the
/// `postgres` feature, a fresh PostgreSQL database).
fn both(tag: &str, f: impl Fn(&dyn Store)) {
    f(&MemoryStore::new());
    let dir = TempDir::new(tag);
    let store = FsStore::open(dir.path().join("data")).unwrap();
    f(&store);
    let cached = TempDir::new(tag);
    let fs = Arc::new(FsStore::open(cached.path().join("data")).unwrap());
    f(&CacheStore::new(fs, 1 << 20));
    #[cfg(feature = "postgres")]
    f(&pg::fresh(tag));
}

fn invalid(r: Result<impl std::fmt::Debug, StoreError>) -> bool {
    matches!(r, Err(StoreError::InvalidKey(_)))
}

#[test]
fn round_trip_overwrite_delete() {
    both("rt", |s| {
        assert_eq!(s.get("a").unwrap(), None);
        s.put("a", br#"{"v":1}"#).unwrap();
        assert_eq!(s.get("a").unwrap().as_deref(), Some(&br#"{"v":1}"#[..]));
        s.put("a", b"second, longer value").unwrap();
        assert_eq!(
            s.get("a").unwrap().as_deref(),
            Some(&b"second, longer value"[..])
        );
        s.put("a", b"x").unwrap();
        assert_eq!(s.get("a").unwrap().as_deref(), Some(&b"x"[..]));
        s.put("deep/er/key:1@x", b"").unwrap();
        assert_eq!(s.get("deep/er/key:1@x").unwrap().as_deref(), Some(&b""[..]));
        s.delete("a").unwrap();
        assert_eq!(s.get("a").unwrap(), None);
        s.delete("a").unwrap();
        s.delete("never/was").unwrap();
        s.delete("deep/er/key:1@x").unwrap();
        assert_eq!(s.list_keys("", None, 100).unwrap(), Vec::<String>::new());
        // Corrupt (non-JSON, non-UTF-8) documents come back verbatim.
        s.put("bad", b"\xff\x00{not json").unwrap();
        assert_eq!(
            s.get("bad").unwrap().as_deref(),
            Some(&b"\xff\x00{not json"[..])
        );
    });
}

#[test]
fn parent_and_child_coexist() {
    both("coexist", |s| {
        s.put("x/settings", b"parent").unwrap();
        s.put("x/settings/_keyring", b"child").unwrap();
        s.put("x/settings/_keyring/deeper", b"grandchild").unwrap();
        assert_eq!(
            s.get("x/settings").unwrap().as_deref(),
            Some(&b"parent"[..])
        );
        assert_eq!(
            s.get("x/settings/_keyring").unwrap().as_deref(),
            Some(&b"child"[..])
        );
        assert_eq!(
            s.list_keys("x/", None, 10).unwrap(),
            [
                "x/settings",
                "x/settings/_keyring",
                "x/settings/_keyring/deeper"
            ]
        );
        s.delete("x/settings").unwrap();
        assert_eq!(s.get("x/settings").unwrap(), None);
        assert_eq!(
            s.get("x/settings/_keyring").unwrap().as_deref(),
            Some(&b"child"[..])
        );
        s.delete("x/settings/_keyring/deeper").unwrap();
        s.delete("x/settings/_keyring").unwrap();
        s.put("x/settings", b"again").unwrap();
        assert_eq!(s.list_keys("", None, 10).unwrap(), ["x/settings"]);
    });
}

#[test]
fn traversal_and_bad_keys_rejected_everywhere() {
    let bad = [
        "",
        "..",
        ".",
        "../etc/passwd",
        "a/../b",
        "a/..",
        "/abs",
        "/",
        "a//b",
        "a/",
        "a/./b",
        "./a",
        "a\0b",
        "a\\b",
        "..\\..\\x",
        "ünï/cödé",
        "a b",
        "a~b",
        "a.~doc",
        "a\nb",
    ];
    both("bad", |s| {
        for k in bad {
            assert!(validate_key(k).is_err(), "{k:?}");
            assert!(invalid(s.get(k)), "get {k:?}");
            assert!(invalid(s.put(k, b"x")), "put {k:?}");
            assert!(invalid(s.get_bytes(k)), "get_bytes {k:?}");
            assert!(
                invalid(s.put_bytes(k, b"x", "text/plain")),
                "put_bytes {k:?}"
            );
            assert!(invalid(s.delete(k)), "delete {k:?}");
        }
        for p in ["/", "../", "a/../", "a//", "/a/", "a\\/", "é/"] {
            assert!(invalid(s.list_keys(p, None, 10)), "list {p:?}");
        }
        assert_eq!(s.list_keys("", None, 10).unwrap(), Vec::<String>::new());
    });
}

#[test]
fn fs_traversal_never_escapes_base() {
    let dir = TempDir::new("escape");
    let base = dir.path().join("data");
    let s = FsStore::open(&base).unwrap();
    for k in ["../outside", "a/../../outside", "/tmp/outside"] {
        assert!(s.put(k, b"x").is_err());
    }
    let outside: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["data"]);
}

#[test]
fn binary_values() {
    both("bin", |s| {
        assert_eq!(s.get_bytes("img").unwrap(), None);
        let bytes: Vec<u8> = (0..=255u8).chain(b"\n\n\r\n".iter().copied()).collect();
        s.put_bytes("img", &bytes, "Image/PNG").unwrap();
        assert_eq!(
            s.get_bytes("img").unwrap(),
            Some((bytes.clone(), "Image/PNG".to_owned()))
        );
        // A key holds one kind: the document view is empty.
        assert_eq!(s.get("img").unwrap(), None);
        s.put_bytes("img", b"", "").unwrap();
        assert_eq!(s.get_bytes("img").unwrap(), Some((vec![], String::new())));
        s.put_bytes("img", b"\nstarts with newline", "text/plain")
            .unwrap();
        assert_eq!(
            s.get_bytes("img").unwrap(),
            Some((b"\nstarts with newline".to_vec(), "text/plain".to_owned()))
        );
        // Switching kinds replaces the value.
        s.put("img", b"{}").unwrap();
        assert_eq!(s.get_bytes("img").unwrap(), None);
        assert_eq!(s.get("img").unwrap().as_deref(), Some(&b"{}"[..]));
        s.put_bytes("img", b"raw", "application/x-thing").unwrap();
        assert_eq!(s.get("img").unwrap(), None);
        assert_eq!(s.list_keys("", None, 10).unwrap(), ["img"]);
        s.put_bytes("dir/child", b"c", "text/plain").unwrap();
        assert_eq!(s.list_keys("", None, 10).unwrap(), ["dir/child", "img"]);
        s.delete("img").unwrap();
        assert_eq!(s.get_bytes("img").unwrap(), None);
        assert!(matches!(
            s.put_bytes("k", b"x", "text/plain\nx"),
            Err(StoreError::InvalidMediaType(_))
        ));
        assert!(matches!(
            s.put_bytes("k", b"x", &"a".repeat(256)),
            Err(StoreError::InvalidMediaType(_))
        ));
        assert_eq!(s.get_bytes("k").unwrap(), None);
    });
}

/// Keys chosen so that directory-order and key-order differ ('-' < '.' <
/// '/' < '0' < ':' < '@' < 'A' < '_' < 'a').
const LIST_KEYS: &[&str] = &[
    "a", "a-b", "a.b", "a/x", "a/x/y", "a/x.z", "a/x-z", "a/x/y/z", "a0", "a:b", "a@b", "aA", "a_",
    "ab/c", "b", "b/c/d/e", "B", "_x", "0", "a/x/@", "a/x/_",
];

#[test]
fn list_ordering_prefixes_and_pagination() {
    both("list", |s| {
        for (i, k) in LIST_KEYS.iter().enumerate() {
            if i % 3 == 0 {
                s.put_bytes(k, k.as_bytes(), "text/plain").unwrap();
            } else {
                s.put(k, k.as_bytes()).unwrap();
            }
        }
        let all: BTreeSet<&str> = LIST_KEYS.iter().copied().collect();
        let sorted: Vec<&str> = all.iter().copied().collect();
        assert_eq!(s.list_keys("", None, 1000).unwrap(), sorted);

        let prefixes = [
            "", "a/", "a/x/", "a", "a/x", "b/", "b/c/", "zz/", "a/x/y/", "ab",
        ];
        let mut afters: Vec<&str> = vec!["", "a/", "a/x", "a/x/", "a/w", "a/x/y/zz", "a.c", "zzz"];
        afters.extend(LIST_KEYS);
        for prefix in prefixes {
            let want_all: Vec<&str> = sorted
                .iter()
                .copied()
                .filter(|k| k.starts_with(prefix))
                .collect();
            assert_eq!(
                s.list_keys(prefix, None, 1000).unwrap(),
                want_all,
                "{prefix}"
            );
            for after in &afters {
                let want: Vec<&str> = want_all.iter().copied().filter(|k| *k > *after).collect();
                for limit in [0, 1, 2, 5, 1000] {
                    let got = s.list_keys(prefix, Some(after), limit).unwrap();
                    let want: Vec<&str> = want.iter().copied().take(limit).collect();
                    assert_eq!(got, want, "prefix {prefix:?} after {after:?} limit {limit}");
                }
            }
            // Paging through with the last key as the cursor yields everything.
            let mut paged = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = s.list_keys(prefix, cursor.as_deref(), 3).unwrap();
                if page.is_empty() {
                    break;
                }
                cursor = page.last().cloned();
                paged.extend(page);
            }
            assert_eq!(paged, want_all, "paged {prefix:?}");
        }
    });
}

/// Value written by writer byte `b`: `b` repeated a length that depends on
/// `b`, so a torn read shows up as a wrong length or a mixed byte.
fn value_for(b: u8) -> Vec<u8> {
    vec![b; 4096 + usize::from(b) * 997]
}

fn check_whole(v: &[u8]) {
    assert!(!v.is_empty());
    let b = v[0];
    assert_eq!(v.len(), value_for(b).len(), "torn read (length)");
    assert!(v.iter().all(|&x| x == b), "torn read (content)");
}

fn hammer(s: Arc<dyn Store>) {
    const WRITERS: u8 = 4;
    const ROUNDS: u8 = 25;
    s.put("shared/doc", &value_for(0)).unwrap();
    s.put_bytes("shared/bin", &value_for(0), "m/0").unwrap();
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let s = Arc::clone(&s);
        handles.push(std::thread::spawn(move || {
            for r in 0..ROUNDS {
                let b = 1 + w * ROUNDS + r;
                let v = value_for(b);
                s.put("shared/doc", &v).unwrap();
                s.put(&format!("own/{w}/doc"), &v).unwrap();
                s.put_bytes("shared/bin", &v, &format!("m/{b}")).unwrap();
                if r % 5 == 0 {
                    s.delete(&format!("own/{w}/doc")).unwrap();
                }
            }
        }));
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let s = Arc::clone(&s);
        let stop = Arc::clone(&stop);
        readers.push(std::thread::spawn(move || {
            let mut reads = 0u32;
            while !stop.load(Ordering::Relaxed) || reads < 10 {
                check_whole(&s.get("shared/doc").unwrap().expect("shared doc present"));
                let (v, m) = s.get_bytes("shared/bin").unwrap().expect("bin present");
                check_whole(&v);
                assert_eq!(m, format!("m/{}", v[0]), "media type matches bytes");
                for w in 0..WRITERS {
                    if let Some(v) = s.get(&format!("own/{w}/doc")).unwrap() {
                        check_whole(&v);
                    }
                }
                let keys = s.list_keys("", None, 100).unwrap();
                assert!(keys.windows(2).all(|p| p[0] < p[1]));
                reads += 1;
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for h in readers {
        h.join().unwrap();
    }
    check_whole(&s.get("shared/doc").unwrap().unwrap());
    for w in 0..WRITERS {
        let v = s.get(&format!("own/{w}/doc")).unwrap().unwrap();
        assert_eq!(v, value_for(w * ROUNDS + ROUNDS));
    }
}

#[test]
fn concurrent_writers_never_tear_memory() {
    hammer(Arc::new(MemoryStore::new()));
}

#[cfg(feature = "postgres")]
#[test]
fn concurrent_writers_never_tear_postgres() {
    hammer(Arc::new(pg::fresh("hammer")));
}

#[test]
fn concurrent_writers_never_tear_fs() {
    let dir = TempDir::new("hammer");
    hammer(Arc::new(FsStore::open(dir.path()).unwrap()));
    // No temp files left behind.
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            assert!(!e.file_name().to_string_lossy().contains(".~tmp."));
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
}

#[test]
fn concurrent_writers_never_tear_cached_fs() {
    let dir = TempDir::new("hammer-cached");
    let fs = Arc::new(FsStore::open(dir.path()).unwrap());
    hammer(Arc::new(CacheStore::new(fs, 1 << 20)));
}

/// Rounds of concurrent writes (puts, swaps, deletes) to one key while
/// readers keep filling the cache; after each round the cache answers
/// exactly what the store holds.
#[test]
fn the_cache_agrees_with_the_store_after_racing_writes() {
    let dir = TempDir::new("cache-race");
    let fs: Arc<dyn Store> = Arc::new(FsStore::open(dir.path()).unwrap());
    let cache = Arc::new(CacheStore::new(fs.clone(), 1 << 20));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (c, stop) = (cache.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(v) = c.get_shared("k").unwrap() {
                        check_whole(&v);
                    }
                }
            })
        })
        .collect();
    for round in 0..60u8 {
        let writers: Vec<_> = (0..3u8)
            .map(|w| {
                let c = cache.clone();
                std::thread::spawn(move || {
                    let v = value_for(1 + (round % 80) * 3 + w);
                    match (round + w) % 5 {
                        0..=2 => c.put("k", &v).unwrap(),
                        3 => {
                            let cur = c.get("k").unwrap();
                            c.swap("k", cur.as_deref(), &v).unwrap();
                        }
                        _ => c.delete("k").unwrap(),
                    }
                })
            })
            .collect();
        for h in writers {
            h.join().unwrap();
        }
        assert_eq!(
            cache.get("k").unwrap(),
            fs.get("k").unwrap(),
            "cache and store disagree after round {round}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for h in readers {
        h.join().unwrap();
    }
}

#[test]
fn fs_layout_and_persistence() {
    let dir = TempDir::new("layout");
    let base = dir.path();
    {
        let s = FsStore::open(base).unwrap();
        assert_eq!(s.base(), base);
        s.put("a/b", b"{\"doc\":1}").unwrap();
        s.put("a/b/c", b"child").unwrap();
        s.put_bytes("a/img", b"\x89PNG", "image/png").unwrap();
    }
    assert_eq!(fs::read(base.join("a/b.~doc")).unwrap(), b"{\"doc\":1}");
    assert_eq!(fs::read(base.join("a/b/c.~doc")).unwrap(), b"child");
    assert_eq!(
        fs::read(base.join("a/img.~bin")).unwrap(),
        b"image/png\n\x89PNG"
    );
    assert!(base.join("a/b").is_dir());

    let s = FsStore::open(base).unwrap();
    assert_eq!(s.get("a/b").unwrap().as_deref(), Some(&b"{\"doc\":1}"[..]));
    assert_eq!(
        s.get_bytes("a/img").unwrap(),
        Some((b"\x89PNG".to_vec(), "image/png".to_owned()))
    );
    assert_eq!(
        s.list_keys("", None, 10).unwrap(),
        ["a/b", "a/b/c", "a/img"]
    );

    // Deleting the last key under a directory prunes the empty directories.
    s.delete("a/b/c").unwrap();
    assert!(!base.join("a/b").exists());
    assert!(base.join("a").is_dir());
    s.delete("a/b").unwrap();
    s.delete("a/img").unwrap();
    assert!(!base.join("a").exists());
    assert!(base.is_dir());
    // And writing there again recreates them.
    s.put("a/b/c", b"again").unwrap();
    assert_eq!(s.get("a/b/c").unwrap().as_deref(), Some(&b"again"[..]));
}

#[test]
fn fs_temp_files_invisible_and_cleaned_at_open() {
    let dir = TempDir::new("tmp");
    let base = dir.path();
    let s = FsStore::open(base).unwrap();
    s.put("a/b", b"real").unwrap();
    // Crash leftovers: a half-written temp for an existing key and one for
    // a key that was never committed.
    fs::write(base.join("a/b.~tmp.999.1"), b"half-wri").unwrap();
    fs::write(base.join("a/c.~tmp.999.2"), b"{\"never\":").unwrap();
    fs::write(base.join("top.~tmp.1.1"), b"x").unwrap();
    assert_eq!(s.get("a/b").unwrap().as_deref(), Some(&b"real"[..]));
    assert_eq!(s.get("a/c").unwrap(), None);
    assert_eq!(s.get_bytes("a/c").unwrap(), None);
    assert_eq!(s.list_keys("", None, 10).unwrap(), ["a/b"]);
    assert_eq!(s.list_keys("a/", None, 10).unwrap(), ["a/b"]);
    drop(s);

    let s = FsStore::open(base).unwrap();
    assert!(!base.join("a/b.~tmp.999.1").exists());
    assert!(!base.join("a/c.~tmp.999.2").exists());
    assert!(!base.join("top.~tmp.1.1").exists());
    assert_eq!(s.get("a/b").unwrap().as_deref(), Some(&b"real"[..]));
}

#[test]
fn fs_foreign_and_broken_entries() {
    let dir = TempDir::new("foreign");
    let base = dir.path();
    let s = FsStore::open(base).unwrap();

    // A path component that is a file: reads are "missing", writes fail cleanly.
    fs::write(base.join("f"), b"plain file").unwrap();
    assert_eq!(s.get("f/x").unwrap(), None);
    assert_eq!(s.get_bytes("f/x/y").unwrap(), None);
    s.delete("f/x").unwrap();
    let err = s.put("f/x", b"v").unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }));
    assert!(err.to_string().contains("\"f/x\""), "{err}");
    assert_eq!(s.list_keys("f/", None, 10).unwrap(), Vec::<String>::new());

    // A value file that is a directory: an I/O error naming the key.
    fs::create_dir_all(base.join("d.~doc")).unwrap();
    let err = s.get("d").unwrap_err();
    assert!(err.to_string().contains("\"d\""), "{err}");

    // Foreign names are not keys.
    fs::write(base.join("README"), b"hi").unwrap();
    fs::write(base.join("x.tmp"), b"hi").unwrap();
    fs::write(base.join("bad name.~doc"), b"hi").unwrap();
    fs::create_dir_all(base.join("sp ace")).unwrap();
    fs::write(base.join("sp ace/k.~doc"), b"hi").unwrap();
    assert_eq!(s.list_keys("", None, 10).unwrap(), Vec::<String>::new());

    // A binary file without a header line reads as octet-stream.
    fs::write(base.join("raw.~bin"), [0u8; 300]).unwrap();
    assert_eq!(
        s.get_bytes("raw").unwrap(),
        Some((vec![0u8; 300], "application/octet-stream".to_owned()))
    );

    // Both kinds present (left by a crash mid type change of an older
    // version, which wrote no log, found at open): each getter sees its
    // own, the key is listed once, and the next write resolves it.
    drop(s);
    fs::write(base.join("both.~doc"), b"{}").unwrap();
    fs::write(base.join("both.~bin"), b"text/plain\nhi").unwrap();
    let s = FsStore::open(base).unwrap();
    assert_eq!(s.list_keys("", None, 10).unwrap(), ["both", "raw"]);
    assert_eq!(s.get("both").unwrap().as_deref(), Some(&b"{}"[..]));
    s.put("both", b"[]").unwrap();
    assert!(!base.join("both.~bin").exists());
    s.delete("both").unwrap();
    assert!(!base.join("both.~doc").exists());
}

#[test]
fn fs_open_rejects_file_base() {
    let dir = TempDir::new("filebase");
    let f = dir.path().join("file");
    fs::write(&f, b"x").unwrap();
    assert!(matches!(FsStore::open(&f), Err(StoreError::Io { .. })));
}

#[test]
fn longest_keys_fit_the_filesystem() {
    let seg = "s".repeat(starfish::store::MAX_SEGMENT_LEN);
    let key = [seg.as_str(); 4].join("/");
    both("long", |s| {
        s.put(&seg, b"1").unwrap();
        s.put(&key, b"2").unwrap();
        s.put_bytes(&format!("{seg}/b"), b"3", "text/plain")
            .unwrap();
        assert_eq!(s.get(&key).unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(s.list_keys("", None, 10).unwrap().len(), 3);
        s.delete(&key).unwrap();
    });
}

#[test]
fn swap_compares_and_writes() {
    both("swap", |s| {
        assert!(
            s.swap("sw/x", None, br#"{"v":1}"#).unwrap(),
            "create when absent"
        );
        assert!(
            !s.swap("sw/x", None, br#"{"v":2}"#).unwrap(),
            "create over a document"
        );
        assert!(
            !s.swap("sw/x", Some(b"other"), b"{}").unwrap(),
            "stale expected"
        );
        assert_eq!(s.get("sw/x").unwrap().as_deref(), Some(&br#"{"v":1}"#[..]));
        assert!(s.swap("sw/x", Some(br#"{"v":1}"#), br#"{"v":3}"#).unwrap());
        assert_eq!(s.get("sw/x").unwrap().as_deref(), Some(&br#"{"v":3}"#[..]));
        // A binary value under the key counts as no document: replaced.
        s.put_bytes("sw/b", b"bin", "application/octet-stream")
            .unwrap();
        assert!(s.swap("sw/b", None, b"{}").unwrap());
        assert_eq!(s.get("sw/b").unwrap().as_deref(), Some(&b"{}"[..]));
        assert!(invalid(s.swap("../x", None, b"{}")));
    });
}

#[test]
fn concurrent_swaps_from_one_base_have_one_winner() {
    let check = |s: Arc<dyn Store>| {
        s.put("race/doc", b"base").unwrap();
        let wins: usize = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..32)
                .map(|i| {
                    let s = s.clone();
                    sc.spawn(move || {
                        s.swap("race/doc", Some(b"base"), format!("w{i}").as_bytes())
                            .unwrap() as usize
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1);
    };
    check(Arc::new(MemoryStore::new()));
    let dir = TempDir::new("race");
    check(Arc::new(FsStore::open(dir.path().join("data")).unwrap()));
    #[cfg(feature = "postgres")]
    check(Arc::new(pg::fresh("race")));
}
