//! Cap-cert revocation: the store the cap resolver consults (the official
//! `createInMemoryRevocationStore`) and the `--revocations FILE` that feeds
//! it.
//!
//! **Store.** One signed list per issuer ([`crate::proto::revocation`]). A
//! cap is revoked when its issuer's current list names its `(sub, cap
//! nonce)` pair, or names its `sub` under `revokedSubjects` (never for an
//! empty `sub`, the audience-cap sentinel). A list replaces the held one
//! only with a strictly greater `generation` (no rollback to an older,
//! less-revoking list); its signature must verify against its `iss`.
//! Lookups are two hash probes under an uncontended read lock.
//!
//! **File.** The file holds one signed list (the JSON object the official
//! `buildRevocationList` returns) or a JSON array of them, one per issuer.
//! It is read at start (any error stops start-up) and again when it changes
//! ([`RevocationFile::reload_if_changed`], polled by the server) or on
//! SIGHUP. A reload is all-or-nothing: a file that does not parse, or with
//! any list that is malformed or badly signed, is refused as a whole and
//! the lists held stay in force. Lists with a generation not above the one
//! held are ignored (logged). Lists stay held until replaced: removing an
//! issuer's list from the file does not un-revoke its caps before a restart.

use crate::proto::json::{self, Value};
use crate::proto::revocation::{ListError, RevocationList};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

/// What the store holds for one issuer.
#[derive(Debug)]
struct Issued {
    generation: f64,
    /// Canonical text of the accepted list (to tell a re-read of the same
    /// list from a different list with the same generation).
    canonical: String,
    /// sub → revoked cap nonces.
    pairs: HashMap<String, HashSet<String>>,
    subjects: HashSet<String>,
}

/// The outcome of offering one list to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// First list of this issuer, or a higher generation.
    Stored,
    /// The very list already held.
    Unchanged,
}

/// Why the store refused a list (the official `acceptList` reasons).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    BadSignature,
    StaleGeneration,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::BadSignature => "bad-signature",
            Refused::StaleGeneration => "stale-generation",
        })
    }
}

/// The revocation store: issuer → current list.
#[derive(Debug, Default)]
pub struct RevocationStore {
    issuers: RwLock<HashMap<String, Issued>>,
}

impl RevocationStore {
    pub fn new() -> Self {
        RevocationStore::default()
    }

    /// `isRevoked(iss, sub, capNonce)`.
    pub fn is_revoked(&self, iss: &str, sub: &str, cap_nonce: &str) -> bool {
        let issuers = self.issuers.read().unwrap_or_else(|p| p.into_inner());
        let Some(issued) = issuers.get(iss) else {
            return false;
        };
        (!sub.is_empty() && issued.subjects.contains(sub))
            || issued
                .pairs
                .get(sub)
                .is_some_and(|nonces| nonces.contains(cap_nonce))
    }

    /// `acceptList`: verify the signature, then store the list if its
    /// generation is above the held one.
    pub fn accept(&self, list: &RevocationList) -> Result<Accepted, Refused> {
        if !list.verify() {
            return Err(Refused::BadSignature);
        }
        let canonical = crate::proto::canonical::stable_stringify(list.value());
        let mut issuers = self.issuers.write().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = issuers.get(&list.iss) {
            if held.canonical == canonical {
                return Ok(Accepted::Unchanged);
            }
            if list.generation <= held.generation {
                return Err(Refused::StaleGeneration);
            }
        }
        let mut pairs: HashMap<String, HashSet<String>> = HashMap::new();
        for (sub, nonce) in &list.revoked {
            pairs.entry(sub.clone()).or_default().insert(nonce.clone());
        }
        issuers.insert(
            list.iss.clone(),
            Issued {
                generation: list.generation,
                canonical,
                pairs,
                subjects: list.revoked_subjects.iter().cloned().collect(),
            },
        );
        Ok(Accepted::Stored)
    }

    /// Every held list: `(issuer, generation, canonical JSON text)`.
    pub fn held(&self) -> Vec<(String, f64, String)> {
        let issuers = self.issuers.read().unwrap_or_else(|p| p.into_inner());
        issuers
            .iter()
            .map(|(iss, i)| (iss.clone(), i.generation, i.canonical.clone()))
            .collect()
    }

    /// The number of issuers with a list.
    pub fn issuer_count(&self) -> usize {
        self.issuers.read().map(|m| m.len()).unwrap_or(0)
    }
}

