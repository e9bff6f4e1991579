//! A one-shot, many-waiter signal (a tiny "event"), used for shutdown and
//! "all connections drained". Waiters deregister on drop, so long-lived
//! servers do not accumulate stale wakers.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub(crate) struct Signal {
    set: AtomicBool,
    next_id: AtomicU64,
    wakers: Mutex<HashMap<u64, Waker>>,
}

impl Signal {
    /// Raise the signal (idempotent) and wake every waiter.
    pub(crate) fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = match self.wakers.lock() {
            Ok(mut w) => w.drain().map(|(_, w)| w).collect(),
            Err(p) => p.into_inner().drain().map(|(_, w)| w).collect(),
        };
        for w in wakers {
            w.wake();
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// A future that resolves once the signal is raised.
    pub(crate) fn wait(&self) -> Wait<'_> {
        Wait {
            signal: self,
            id: None,
        }
    }
}

pub(crate) struct Wait<'a> {
    signal: &'a Signal,
    id: Option<u64>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_set() {
            return Poll::Ready(());
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = self.signal.next_id.fetch_add(1, Ordering::Relaxed);
                self.id = Some(id);
                id
            }
        };
        let mut wakers = self.signal.wakers.lock().unwrap_or_else(|p| p.into_inner());
        // Re-check under the lock: `set` stores the flag before draining.
        if self.signal.is_set() {
            return Poll::Ready(());
        }
        wakers.insert(id, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            if let Ok(mut w) = self.signal.wakers.lock() {
                w.remove(&id);
            }
        }
    }
}
