//! [`FsStore`]: documents and binary values as files under a base
//! directory, written crash-safely (write temp, fsync, rename, fsync dir).
//!
//! ## On-disk layout
//!
//! Every key segment but the last is a directory; the value lives in a file
//! named after the last segment plus a suffix. All suffixes contain `~`,
//! which no key may contain, so a value file can never collide with a
//! directory or with another key's file. That is what lets a document and
//! its children coexist (`x/settings` and `x/settings/_keyring`), which the
//! official filesystem store cannot do.
//!
//! | key | kind | path |
//! |---|---|---|
//! | `a/b` | document | `<base>/a/b.~doc`: the document bytes exactly as written |
//! | `a/b` | binary | `<base>/a/b.~bin`: `<media type>` `\n` `<raw bytes>` |
//! | `a/b/c` | any | `<base>/a/b/c.~doc` / `.~bin`, next to `<base>/a/b.~doc` |
//! | (transient) | temp | `<base>/a/b.~tmp.<pid>.<counter>` |
//!
//! A binary value is one file holding its media type on the first line
//! followed by the bytes, so bytes and media type are replaced together
//! atomically. (A media type never contains a control character; a `.~bin`
//! file with no header line within the first 256 bytes, i.e. one not
//! written by this store, reads as all bytes with
//! `application/octet-stream`.)
//!
//! ## Write protocol
//!
//! `put`/`put_bytes`: create missing parent directories (fsyncing the
//! parent of each one created), create a fresh temp file in the target
//! directory, write it fully, fsync it, rename it over the value file,
//! remove the value file of the other kind if there is one, fsync the
//! directory. A crash leaves either the old or the new value under the
//! final name, never a partial one; a crash between the rename and the
//! removal of the other kind can leave both a `.~doc` and a `.~bin` for one
//! key, in which case `get` sees the document, `get_bytes` the binary value
//! and `list_keys` the key once.
//!
//! `delete` removes the value files, fsyncs the directory, then removes
//! directories left empty (up to, not including, the base directory).
//! Directory creation and pruning are serialised by one mutex so a put
//! never races a prune of its target directory.
//!
//! Temp files left by a crash are ignored by reads and listing and removed
//! (best effort) by [`FsStore::open`]. Files and directories whose names
//! are not of the shapes above are ignored; symlinks are not followed when
//! listing.
//!
//! Assumes a POSIX filesystem with case-sensitive names (keys `A` and `a`
//! are different keys); directory fsync is a no-op on non-Unix targets.

use std::fs::{self, File, OpenOptions};
use std::hash::BuildHasher;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{
    is_valid_segment, split_prefix, validate_key, validate_media_type, Store, StoreError,
    StoreUsage, MAX_MEDIA_TYPE_LEN,
};

/// Suffix of a document file.
const DOC_SUFFIX: &str = ".~doc";
/// Suffix of a binary value file.
const BIN_SUFFIX: &str = ".~bin";
/// Marker in a temp file's name.
const TMP_MARKER: &str = ".~tmp.";
/// Media type reported for a `.~bin` file without a readable header.
const DEFAULT_MEDIA_TYPE: &str = "application/octet-stream";

/// Distinguishes temp files created by this process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A [`Store`] over a directory tree (layout in the module docs).
#[derive(Debug)]
pub struct FsStore {
    base: PathBuf,
    /// Serialises directory creation (with its fsyncs) and pruning.
    dir_lock: Mutex<()>,
    /// [`Store::swap`]'s read-compare-write, serialised per key stripe.
    swap_stripes: Box<[Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
}

/// Lock stripes for [`Store::swap`].
const SWAP_STRIPES: usize = 64;

impl FsStore {
    /// Open (creating if needed) a store rooted at `dir`, and remove temp
    /// files left behind by a crash (best effort: failures are ignored).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let base = dir.into();
        let shown = base.display().to_string();
        fs::create_dir_all(&base).map_err(|e| StoreError::io(&shown, "mkdir", e))?;
        let meta = fs::metadata(&base).map_err(|e| StoreError::io(&shown, "stat", e))?;
        if !meta.is_dir() {
            return Err(StoreError::io(
                &shown,
                "open",
                io::Error::other("base path is not a directory"),
            ));
        }
        let store = FsStore {
            base,
            dir_lock: Mutex::new(()),
            swap_stripes: (0..SWAP_STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: Default::default(),
        };
        store.remove_stale_temps();
        Ok(store)
    }

