//! Document storage: the [`Store`] trait the sync layer writes through, the
//! storage-key rules every backend enforces, and the two backends.
//!
//! This module owns *where bytes live*, nothing else: it knows neither
//! JSON nor hashes nor concurrency control. The stored document envelope
//! (documents.md §1) is built and parsed by the layer above; a store hands
//! back exactly the bytes it was given. Read-compare-write (optimistic
//! concurrency) is serialised per key by the sync layer; in addition
//! [`Store::swap`] compares and writes atomically inside the backend, so
//! that nodes sharing one database cannot both accept a push from the same
//! base.
//!
//! | module | owns |
//! |---|---|
//! | [`memory`] | [`MemoryStore`]: an in-process map, for tests and ephemeral servers |
//! | [`fs`] | [`FsStore`]: crash-safe files under a base directory, written through a write-ahead log with group commit (layout and protocol in its docs) |
//! | `wal` | the write-ahead log's record format and the scan that reads it back |
//! | [`quota`] | [`QuotaStore`]: storage quotas and a free-disk floor over any backend |
//! | [`cache`] | [`CacheStore`]: a bounded cache of hot documents in front of a store one process owns (the filesystem store) |
//! | [`shared`] | [`SharedDoc`]: document bytes handed out without copying, with a memo of what the layer above checked |
//! | `postgres` | `PgStore`: one PostgreSQL database shared by several nodes (feature `postgres`) |
//!
//! ## Keys
//!
//! A storage key is `/`-separated segments over the charset
//! `[a-zA-Z0-9._:@-]` (documents.md §8). [`validate_key`] additionally
//! rejects empty segments (so no leading, trailing or doubled `/`), the
//! segments `.` and `..`, and over-long keys, so that after validation a
//! key can be mapped to a relative path that can never leave a base
//! directory. Every [`Store`] method validates its key first.
//!
//! ## Values
//!
//! A key holds at most one value: either a *document* (the JSON text,
//! written with [`Store::put`], read with [`Store::get`]) or a *binary
//! value* (bytes plus media type, wire.md §4.4/§5.4, written with
//! [`Store::put_bytes`], read with [`Store::get_bytes`]). Writing one kind
//! replaces a value of the other kind; reading the other kind answers
//! `None`.
//!
//! A document is read either as a copy ([`Store::get`]) or shared
//! ([`Store::get_shared`]: a [`SharedDoc`], which a store that holds its
//! documents in memory hands out without copying). The pull path reads
//! shared, so the stored bytes go from the store to the socket uncopied.
//!
//! All methods block; the server calls them from a blocking thread pool,
//! except [`Store::peek`], which answers only what it can without
//! blocking (a store in memory, a cache hit) and is called inline, and
//! [`Store::swap_deferred`], which lets a push wait for its durability
//! without a thread: it answers once the write is accepted, with a
//! [`Pending`] future the caller awaits before acknowledging.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub mod cache;
pub mod fs;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod quota;
pub mod shared;
mod wal;

pub use cache::CacheStore;
pub use fs::FsStore;
pub use memory::MemoryStore;
pub use quota::{QuotaLimits, QuotaStore, Refusal};
pub use shared::SharedDoc;

/// Longest accepted key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Longest accepted key segment, in bytes (leaves room under the usual
/// 255-byte file-name limit for [`FsStore`]'s suffixes and temp names).
pub const MAX_SEGMENT_LEN: usize = 200;
/// Longest accepted media type for [`Store::put_bytes`], in bytes.
pub const MAX_MEDIA_TYPE_LEN: usize = 255;

