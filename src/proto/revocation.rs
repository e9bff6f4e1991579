//! Signed cap-cert revocation lists (`starfish-protocol`'s
//! `buildRevocationList` / `revocationListCanonicalSigningInput`).
//!
//! A list is issued by a root identity and names caps of that issuer to
//! refuse before their natural expiry:
//!
//! ```json
//! {"v":1,"iss":"<ed25519 pub hex>","issUserId":"<userId(iss)>","generation":3,
//!  "revoked":[{"sub":"<pub hex>","nonce":"<cap nonce, base64>","exp":1900000000}],
//!  "revokedSubjects":[{"sub":"<pub hex>","exp":1900000000}],
//!  "sig":"<base64 Ed25519 signature by iss>"}
//! ```
//!
//! The signature covers `"starfish-revlist-v1\n" + stableStringify(list
//! without sig)`; `revokedSubjects` is optional (absent from lists that
//! predate it). A `revoked` entry refuses one cap (its subject and cap
//! nonce); a `revokedSubjects` entry refuses every cap of that subject.

use super::canonical::stable_stringify;
use super::encoding::b64_encode;
use super::json::{Object, Value};
use super::request_sig;

/// The domain tag of the signing input.
pub const REVOCATION_DOMAIN: &str = "starfish-revlist-v1\n";

/// A list that passed the shape check (its signature is checked by
/// [`RevocationList::verify`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RevocationList {
    /// Issuer public key, hex (as written in the list).
    pub iss: String,
    pub generation: f64,
    /// `(sub, cap nonce)` pairs.
    pub revoked: Vec<(String, String)>,
    /// Subjects whose every cap is revoked.
    pub revoked_subjects: Vec<String>,
    value: Value,
}

/// Why a list was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListError {
    /// Not the documented shape; the text says which field.
    Shape(String),
    /// The signature does not verify against `iss`.
    BadSignature,
}

impl std::fmt::Display for ListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListError::Shape(m) => write!(f, "malformed revocation list: {m}"),
            ListError::BadSignature => f.write_str("revocation list signature does not verify"),
        }
    }
}

impl std::error::Error for ListError {}

fn shape(m: &str) -> ListError {
    ListError::Shape(m.to_owned())
}

fn string_field(o: &Object, name: &str, at: &str) -> Result<String, ListError> {
    o.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ListError::Shape(format!("{at}{name} must be a string")))
}

fn number_field(o: &Object, name: &str, at: &str) -> Result<f64, ListError> {
    o.get(name)
        .and_then(Value::as_f64)
        .filter(|n| n.is_finite())
        .ok_or_else(|| ListError::Shape(format!("{at}{name} must be a number")))
}

impl RevocationList {
    /// Check the shape of a parsed list (what `buildRevocationList`
    /// produces): `v` 1, string `iss` / `issUserId` / `sig`, a number
    /// `generation`, `revoked` an array of `{sub, nonce, exp}`, optional
    /// `revokedSubjects` an array of `{sub, exp}`.
    pub fn from_value(value: Value) -> Result<RevocationList, ListError> {
        let o = value
            .as_object()
            .ok_or_else(|| shape("a list must be an object"))?;
        if o.get("v").and_then(Value::as_f64) != Some(1.0) {
            return Err(shape("v must be 1"));
        }
        let iss = string_field(o, "iss", "")?;
        string_field(o, "issUserId", "")?;
        string_field(o, "sig", "")?;
        let generation = number_field(o, "generation", "")?;
        let entries = |name: &str, required: bool| -> Result<Vec<&Object>, ListError> {
            match o.get(name) {
                None if !required => Ok(Vec::new()),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|e| {
                        e.as_object().ok_or_else(|| {
                            ListError::Shape(format!("{name} entries must be objects"))
                        })
                    })
                    .collect(),
                _ => Err(ListError::Shape(format!("{name} must be an array"))),
            }
        };
        let mut revoked = Vec::new();
        for e in entries("revoked", true)? {
            let sub = string_field(e, "sub", "revoked[].")?;
            let nonce = string_field(e, "nonce", "revoked[].")?;
            number_field(e, "exp", "revoked[].")?;
            revoked.push((sub, nonce));
        }
        let mut revoked_subjects = Vec::new();
        for e in entries("revokedSubjects", false)? {
            revoked_subjects.push(string_field(e, "sub", "revokedSubjects[].")?);
            number_field(e, "exp", "revokedSubjects[].")?;
        }
        Ok(RevocationList {
            iss,
            generation,
            revoked,
            revoked_subjects,
            value,
        })
    }

    /// The parsed list as given.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Whether `sig` is the issuer's signature over the list.
    pub fn verify(&self) -> bool {
        let sig = self
            .value
            .as_object()
            .and_then(|o| o.get("sig"))
            .and_then(Value::as_str)
            .unwrap_or("");
        request_sig::verify_ed25519(&self.iss, sig, signing_input(&self.value).as_bytes())
    }
}

/// `revocationListCanonicalSigningInput`: the domain tag and the canonical
/// JSON of the list without `sig`.
pub fn signing_input(list: &Value) -> String {
    let unsigned = match list.as_object() {
        Some(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| *k != "sig")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        None => list.clone(),
    };
    format!("{REVOCATION_DOMAIN}{}", stable_stringify(&unsigned))
}

