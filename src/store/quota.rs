//! [`QuotaStore`]: storage quotas over any [`Store`], and a floor of free
//! disk space. A write that would break a limit is refused *before* the
//! store below sees it, with [`StoreError::Full`] (the server answers
//! `507 {"error":"Insufficient storage"}`), so a refused push changes
//! nothing and leaves no partial file.
//!
//! ## The limits ([`QuotaLimits`], all off by default)
//!
//! * `max_bytes` (`--max-store-bytes`): the sum of the values' sizes
//!   ([`Store::value_size`]: a document's length; a binary value's length
//!   plus its media type plus one) may not grow above it.
//! * `max_documents` (`--max-documents`): the number of keys holding a value
//!   may not grow above it.
//! * `min_free_bytes` (`--min-free-bytes`): a write is refused when the data
//!   directory's filesystem would have less than this left after it (the
//!   value is written to a temp file beside the old one, so its whole size
//!   is needed, plus whatever concurrent writes are writing).
//!
//! A write that does not grow what it limits always passes: replacing a
//! document by a smaller one, deleting, and (after a restart with a lower
//! quota) shrinking back under it. Reads are never refused.
//!
//! ## Accounting
//!
//! The totals are measured once, when the wrapper is built
//! ([`Store::measure`]: one scan of the filesystem store), then kept in
//! memory: a write costs one [`Store::value_size`] call (a `stat` for the
//! filesystem store) and a few additions under a mutex, never a rescan.
//! A write *reserves* its growth before it reaches the store and gives back
//! any shrinking only after the store confirmed it, so the totals never
//! undercount: two concurrent writes that each fit but together do not
//! cannot both pass. Writes to one key are serialised here (by a fixed set
//! of key-hashed locks), so the size read before a write is the size the
//! write replaces. When the store below fails, the totals are corrected
//! from what the key holds afterwards.
//!
//! The totals are this process's view: a store shared by several processes
//! (another server on the same directory or database) needs the totals
//! kept by the store itself.

use std::fmt;
use std::hash::BuildHasher;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{binary_size, validate_key, Pending, SharedDoc, Store, StoreError, StoreUsage};

/// Key-hashed locks serialising the writes to one key.
const STRIPES: usize = 64;

/// What a [`QuotaStore`] enforces (`None`: no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaLimits {
    /// `--max-store-bytes`: bound on the sum of the values' sizes.
    pub max_bytes: Option<u64>,
    /// `--max-documents`: bound on the number of keys holding a value.
    pub max_documents: Option<u64>,
    /// `--min-free-bytes`: free space the data directory's filesystem keeps.
    pub min_free_bytes: Option<u64>,
}

impl QuotaLimits {
    /// Whether no limit is set (then no wrapper is needed).
    pub fn is_off(&self) -> bool {
        self.max_bytes.is_none() && self.max_documents.is_none() && self.min_free_bytes.is_none()
    }

    /// Whether the totals must be kept (a byte or document quota is set).
    fn counts(&self) -> bool {
        self.max_bytes.is_some() || self.max_documents.is_some()
    }
}

/// Why a write was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The values' sizes would exceed `--max-store-bytes`.
    Bytes {
        /// Bytes stored (and reserved by writes in flight).
        used: u64,
        /// What the write would add.
        adding: u64,
        max: u64,
    },
    /// A new key would exceed `--max-documents`.
    Documents { max: u64 },
    /// The filesystem would keep less than `--min-free-bytes`.
    Disk {
        /// Free bytes the filesystem reports to us.
        available: u64,
        /// What this write and the ones in flight need.
        writing: u64,
        min_free: u64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Bytes { used, adding, max } => write!(
                f,
                "store quota: {used} bytes stored + {adding} would exceed --max-store-bytes {max}"
            ),
            Refusal::Documents { max } => {
                write!(f, "store quota: --max-documents {max} reached")
            }
            Refusal::Disk {
                available,
                writing,
                min_free,
            } => write!(
                f,
                "disk space: {available} bytes free, writing {writing} would leave less than \
                 --min-free-bytes {min_free}"
            ),
        }
    }
}