/// What a storage operation can fail with.
#[derive(Debug)]
pub enum StoreError {
    /// The key (or list prefix) is not a valid storage key (see [`validate_key`]).
    InvalidKey(String),
    /// The media type given to [`Store::put_bytes`] is too long or contains
    /// a control character.
    InvalidMediaType(String),
    /// The write was refused before anything was written: it would
    /// exceed a storage quota or eat into the disk's reserve (see
    /// [`QuotaStore`]). The server answers `507`.
    Full(Refusal),
    /// An I/O error while operating on `key`.
    Io {
        /// The key (or list prefix) being operated on.
        key: String,
        /// What was being done, e.g. `"read"` or `"rename"`.
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Same wording as the official filesystem store; a long key
            // (client input) is clipped so a log line stays short.
            StoreError::InvalidKey(k) => {
                const SHOWN: usize = 64;
                let head: String = k.chars().take(SHOWN).collect();
                write!(f, "Invalid storage key: {head:?}")?;
                if head.len() < k.len() {
                    write!(f, "... ({} bytes)", k.len())?;
                }
                Ok(())
            }
            StoreError::InvalidMediaType(m) => write!(f, "Invalid media type: {m:?}"),
            StoreError::Full(r) => write!(f, "write refused: {r}"),
            StoreError::Io { key, op, source } => {
                write!(f, "storage I/O error ({op}) for key {key:?}: {source}")
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl StoreError {
    pub(crate) fn io(key: &str, op: &'static str, source: io::Error) -> Self {
        StoreError::Io {
            key: key.to_owned(),
            op,
            source,
        }
    }
}

/// A key-value store of documents and binary values.
///
/// Implementations are shared between threads; every method may be called
/// concurrently. A reader concurrent with a writer sees either the old or
/// the new value in full, never a mixture.
pub trait Store: Send + Sync + 'static {
    /// The stored JSON document text (raw bytes as written), or `None` if
    /// the key holds no document.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// [`Store::get`], shared: the same bytes as a [`SharedDoc`]. A store
    /// holding its documents in memory answers the value it holds (no
    /// copy, and its memo is kept from one read to the next); the default
    /// wraps what [`Store::get`] read. A wrapper must forward this to the
    /// store it wraps, or its reads copy again.
    fn get_shared(&self, key: &str) -> Result<Option<SharedDoc>, StoreError> {
        Ok(self.get(key)?.map(SharedDoc::new))
    }

    /// [`Store::get_shared`] if it can be answered without blocking (the
    /// value is in memory), `None` if answering needs I/O: then call
    /// [`Store::get_shared`] where blocking is fine. Callers on an async
    /// executor try this first, so a cache hit costs no hand-off to the
    /// blocking pool. Default: `None`.
    fn peek(&self, key: &str) -> Option<Result<Option<SharedDoc>, StoreError>> {
        let _ = key;
        None
    }

    /// Store a document durably: returns only once it survives a crash or
    /// power loss. Replaces any value (document or binary) under `key`.
    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;

    /// Compare and swap a document: store `value` under `key` (durably,
    /// like [`Store::put`]) only if the document stored there now is
    /// exactly `expected` (byte for byte), or, with `expected` `None`, if
    /// no document is stored there (a binary value is replaced). Answers
    /// whether it wrote; on `false` nothing changed.
    ///
    /// This is what makes a push's `baseHash` check safe when several
    /// processes share one store ([`postgres`](self) does it in one SQL
    /// statement). The default reads, compares and writes: atomic only
    /// when every writer of `key` is serialised by the caller (the sync
    /// layer's per-key locks within one process); [`MemoryStore`] and
    /// [`FsStore`] override it with their own locks.
    fn swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, StoreError> {
        if self.get(key)?.as_deref() != expected {
            return Ok(false);
        }
        self.put(key, value)?;
        Ok(true)
    }

    /// [`Store::swap`], except that the write may still be on its way to
    /// durability when this returns: `Ok(None)` when the comparison failed
    /// (nothing is written), `Ok(Some(p))` when the write is accepted, and
    /// `p` resolves once it is durable and visible to reads, or failed.
    /// Await it (or [`Pending::wait`]) before acknowledging the write. A
    /// store that commits writes in batches ([`FsStore`]) lets the caller
    /// wait without holding a thread; the default swaps, then answers a
    /// finished [`Pending`].
    fn swap_deferred(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Option<Pending>, StoreError> {
        Ok(self
            .swap(key, expected, value)?
            .then(|| Pending::done(Ok(()))))
    }

    /// Run `work` while holding `key`'s write lock across every process
    /// sharing this store, for a write of several values that one
    /// [`Store::swap`] cannot make atomic (an append to a chunked log
    /// writes a chunk, then the head). A store one process owns has no
    /// other writer: the sync layer's per-key lock (held by the caller) is
    /// enough, so the default just runs `work`. Errors are the lock's own
    /// (`work` reports through what it captures); when the lock cannot be
    /// taken, `work` does not run.
    fn exclusive(&self, key: &str, work: &mut dyn FnMut()) -> Result<(), StoreError> {
        let _ = key;
        work();
        Ok(())
    }

    /// Whether this process should run the replica's scheduled syncs now.
    /// A store shared by several processes (PostgreSQL) elects one of them
    /// (taking over when it dies); a store owned by one process answers
    /// `true`. Called before each scheduled sync, from a blocking thread.
    fn schedule_lease(&self) -> bool {
        true
    }

    /// The stored binary value and its media type (as given to
    /// [`Store::put_bytes`]), or `None` if the key holds no binary value.
    fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError>;

    /// Store a binary value with its media type, durably. Replaces any
    /// value (document or binary) under `key`. The media type must be at
    /// most [`MAX_MEDIA_TYPE_LEN`] bytes with no control characters.
    fn put_bytes(&self, key: &str, bytes: &[u8], media_type: &str) -> Result<(), StoreError>;

    /// Remove whatever `key` holds. Deleting a missing key is not an error.
    fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Keys (documents and binary values) that start with `prefix`, in
    /// ascending byte order, strictly after `start_after` if given, at most
    /// `limit` of them.
    ///
    /// `prefix` is normally empty or a key followed by `/`; any string
    /// prefix is accepted as long as its part up to the last `/` is a valid
    /// key and the rest uses the key charset.
    fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// How many bytes `key`'s value counts for in storage quotas, or `None`
    /// when the key holds nothing: a document's length, a binary value's
    /// length plus its media type's length plus one (what [`FsStore`]
    /// writes to disk). Default: reads the value ([`Store::get`], then
    /// [`Store::get_bytes`]); backends override it with something cheaper
    /// (a `stat`, a map lookup).
    fn value_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        if let Some(doc) = self.get(key)? {
            return Ok(Some(doc.len() as u64));
        }
        Ok(self
            .get_bytes(key)?
            .map(|(bytes, media)| binary_size(bytes.len(), &media)))
    }

    /// Totals over everything stored (for [`QuotaStore`] at start-up).
    /// Default: every key through [`Store::list_keys`], in pages, and
    /// [`Store::value_size`]; backends override it with one scan.
    fn measure(&self) -> Result<StoreUsage, StoreError> {
        let mut usage = StoreUsage::default();
        let mut after: Option<String> = None;
        loop {
            let keys = self.list_keys("", after.as_deref(), MEASURE_PAGE)?;
            for key in &keys {
                if let Some(n) = self.value_size(key)? {
                    usage.bytes += n;
                    usage.values += 1;
                }
            }
            if keys.len() < MEASURE_PAGE {
                return Ok(usage);
            }
            after = keys.last().cloned();
        }
    }
}

/// A write accepted by [`Store::swap_deferred`]: a future of its outcome.
pub struct Pending(PendingState);

enum PendingState {
    Done(Option<Result<(), StoreError>>),
    Queued(Arc<dyn Completion>),
}

/// The outcome of a queued write, as a store reports it to a [`Pending`].
/// Each outcome is taken once.
pub trait Completion: Send + Sync {
    /// The outcome if there is one now; otherwise `cx`'s waker is woken
    /// when there is.
    fn poll_done(&self, cx: &mut Context<'_>) -> Poll<Result<(), StoreError>>;
    /// Block the calling thread until the outcome is there.
    fn wait_done(&self) -> Result<(), StoreError>;
}

impl Pending {
    /// An outcome known already.
    pub fn done(result: Result<(), StoreError>) -> Self {
        Pending(PendingState::Done(Some(result)))
    }

    /// An outcome `completion` will report.
    pub fn queued(completion: Arc<dyn Completion>) -> Self {
        Pending(PendingState::Queued(completion))
    }

    /// Block until the outcome is there (for callers off an executor).
    pub fn wait(self) -> Result<(), StoreError> {
        match self.0 {
            PendingState::Done(r) => r.unwrap_or_else(|| Err(polled_twice())),
            PendingState::Queued(c) => c.wait_done(),
        }
    }
}

fn polled_twice() -> StoreError {
    StoreError::io("", "wait", io::Error::other("write outcome taken twice"))
}

impl Future for Pending {
    type Output = Result<(), StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            PendingState::Done(r) => Poll::Ready(r.take().unwrap_or_else(|| Err(polled_twice()))),
            PendingState::Queued(c) => c.poll_done(cx),
        }
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            PendingState::Done(_) => "Pending(done)",
            PendingState::Queued(_) => "Pending(queued)",
        })
    }
}

