//! `deepMerge(local, remote)`: the remote-wins merge used by the client's
//! default conflict resolver and the bidirectional replica.

use super::json::{Object, Value};
use super::sanitize::is_unsafe_key;

/// Merge `remote` into `local`: remote wins on conflicts, nested objects
/// merge recursively, arrays and scalars replace, keys only in `local`
/// survive. Unsafe keys are dropped at every level where both sides merge.
/// Key order: local's keys first, then new remote keys.
pub fn deep_merge(local: &Object, remote: &Object) -> Object {
    let mut merged = Object::with_capacity(local.len() + remote.len());
    for (k, v) in local.iter() {
        if !is_unsafe_key(k.as_bytes()) {
            merged.insert(k.clone(), v.clone());
        }
    }
    for (k, r) in remote.iter() {
        if is_unsafe_key(k.as_bytes()) {
            continue;
        }
        let next = match (merged.get_bytes(k.as_bytes()), r) {
            (Some(Value::Object(l)), Value::Object(r)) => Value::Object(deep_merge(l, r)),
            _ => r.clone(),
        };
        merged.insert(k.clone(), next);
    }
    merged
}
