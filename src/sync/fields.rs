//! Field permissions (`fieldPermissions`, EXTENDED): per top-level field
//! read and write roles.
//!
//! * **Read**: a pulled `data` object loses every field whose `readRoles`
//!   (non-empty) share no role with the caller and do not contain `public`.
//!   The standalone, bundle and batch pulls all filter; for an append-only
//!   result the filter also runs over each element's `data` object (pass the
//!   append field name to [`FieldPermissions::filter_read`]).
//! * **Write**: a push whose `data` has a field whose `writeRoles`
//!   (non-empty) the caller does not satisfy is refused with
//!   `403 {"error":"Field '<f>' is not writable with your roles"}`.
//!
//! The roles are the caller's effective roles for the collection, as the
//! official router passes them: **empty** on the public fast path (the
//! caller was never resolved), so a field readable only by `self` is
//! stripped from a public collection's pull even for its owner.
//!
//! Malformed entries the official router crashes on (a `null` permission,
//! a non-empty string as a role list: a JavaScript `TypeError`, answered
//! 500) fail closed here: nobody may read or write that field.

use crate::proto::json::{JsString, Object, Value};

/// Roles of one direction (read or write) of one field.
#[derive(Clone, Debug, PartialEq)]
enum Roles {
    /// Absent, falsy, empty or without a length: no restriction.
    Anyone,
    /// Any of these roles (or `public` among them) grants access. `None`
    /// entries are non-strings, which never match a role.
    Listed(Vec<Option<String>>),
    /// Malformed (the official code throws): nobody.
    Nobody,
}

impl Roles {
    fn from_raw(v: Option<&Value>) -> Roles {
        match v {
            None | Some(Value::Null | Value::Bool(false)) => Roles::Anyone,
            Some(Value::Array(a)) if a.is_empty() => Roles::Anyone,
            Some(Value::Array(a)) => {
                Roles::Listed(a.iter().map(|r| r.as_str().map(str::to_owned)).collect())
            }
            // `"".length > 0` is false; any other string has a length but no `.some`.
            Some(Value::String(s)) if s.as_bytes().is_empty() => Roles::Anyone,
            Some(Value::String(_)) => Roles::Nobody,
            // An object with a positive `length` passes the guard and throws.
            Some(Value::Object(o)) => match o.get("length").and_then(Value::as_f64) {
                Some(n) if n > 0.0 => Roles::Nobody,
                _ => Roles::Anyone,
            },
            // Numbers and `true` have no `length`: the guard fails.
            Some(_) => Roles::Anyone,
        }
    }

