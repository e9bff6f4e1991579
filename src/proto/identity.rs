//! Identities: `userId` from a public key, and the root identity derived
//! from a passphrase (Argon2id, then HKDF to the Ed25519 and X25519 keys).

use super::encoding::{hex_decode, hex_encode, HexError};
use super::hash::sha256;
use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use sha2::Sha256;
use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// Argon2id memory cost, KiB.
pub const ARGON2_MEMORY_KIB: u32 = 47_104;
/// Argon2id passes.
pub const ARGON2_ITERATIONS: u32 = 3;
/// Argon2id lanes.
pub const ARGON2_PARALLELISM: u32 = 1;
/// The global Argon2id salt.
pub const ROOT_SALT: &[u8] = b"starfish-v3-root";

/// `userIdFromPubHex`: the first 32 hex characters of SHA-256 of the
/// decoded key bytes.
///
/// ```
/// assert_eq!(starfish::proto::identity::user_id_from_pub_hex("").unwrap(),
///            "e3b0c44298fc1c149afbf4c8996fb924");
/// ```
pub fn user_id_from_pub_hex(pub_hex: &str) -> Result<String, HexError> {
    let bytes = hex_decode(pub_hex)?;
    let mut h = hex_encode(&sha256(&bytes));
    h.truncate(32);
    Ok(h)
}

/// A root identity: the four keys (lowercase hex) and the user id.
#[derive(Clone, PartialEq, Eq)]
pub struct RootIdentity {
    pub user_id: String,
    pub ed_priv: String,
    pub ed_pub: String,
    pub kem_priv: String,
    pub kem_pub: String,
}

impl fmt::Debug for RootIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootIdentity")
            .field("user_id", &self.user_id)
            .field("ed_pub", &self.ed_pub)
            .field("kem_pub", &self.kem_pub)
            .finish_non_exhaustive()
    }
}

/// Why a root identity could not be derived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityError {
    /// The passphrase is empty or only whitespace.
    EmptyPassphrase,
    /// Argon2 refused its parameters (or could not allocate its memory).
    Argon2(String),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::EmptyPassphrase => f.write_str("Passphrase must not be empty"),
            IdentityError::Argon2(e) => write!(f, "argon2id failed: {e}"),
        }
    }
}

impl std::error::Error for IdentityError {}

/// `deriveRootIdentity(passphrase)`: NFC-normalise, Argon2id (47104 KiB, 3
/// passes, 1 lane, salt `starfish-v3-root`) to a 32-byte master, then
/// HKDF-SHA256 to the Ed25519 seed and the X25519 private key.
/// Costs about 46 MiB of memory while it runs.
pub fn derive_root_identity(passphrase: &str) -> Result<RootIdentity, IdentityError> {
    if super::encoding::js_trim(passphrase).is_empty() {
        return Err(IdentityError::EmptyPassphrase);
    }
    let normalised: String = passphrase.nfc().collect();
    let params = argon2::Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        Some(32),
    )
    .map_err(|e| IdentityError::Argon2(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut master = [0u8; 32];
    argon
        .hash_password_into(normalised.as_bytes(), ROOT_SALT, &mut master)
        .map_err(|e| IdentityError::Argon2(e.to_string()))?;
    Ok(identity_from_master(&master))
}

/// The HKDF half of [`derive_root_identity`], from the Argon2id output.
pub fn identity_from_master(master: &[u8; 32]) -> RootIdentity {
    let expand = |salt: &[u8], info: &[u8]| {
        let mut okm = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
        let _ = Hkdf::<Sha256>::new(Some(salt), master).expand(info, &mut okm);
        okm
    };
    let ed_seed = expand(b"starfish-root-sign", b"ed25519");
    let kem_priv = expand(b"starfish-root-kem", b"x25519");
    let ed_pub = SigningKey::from_bytes(&ed_seed).verifying_key().to_bytes();
    let kem_pub = x25519_public(&kem_priv);
    let ed_pub_hex = hex_encode(&ed_pub);
    RootIdentity {
        user_id: user_id_from_pub_hex(&ed_pub_hex).unwrap_or_default(),
        ed_priv: hex_encode(&ed_seed),
        ed_pub: ed_pub_hex,
        kem_priv: hex_encode(&kem_priv),
        kem_pub: hex_encode(&kem_pub),
    }
}

/// X25519 public key of a (not yet clamped) private key: `X25519(k, 9)`.
pub fn x25519_public(private: &[u8; 32]) -> [u8; 32] {
    curve25519_dalek::MontgomeryPoint::mul_base_clamped(*private).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_passphrases_are_refused() {
        for p in ["", "   ", "\u{feff}\u{3000}\n"] {
            assert_eq!(
                derive_root_identity(p),
                Err(IdentityError::EmptyPassphrase),
                "{p:?}"
            );
        }
    }
}