/// Why a revocation file could not be (re)loaded.
#[derive(Debug)]
pub enum FileError {
    Read(PathBuf, std::io::Error),
    Json(PathBuf, String),
    /// The top level is neither a list object nor an array of them.
    NotLists(PathBuf),
    /// List number `index` (0-based) is malformed or badly signed.
    List(PathBuf, usize, ListError),
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::Read(p, e) => write!(f, "cannot read revocations {}: {e}", p.display()),
            FileError::Json(p, e) => write!(f, "revocations {} is not JSON: {e}", p.display()),
            FileError::NotLists(p) => write!(
                f,
                "revocations {}: expected a signed revocation list or an array of them",
                p.display()
            ),
            FileError::List(p, i, e) => {
                write!(f, "revocations {}: list {i}: {e}", p.display())
            }
        }
    }
}

impl std::error::Error for FileError {}

/// What a (re)load did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// Lists stored (new issuer or higher generation).
    pub stored: usize,
    /// Lists identical to the held one.
    pub unchanged: usize,
    /// Issuers whose list in the file has a generation not above the held one.
    pub stale: Vec<String>,
}

/// When the file was last read, to notice changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
    })
}

/// The `--revocations FILE` and the store it feeds.
#[derive(Debug)]
pub struct RevocationFile {
    path: PathBuf,
    store: std::sync::Arc<RevocationStore>,
    seen: Mutex<Option<Stamp>>,
}

/// Parse and check every list of a file's text, verifying signatures.
fn parse_lists(path: &Path, text: &[u8]) -> Result<Vec<RevocationList>, FileError> {
    let value = json::parse(text).map_err(|e| FileError::Json(path.to_owned(), e.to_string()))?;
    let raw = match value {
        Value::Array(items) => items,
        v @ Value::Object(_) => vec![v],
        _ => return Err(FileError::NotLists(path.to_owned())),
    };
    raw.into_iter()
        .enumerate()
        .map(|(i, v)| {
            let list = RevocationList::from_value(v)
                .map_err(|e| FileError::List(path.to_owned(), i, e))?;
            if list.verify() {
                Ok(list)
            } else {
                Err(FileError::List(path.to_owned(), i, ListError::BadSignature))
            }
        })
        .collect()
}