    /// The base directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Remove every `*.~tmp.*` file under the base directory.
    fn remove_stale_temps(&self) {
        let mut stack = vec![self.base.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            let mut removed = false;
            for ent in rd.flatten() {
                let Ok(ft) = ent.file_type() else { continue };
                if ft.is_dir() {
                    stack.push(ent.path());
                } else if ft.is_file()
                    && ent.file_name().to_string_lossy().contains(TMP_MARKER)
                    && fs::remove_file(ent.path()).is_ok()
                {
                    removed = true;
                }
            }
            if removed {
                let _ = sync_dir(&dir);
            }
        }
    }

    /// The directory holding `key`'s value files, and the last segment.
    /// `key` must be valid.
    fn locate<'k>(&self, key: &'k str) -> (PathBuf, &'k str) {
        let (parents, leaf) = match key.rfind('/') {
            Some(i) => (&key[..i], &key[i + 1..]),
            None => ("", key),
        };
        let mut dir = self.base.clone();
        if !parents.is_empty() {
            dir.extend(parents.split('/'));
        }
        (dir, leaf)
    }

    /// Make sure `dir` (the directory of `key`) exists durably. Caller
    /// holds `dir_lock`.
    fn ensure_dirs(&self, key: &str, dir: &Path) -> Result<(), StoreError> {
        if dir.is_dir() {
            // Created under the lock with its fsyncs, or before a restart.
            return Ok(());
        }
        let rel = match key.rfind('/') {
            Some(i) => &key[..i],
            None => return Ok(()),
        };
        let mut cur = self.base.clone();
        for seg in rel.split('/') {
            cur.push(seg);
            match fs::create_dir(&cur) {
                Ok(()) => {
                    let parent = cur.parent().unwrap_or(&self.base);
                    sync_dir(parent).map_err(|e| StoreError::io(key, "fsync dir", e))?;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if !cur.is_dir() {
                        return Err(StoreError::io(
                            key,
                            "mkdir",
                            io::Error::other(format!("{} is not a directory", cur.display())),
                        ));
                    }
                }
                Err(e) => return Err(StoreError::io(key, "mkdir", e)),
            }
        }
        Ok(())
    }

    /// Durably replace `key`'s value with the concatenation of `parts` in
    /// the file with `suffix`, removing the file with `other_suffix`.
    fn write_value(
        &self,
        key: &str,
        suffix: &str,
        other_suffix: &str,
        parts: &[&[u8]],
    ) -> Result<(), StoreError> {
        let (dir, leaf) = self.locate(key);
        let target = dir.join(format!("{leaf}{suffix}"));
        let other = dir.join(format!("{leaf}{other_suffix}"));

        // Directory creation and temp-file creation under the lock: once
        // the temp file exists its directory is non-empty and cannot be
        // pruned by a concurrent delete.
        let (tmp_path, mut file) = {
            let _guard = self.dir_lock.lock().unwrap_or_else(PoisonError::into_inner);
            self.ensure_dirs(key, &dir)?;
            create_temp(&dir, leaf).map_err(|e| StoreError::io(key, "create temp", e))?
        };

        let written = (|| -> Result<(), StoreError> {
            for part in parts {
                file.write_all(part)
                    .map_err(|e| StoreError::io(key, "write", e))?;
            }
            file.sync_all()
                .map_err(|e| StoreError::io(key, "fsync", e))?;
            drop(file);
            fs::rename(&tmp_path, &target).map_err(|e| StoreError::io(key, "rename", e))
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp_path);
            return Err(e);
        }

        match fs::remove_file(&other) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(key, "remove", e)),
        }
        sync_dir(&dir).map_err(|e| StoreError::io(key, "fsync dir", e))
    }

    /// Read one value file; a missing file or parent is `None`.
    fn read_file(&self, key: &str, suffix: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (dir, leaf) = self.locate(key);
        match fs::read(dir.join(format!("{leaf}{suffix}"))) {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(StoreError::io(key, "read", e)),
        }
    }

    /// Remove now-empty directories from `dir` up to (excluding) the base.
    fn prune(&self, dir: &Path) {
        let _guard = self.dir_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut cur = dir.to_path_buf();
        while cur != self.base && cur.starts_with(&self.base) {
            if fs::remove_dir(&cur).is_err() {
                break;
            }
            cur.pop();
            let _ = sync_dir(&cur);
        }
    }

    /// The value-bearing entries of `dir`, in key order (see
    /// [`list_keys`](Store::list_keys)), restricted to names starting with
    /// `partial`. A missing directory has none.
    fn read_items(&self, dir: &Path, partial: &str, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if is_missing(&e) => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(prefix, "read dir", e)),
        };
        let mut items = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| StoreError::io(prefix, "read dir", e))?;
            let Ok(name) = ent.file_name().into_string() else {
                continue;
            };
            let Ok(ft) = ent.file_type() else { continue };
            if ft.is_dir() {
                if is_valid_segment(&name) && name.starts_with(partial) {
                    let mut sort = name;
                    sort.push('/');
                    items.push(Item { sort, dir: true });
                }
            } else if ft.is_file() {
                let stem = name
                    .strip_suffix(DOC_SUFFIX)
                    .or_else(|| name.strip_suffix(BIN_SUFFIX));
                if let Some(stem) = stem {
                    if is_valid_segment(stem) && stem.starts_with(partial) {
                        items.push(Item {
                            sort: stem.to_owned(),
                            dir: false,
                        });
                    }
                }
            }
        }
        items.sort_unstable_by(|a, b| a.sort.cmp(&b.sort));
        // A key with both a .~doc and a .~bin (crash mid type change).
        items.dedup_by(|a, b| a.sort == b.sort);
        Ok(items)
    }
}

