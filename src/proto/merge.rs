//! `deepMerge(local, remote)`: the remote-wins merge used by the client's
//! default conflict resolver and the bidirectional replica.

use super::json::{JsString, Object, Value};
use super::sanitize::is_unsafe_key;
use std::collections::HashMap;

/// Merge `remote` into `local`: remote wins on conflicts, nested objects
/// merge recursively, arrays and scalars replace, keys only in `local`
/// survive. Unsafe keys are dropped at every level where both sides merge.
/// Key order: local's keys first, then new remote keys. O(n log n) in the
/// sizes of both: local keys are looked up through an index, and the result
/// is assembled by [`Object::from_entries`].
pub fn deep_merge(local: &Object, remote: &Object) -> Object {
    let index: Option<HashMap<&[u8], &Value>> =
        (local.len() > 16).then(|| local.iter().map(|(k, v)| (k.as_bytes(), v)).collect());
    let local_value = |k: &[u8]| match &index {
        Some(ix) => ix.get(k).copied(),
        None => local.get_bytes(k),
    };
    let mut entries: Vec<(JsString, Value)> = Vec::with_capacity(local.len() + remote.len());
    for (k, v) in local.iter() {
        if !is_unsafe_key(k.as_bytes()) {
            entries.push((k.clone(), v.clone()));
        }
    }
    for (k, r) in remote.iter() {
        if is_unsafe_key(k.as_bytes()) {
            continue;
        }
        let next = match (local_value(k.as_bytes()), r) {
            (Some(Value::Object(l)), Value::Object(r)) => Value::Object(deep_merge(l, r)),
            _ => r.clone(),
        };
        // A key local also has keeps local's position and takes this value.
        entries.push((k.clone(), next));
    }
    Object::from_entries(entries)
}