/// `buildRevocationList`: a signed list by the issuer whose Ed25519 seed
/// is `iss_seed`. `revoked` holds `(sub, cap nonce, exp)`;
/// `revoked_subjects` `(sub, exp)` and is written only when `Some`.
pub fn build_list(
    iss_seed: &[u8; 32],
    generation: f64,
    revoked: &[(&str, &str, f64)],
    revoked_subjects: Option<&[(&str, f64)]>,
) -> Value {
    let iss = request_sig::public_key_hex(iss_seed);
    let mut o = Object::new();
    o.insert("v", Value::Number(1.0));
    o.insert(
        "issUserId",
        super::identity::user_id_from_pub_hex(&iss)
            .unwrap_or_default()
            .into(),
    );
    o.insert("iss", iss.into());
    o.insert("generation", Value::Number(generation));
    let entry = |pairs: &[(&str, Value)]| {
        let mut e = Object::new();
        for (k, v) in pairs {
            e.insert(*k, v.clone());
        }
        Value::Object(e)
    };
    o.insert(
        "revoked",
        Value::Array(
            revoked
                .iter()
                .map(|(sub, nonce, exp)| {
                    entry(&[
                        ("sub", (*sub).into()),
                        ("nonce", (*nonce).into()),
                        ("exp", Value::Number(*exp)),
                    ])
                })
                .collect(),
        ),
    );
    if let Some(subjects) = revoked_subjects {
        o.insert(
            "revokedSubjects",
            Value::Array(
                subjects
                    .iter()
                    .map(|(sub, exp)| {
                        entry(&[("sub", (*sub).into()), ("exp", Value::Number(*exp))])
                    })
                    .collect(),
            ),
        );
    }
    let input = signing_input(&Value::Object(o.clone()));
    let sig = request_sig::sign_bytes(iss_seed, input.as_bytes());
    o.insert("sig", b64_encode(&sig).into());
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::json::parse;

    /// Made by the official `buildRevocationList` (starfish-protocol
    /// 3.0.0-alpha.62) with the issuer seed `07` * 32.
    const OFFICIAL: &str = r#"{"v":1,"iss":"ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c","issUserId":"fe812c12f3ab4ce6ac5db69ac352f906","generation":3,"revoked":[{"sub":"abababababababababababababababababababababababababababababababab","nonce":"AAECAwQFBgcICQoLDA0ODw==","exp":1900000000}],"revokedSubjects":[{"sub":"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd","exp":1900000000}],"sig":"FigclQJtpF3rwmJ5kJVYC2zTpDIkLdCdYi4QStyR4rgA8Y/RVj2YagtVU0KwLz95Rb2TH2FIOsCa7//URD/PDw=="}"#;

    #[test]
    fn the_official_builder_output_verifies_and_ours_is_identical() {
        let list = RevocationList::from_value(parse(OFFICIAL.as_bytes()).unwrap()).unwrap();
        assert!(list.verify());
        assert_eq!(list.generation, 3.0);
        assert_eq!(
            list.revoked,
            [("ab".repeat(32), "AAECAwQFBgcICQoLDA0ODw==".to_owned())]
        );
        assert_eq!(list.revoked_subjects, ["cd".repeat(32)]);
        let ours = build_list(
            &[7; 32],
            3.0,
            &[(
                &"ab".repeat(32),
                "AAECAwQFBgcICQoLDA0ODw==",
                1_900_000_000.0,
            )],
            Some(&[(&"cd".repeat(32), 1_900_000_000.0)]),
        );
        assert_eq!(
            stable_stringify(&ours),
            stable_stringify(&parse(OFFICIAL.as_bytes()).unwrap())
        );
    }

    #[test]
    fn tampering_and_bad_shapes_are_refused() {
        let tampered = OFFICIAL.replace("\"generation\":3", "\"generation\":4");
        let list = RevocationList::from_value(parse(tampered.as_bytes()).unwrap()).unwrap();
        assert!(!list.verify());
        for (from, to, why) in [
            ("\"v\":1", "\"v\":2", "v must be 1"),
            (
                "\"generation\":3",
                "\"generation\":\"3\"",
                "generation must be a number",
            ),
            (
                "\"revoked\":[",
                "\"revoked\":[5,",
                "revoked entries must be objects",
            ),
            (
                "\"nonce\":\"AAECAwQFBgcICQoLDA0ODw==\"",
                "\"nonce\":7",
                "revoked[].nonce must be a string",
            ),
            (
                "\"revokedSubjects\":[",
                "\"revokedSubjects\":{\"x\":[",
                "revokedSubjects must be an array",
            ),
        ] {
            let text = OFFICIAL.replacen(from, to, 1);
            let text = if why.starts_with("revokedSubjects") {
                text.replacen("}],\"sig\"", "}]},\"sig\"", 1)
            } else {
                text
            };
            assert_eq!(
                RevocationList::from_value(parse(text.as_bytes()).unwrap()),
                Err(ListError::Shape(why.into())),
                "{text}"
            );
        }
        let without_subjects = build_list(&[9; 32], 1.0, &[], None);
        assert!(without_subjects
            .as_object()
            .unwrap()
            .get("revokedSubjects")
            .is_none());
        assert!(RevocationList::from_value(without_subjects)
            .unwrap()
            .verify());
    }
}
