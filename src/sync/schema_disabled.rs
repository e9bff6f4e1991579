//! `objectSchema` in a build without the `object-schema` feature. Such a
//! build refuses a config file using `objectSchema` at load
//! (`config::parse_config`); this stand-in covers configs built in code:
//! every schema is unusable, so pushes of object data to such a collection
//! are refused with the official uncompilable-schema answer (500) instead
//! of being accepted unchecked. The start-up warning names the reason.

use super::SyncError;
use crate::proto::json::{Object, Value};

/// A collection's `objectSchema` (never usable in this build).
#[derive(Debug)]
pub enum CollectionSchema {
    Unusable(String),
}

impl CollectionSchema {
    pub fn compile(_raw: &Value) -> CollectionSchema {
        CollectionSchema::Unusable(
            "this build has no `object-schema` feature (cargo build --features object-schema)"
                .to_owned(),
        )
    }

    /// Why pushes are refused.
    pub fn unusable_reason(&self) -> Option<&str> {
        let CollectionSchema::Unusable(reason) = self;
        Some(reason)
    }

    pub fn check(&self, _data: &Object) -> Result<(), SyncError> {
        Err(SyncError::SchemaUnusable)
    }
}
