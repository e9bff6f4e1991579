//! [`MeteredStore`]: a [`Store`] that times every call of the store it wraps
//! and counts its errors, by operation. Used only when metrics are on.

use super::{Metrics, StoreOp};
use crate::store::{Pending, SharedDoc, Store, StoreError, StoreUsage};
use std::sync::Arc;
use std::time::Instant;

/// Wraps a store; every call is timed into [`Metrics::store`].
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        MeteredStore { inner, metrics }
    }

    fn timed<T>(
        &self,
        op: StoreOp,
        f: impl FnOnce(&dyn Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let r = f(&*self.inner);
        self.metrics.store.record(op, start.elapsed(), r.is_err());
        r
    }
}

impl Store for MeteredStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.timed(StoreOp::Get, |s| s.get(key))
    }

    fn get_shared(&self, key: &str) -> Result<Option<SharedDoc>, StoreError> {
        self.timed(StoreOp::Get, |s| s.get_shared(key))
    }

    /// Timed as a get when it answers (a miss costs a lookup and is
    /// followed by a timed get).
    fn peek(&self, key: &str) -> Option<Result<Option<SharedDoc>, StoreError>> {
        let start = Instant::now();
        let r = self.inner.peek(key)?;
        self.metrics
            .store
            .record(StoreOp::Get, start.elapsed(), r.is_err());
        Some(r)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.timed(StoreOp::Put, |s| s.put(key, value))
    }

    // A compare-and-swap is a conditional put.
    fn schedule_lease(&self) -> bool {
        self.inner.schedule_lease()
    }

    fn exclusive(&self, key: &str, work: &mut dyn FnMut()) -> Result<(), StoreError> {
        self.inner.exclusive(key, work)
    }

    /// Timed until the write is accepted (its commit is the store's).
    fn swap_deferred(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Option<Pending>, StoreError> {
        self.timed(StoreOp::Put, |s| s.swap_deferred(key, expected, value))
    }

    fn swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, StoreError> {
        self.timed(StoreOp::Put, |s| s.swap(key, expected, value))
    }

    fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        self.timed(StoreOp::GetBytes, |s| s.get_bytes(key))
    }

    fn put_bytes(&self, key: &str, bytes: &[u8], media_type: &str) -> Result<(), StoreError> {
        self.timed(StoreOp::PutBytes, |s| s.put_bytes(key, bytes, media_type))
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.timed(StoreOp::Delete, |s| s.delete(key))
    }

    fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.timed(StoreOp::ListKeys, |s| {
            s.list_keys(prefix, start_after, limit)
        })
    }

    // Quota bookkeeping, not a store operation of its own: not timed.
    fn value_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.inner.value_size(key)
    }

    fn measure(&self) -> Result<StoreUsage, StoreError> {
        self.inner.measure()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn calls_and_errors_are_counted_by_operation() {
        let m = Arc::new(Metrics::new());
        let s = MeteredStore::new(Arc::new(MemoryStore::new()), m.clone());
        s.put("a/b", b"{}").unwrap();
        assert_eq!(s.get("a/b").unwrap().as_deref(), Some(&b"{}"[..]));
        assert!(s.get("../x").is_err());
        assert_eq!(m.store.calls(StoreOp::Put), 1);
        assert_eq!(m.store.calls(StoreOp::Get), 2);
        let text = m.render();
        assert!(text.contains("starfish_store_operation_errors_total{op=\"get\"} 1\n"));
        assert!(text.contains("starfish_store_operation_errors_total{op=\"put\"} 0\n"));
        assert!(text.contains("starfish_store_operation_duration_seconds_count{op=\"get\"} 2\n"));
    }
}