impl RevocationFile {
    /// Read the file and fill a new store; any error is returned.
    pub fn open(path: impl Into<PathBuf>) -> Result<RevocationFile, FileError> {
        let file = RevocationFile {
            path: path.into(),
            store: std::sync::Arc::new(RevocationStore::new()),
            seen: Mutex::new(None),
        };
        let summary = file.reload()?;
        log::info!(
            "revocations {}: {} list(s) loaded",
            file.path.display(),
            summary.stored
        );
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store the cap resolver consults.
    pub fn store(&self) -> std::sync::Arc<RevocationStore> {
        self.store.clone()
    }

    /// Read the file again and offer every list to the store. All or
    /// nothing: on error nothing changes.
    pub fn reload(&self) -> Result<LoadSummary, FileError> {
        let before = stamp(&self.path);
        let text = std::fs::read(&self.path).map_err(|e| FileError::Read(self.path.clone(), e))?;
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = before;
        let lists = parse_lists(&self.path, &text)?;
        let mut summary = LoadSummary::default();
        for list in &lists {
            match self.store.accept(list) {
                Ok(Accepted::Stored) => summary.stored += 1,
                Ok(Accepted::Unchanged) => summary.unchanged += 1,
                Err(Refused::StaleGeneration) => summary.stale.push(list.iss.clone()),
                // Signatures were checked by parse_lists.
                Err(Refused::BadSignature) => {}
            }
        }
        for iss in &summary.stale {
            log::warn!(
                "revocations {}: the list of issuer {iss} has a generation not above the one in force; ignored",
                self.path.display()
            );
        }
        Ok(summary)
    }

    /// Whether the file's modification time or size changed since the last
    /// read (`false` when it cannot be examined, e.g. while it is replaced).
    pub fn changed(&self) -> bool {
        let now = stamp(&self.path);
        let seen = *self.seen.lock().unwrap_or_else(|p| p.into_inner());
        now.is_some() && now != seen
    }

    /// Reload when [`RevocationFile::changed`]; `None` when it did not.
    pub fn reload_if_changed(&self) -> Option<Result<LoadSummary, FileError>> {
        self.changed().then(|| self.reload())
    }

    /// Reload and log the outcome (the server's change and SIGHUP handler).
    pub fn reload_logged(&self, why: &str) {
        match self.reload() {
            Ok(s) => log::info!(
                "revocations {} re-read ({why}): {} list(s) stored, {} unchanged, {} stale",
                self.path.display(),
                s.stored,
                s.unchanged,
                s.stale.len()
            ),
            Err(e) => log::error!("{e}; the lists in force are kept"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::revocation::build_list;

    fn list(seed: u8, generation: f64, revoked: &[(&str, &str)], subjects: &[&str]) -> Value {
        let r: Vec<(&str, &str, f64)> = revoked.iter().map(|(s, n)| (*s, *n, 2e9)).collect();
        let s: Vec<(&str, f64)> = subjects.iter().map(|s| (*s, 2e9)).collect();
        build_list(&[seed; 32], generation, &r, Some(&s))
    }

    fn parsed(v: Value) -> RevocationList {
        RevocationList::from_value(v).unwrap()
    }

    #[test]
    fn store_keys_by_issuer_subject_and_cap_nonce() {
        let store = RevocationStore::new();
        let l = parsed(list(1, 1.0, &[("s1", "n1")], &["s2"]));
        let iss = l.iss.clone();
        assert_eq!(store.accept(&l), Ok(Accepted::Stored));
        assert!(store.is_revoked(&iss, "s1", "n1"));
        assert!(!store.is_revoked(&iss, "s1", "n2"));
        assert!(store.is_revoked(&iss, "s2", "anything"), "subject-wide");
        assert!(!store.is_revoked("other", "s1", "n1"), "per issuer");
        assert_eq!(store.accept(&l), Ok(Accepted::Unchanged));
        // A different list with the same or a lower generation is stale.
        let same_gen = parsed(list(1, 1.0, &[], &[]));
        assert_eq!(store.accept(&same_gen), Err(Refused::StaleGeneration));
        assert!(store.is_revoked(&iss, "s1", "n1"));
        // A higher generation replaces the whole list.
        let next = parsed(list(1, 2.0, &[("s3", "n3")], &[]));
        assert_eq!(store.accept(&next), Ok(Accepted::Stored));
        assert!(!store.is_revoked(&iss, "s1", "n1"));
        assert!(store.is_revoked(&iss, "s3", "n3"));
        // Forged lists are refused.
        let mut forged = list(1, 9.0, &[], &[]);
        forged
            .as_object_mut()
            .unwrap()
            .insert("generation", Value::Number(10.0));
        assert_eq!(store.accept(&parsed(forged)), Err(Refused::BadSignature));
    }

    #[test]
    fn an_empty_subject_never_matches_subject_wide_revocations() {
        let store = RevocationStore::new();
        let l = parsed(list(2, 1.0, &[("", "aud-nonce")], &[""]));
        store.accept(&l).unwrap();
        assert!(!store.is_revoked(&l.iss, "", "other"));
        assert!(store.is_revoked(&l.iss, "", "aud-nonce"));
    }

    #[test]
    fn file_reloads_are_all_or_nothing() {
        let dir = std::env::temp_dir().join(format!("starfish-revocations-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("revoked.json");
        let write = |v: &Value| std::fs::write(&path, json::to_js_json(v)).unwrap();
        let l1 = list(3, 1.0, &[("s", "n")], &[]);
        write(&l1);
        let file = RevocationFile::open(&path).unwrap();
        let iss = parsed(l1.clone()).iss;
        assert!(file.store().is_revoked(&iss, "s", "n"));
        assert!(file.reload_if_changed().is_none(), "unchanged file");
        // A file with one bad list changes nothing.
        let mut bad = list(4, 1.0, &[("t", "m")], &[]);
        bad.as_object_mut().unwrap().insert("sig", "AAAA".into());
        write(&Value::Array(vec![list(3, 2.0, &[], &[]), bad]));
        assert!(matches!(
            file.reload(),
            Err(FileError::List(_, 1, ListError::BadSignature))
        ));
        assert!(file.store().is_revoked(&iss, "s", "n"));
        // An array of good lists: one new issuer, one stale.
        let l5 = list(5, 1.0, &[("u", "k")], &[]);
        write(&Value::Array(vec![list(3, 0.5, &[], &[]), l5.clone()]));
        let s = file.reload().unwrap();
        assert_eq!((s.stored, s.stale), (1, vec![iss.clone()]));
        assert!(file.store().is_revoked(&iss, "s", "n"));
        assert!(file.store().is_revoked(&parsed(l5).iss, "u", "k"));
        std::fs::write(&path, b"{nope").unwrap();
        assert!(matches!(file.reload(), Err(FileError::Json(..))));
        std::fs::write(&path, b"5").unwrap();
        assert!(matches!(file.reload(), Err(FileError::NotLists(..))));
        assert_eq!(file.store().issuer_count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
