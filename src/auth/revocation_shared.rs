//! Revocations shared by several nodes (issue 14): every node of one
//! PostgreSQL store sees every revocation list any of them holds.
//!
//! Each node keeps its own [`RevocationStore`] (what the cap resolver
//! consults, two hash probes per request). [`share`] runs beside the
//! server: every [`SHARE_EVERY`] it publishes the lists this node holds
//! that the ledger has not seen at that generation (from its
//! `--revocations` file), then takes every list the ledger holds at a
//! higher generation than this node. A list taken from the ledger goes
//! through [`RevocationStore::accept`] like one from the file: its
//! signature must verify against its issuer and its generation must rise,
//! so a row written into the database by hand cannot revoke less, or
//! revoke in another issuer's name. A revocation made on one node is in
//! force on every node within one interval (plus the file poll's).

use super::nonce::LedgerFuture;
use super::revocation::{Accepted, RevocationStore};
use crate::proto::json;
use crate::proto::revocation::RevocationList;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often a node publishes and takes revocation lists.
pub const SHARE_EVERY: Duration = Duration::from_secs(1);

/// Where the nodes' revocation lists meet (the PostgreSQL store's
/// `starfish_revocations` table: one row per issuer, the highest
/// generation seen).
pub trait RevocationLedger: Send + Sync {
    /// Record `list` (canonical JSON) as `iss`'s list unless the ledger
    /// holds one of `generation` or higher.
    fn publish<'a>(&'a self, iss: &'a str, generation: f64, list: &'a str) -> LedgerFuture<'a, ()>;

    /// The lists (JSON text) of issuers missing from `known` or held there
    /// at a higher generation than `known` says.
    fn newer_than<'a>(&'a self, known: &'a [(String, f64)]) -> LedgerFuture<'a, Vec<String>>;
}

/// One publish-then-take round; the number of lists taken.
pub async fn share_once(
    store: &RevocationStore,
    ledger: &dyn RevocationLedger,
    published: &mut HashMap<String, f64>,
) -> Result<usize, super::nonce::LedgerError> {
    let held = store.held();
    for (iss, generation, canonical) in &held {
        if published.get(iss).is_some_and(|g| g >= generation) {
            continue;
        }
        ledger.publish(iss, *generation, canonical).await?;
        published.insert(iss.clone(), *generation);
    }
    let known: Vec<(String, f64)> = held.into_iter().map(|(i, g, _)| (i, g)).collect();
    let mut taken = 0;
    for text in ledger.newer_than(&known).await? {
        let list = match json::parse(text.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|v| RevocationList::from_value(v).map_err(|e| e.to_string()))
        {
            Ok(l) => l,
            Err(e) => {
                log::warn!("a shared revocation list is malformed ({e}); ignored");
                continue;
            }
        };
        match store.accept(&list) {
            Ok(Accepted::Stored) => {
                log::info!(
                    "revocation list of {} (generation {}) taken from the shared store",
                    list.iss,
                    list.generation
                );
                published.insert(list.iss.clone(), list.generation);
                taken += 1;
            }
            Ok(Accepted::Unchanged) => {}
            Err(e) => log::warn!(
                "a shared revocation list of {} was refused ({e}); ignored",
                list.iss
            ),
        }
    }
    Ok(taken)
}

/// Share `store`'s lists through `ledger` every `every` (the first round
/// at once). Runs until dropped; a failed round is logged and retried.
pub async fn share(
    store: Arc<RevocationStore>,
    ledger: Arc<dyn RevocationLedger>,
    every: Duration,
) {
    let mut published = HashMap::new();
    loop {
        if let Err(e) = share_once(&store, &*ledger, &mut published).await {
            log::warn!("sharing revocation lists: {e}");
        }
        async_io::Timer::after(every).await;
    }
}