/// Free bytes of the data directory's filesystem, asked before each write
/// (see [`free_space_of`]).
pub type FreeSpace = Box<dyn Fn() -> io::Result<u64> + Send + Sync>;

/// A [`Store`] that enforces [`QuotaLimits`] on the store it wraps (see the
/// module docs).
pub struct QuotaStore {
    inner: Arc<dyn Store>,
    limits: QuotaLimits,
    /// Stored plus reserved (kept only when [`QuotaLimits::counts`]).
    usage: Mutex<StoreUsage>,
    /// Bytes being written right now (for the free-space check).
    writing: AtomicU64,
    free_space: Option<FreeSpace>,
    stripes: Box<[Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl QuotaStore {
    /// Wrap `inner`. With a byte or document quota the totals are measured
    /// now ([`Store::measure`]). `free_space` reports the data directory's
    /// free bytes; without it `min_free_bytes` is not enforced.
    pub fn new(
        inner: Arc<dyn Store>,
        limits: QuotaLimits,
        free_space: Option<FreeSpace>,
    ) -> Result<Self, StoreError> {
        let usage = if limits.counts() {
            inner.measure()?
        } else {
            StoreUsage::default()
        };
        Ok(QuotaStore {
            inner,
            limits,
            usage: Mutex::new(usage),
            writing: AtomicU64::new(0),
            free_space,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: Default::default(),
        })
    }

    /// The limits enforced.
    pub fn limits(&self) -> QuotaLimits {
        self.limits
    }

    /// Bytes and values stored, plus what writes in flight have reserved
    /// (all zero when no byte or document quota is set).
    pub fn usage(&self) -> StoreUsage {
        *lock(&self.usage)
    }

    /// The write lock of `key`'s stripe.
    fn key_lock(&self, key: &str) -> MutexGuard<'_, ()> {
        lock(&self.stripes[(self.hasher.hash_one(key) % STRIPES as u64) as usize])
    }

    /// Refuse a write of `len` bytes that would leave the filesystem with
    /// less than `min_free_bytes`; otherwise count it as in flight until
    /// the returned guard drops. A failing probe lets the write through
    /// (the write itself then reports a full disk).
    fn check_disk(&self, len: u64) -> Result<Writing<'_>, Refusal> {
        let writing = self.writing.fetch_add(len, Ordering::SeqCst) + len;
        let guard = Writing {
            counter: &self.writing,
            len,
        };
        if let (Some(min_free), Some(probe)) = (self.limits.min_free_bytes, &self.free_space) {
            if let Ok(available) = probe() {
                if available < min_free.saturating_add(writing) {
                    return Err(Refusal::Disk {
                        available,
                        writing,
                        min_free,
                    });
                }
            }
        }
        Ok(guard)
    }

    /// Write `len` bytes under `key` with `write`, within the limits.
    fn write(
        &self,
        key: &str,
        len: u64,
        write: impl FnOnce(&dyn Store) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        validate_key(key)?;
        let _key = self.key_lock(key);
        let _writing = self.check_disk(len).map_err(StoreError::Full)?;
        if !self.limits.counts() {
            return write(&*self.inner);
        }
        let old = self.inner.value_size(key)?;
        let grow = len.saturating_sub(old.unwrap_or(0));
        let new_value = u64::from(old.is_none());
        {
            let mut u = lock(&self.usage);
            if let Some(max) = self.limits.max_documents {
                if new_value > 0 && u.values >= max {
                    return Err(StoreError::Full(Refusal::Documents { max }));
                }
            }
            if let Some(max) = self.limits.max_bytes {
                if grow > 0 && u.bytes.saturating_add(grow) > max {
                    return Err(StoreError::Full(Refusal::Bytes {
                        used: u.bytes,
                        adding: grow,
                        max,
                    }));
                }
            }
            u.bytes += grow;
            u.values += new_value;
        }
        let result = write(&*self.inner);
        let mut after = Some(len);
        if result.is_err() {
            // Whatever the failure left: usually the old value.
            after = self.inner.value_size(key).unwrap_or(old);
        }
        let mut u = lock(&self.usage);
        u.bytes -= grow;
        u.values -= new_value;
        apply(&mut u, old, after);
        result
    }
}

