//! The replica as a server plugin: the write-mode gates and triggers on the
//! standalone pull and push routes (replica.md §4).

use super::config::WriteMode;
use super::manager::ReplicaManager;
use crate::http::service::{Plugin, PluginDecision};
use crate::http::BoxFuture;
use std::sync::Arc;

/// `createReplicaServerPlugin`'s hooks over a manager.
pub struct ReplicaPlugin {
    manager: Arc<ReplicaManager>,
}

impl ReplicaPlugin {
    pub fn new(manager: Arc<ReplicaManager>) -> Self {
        ReplicaPlugin { manager }
    }
}

impl Plugin for ReplicaPlugin {
    fn before_pull<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, PluginDecision> {
        Box::pin(async move {
            let Some(remote) = self.manager.remote(collection) else {
                return PluginDecision::Proceed;
            };
            if remote.write_mode == WriteMode::PushOnly {
                return PluginDecision::Reject(
                    405,
                    "This collection is write-only on this server".into(),
                );
            }
            if remote.on_pull {
                self.manager.on_pull(collection).await;
            }
            PluginDecision::Proceed
        })
    }

    fn intercept_push<'a>(
        &'a self,
        collection: &'a str,
        raw_body: &'a [u8],
    ) -> BoxFuture<'a, PluginDecision> {
        Box::pin(async move {
            let Some(remote) = self.manager.remote(collection) else {
                return PluginDecision::Proceed;
            };
            match remote.write_mode {
                WriteMode::PullOnly => PluginDecision::Reject(
                    405,
                    "This collection is read-only on this server".into(),
                ),
                WriteMode::PushThrough => {
                    let (status, body) = self.manager.proxy_push(collection, raw_body).await;
                    PluginDecision::Respond(status, body)
                }
                WriteMode::Bidirectional | WriteMode::PushOnly => PluginDecision::Proceed,
            }
        })
    }
}
