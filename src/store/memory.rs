//! [`MemoryStore`]: documents and binary values in an in-process ordered
//! map. Nothing survives the process; `put` is "durable" on return only in
//! the sense that later reads see it. Used by tests and ephemeral servers.
//!
//! Documents are held as [`SharedDoc`]s: [`Store::get_shared`] and
//! [`Store::peek`] hand out the stored value itself (a reference-count
//! increment, no copy), so what the sync layer memoised about a document
//! (its checked envelope) lasts until the document is replaced.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{
    binary_size, split_prefix, validate_key, validate_media_type, SharedDoc, Store, StoreError,
    StoreUsage,
};

/// What one key holds.
#[derive(Debug, Clone)]
enum Entry {
    /// A JSON document, as written.
    Doc(SharedDoc),
    /// A binary value and its media type.
    Bytes(Vec<u8>, String),
}

/// An in-memory [`Store`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: RwLock<BTreeMap<String, Entry>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // Every mutation is a single insert/remove, so the map is consistent
    // even if a holder panicked: poisoning is ignored.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.map.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate_key(key)?;
        Ok(match self.read().get(key) {
            Some(Entry::Doc(v)) => Some(v.bytes().to_vec()),
            _ => None,
        })
    }

    fn get_shared(&self, key: &str) -> Result<Option<SharedDoc>, StoreError> {
        validate_key(key)?;
        Ok(match self.read().get(key) {
            Some(Entry::Doc(v)) => Some(v.clone()),
            _ => None,
        })
    }

    fn peek(&self, key: &str) -> Option<Result<Option<SharedDoc>, StoreError>> {
        Some(self.get_shared(key))
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        validate_key(key)?;
        let entry = Entry::Doc(SharedDoc::from(value));
        self.write().insert(key.to_owned(), entry);
        Ok(())
    }

    fn swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, StoreError> {
        validate_key(key)?;
        let mut map = self.write();
        let current = match map.get(key) {
            Some(Entry::Doc(v)) => Some(v.bytes()),
            _ => None,
        };
        if current != expected {
            return Ok(false);
        }
        map.insert(key.to_owned(), Entry::Doc(SharedDoc::from(value)));
        Ok(true)
    }

    fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        validate_key(key)?;
        Ok(match self.read().get(key) {
            Some(Entry::Bytes(b, m)) => Some((b.clone(), m.clone())),
            _ => None,
        })
    }

    fn put_bytes(&self, key: &str, bytes: &[u8], media_type: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        validate_media_type(media_type)?;
        let entry = Entry::Bytes(bytes.to_vec(), media_type.to_owned());
        self.write().insert(key.to_owned(), entry);
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        self.write().remove(key);
        Ok(())
    }

    fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        split_prefix(prefix)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lower = match start_after {
            Some(s) if s >= prefix => Bound::Excluded(s),
            _ => Bound::Included(prefix),
        };
        let map = self.read();
        Ok(map
            .range::<str, _>((lower, Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .take(limit)
            .cloned()
            .collect())
    }

    fn value_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        validate_key(key)?;
        Ok(self.read().get(key).map(Entry::size))
    }

    fn measure(&self) -> Result<StoreUsage, StoreError> {
        let map = self.read();
        Ok(StoreUsage {
            bytes: map.values().map(Entry::size).sum(),
            values: map.len() as u64,
        })
    }
}

impl Entry {
    /// The quota size ([`Store::value_size`]).
    fn size(&self) -> u64 {
        match self {
            Entry::Doc(v) => v.len() as u64,
            Entry::Bytes(b, m) => binary_size(b.len(), m),
        }
    }
}