/// Replace a value of size `old` by one of size `new` in the totals.
fn apply(u: &mut StoreUsage, old: Option<u64>, new: Option<u64>) {
    u.bytes = (u.bytes + new.unwrap_or(0)).saturating_sub(old.unwrap_or(0));
    u.values = (u.values + u64::from(new.is_some())).saturating_sub(u64::from(old.is_some()));
}

/// Counts a write as in flight for the free-space check until dropped.
struct Writing<'a> {
    counter: &'a AtomicU64,
    len: u64,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.len, Ordering::SeqCst);
    }
}

impl Store for QuotaStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn get_shared(&self, key: &str) -> Result<Option<SharedDoc>, StoreError> {
        self.inner.get_shared(key)
    }

    fn peek(&self, key: &str) -> Option<Result<Option<SharedDoc>, StoreError>> {
        self.inner.peek(key)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write(key, value.len() as u64, |s| s.put(key, value))
    }

    fn schedule_lease(&self) -> bool {
        self.inner.schedule_lease()
    }

    fn exclusive(&self, key: &str, work: &mut dyn FnMut()) -> Result<(), StoreError> {
        self.inner.exclusive(key, work)
    }

    /// Counted when the write is accepted: a queued write that fails to
    /// commit afterwards stays counted until the next full measure.
    fn swap_deferred(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Option<Pending>, StoreError> {
        let mut pending = None;
        self.write(key, value.len() as u64, |s| {
            pending = s.swap_deferred(key, expected, value)?;
            Ok(())
        })?;
        if pending.is_none() && self.limits.counts() {
            // Counted as written; put the real size back.
            let _key = self.key_lock(key);
            let now = self.inner.value_size(key)?;
            apply(&mut lock(&self.usage), Some(value.len() as u64), now);
        }
        Ok(pending)
    }

    fn swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, StoreError> {
        let mut swapped = false;
        self.write(key, value.len() as u64, |s| {
            swapped = s.swap(key, expected, value)?;
            Ok(())
        })?;
        if !swapped && self.limits.counts() {
            // Counted as written; put the real size back.
            let _key = self.key_lock(key);
            let now = self.inner.value_size(key)?;
            apply(&mut lock(&self.usage), Some(value.len() as u64), now);
        }
        Ok(swapped)
    }

    fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        self.inner.get_bytes(key)
    }

    fn put_bytes(&self, key: &str, bytes: &[u8], media_type: &str) -> Result<(), StoreError> {
        let len = binary_size(bytes.len(), media_type);
        self.write(key, len, |s| s.put_bytes(key, bytes, media_type))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        if !self.limits.counts() {
            return self.inner.delete(key);
        }
        validate_key(key)?;
        let _key = self.key_lock(key);
        let old = self.inner.value_size(key)?;
        let result = self.inner.delete(key);
        let after = match result {
            Ok(()) => None,
            Err(_) => self.inner.value_size(key).unwrap_or(old),
        };
        apply(&mut lock(&self.usage), old, after);
        result
    }

    fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.list_keys(prefix, start_after, limit)
    }

    fn value_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.inner.value_size(key)
    }

    fn measure(&self) -> Result<StoreUsage, StoreError> {
        self.inner.measure()
    }
}

/// Free and total bytes of a filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes an unprivileged writer may still use (`f_bavail`).
    pub available: u64,
    /// Size of the filesystem.
    pub total: u64,
}

