//! `SyncManager`: one document kept in sync with the server, with the
//! official conflict loop (client.md §5).
//!
//! `pull()` fetches the document and remembers its hash; `push(data)` sends
//! it with that hash as `baseHash`; on a 409 it pulls again, resolves
//! (`deepMerge(local, remote)`, server wins on shared keys, by default),
//! waits `min(100 · 2^attempt, 2000) + rand(0..100)` ms and retries, at most
//! `max_retries` times.

use super::{Client, ClientError, PullOptions, PullResult, PushResult};
use crate::proto::json::{Object, Value};
use crate::proto::merge::deep_merge;
use std::time::Duration;

/// A conflict resolver: `(local pending data, remote data) → data to push`.
pub type Resolver = Box<dyn Fn(&Object, &Object) -> Object + Send + Sync>;

/// The official default resolver: `deepMerge(local, remote)`, remote wins.
pub fn default_resolver(local: &Object, remote: &Object) -> Object {
    deep_merge(local, remote)
}

/// One document, pulled and pushed through a [`Client`].
pub struct SyncManager {
    client: Client,
    pull_path: String,
    push_path: String,
    resolver: Resolver,
    max_retries: u32,
    backoff_base: Duration,
    backoff_cap: Duration,
    last_hash: Option<String>,
    last_checkpoint: f64,
    local: Object,
}

impl std::fmt::Debug for SyncManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncManager")
            .field("pull_path", &self.pull_path)
            .field("push_path", &self.push_path)
            .field("last_hash", &self.last_hash)
            .finish_non_exhaustive()
    }
}

fn data_object(r: &PullResult) -> Result<Object, ClientError> {
    r.data
        .as_object()
        .cloned()
        .ok_or_else(|| ClientError::Protocol("pulled data is not an object".into()))
}

impl SyncManager {
    /// A manager for the document at `pull_path` / `push_path` (as given to
    /// [`Client::pull`] and [`Client::push`]), with the default resolver and
    /// 3 retries.
    pub fn new(client: Client, pull_path: &str, push_path: &str) -> SyncManager {
        SyncManager {
            client,
            pull_path: pull_path.to_owned(),
            push_path: push_path.to_owned(),
            resolver: Box::new(default_resolver),
            max_retries: 3,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(2000),
            last_hash: None,
            last_checkpoint: 0.0,
            local: Object::new(),
        }
    }

    /// Use a custom conflict resolver.
    pub fn with_resolver(
        mut self,
        resolver: impl Fn(&Object, &Object) -> Object + Send + Sync + 'static,
    ) -> SyncManager {
        self.resolver = Box::new(resolver);
        self
    }

    /// Retries after a conflict (default 3, so up to 4 sends).
    pub fn with_max_retries(mut self, n: u32) -> SyncManager {
        self.max_retries = n;
        self
    }

    /// Backoff base and cap (defaults 100 ms and 2 s, as the official).
    pub fn with_backoff(mut self, base: Duration, cap: Duration) -> SyncManager {
        self.backoff_base = base;
        self.backoff_cap = cap;
        self
    }

    /// The local copy of the document.
    pub fn data(&self) -> &Object {
        &self.local
    }

    /// The hash the next push is based on (`None` before any pull or push:
    /// the next push is create-only).
    pub fn last_hash(&self) -> Option<&str> {
        self.last_hash.as_deref()
    }

    /// The last server timestamp seen.
    pub fn last_checkpoint(&self) -> f64 {
        self.last_checkpoint
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Pull the document. After the first pull, the server copy is merged
    /// into the local copy with the resolver (as the official does).
    pub async fn pull(&mut self) -> Result<&Object, ClientError> {
        let opts = PullOptions {
            checkpoint: self.last_checkpoint,
            ..PullOptions::default()
        };
        let r = self
            .client
            .pull_with(&self.pull_path, &opts)
            .await?
            .ok_or_else(|| ClientError::Protocol("unexpected 304".into()))?;
        let incoming = data_object(&r)?;
        self.local = if self.last_checkpoint > 0.0 {
            (self.resolver)(&self.local, &incoming)
        } else {
            incoming
        };
        self.last_hash = Some(r.hash);
        self.last_checkpoint = r.timestamp;
        Ok(&self.local)
    }

    /// Push `data`, resolving and retrying on conflicts.
    pub async fn push(&mut self, data: Object) -> Result<PushResult, ClientError> {
        let mut pending = data;
        let mut attempt: u32 = 0;
        loop {
            let sent = Value::Object(pending.clone());
            match self
                .client
                .push(&self.push_path, &sent, self.last_hash.as_deref())
                .await
            {
                Ok(r) => {
                    self.last_hash = Some(r.hash.clone());
                    self.last_checkpoint = r.timestamp;
                    self.local = pending;
                    return Ok(r);
                }
                Err(e @ ClientError::Conflict { .. }) => {
                    if attempt >= self.max_retries {
                        return Err(e);
                    }
                    let remote = self.client.pull(&self.pull_path).await?;
                    let remote_data = data_object(&remote)?;
                    self.last_hash = Some(remote.hash);
                    self.last_checkpoint = remote.timestamp;
                    pending = (self.resolver)(&pending, &remote_data);
                    async_io::Timer::after(self.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `update(f)`: pull, then push `f(local)`.
    pub async fn update(
        &mut self,
        f: impl FnOnce(&Object) -> Object,
    ) -> Result<PushResult, ClientError> {
        self.pull().await?;
        let next = f(&self.local);
        self.push(next).await
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
            .min(self.backoff_cap);
        let mut b = [0u8; 1];
        let jitter = if self.backoff_base.is_zero() || getrandom::fill(&mut b).is_err() {
            0
        } else {
            u64::from(b[0]) * 100 / 256
        };
        exp + Duration::from_millis(jitter)
    }
}