/// Keys per [`Store::list_keys`] page of the default [`Store::measure`].
const MEASURE_PAGE: usize = 1000;

/// Totals over the stored values (documents and binary values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreUsage {
    /// Sum of the values' sizes ([`Store::value_size`]).
    pub bytes: u64,
    /// Number of keys holding a value.
    pub values: u64,
}

/// The quota size of a binary value: its bytes, its media type and the
/// newline between them (the [`FsStore`] file).
pub fn binary_size(len: usize, media_type: &str) -> u64 {
    (len + media_type.len() + 1) as u64
}

/// Whether `b` is in the key charset `[a-zA-Z0-9._:@-]` (without `/`).
pub(crate) fn is_segment_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-')
}

/// Whether `seg` is a valid single key segment.
pub(crate) fn is_valid_segment(seg: &str) -> bool {
    !seg.is_empty()
        && seg.len() <= MAX_SEGMENT_LEN
        && seg != "."
        && seg != ".."
        && seg.bytes().all(is_segment_byte)
}

/// Check a storage key: non-empty, at most [`MAX_KEY_LEN`] bytes, matching
/// `^[a-zA-Z0-9._:@\-/]+$`, with every `/`-separated segment non-empty, at
/// most [`MAX_SEGMENT_LEN`] bytes and neither `.` nor `..`.
///
/// A key that passes maps segment by segment onto a relative path that
/// stays inside any base directory.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.split('/').all(is_valid_segment) {
        return Err(StoreError::InvalidKey(key.to_owned()));
    }
    Ok(())
}

