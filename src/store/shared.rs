//! [`SharedDoc`]: a stored document's bytes behind one reference count, so
//! a store that keeps documents in memory ([`MemoryStore`](super::MemoryStore),
//! [`CacheStore`](super::CacheStore)) hands them out without copying
//! ([`Store::get_shared`](super::Store::get_shared)), and the HTTP layer
//! writes them to the socket from where they lie.
//!
//! Next to the bytes sits one [`Memo`] slot, filled at most once by the
//! layer above with what it learned from checking *these* bytes (the sync
//! layer: where the envelope's `data` and `hash` are, once the text is
//! known to be valid JSON). A new value is a new `SharedDoc` with an empty
//! slot, so the memo can never describe other bytes than its own: nothing
//! to invalidate. The store itself never reads or interprets it.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

/// Four offsets into a [`SharedDoc`]'s bytes, meaningful only to the code
/// that computed them (see the module docs).
pub type Memo = [u32; 4];

/// Immutable document bytes, shared (cloning is a reference-count
/// increment), with a memo slot (module docs).
#[derive(Clone)]
pub struct SharedDoc(Arc<Inner>);

struct Inner {
    bytes: Vec<u8>,
    memo: OnceLock<Option<Memo>>,
}

impl SharedDoc {
    /// Take ownership of `bytes` (no copy).
    pub fn new(bytes: Vec<u8>) -> Self {
        SharedDoc(Arc::new(Inner {
            bytes,
            memo: OnceLock::new(),
        }))
    }

    /// The document bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// The memo of these bytes: `compute` runs on the first call only
    /// (concurrent first callers wait for one of them), every later call
    /// answers what it returned.
    pub fn memo(&self, compute: impl FnOnce(&[u8]) -> Option<Memo>) -> Option<Memo> {
        *self.0.memo.get_or_init(|| compute(&self.0.bytes))
    }

    /// Whether both are the same stored value (not just equal bytes).
    pub fn ptr_eq(a: &SharedDoc, b: &SharedDoc) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// Bytes of memory this value holds (the bytes, the memo and the
    /// reference counts), for bounded caches.
    pub fn footprint(&self) -> usize {
        self.0.bytes.capacity() + std::mem::size_of::<Inner>() + 2 * std::mem::size_of::<usize>()
    }
}

impl From<Vec<u8>> for SharedDoc {
    fn from(bytes: Vec<u8>) -> Self {
        SharedDoc::new(bytes)
    }
}

impl From<&[u8]> for SharedDoc {
    fn from(bytes: &[u8]) -> Self {
        SharedDoc::new(bytes.to_vec())
    }
}

impl Deref for SharedDoc {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl AsRef<[u8]> for SharedDoc {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl PartialEq for SharedDoc {
    fn eq(&self, other: &Self) -> bool {
        SharedDoc::ptr_eq(self, other) || self.bytes() == other.bytes()
    }
}

impl Eq for SharedDoc {}

impl fmt::Debug for SharedDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedDoc({:?})", String::from_utf8_lossy(self.bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_without_copy_and_memo_computed_once() {
        let d = SharedDoc::new(b"{}".to_vec());
        let e = d.clone();
        assert!(SharedDoc::ptr_eq(&d, &e));
        assert_eq!(e.bytes().as_ptr(), d.bytes().as_ptr());
        let mut calls = 0;
        assert_eq!(
            d.memo(|b| {
                calls += 1;
                Some([b.len() as u32, 0, 0, 0])
            }),
            Some([2, 0, 0, 0])
        );
        assert_eq!(e.memo(|_| unreachable!()), Some([2, 0, 0, 0]));
        assert_eq!(calls, 1);
        // Equal bytes, another value: its own, empty memo.
        let f = SharedDoc::from(&b"{}"[..]);
        assert_eq!(f, d);
        assert!(!SharedDoc::ptr_eq(&f, &d));
        assert_eq!(f.memo(|_| None), None);
        assert!(d.footprint() >= 2);
    }
}