/// One listing entry: a value (`sort` = segment) or a directory (`sort` =
/// segment + `/`). Sorting by `sort` puts a directory's whole subtree at
/// the right place among its siblings in key order, since every key below
/// it starts with `sort` and `sort` has no `/` before its end.
struct Item {
    sort: String,
    dir: bool,
}

/// A listing frame: a directory's entries still to visit.
struct Frame {
    /// Key prefix of the directory (`""` or ending in `/`).
    key_prefix: String,
    path: PathBuf,
    items: std::vec::IntoIter<Item>,
}

impl Store for FsStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate_key(key)?;
        self.read_file(key, DOC_SUFFIX)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        validate_key(key)?;
        self.write_value(key, DOC_SUFFIX, BIN_SUFFIX, &[value])
    }

    /// Read, compare and write under the key's stripe lock: atomic against
    /// every other `swap` in this process (one process owns a directory).
    fn swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, StoreError> {
        validate_key(key)?;
        let stripe = (self.hasher.hash_one(key) % SWAP_STRIPES as u64) as usize;
        let _guard = self.swap_stripes[stripe]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.read_file(key, DOC_SUFFIX)?.as_deref() != expected {
            return Ok(false);
        }
        self.write_value(key, DOC_SUFFIX, BIN_SUFFIX, &[value])?;
        Ok(true)
    }

    fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        validate_key(key)?;
        let Some(mut raw) = self.read_file(key, BIN_SUFFIX)? else {
            return Ok(None);
        };
        let head = &raw[..raw.len().min(MAX_MEDIA_TYPE_LEN + 1)];
        let media = head
            .iter()
            .position(|&b| b == b'\n')
            .and_then(|nl| Some((nl, std::str::from_utf8(&raw[..nl]).ok()?.to_owned())));
        Ok(Some(match media {
            Some((nl, media)) => {
                raw.drain(..=nl);
                (raw, media)
            }
            None => (raw, DEFAULT_MEDIA_TYPE.to_owned()),
        }))
    }

    fn put_bytes(&self, key: &str, bytes: &[u8], media_type: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        validate_media_type(media_type)?;
        let header = format!("{media_type}\n");
        self.write_value(key, BIN_SUFFIX, DOC_SUFFIX, &[header.as_bytes(), bytes])
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        let (dir, leaf) = self.locate(key);
        let mut removed = false;
        for suffix in [DOC_SUFFIX, BIN_SUFFIX] {
            match fs::remove_file(dir.join(format!("{leaf}{suffix}"))) {
                Ok(()) => removed = true,
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(StoreError::io(key, "remove", e)),
            }
        }
        if removed {
            sync_dir(&dir).map_err(|e| StoreError::io(key, "fsync dir", e))?;
            self.prune(&dir);
        }
        Ok(())
    }

    fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let (dir_key, partial) = split_prefix(prefix)?;
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut path = self.base.clone();
        let mut key_prefix = String::new();
        if !dir_key.is_empty() {
            path.extend(dir_key.split('/'));
            key_prefix = format!("{dir_key}/");
        }
        let items = self.read_items(&path, partial, prefix)?;
        let mut stack = vec![Frame {
            key_prefix,
            path,
            items: items.into_iter(),
        }];
        while let Some(frame) = stack.last_mut() {
            let Some(item) = frame.items.next() else {
                stack.pop();
                continue;
            };
            let mut full = String::with_capacity(frame.key_prefix.len() + item.sort.len());
            full.push_str(&frame.key_prefix);
            full.push_str(&item.sort);
            if item.dir {
                // Every key below starts with `full` (ends in '/'): skip the
                // subtree when all of them are <= start_after.
                let wanted = start_after.is_none_or(|s| full.as_str() > s || s.starts_with(&full));
                if wanted {
                    let path = frame.path.join(&item.sort[..item.sort.len() - 1]);
                    let items = self.read_items(&path, "", prefix)?;
                    stack.push(Frame {
                        key_prefix: full,
                        path,
                        items: items.into_iter(),
                    });
                }
            } else if start_after.is_none_or(|s| full.as_str() > s) {
                out.push(full);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The value file's size: one `stat` (the document file first, as
    /// [`get`](Store::get) reads it).
    fn value_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        validate_key(key)?;
        let (dir, leaf) = self.locate(key);
        for suffix in [DOC_SUFFIX, BIN_SUFFIX] {
            match fs::metadata(dir.join(format!("{leaf}{suffix}"))) {
                Ok(m) if m.is_file() => return Ok(Some(m.len())),
                Ok(_) => {}
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(StoreError::io(key, "stat", e)),
            }
        }
        Ok(None)
    }

    /// One walk of the tree: every value file's size (temp files and
    /// foreign names skipped, as listing skips them). A key left with both
    /// a `.~doc` and a `.~bin` by a crash counts both files' bytes (the
    /// safe side for a quota) and is one value.
    fn measure(&self) -> Result<StoreUsage, StoreError> {
        let mut usage = StoreUsage::default();
        let mut stack = vec![self.base.clone()];
        let shown = |p: &Path| p.display().to_string();
        while let Some(dir) = stack.pop() {
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if is_missing(&e) => continue,
                Err(e) => return Err(StoreError::io(&shown(&dir), "read dir", e)),
            };
            for ent in rd {
                let ent = ent.map_err(|e| StoreError::io(&shown(&dir), "read dir", e))?;
                let Ok(name) = ent.file_name().into_string() else {
                    continue;
                };
                let Ok(ft) = ent.file_type() else { continue };
                if ft.is_dir() {
                    if is_valid_segment(&name) {
                        stack.push(ent.path());
                    }
                    continue;
                }
                let (stem, is_doc) = match name.strip_suffix(DOC_SUFFIX) {
                    Some(stem) => (stem, true),
                    None => match name.strip_suffix(BIN_SUFFIX) {
                        Some(stem) => (stem, false),
                        None => continue,
                    },
                };
                if !ft.is_file() || !is_valid_segment(stem) {
                    continue;
                }
                let len = ent
                    .metadata()
                    .map_err(|e| StoreError::io(&shown(&ent.path()), "stat", e))?
                    .len();
                usage.bytes += len;
                if is_doc || !dir.join(format!("{stem}{DOC_SUFFIX}")).is_file() {
                    usage.values += 1;
                }
            }
        }
        Ok(usage)
    }
}

/// Create a new, uniquely named temp file next to `leaf`'s value files.
fn create_temp(dir: &Path, leaf: &str) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    loop {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{leaf}{TMP_MARKER}{pid}.{n}"));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => return Ok((path, f)),
            // Left over from an earlier process with the same pid.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Whether an error means "no such entry" (including a path component
/// that is a file, not a directory).
fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Flush a directory's entries (new, renamed, removed names) to disk.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Directory fsync is not available portably off Unix.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}