/// Check a [`Store::list_keys`] prefix and split it into the directory key
/// (everything before the last `/`, `""` for the root) and the partial last
/// segment (possibly empty).
pub(crate) fn split_prefix(prefix: &str) -> Result<(&str, &str), StoreError> {
    let bad = || StoreError::InvalidKey(prefix.to_owned());
    if prefix.len() > MAX_KEY_LEN {
        return Err(bad());
    }
    let (dir, rest) = match prefix.rfind('/') {
        Some(i) => (&prefix[..i], &prefix[i + 1..]),
        None => ("", prefix),
    };
    if !dir.is_empty() {
        validate_key(dir).map_err(|_| bad())?;
    } else if prefix.starts_with('/') {
        return Err(bad());
    }
    if !rest.bytes().all(is_segment_byte) {
        return Err(bad());
    }
    Ok((dir, rest))
}

/// Check a media type for [`Store::put_bytes`].
pub(crate) fn validate_media_type(media_type: &str) -> Result<(), StoreError> {
    if media_type.len() > MAX_MEDIA_TYPE_LEN || media_type.chars().any(char::is_control) {
        return Err(StoreError::InvalidMediaType(media_type.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_keys() {
        for k in [
            "a",
            "a/b",
            "users/u1/settings/_keyring",
            "x:y@z-w_v.q",
            "...",
            "a..b",
            ".hidden",
            "a/.b/c.",
            "0",
        ] {
            assert!(validate_key(k).is_ok(), "{k}");
        }
    }

    #[test]
    fn an_invalid_key_error_shows_a_short_key() {
        let e = StoreError::InvalidKey("k".repeat(16_000));
        let shown = e.to_string();
        assert!(shown.len() < 120, "{shown}");
        assert!(shown.ends_with("... (16000 bytes)"), "{shown}");
        assert_eq!(
            StoreError::InvalidKey("a/b".into()).to_string(),
            r#"Invalid storage key: "a/b""#
        );
    }

    #[test]
    fn invalid_keys() {
        let long_seg = "a".repeat(MAX_SEGMENT_LEN + 1);
        let long_key = ["a"; MAX_KEY_LEN / 2 + 1].join("/");
        for k in [
            "",
            "..",
            ".",
            "../a",
            "a/..",
            "a/../b",
            "a/./b",
            "./a",
            "/abs",
            "/",
            "a/",
            "a//b",
            "a\0b",
            "a\\b",
            "..\\a",
            "a b",
            "a\nb",
            "é",
            "a/ü/b",
            "a~b",
            "a.~doc",
            "%2e%2e",
            long_seg.as_str(),
            long_key.as_str(),
        ] {
            assert!(
                matches!(validate_key(k), Err(StoreError::InvalidKey(_))),
                "{k:?}"
            );
        }
        assert!(validate_key(&"a".repeat(MAX_SEGMENT_LEN)).is_ok());
    }

    #[test]
    fn prefixes() {
        assert_eq!(split_prefix("").unwrap(), ("", ""));
        assert_eq!(split_prefix("a/").unwrap(), ("a", ""));
        assert_eq!(split_prefix("a/b/").unwrap(), ("a/b", ""));
        assert_eq!(split_prefix("a/b").unwrap(), ("a", "b"));
        assert_eq!(split_prefix("ab").unwrap(), ("", "ab"));
        assert_eq!(split_prefix("a/..").unwrap(), ("a", ".."));
        for p in ["/", "/a/", "../", "a/../", "a//", "a\\", "é/", "a/b~"] {
            assert!(split_prefix(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn media_types() {
        assert!(validate_media_type("image/png").is_ok());
        assert!(validate_media_type("").is_ok());
        assert!(validate_media_type("text/plain\nx").is_err());
        assert!(validate_media_type(&"a".repeat(300)).is_err());
    }

    #[test]
    fn error_display() {
        assert_eq!(
            StoreError::InvalidKey("a/../b".into()).to_string(),
            r#"Invalid storage key: "a/../b""#
        );
        let e = StoreError::io("k/x", "read", io::Error::other("boom"));
        assert!(e.to_string().contains("\"k/x\""));
    }
}
