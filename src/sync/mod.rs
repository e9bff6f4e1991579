//! The sync rules: pull, push (optimistic concurrency), bundles and batch
//! pull, as business rules over a [`Store`](crate::store::Store). No HTTP in
//! here: callers hand in parsed inputs and get JSON values or a
//! [`SyncError`] that names the official status and message.
//!
//! | module | owns |
//! |---|---|
//! | [`doc`] | the stored document envelope, reading it back, the pull answer |
//! | [`push`] | push body validation, sanitising, author proofs, the conditional write |
//! | [`locks`] | per-key write serialisation |
//! | [`keys`] | path-parameter and document-key safety checks |
//! | [`batch`] | batch pull: query validation, per-entry resolution |

pub mod batch;
pub mod doc;
pub mod keys;
pub mod locks;
pub mod push;

use crate::store::{Store, StoreError};
use std::fmt;
use std::sync::Arc;

/// Run a store operation: on the `blocking` thread pool when the store
/// blocks (the filesystem store fsyncs), inline otherwise (the memory store).
pub async fn store_call<T: Send + 'static>(
    store: &Arc<dyn Store>,
    blocking: bool,
    f: impl FnOnce(&dyn Store) -> T + Send + 'static,
) -> T {
    if blocking {
        let store = store.clone();
        blocking::unblock(move || f(&*store)).await
    } else {
        f(&**store)
    }
}

/// A failed sync operation. [`SyncError::status`] and
/// [`SyncError::message`] are what the official server answers.
#[derive(Debug)]
pub enum SyncError {
    InvalidPathParameter,
    InvalidContentLength,
    PayloadTooLarge,
    JsonContentTypeRequired,
    /// Binary push with a media type outside the allow-list: the header as
    /// received and the configured list as compact JSON.
    MimeNotAllowed {
        header: String,
        allowed_json: String,
    },
    BodyNotObject,
    BodyTooDeep,
    MissingData,
    BadBaseHash,
    AuthorProofIncomplete,
    AuthorNotPresenter,
    AuthorBadSignature,
    HashMismatch,
    Forbidden,
    BinaryUnsupported,
    /// The store failed: a plain-text 500.
    Store(StoreError),
}

impl SyncError {
    pub fn status(&self) -> u16 {
        use SyncError::*;
        match self {
            InvalidPathParameter
            | InvalidContentLength
            | BodyNotObject
            | BodyTooDeep
            | MissingData
            | BadBaseHash
            | AuthorProofIncomplete => 400,
            AuthorNotPresenter | AuthorBadSignature | Forbidden => 403,
            HashMismatch => 409,
            PayloadTooLarge => 413,
            JsonContentTypeRequired | MimeNotAllowed { .. } => 415,
            BinaryUnsupported => 501,
            Store(_) => 500,
        }
    }

    /// The `error` string of the JSON body (`None` for the plain-text 500).
    pub fn message(&self) -> Option<String> {
        use SyncError::*;
        Some(
            match self {
                InvalidPathParameter => "Invalid path parameter",
                InvalidContentLength => "Invalid Content-Length",
                PayloadTooLarge => "Payload too large",
                JsonContentTypeRequired => "Content-Type must be application/json",
                MimeNotAllowed {
                    header,
                    allowed_json,
                } => {
                    return Some(format!(
                        "Content-Type '{header}' is not allowed. Allowed: {allowed_json}"
                    ))
                }
                BodyNotObject => "Body must be a JSON object",
                BodyTooDeep => "Body nesting too deep",
                MissingData => "Missing or invalid data",
                BadBaseHash => "baseHash must be a string or null",
                AuthorProofIncomplete => "author proof requires authorPubkey and authorSignature",
                AuthorNotPresenter => "document author must be the request presenter",
                AuthorBadSignature => "invalid document author signature",
                HashMismatch => "hash_mismatch",
                Forbidden => "Forbidden",
                BinaryUnsupported => "Store does not support binary operations",
                Store(_) => return None,
            }
            .to_owned(),
        )
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.message()) {
            (SyncError::Store(e), _) => write!(f, "store error: {e}"),
            (_, Some(m)) => write!(f, "{} {m}", self.status()),
            (_, None) => write!(f, "{}", self.status()),
        }
    }
}

impl std::error::Error for SyncError {}

impl From<StoreError> for SyncError {
    /// A key the store refuses is client input (the callers check keys with
    /// [`keys::check_storable`] first; this is the backstop): 400, not 500.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidKey(_) => {
                log::debug!("refused: {e}");
                SyncError::InvalidPathParameter
            }
            e => SyncError::Store(e),
        }
    }
}