/// The space of the filesystem holding `path` (`statvfs`).
#[cfg(unix)]
pub fn disk_space(path: &Path) -> io::Result<DiskSpace> {
    let s = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(DiskSpace {
        available: s.f_bavail.saturating_mul(s.f_frsize),
        total: s.f_blocks.saturating_mul(s.f_frsize),
    })
}

/// Not available off Unix: `--min-free-bytes` is then not enforced.
#[cfg(not(unix))]
pub fn disk_space(_path: &Path) -> io::Result<DiskSpace> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "free disk space is only known on Unix",
    ))
}

/// A [`FreeSpace`] probe of the filesystem holding `dir`.
pub fn free_space_of(dir: &Path) -> FreeSpace {
    let dir = dir.to_path_buf();
    Box::new(move || disk_space(&dir).map(|d| d.available))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FsStore, MemoryStore};

    fn limits(bytes: Option<u64>, docs: Option<u64>) -> QuotaLimits {
        QuotaLimits {
            max_bytes: bytes,
            max_documents: docs,
            min_free_bytes: None,
        }
    }

    fn full(r: Result<(), StoreError>) -> Refusal {
        match r {
            Err(StoreError::Full(r)) => r,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn byte_quota_counts_growth_only() {
        let q =
            QuotaStore::new(Arc::new(MemoryStore::new()), limits(Some(10), None), None).unwrap();
        q.put("a", b"12345").unwrap();
        q.put("b", b"1234").unwrap();
        assert_eq!(
            q.usage(),
            StoreUsage {
                bytes: 9,
                values: 2
            }
        );
        assert_eq!(
            full(q.put("c", b"12")),
            Refusal::Bytes {
                used: 9,
                adding: 2,
                max: 10
            }
        );
        assert_eq!(q.get("c").unwrap(), None, "a refused write changes nothing");
        // Replacing "a" by one more byte fits exactly; by two does not.
        assert!(q.put("a", b"1234567").is_err());
        q.put("a", b"123456").unwrap();
        assert_eq!(q.usage().bytes, 10);
        // Shrinking always passes and frees quota.
        q.put("a", b"1").unwrap();
        q.put("c", b"12345").unwrap();
        assert_eq!(
            q.usage(),
            StoreUsage {
                bytes: 10,
                values: 3
            }
        );
        // A binary value counts its media type and a newline.
        assert!(q.put_bytes("d", b"", "x").is_err());
        q.delete("b").unwrap();
        q.put_bytes("d", b"", "x").unwrap();
        assert_eq!(q.value_size("d").unwrap(), Some(2));
        assert_eq!(
            q.usage(),
            StoreUsage {
                bytes: 8,
                values: 3
            }
        );
        // A type change replaces the other kind's value.
        q.put("d", b"123").unwrap();
        assert_eq!(
            q.usage(),
            StoreUsage {
                bytes: 9,
                values: 3
            }
        );
    }

    #[test]
    fn document_quota_counts_new_keys_only() {
        let q = QuotaStore::new(Arc::new(MemoryStore::new()), limits(None, Some(2)), None).unwrap();
        q.put("a", b"{}").unwrap();
        q.put_bytes("b", b"x", "text/plain").unwrap();
        assert_eq!(full(q.put("c", b"{}")), Refusal::Documents { max: 2 });
        q.put("a", b"{\"bigger\":true}").unwrap();
        q.put_bytes("b", b"xyz", "text/plain").unwrap();
        q.delete("missing").unwrap();
        assert_eq!(q.usage().values, 2);
        q.delete("a").unwrap();
        q.put("c", b"{}").unwrap();
        assert_eq!(q.usage().values, 2);
        assert_eq!(q.get("c").unwrap().as_deref(), Some(&b"{}"[..]));
    }

    #[test]
    fn totals_are_measured_at_start_and_a_lower_quota_still_allows_shrinking() {
        let inner = Arc::new(MemoryStore::new());
        inner.put("a/x", b"1234567890").unwrap();
        inner.put_bytes("a/y", b"12", "ab").unwrap();
        let q = QuotaStore::new(inner, limits(Some(8), Some(1)), None).unwrap();
        assert_eq!(
            q.usage(),
            StoreUsage {
                bytes: 15,
                values: 2
            }
        );
        assert!(q.put("a/z", b"").is_err());
        assert!(q.put("a/x", b"12345678901").is_err());
        q.put("a/x", b"123").unwrap();
        assert_eq!(q.usage().bytes, 8);
    }

    #[test]
    fn the_default_measure_and_value_size_agree_with_the_overrides() {
        /// A store that only has the required methods.
        struct Plain(MemoryStore);
        impl Store for Plain {
            fn get(&self, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
                self.0.get(k)
            }
            fn put(&self, k: &str, v: &[u8]) -> Result<(), StoreError> {
                self.0.put(k, v)
            }
            fn get_bytes(&self, k: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
                self.0.get_bytes(k)
            }
            fn put_bytes(&self, k: &str, b: &[u8], m: &str) -> Result<(), StoreError> {
                self.0.put_bytes(k, b, m)
            }
            fn delete(&self, k: &str) -> Result<(), StoreError> {
                self.0.delete(k)
            }
            fn list_keys(
                &self,
                p: &str,
                a: Option<&str>,
                l: usize,
            ) -> Result<Vec<String>, StoreError> {
                self.0.list_keys(p, a, l)
            }
        }
        let dir = std::env::temp_dir().join(format!("starfish-quota-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let fs = FsStore::open(&dir).unwrap();
        let plain = Plain(MemoryStore::new());
        let mem = MemoryStore::new();
        let stores: [&dyn Store; 3] = [&fs, &plain, &mem];
        for s in stores {
            for i in 0..1100 {
                s.put(&format!("k/{}/d{i}", i % 7), &vec![b'x'; i % 13])
                    .unwrap();
            }
            s.put_bytes("k/bin", b"abc", "text/plain").unwrap();
            s.put("k/bin/child", b"{}").unwrap();
        }
        let want = StoreUsage {
            bytes: (0..1100u64).map(|i| i % 13).sum::<u64>() + 3 + 10 + 1 + 2,
            values: 1102,
        };
        for s in stores {
            assert_eq!(s.measure().unwrap(), want);
            assert_eq!(s.value_size("k/bin").unwrap(), Some(14));
            assert_eq!(s.value_size("k/3/d3").unwrap(), Some(3));
            assert_eq!(s.value_size("k/none").unwrap(), None);
            assert_eq!(s.value_size("k").unwrap(), None);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store whose writes take a while, so concurrent writes overlap.
    struct Slow(MemoryStore);

    impl Store for Slow {
        fn get(&self, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.0.get(k)
        }
        fn put(&self, k: &str, v: &[u8]) -> Result<(), StoreError> {
            std::thread::sleep(std::time::Duration::from_micros(200));
            self.0.put(k, v)
        }
        fn get_bytes(&self, k: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
            self.0.get_bytes(k)
        }
        fn put_bytes(&self, k: &str, b: &[u8], m: &str) -> Result<(), StoreError> {
            self.0.put_bytes(k, b, m)
        }
        fn delete(&self, k: &str) -> Result<(), StoreError> {
            std::thread::sleep(std::time::Duration::from_micros(200));
            self.0.delete(k)
        }
        fn list_keys(&self, p: &str, a: Option<&str>, l: usize) -> Result<Vec<String>, StoreError> {
            self.0.list_keys(p, a, l)
        }
        fn value_size(&self, k: &str) -> Result<Option<u64>, StoreError> {
            self.0.value_size(k)
        }
        fn measure(&self) -> Result<StoreUsage, StoreError> {
            self.0.measure()
        }
    }

    #[test]
    fn concurrent_writes_never_exceed_the_quota() {
        const MAX: u64 = 1000;
        for docs in [false, true] {
            let l = if docs {
                limits(None, Some(37))
            } else {
                limits(Some(MAX), None)
            };
            let q = Arc::new(QuotaStore::new(Arc::new(Slow(MemoryStore::new())), l, None).unwrap());
            let threads: Vec<_> = (0..8)
                .map(|t| {
                    let q = q.clone();
                    std::thread::spawn(move || {
                        let (mut ok, mut refused) = (0u64, 0u64);
                        for i in 0..200 {
                            // New keys, and rewrites of shared keys that grow
                            // and shrink.
                            let key = if i % 3 == 0 {
                                format!("shared/{}", i % 5)
                            } else {
                                format!("t{t}/{i}")
                            };
                            let len = 1 + (i * 7 + t) % 40;
                            match q.put(&key, &vec![b'x'; len]) {
                                Ok(()) => ok += 1,
                                Err(StoreError::Full(_)) => refused += 1,
                                Err(e) => panic!("{e}"),
                            }
                            if i % 11 == 0 {
                                q.delete(&format!("t{t}/{}", i / 2)).unwrap();
                            }
                            let u = q.usage();
                            assert!(u.bytes <= MAX || docs, "{u:?}");
                            assert!(u.values <= 37 || !docs, "{u:?}");
                        }
                        (ok, refused)
                    })
                })
                .collect();
            let (ok, refused) = threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
            assert!(
                ok > 0 && refused > 0,
                "the limit was reached: {ok} {refused}"
            );
            // The kept totals are exactly what is stored.
            let measured = q.measure().unwrap();
            assert_eq!(q.usage(), measured);
            if docs {
                assert!(measured.values <= 37, "{measured:?}");
            } else {
                assert!(measured.bytes <= MAX, "{measured:?}");
            }
        }
    }

    #[test]
    fn the_disk_floor_counts_the_write_and_those_in_flight() {
        let free = Arc::new(AtomicU64::new(1000));
        let probe = {
            let free = free.clone();
            Box::new(move || Ok(free.load(Ordering::SeqCst))) as FreeSpace
        };
        let l = QuotaLimits {
            min_free_bytes: Some(900),
            ..QuotaLimits::default()
        };
        let q = QuotaStore::new(Arc::new(MemoryStore::new()), l, Some(probe)).unwrap();
        q.put("a", &[b'x'; 100]).unwrap();
        assert_eq!(
            full(q.put("a", &[b'x'; 101])),
            Refusal::Disk {
                available: 1000,
                writing: 101,
                min_free: 900
            }
        );
        let _other = q.check_disk(50).unwrap();
        assert!(q.put("b", &[b'x'; 51]).is_err(), "in-flight bytes count");
        q.put("b", &[b'x'; 50]).unwrap();
        free.store(10, Ordering::SeqCst);
        assert!(q.put("c", b"").is_err());
        assert!(q.delete("a").is_ok(), "deletes pass");
        assert_eq!(q.get("b").unwrap().map(|v| v.len()), Some(50), "reads pass");
    }

    #[test]
    fn a_failed_write_is_accounted_from_what_the_key_holds() {
        let q = QuotaStore::new(
            Arc::new(MemoryStore::new()),
            limits(Some(100), Some(10)),
            None,
        )
        .unwrap();
        q.put("a", b"123").unwrap();
        // Invalid media type: the store below refuses, nothing changes.
        assert!(q.put_bytes("a", b"x", "bad\n").is_err());
        assert!(q.put("../x", b"1").is_err());
        assert_eq!(
            q.usage(),
            StoreUsage {
                bytes: 3,
                values: 1
            }
        );
    }

    #[test]
    fn disk_space_of_the_temp_dir() {
        let d = disk_space(&std::env::temp_dir()).unwrap();
        assert!(d.total > 0 && d.available <= d.total, "{d:?}");
        assert!(disk_space(Path::new("/no/such/dir")).is_err());
    }
}