    fn allows(&self, roles: &[String]) -> bool {
        match self {
            Roles::Anyone => true,
            Roles::Nobody => false,
            Roles::Listed(list) => list
                .iter()
                .flatten()
                .any(|r| r == crate::config::ROLE_PUBLIC || roles.iter().any(|have| have == r)),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct FieldRule {
    field: JsString,
    read: Roles,
    write: Roles,
}

/// The compiled `fieldPermissions` of one collection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldPermissions {
    rules: Vec<FieldRule>,
}

/// A refused write: the field the caller may not write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotWritable(pub String);

impl NotWritable {
    /// The official error message.
    pub fn message(&self) -> String {
        format!("Field '{}' is not writable with your roles", self.0)
    }
}

impl std::fmt::Display for NotWritable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for NotWritable {}

/// Names every plain JavaScript object answers `in` for (own properties of
/// `Object.prototype`): `"toString" in data` is true for any `data`.
const OBJECT_PROTOTYPE_MEMBERS: [&str; 12] = [
    "constructor",
    "__defineGetter__",
    "__defineSetter__",
    "hasOwnProperty",
    "__lookupGetter__",
    "__lookupSetter__",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "toString",
    "valueOf",
    "__proto__",
    "toLocaleString",
];

/// JavaScript `key in obj` for a plain object parsed from JSON.
pub fn js_in(obj: &Object, key: &[u8]) -> bool {
    obj.get_bytes(key).is_some() || OBJECT_PROTOTYPE_MEMBERS.iter().any(|m| m.as_bytes() == key)
}

impl FieldPermissions {
    /// Compile the raw config value (`Object.entries` semantics: objects and
    /// arrays have entries, other values none). `None` when nothing is
    /// restricted, so callers can skip the filter entirely.
    pub fn from_config(raw: Option<&Value>) -> Option<FieldPermissions> {
        let entries: Vec<(JsString, &Value)> = match raw? {
            Value::Object(o) => o
                .iter_js_order()
                .into_iter()
                .map(|(k, v)| (k.clone(), v))
                .collect(),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| (JsString::from(i.to_string()), v))
                .collect(),
            _ => return None,
        };
        let rules: Vec<FieldRule> = entries
            .into_iter()
            .map(|(field, perm)| {
                let (read, write) = match perm {
                    Value::Null => (Roles::Nobody, Roles::Nobody),
                    Value::Object(p) => (
                        Roles::from_raw(p.get("readRoles")),
                        Roles::from_raw(p.get("writeRoles")),
                    ),
                    _ => (Roles::Anyone, Roles::Anyone),
                };
                FieldRule { field, read, write }
            })
            .filter(|r| r.read != Roles::Anyone || r.write != Roles::Anyone)
            .collect();
        (!rules.is_empty()).then_some(FieldPermissions { rules })
    }

    /// Fields whose permission the official router would crash on (for a
    /// start-up warning).
    pub fn malformed_fields(&self) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| r.read == Roles::Nobody || r.write == Roles::Nobody)
            .map(|r| r.field.to_string_lossy())
            .collect()
    }

    /// Whether any field has read roles (pulls need filtering).
    pub fn restricts_reads(&self) -> bool {
        self.rules.iter().any(|r| r.read != Roles::Anyone)
    }

    /// Strip the fields `roles` may not read from a pulled `data` value, in
    /// place. With `append_field` (an append-only result), also strip them
    /// from the `data` object of every element of that array field.
    pub fn filter_read(&self, data: &mut Value, roles: &[String], append_field: Option<&str>) {
        if let Value::Object(obj) = data {
            self.filter_read_object(obj, roles, append_field);
        }
    }

    /// [`FieldPermissions::filter_read`] of a `data` object.
    pub fn filter_read_object(
        &self,
        obj: &mut Object,
        roles: &[String],
        append_field: Option<&str>,
    ) {
        self.filter_object(obj, roles);
        let Some(field) = append_field else { return };
        if let Some(Value::Array(elements)) = obj.get_mut(field) {
            for element in elements {
                if let Some(Value::Object(inner)) =
                    element.as_object_mut().and_then(|e| e.get_mut("data"))
                {
                    self.filter_object(inner, roles);
                }
            }
        }
    }

    fn filter_object(&self, obj: &mut Object, roles: &[String]) {
        for rule in &self.rules {
            if !rule.read.allows(roles) {
                obj.remove_bytes(rule.field.as_bytes());
            }
        }
    }

    /// The write check over a push's `data` object (before sanitising, as
    /// received): the first restricted field present (JavaScript `in`, so
    /// `Object.prototype` member names count as present) that `roles` may
    /// not write.
    pub fn check_write(&self, data: &Object, roles: &[String]) -> Result<(), NotWritable> {
        for rule in &self.rules {
            if rule.write != Roles::Anyone
                && js_in(data, rule.field.as_bytes())
                && !rule.write.allows(roles)
            {
                return Err(NotWritable(rule.field.to_string_lossy()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::json::{parse, to_js_json};

    fn perms(text: &str) -> FieldPermissions {
        FieldPermissions::from_config(Some(&parse(text.as_bytes()).unwrap())).unwrap()
    }

    fn roles(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    fn filtered(p: &FieldPermissions, data: &str, r: &[&str], append: Option<&str>) -> String {
        let mut v = parse(data.as_bytes()).unwrap();
        p.filter_read(&mut v, &roles(r), append);
        String::from_utf8(to_js_json(&v)).unwrap()
    }

    #[test]
    fn read_filter_strips_unreadable_top_level_fields() {
        let p = perms(
            r#"{"secret":{"readRoles":["admin"]},"note":{"readRoles":["public"]},
                "open":{"readRoles":[]},"w":{"writeRoles":["admin"]}}"#,
        );
        let doc = r#"{"secret":1,"note":2,"open":3,"w":4,"other":{"secret":5}}"#;
        assert_eq!(
            filtered(&p, doc, &[], None),
            r#"{"note":2,"open":3,"w":4,"other":{"secret":5}}"#,
            "only top-level fields are filtered"
        );
        assert_eq!(filtered(&p, doc, &["admin"], None), doc.replace(' ', ""));
        assert_eq!(filtered(&p, "[1]", &[], None), "[1]");
    }

    #[test]
    fn append_elements_are_filtered_too() {
        let p = perms(r#"{"secret":{"readRoles":["admin"]}}"#);
        let doc = r#"{"items":[{"ts":1,"data":{"secret":1,"x":2}},{"ts":2,"data":[1]},5,{"ts":3}],"secret":0}"#;
        assert_eq!(
            filtered(&p, doc, &["self"], Some("items")),
            r#"{"items":[{"ts":1,"data":{"x":2}},{"ts":2,"data":[1]},5,{"ts":3}]}"#
        );
        assert_eq!(
            filtered(&p, doc, &["self"], None),
            r#"{"items":[{"ts":1,"data":{"secret":1,"x":2}},{"ts":2,"data":[1]},5,{"ts":3}]}"#,
            "without the append field only the top level is filtered"
        );
    }

    #[test]
    fn write_check_names_the_first_refused_field() {
        let p = perms(
            r#"{"a":{"writeRoles":["admin"]},"b":{"writeRoles":["x","public"]},
                "toString":{"writeRoles":["admin"]}}"#,
        );
        let data = |t: &str| match parse(t.as_bytes()).unwrap() {
            Value::Object(o) => o,
            _ => unreachable!(),
        };
        assert_eq!(
            p.check_write(&data(r#"{"b":1,"a":2}"#), &roles(&["self"])),
            Err(NotWritable("a".into()))
        );
        assert_eq!(
            NotWritable("a".into()).message(),
            "Field 'a' is not writable with your roles"
        );
        // "toString" in {} is true in JavaScript.
        assert_eq!(
            p.check_write(&data(r#"{"b":1}"#), &roles(&["admin2"])),
            Err(NotWritable("toString".into()))
        );
        assert!(p
            .check_write(&data(r#"{"a":1}"#), &roles(&["admin"]))
            .is_ok());
    }

    #[test]
    fn malformed_permissions_fail_closed_and_inert_ones_vanish() {
        assert_eq!(
            FieldPermissions::from_config(Some(&parse(br#"{"a":{}}"#).unwrap())),
            None
        );
        assert_eq!(
            FieldPermissions::from_config(Some(&parse(br#""abc""#).unwrap())),
            None
        );
        assert_eq!(
            FieldPermissions::from_config(Some(
                &parse(br#"{"a":{"readRoles":5,"writeRoles":""}}"#).unwrap()
            )),
            None
        );
        let p = perms(r#"{"a":null,"b":{"readRoles":"admin"}}"#);
        assert_eq!(p.malformed_fields(), ["a", "b"]);
        assert_eq!(
            filtered(&p, r#"{"a":1,"b":2,"c":3}"#, &["admin"], None),
            r#"{"c":3}"#
        );
    }
}
