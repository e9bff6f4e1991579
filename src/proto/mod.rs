//! The sans-I/O protocol core, shared by the server, replica, client and
//! fuzz targets.
//!
//! Nothing in here touches sockets, files, clocks, randomness or async:
//! time and random bytes are arguments. Every function is deterministic,
//! which is what makes it testable against the official vectors and
//! fuzzable.
//!
//! | module | owns |
//! |---|---|
//! | [`json`] | JSON values as JavaScript sees them, the parser, `JSON.stringify` output |
//! | [`canonical`] | `stableStringify`: sorted keys, JS numbers, JS string escaping |
//! | [`hash`] | SHA-256 and the document hash |
//! | [`encoding`] | hex, `atob`-style base64, JavaScript `trim` |
//! | [`sanitize`] | unsafe-key stripping, the push depth limit |
//! | [`merge`] | `deepMerge` (remote wins) |
//! | [`cap`] | cap-certs: header decoding, well-formedness, window, signature, minting |
//! | [`revocation`] | signed cap-cert revocation lists: shape, signing input, verify, build |
//! | [`request_sig`] | request signing input, sign, verify, timestamp checks |
//! | [`scope`] | path globs, scope-path matching, batch-path recognition |
//! | [`identity`] | `userId`, root identity from a passphrase |
//! | [`work`] | a per-thread work counter that complexity tests read |

pub mod canonical;
pub mod cap;
pub mod encoding;
pub mod hash;
pub mod identity;
pub mod json;
pub mod merge;
pub mod request_sig;
pub mod revocation;
pub mod sanitize;
pub mod scope;
pub mod work;
