//! Per-key write serialisation: each push's read → compare → write for a
//! document key runs only after the previous one for that key has finished
//! (FIFO), while different keys proceed in parallel. Entries are removed
//! when no one holds or waits for them, so memory follows the number of keys
//! being written right now, not the number of keys ever written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A map of per-key async mutexes.
#[derive(Default)]
pub struct KeyLocks {
    map: Mutex<HashMap<String, Arc<async_lock::Mutex<()>>>>,
}

/// Holds one key's lock; dropping it releases the key.
pub struct KeyGuard<'a> {
    locks: &'a KeyLocks,
    key: String,
    lock: Option<Arc<async_lock::Mutex<()>>>,
    guard: Option<async_lock::MutexGuardArc<()>>,
}

impl KeyLocks {
    pub fn new() -> Self {
        KeyLocks::default()
    }

    /// Wait for, then take, the lock of `key`.
    pub async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let lock = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.to_owned()).or_default().clone()
        };
        let guard = lock.lock_arc().await;
        KeyGuard {
            locks: self,
            key: key.to_owned(),
            lock: Some(lock),
            guard: Some(guard),
        }
    }

    /// Keys with a holder or waiter (for tests).
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.locks.map.lock().unwrap_or_else(|e| e.into_inner());
        drop(self.guard.take());
        if let Some(lock) = self.lock.take() {
            // The map's clone, this one and the guard's (already dropped):
            // nobody else waits when only the map's and ours remain.
            if Arc::strong_count(&lock) == 2 {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future;

    #[test]
    fn same_key_is_exclusive_and_entries_are_cleaned_up() {
        let locks = KeyLocks::new();
        future::block_on(async {
            let g = locks.lock("a").await;
            assert!(locks.map.lock().unwrap()["a"].try_lock().is_none());
            let other = locks.lock("b").await;
            assert_eq!(locks.len(), 2);
            drop(g);
            drop(other);
            assert!(locks.is_empty());
        });
    }
}
