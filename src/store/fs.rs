//! [`FsStore`]: documents and binary values as files under a base
//! directory, made durable through a write-ahead log with group commit.
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
//! | (transient) | temp | `<base>/.~tmp/t.~tmp.<pid>.<counter>` |
//! | (log) | write-ahead log | `<base>/.~wal.<generation>` (format in `store/wal.rs`) |
//!
//! A binary value is one file holding its media type on the first line
//! followed by the bytes, so bytes and media type are replaced together
//! atomically. (A media type never contains a control character; a `.~bin`
//! file with no header line within the first 256 bytes, i.e. one not
//! written by this store, reads as all bytes with
//! `application/octet-stream`.)
//!
//! ## Write protocol: group commit
//!
//! A write (`put`, `put_bytes`, `delete`, a `swap` whose comparison held)
//! is queued for one committer thread and the caller waits: blocked, or,
//! through [`Store::swap_deferred`], on a [`Pending`] future, so that a
//! push waits without holding a thread. The committer takes *every* write
//! queued while its previous round ran, and for that batch:
//!
//! 1. appends one record per write (key, kind, media type, bytes, with a
//!    checksum) to the current log file with one `write`, then one
//!    `fdatasync`: from here the batch survives a crash or power loss;
//! 2. applies the records in order to the value files: write a fresh
//!    temp file in `<base>/.~tmp/`, rename it over the value file
//!    (creating missing directories when the rename says so), remove the
//!    file of the other kind (a deletion removes both and prunes
//!    directories left empty), with no fsync. Temp files live in their
//!    own small directory so that creating and renaming them does not
//!    search a large document directory twice more, and a document write
//!    removes a `.~bin` only where the key holds one (the keys holding
//!    binary values are noted by the walk at open and kept by the
//!    committer: looking for a file that is not there costs a search too);
//! 3. wakes the callers. A write is acknowledged only now: durable in the
//!    log, and visible to every read (reads read the value files).
//!
//! So one fsync covers every write that arrived while the previous one
//! ran, and the more concurrent writers there are, the fewer fsyncs each
//! costs. A reader never sees a half-written file (rename), and never
//! misses an acknowledged write (applied before the acknowledgement).
//!
//! **Checkpoints.** The applied files are made durable by a checkpoint:
//! `syncfs` of the data directory's filesystem (one call flushes every
//! file, rename and directory written so far), then the logs it covers are
//! deleted. When the current log passes 16 MiB the committer starts a new
//! log file and hands the old one to a checkpoint thread, so commits never
//! wait for a checkpoint (unless the log grows to four times that while
//! one is still running: then the committer waits for it). A graceful
//! close (dropping the store) commits what is queued and checkpoints
//! everything, leaving only the newest log, emptied (so generations never
//! start again: an old log whose deletion did not reach the disk can never
//! be replayed after a newer one). Logs are deleted oldest first, each
//! deletion synced before the next; after a failed checkpoint none is
//! deleted until the next open (a later `syncfs` may not report the
//! failed writeback again). Off Linux and Android, where there
//! is no `syncfs`, step 2 fsyncs each file and directory instead and the
//! checkpoint only deletes logs. The log takes disk space besides the
//! values: up to 16 MiB (64 MiB while a slow checkpoint runs, more if
//! checkpoints fail and logs are kept), which `--min-free-bytes` should
//! leave room for.
//!
//! **Recovery.** [`FsStore::open`] replays every log left by a crash, in
//! generation order, before serving: each record is applied again (a
//! record is a whole value or a deletion, so replaying is idempotent and
//! the last record of a key wins), then a checkpoint makes the result
//! durable and deletes the logs. A torn last batch (cut short by the
//! crash; none of it was acknowledged) is dropped; damage followed by good
//! records of a later batch means acknowledged data is damaged, and open
//! fails naming the file instead of silently losing what follows. A
//! record that cannot be applied because the tree holds something foreign
//! in its way (a directory named like a value file, a file named like a
//! directory) failed the same way when it was first applied, so it is
//! skipped with a warning; any other error fails open.
//!
//! **What a crash can leave.** Every acknowledged write; an
//! unacknowledged one may be lost or may land, whole, never half-written.
//! A write that failed with an error after reaching the log may also land
//! after a restart. If appending to the log fails, the batch and every
//! write queued behind it fail, and the log is cut back to its last good
//! batch (if even that fails, every later write fails until a restart).
//!
//! **Compare-and-swap.** [`Store::swap`] compares against the newest
//! value of the key, queued writes included, and queues its write under
//! the same key-hashed lock every write takes to queue, so a swap is
//! atomic against every other write in this process without holding a
//! lock while it waits for the disk. One process owns a data directory:
//! [`FsStore::open`] takes an exclusive `flock` on it (Unix), and a second
//! store on the same directory fails to open.
//!
//! Temp files left by a crash are ignored by reads and listing and removed
//! (best effort) by [`FsStore::open`] (as are `*.~tmp.*` files beside
//! value files, where older versions wrote them). Files and directories whose names
//! are not of the shapes above are ignored; symlinks are not followed when
//! listing. A crash between a rename and the removal of the other kind
//! can no longer leave both a `.~doc` and a `.~bin` for one key once the
//! log is replayed; a tree written by an older version may still hold
//! both, in which case `get` sees the document, `get_bytes` the binary
//! value and `list_keys` the key once.
//!
//! Assumes the whole tree is one POSIX filesystem (renames from `.~tmp/`,
//! one `syncfs`) with case-sensitive names (keys `A` and `a` are different
//! keys); directory fsync is a no-op on non-Unix targets.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::hash::BuildHasher;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use super::wal::{self, Op};
use super::{
    is_valid_segment, split_prefix, validate_key, validate_media_type, Completion, Pending, Store,
    StoreError, StoreUsage, MAX_MEDIA_TYPE_LEN,
};

/// Suffix of a document file.
const DOC_SUFFIX: &str = ".~doc";
/// Suffix of a binary value file.
const BIN_SUFFIX: &str = ".~bin";
/// Marker in a temp file's name.
const TMP_MARKER: &str = ".~tmp.";
/// The directory of temp files, under the base directory.
const TMP_DIR: &str = ".~tmp";
/// Media type reported for a `.~bin` file without a readable header.
const DEFAULT_MEDIA_TYPE: &str = "application/octet-stream";
/// Name of a log file before its generation number.
const LOG_PREFIX: &str = ".~wal.";

/// A log passing this many bytes is replaced by a new one and checkpointed.
const ROTATE_BYTES: u64 = 16 << 20;
/// While a checkpoint runs, the current log may grow to this many times
/// [`ROTATE_BYTES`] before the committer waits for the checkpoint.
const MAX_LOG_FACTOR: u64 = 4;
/// The committer's batch buffer is dropped after a batch larger than this.
const KEPT_BUFFER: usize = 4 << 20;
/// Whether applied files are made durable by the checkpoint's `syncfs`
/// (else each file and directory is fsynced as it is applied).
const DEFERRED_SYNC: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// Distinguishes temp files created by this process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Lock stripes: writes to one key queue under its stripe.
const STRIPES: usize = 64;

/// A [`Store`] over a directory tree (layout and write protocol in the
/// module docs).
pub struct FsStore {
    inner: Arc<Inner>,
    committer: Option<JoinHandle<()>>,
}

impl fmt::Debug for FsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsStore")
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

/// What the callers, the committer and the checkpoint thread share.
struct Inner {
    base: PathBuf,
    /// `<base>/.~tmp`: where values are written before their rename.
    tmp: PathBuf,
    /// The base directory, open: `flock`ed for the store's life, and the
    /// handle `syncfs` is called on.
    dir: File,
    /// Key-hashed locks: a write queues (and a swap compares) under its
    /// key's stripe.
    stripes: Box<[Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
    /// The keys holding a binary value (a `.~bin` file): found at open,
    /// then kept by the one thread that applies writes, so that a document
    /// write removes a `.~bin` only where there is one (looking for one
    /// that is not there costs a search of a large directory).
    bins: Mutex<std::collections::HashSet<String>>,
    queue: Mutex<Queue>,
    /// Signalled when the queue gets its first write or the store closes.
    work: Condvar,
    /// Set when a checkpoint failed. From then on no log is deleted until
    /// the store is next opened (which replays them): Linux reports a
    /// writeback error to `syncfs` once per open file, so a later
    /// checkpoint's `syncfs` on the same handle can succeed although the
    /// files the kept logs cover never reached the disk.
    checkpoint_failed: AtomicBool,
    /// Tests hold this to keep the committer from committing.
    #[cfg(test)]
    hold: Mutex<()>,
}

/// Writes waiting for the committer.
#[derive(Default)]
struct Queue {
    /// Not yet taken by the committer, in arrival order.
    waiting: Vec<Arc<Entry>>,
    /// The newest write of each key that is queued or being committed (a
    /// swap compares against it rather than against the file).
    pending: HashMap<String, Arc<Entry>>,
    /// Set by `Drop`: no new writes.
    closing: bool,
    /// Set when the log can no longer be written: why.
    broken: Option<String>,
}

/// One queued write and its caller's wait.
struct Entry {
    key: String,
    value: Value,
    done: Mutex<Outcome>,
    /// Signalled for a caller blocked in [`Entry::wait_done`].
    woken: Condvar,
}

/// The committer's verdict on an entry, and who waits for it.
#[derive(Default)]
struct Outcome {
    /// Set once by the committer.
    finished: bool,
    /// The verdict until a waiter takes it.
    result: Option<Result<(), StoreError>>,
    /// An async waiter's waker.
    waker: Option<Waker>,
    /// Whether a thread is blocked on `woken`.
    blocked: bool,
}

/// What a queued write stores.
enum Value {
    Doc(Vec<u8>),
    Bin { media: String, bytes: Vec<u8> },
    Delete,
}

impl Value {
    fn op(&self) -> Op<'_> {
        match self {
            Value::Doc(v) => Op::Doc(v),
            Value::Bin { media, bytes } => Op::Bin { media, bytes },
            Value::Delete => Op::Delete,
        }
    }
}

impl Entry {
    /// Record the verdict and wake whoever waits for it.
    fn finish(&self, result: Result<(), StoreError>) {
        let mut done = lock(&self.done);
        done.finished = true;
        done.result = Some(result);
        let (waker, blocked) = (done.waker.take(), done.blocked);
        drop(done);
        if blocked {
            self.woken.notify_one();
        }
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn finished(&self) -> bool {
        lock(&self.done).finished
    }
}

impl Completion for Entry {
    fn poll_done(&self, cx: &mut Context<'_>) -> Poll<Result<(), StoreError>> {
        let mut done = lock(&self.done);
        if let Some(result) = done.result.take() {
            return Poll::Ready(result);
        }
        if done.finished {
            return Poll::Ready(Err(taken_twice(&self.key)));
        }
        match &done.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => done.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn wait_done(&self) -> Result<(), StoreError> {
        let mut done = lock(&self.done);
        done.blocked = true;
        loop {
            if let Some(result) = done.result.take() {
                return result;
            }
            if done.finished {
                return Err(taken_twice(&self.key));
            }
            done = self
                .woken
                .wait(done)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

fn taken_twice(key: &str) -> StoreError {
    StoreError::io(key, "wait", io::Error::other("write outcome taken twice"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FsStore {
    /// Open (creating if needed) a store rooted at `dir`: lock it, remove
    /// temp files left behind by a crash (best effort), replay the logs a
    /// crash left (see the module docs), and start the committer.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        Self::open_with(dir.into(), ROTATE_BYTES)
    }

    fn open_with(base: PathBuf, rotate_bytes: u64) -> Result<Self, StoreError> {
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
        let dir = File::open(&base).map_err(|e| StoreError::io(&shown, "open", e))?;
        lock_dir(&dir).map_err(|e| StoreError::io(&shown, "lock", e))?;
        let tmp = base.join(TMP_DIR);
        match fs::create_dir(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tmp.is_dir() => {}
            Err(e) => return Err(StoreError::io(&shown, "mkdir .~tmp", e)),
        }
        let inner = Arc::new(Inner {
            tmp,
            base,
            dir,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: Default::default(),
            bins: Mutex::default(),
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            checkpoint_failed: AtomicBool::new(false),
            #[cfg(test)]
            hold: Mutex::new(()),
        });
        inner.scan_tree();
        let generation = inner.recover()?;
        let log = Log::create(&inner.base, generation)
            .map_err(|e| StoreError::io(&shown, "create log", e))?;
        let mut committer = Committer {
            inner: Arc::clone(&inner),
            log,
            buf: Vec::new(),
            checkpoint: None,
            rotate_bytes,
        };
        let handle = std::thread::Builder::new()
            .name("starfish-commit".into())
            .spawn(move || committer.run())
            .map_err(|e| StoreError::io(&shown, "spawn committer", e))?;
        Ok(FsStore {
            inner,
            committer: Some(handle),
        })
    }

    /// The base directory.
    pub fn base(&self) -> &Path {
        &self.inner.base
    }

    /// Queue `value` for `key` if `check` (run under the key's stripe lock,
    /// so no other write of the key is queued meanwhile) says so; answers
    /// the queued write, which resolves once it is durable and applied.
    fn queue(
        &self,
        key: &str,
        value: Value,
        check: impl FnOnce(&Inner) -> Result<bool, StoreError>,
    ) -> Result<Option<Arc<Entry>>, StoreError> {
        let inner = &*self.inner;
        let _stripe = inner.stripe(key);
        if !check(inner)? {
            return Ok(None);
        }
        inner.submit(key, value).map(Some)
    }

    /// [`queue`](Self::queue), then wait; answers whether it wrote.
    fn write(
        &self,
        key: &str,
        value: Value,
        check: impl FnOnce(&Inner) -> Result<bool, StoreError>,
    ) -> Result<bool, StoreError> {
        match self.queue(key, value, check)? {
            Some(entry) => entry.wait_done().map(|()| true),
            None => Ok(false),
        }
    }
}

impl Drop for FsStore {
    /// Commit what is queued, checkpoint, and stop the committer.
    fn drop(&mut self) {
        lock(&self.inner.queue).closing = true;
        self.inner.work.notify_all();
        if let Some(h) = self.committer.take() {
            let _ = h.join();
        }
    }
}

impl Inner {
    fn stripe(&self, key: &str) -> MutexGuard<'_, ()> {
        lock(&self.stripes[(self.hasher.hash_one(key) % STRIPES as u64) as usize])
    }

    /// The queued or committing write of `key`, if any. The caller holds
    /// the key's stripe, so no write of the key is queued meanwhile; one
    /// being applied leaves `pending` only after its file is in place, so
    /// without one the files are the newest state.
    fn pending(&self, key: &str) -> Option<Arc<Entry>> {
        lock(&self.queue).pending.get(key).cloned()
    }

    /// Whether the newest document of `key` (a queued write, else the
    /// file) is `expected`. The caller holds the key's stripe.
    fn newest_doc_is(&self, key: &str, expected: Option<&[u8]>) -> Result<bool, StoreError> {
        Ok(match self.pending(key) {
            Some(e) => match &e.value {
                Value::Doc(v) => expected == Some(v.as_slice()),
                Value::Bin { .. } | Value::Delete => expected.is_none(),
            },
            None => self.read_file(key, DOC_SUFFIX)?.as_deref() == expected,
        })
    }

    /// Whether `key` may hold something (a queued write, or a value file).
    /// The caller holds the key's stripe.
    fn may_hold(&self, key: &str) -> Result<bool, StoreError> {
        if self.pending(key).is_some() {
            return Ok(true);
        }
        let (dir, leaf) = self.locate(key);
        for suffix in [DOC_SUFFIX, BIN_SUFFIX] {
            match fs::symlink_metadata(dir.join(format!("{leaf}{suffix}"))) {
                Ok(_) => return Ok(true),
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(StoreError::io(key, "stat", e)),
            }
        }
        Ok(false)
    }

    /// Queue a write for the committer. The caller holds the key's stripe.
    fn submit(&self, key: &str, value: Value) -> Result<Arc<Entry>, StoreError> {
        let entry = Arc::new(Entry {
            key: key.to_owned(),
            value,
            done: Mutex::default(),
            woken: Condvar::new(),
        });
        let mut q = lock(&self.queue);
        if let Some(why) = &q.broken {
            return Err(StoreError::io(
                key,
                "write log",
                io::Error::other(why.clone()),
            ));
        }
        if q.closing {
            return Err(StoreError::io(
                key,
                "write",
                io::Error::other("the store is closing"),
            ));
        }
        q.pending.insert(key.to_owned(), Arc::clone(&entry));
        q.waiting.push(Arc::clone(&entry));
        let first = q.waiting.len() == 1;
        drop(q);
        if first {
            self.work.notify_one();
        }
        Ok(entry)
    }

    /// Forget `entries` as the newest writes of their keys (unless a newer
    /// write of the key replaced them there).
    fn settle(q: &mut Queue, entries: &[Arc<Entry>]) {
        for e in entries {
            if q.pending.get(&e.key).is_some_and(|p| Arc::ptr_eq(p, e)) {
                q.pending.remove(&e.key);
            }
        }
    }

    /// One walk of the tree at open: remove every `*.~tmp.*` file (in
    /// `.~tmp/`, or beside value files where older versions wrote them),
    /// and note the keys holding a binary value.
    fn scan_tree(&self) {
        let mut bins = lock(&self.bins);
        // (directory, its key prefix: "" or ending in '/', or None when
        // the directory is not a key's)
        let mut stack = vec![(self.base.clone(), Some(String::new()))];
        while let Some((dir, prefix)) = stack.pop() {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            let mut removed = false;
            for ent in rd.flatten() {
                let Ok(ft) = ent.file_type() else { continue };
                let name = ent.file_name();
                let name = name.to_string_lossy();
                if ft.is_dir() {
                    let sub = prefix
                        .as_ref()
                        .filter(|_| is_valid_segment(&name))
                        .map(|p| format!("{p}{name}/"));
                    stack.push((ent.path(), sub));
                } else if ft.is_file() && name.contains(TMP_MARKER) {
                    removed |= fs::remove_file(ent.path()).is_ok();
                } else if let (true, Some(p), Some(stem)) =
                    (ft.is_file(), &prefix, name.strip_suffix(BIN_SUFFIX))
                {
                    if is_valid_segment(stem) {
                        bins.insert(format!("{p}{stem}"));
                    }
                }
            }
            if removed {
                let _ = sync_dir(&dir);
            }
        }
    }

    /// The log files in the base directory, oldest generation first.
    fn logs(&self) -> io::Result<Vec<(u64, PathBuf)>> {
        let mut logs = Vec::new();
        for ent in fs::read_dir(&self.base)? {
            let ent = ent?;
            let name = ent.file_name();
            let Some(generation) = name
                .to_str()
                .and_then(|n| n.strip_prefix(LOG_PREFIX))
                .and_then(|g| g.parse::<u64>().ok())
            else {
                continue;
            };
            logs.push((generation, ent.path()));
        }
        logs.sort_unstable();
        Ok(logs)
    }

    /// Replay the logs a crash left, checkpoint, and answer the generation
    /// of the next log.
    fn recover(&self) -> Result<u64, StoreError> {
        let shown = |p: &Path| p.display().to_string();
        let logs = self
            .logs()
            .map_err(|e| StoreError::io(&shown(&self.base), "read dir", e))?;
        let Some(&(newest, _)) = logs.last() else {
            return Ok(1);
        };
        let mut replayed = 0usize;
        for (_, path) in &logs {
            let bytes = fs::read(path).map_err(|e| StoreError::io(&shown(path), "read log", e))?;
            let (records, end) = wal::scan(&bytes);
            if let wal::End::Corrupt { at, next } = end {
                return Err(StoreError::io(
                    &shown(path),
                    "replay log",
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "damaged record at offset {at}, followed by good records from \
                             offset {next}: acknowledged writes would be lost; move the file \
                             aside to open the store without them"
                        ),
                    ),
                ));
            }
            for r in &records {
                match self.apply(r.key, r.op) {
                    Ok(()) => replayed += 1,
                    Err(e) if is_in_the_way(&e) => {
                        log::warn!("log replay: skipped a write that cannot be applied: {e}");
                    }
                    Err(e) => return Err(e),
                }
            }
            if let wal::End::Torn { at } = end {
                log::info!(
                    "log replay: {}: dropped an unacknowledged torn tail of {} bytes",
                    shown(path),
                    bytes.len() - at
                );
            }
        }
        log::info!(
            "log replay: {replayed} write(s) applied from {} log file(s)",
            logs.len()
        );
        if let Err(e) = self.checkpoint(newest) {
            log::warn!("checkpoint after log replay failed ({e}); the logs are kept");
        }
        Ok(newest + 1)
    }

    /// Make everything applied so far durable, then delete the logs up to
    /// generation `upto`.
    fn checkpoint(&self, upto: u64) -> io::Result<()> {
        self.checkpoint_with(upto, sync_filesystem)
    }

    /// [`Inner::checkpoint`] with the filesystem flush given (tests fail it).
    /// After one failure every later checkpoint fails without deleting
    /// anything ([`Inner::checkpoint_failed`]). The logs are deleted oldest
    /// first, each deletion made durable before the next, so a crash (or a
    /// filesystem that does not keep the order of metadata changes) never
    /// leaves an older log without the newer ones that override it.
    fn checkpoint_with(&self, upto: u64, flush: fn(&File) -> io::Result<()>) -> io::Result<()> {
        if self.checkpoint_failed.load(Ordering::Acquire) {
            return Err(io::Error::other(
                "an earlier checkpoint failed: the logs are kept until the store is \
                 opened again, which replays them",
            ));
        }
        let r = (|| {
            flush(&self.dir)?;
            for (generation, path) in self.logs()? {
                if generation <= upto {
                    fs::remove_file(path)?;
                    sync_dir(&self.base)?;
                }
            }
            Ok(())
        })();
        if r.is_err() {
            self.checkpoint_failed.store(true, Ordering::Release);
        }
        r
    }

    /// Apply one write to the value files (the committer and replay only).
    fn apply(&self, key: &str, op: Op<'_>) -> Result<(), StoreError> {
        match op {
            Op::Doc(v) => {
                let had_bin = lock(&self.bins).remove(key);
                let r = self.write_value(key, DOC_SUFFIX, had_bin.then_some(BIN_SUFFIX), &[v]);
                if r.is_err() && had_bin {
                    lock(&self.bins).insert(key.to_owned());
                }
                r
            }
            Op::Bin { media, bytes } => {
                let header = format!("{media}\n");
                let parts: &[&[u8]] = &[header.as_bytes(), bytes];
                self.write_value(key, BIN_SUFFIX, Some(DOC_SUFFIX), parts)?;
                lock(&self.bins).insert(key.to_owned());
                Ok(())
            }
            Op::Delete => {
                self.remove_value(key)?;
                lock(&self.bins).remove(key);
                Ok(())
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

    /// Create the missing directories of `key` (`dir` is its directory).
    fn ensure_dirs(&self, key: &str, dir: &Path) -> Result<(), StoreError> {
        if dir.is_dir() {
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
                    if !DEFERRED_SYNC {
                        let parent = cur.parent().unwrap_or(&self.base);
                        sync_dir(parent).map_err(|e| StoreError::io(key, "fsync dir", e))?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if !cur.is_dir() {
                        return Err(StoreError::io(
                            key,
                            "mkdir",
                            io::Error::new(
                                io::ErrorKind::NotADirectory,
                                format!("{} is not a directory", cur.display()),
                            ),
                        ));
                    }
                }
                Err(e) => return Err(StoreError::io(key, "mkdir", e)),
            }
        }
        Ok(())
    }

    /// Replace `key`'s value with the concatenation of `parts` in the file
    /// with `suffix`, removing the file with `other_suffix` if given.
    fn write_value(
        &self,
        key: &str,
        suffix: &str,
        other_suffix: Option<&str>,
        parts: &[&[u8]],
    ) -> Result<(), StoreError> {
        let (dir, leaf) = self.locate(key);
        let target = dir.join(format!("{leaf}{suffix}"));
        let (tmp_path, mut file) =
            create_temp(&self.tmp).map_err(|e| StoreError::io(key, "create temp", e))?;
        let written = (|| -> Result<(), StoreError> {
            for part in parts {
                file.write_all(part)
                    .map_err(|e| StoreError::io(key, "write", e))?;
            }
            if !DEFERRED_SYNC {
                file.sync_all()
                    .map_err(|e| StoreError::io(key, "fsync", e))?;
            }
            drop(file);
            match fs::rename(&tmp_path, &target) {
                // The key's directory is missing (or a file is in its way).
                Err(e) if is_missing(&e) => {
                    self.ensure_dirs(key, &dir)?;
                    fs::rename(&tmp_path, &target)
                }
                r => r,
            }
            .map_err(|e| StoreError::io(key, "rename", e))
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp_path);
            return Err(e);
        }
        if let Some(other) = other_suffix {
            match fs::remove_file(dir.join(format!("{leaf}{other}"))) {
                Ok(()) => {}
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(StoreError::io(key, "remove", e)),
            }
        }
        if !DEFERRED_SYNC {
            sync_dir(&dir).map_err(|e| StoreError::io(key, "fsync dir", e))?;
        }
        Ok(())
    }

    /// Remove `key`'s value files and the directories left empty.
    fn remove_value(&self, key: &str) -> Result<(), StoreError> {
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
            if !DEFERRED_SYNC {
                sync_dir(&dir).map_err(|e| StoreError::io(key, "fsync dir", e))?;
            }
            self.prune(&dir);
        }
        Ok(())
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
    /// Only the committer (or replay) creates and removes directories, so
    /// this never races a write into them.
    fn prune(&self, dir: &Path) {
        let mut cur = dir.to_path_buf();
        while cur != self.base && cur.starts_with(&self.base) {
            if fs::remove_dir(&cur).is_err() {
                break;
            }
            cur.pop();
            if !DEFERRED_SYNC {
                let _ = sync_dir(&cur);
            }
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

/// The open log file the committer appends to.
struct Log {
    file: File,
    generation: u64,
    /// Bytes of good batches (the file's length after the last good one).
    len: u64,
    /// Records in the file so far (the next record's sequence number).
    records: u64,
    /// How its records are framed (from its random salt).
    framing: wal::Framing,
}

impl Log {
    /// Create log `generation` durably: its header (magic and a random
    /// salt) is on disk and its name in the directory before any record
    /// is acknowledged from it.
    /// A file that could not be made durable is removed again, so that the
    /// next rotation can create it (`create_new` refuses one that exists).
    fn create(base: &Path, generation: u64) -> io::Result<Log> {
        Log::create_with(base, generation, sync_dir)
    }

    /// [`Log::create`] with the directory sync given (tests fail it).
    fn create_with(
        base: &Path,
        generation: u64,
        sync_base: fn(&Path) -> io::Result<()>,
    ) -> io::Result<Log> {
        let mut salt = [0u8; 8];
        getrandom::fill(&mut salt).map_err(|e| io::Error::other(format!("no random salt: {e}")))?;
        let path = base.join(format!("{LOG_PREFIX}{generation}"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let durable = file
            .write_all(&wal::file_header(&salt))
            .and_then(|()| file.sync_all())
            .and_then(|()| sync_base(base));
        if let Err(e) = durable {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(Log {
            file,
            generation,
            len: wal::FILE_HEADER as u64,
            records: 0,
            framing: wal::Framing::of(&salt),
        })
    }

    /// Write one batch after the last good one and make it durable. On
    /// failure, cut the file back to the last good batch; the error says
    /// whether that worked (`Err((error, false))`: the log is unusable).
    fn append(&mut self, batch: &[u8]) -> Result<(), (io::Error, bool)> {
        let written = (|| {
            self.file.seek(SeekFrom::Start(self.len))?;
            self.file.write_all(batch)?;
            self.file.sync_data()
        })();
        match written {
            Ok(()) => {
                self.len += batch.len() as u64;
                Ok(())
            }
            Err(e) => {
                let undone = self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.sync_data());
                Err((e, undone.is_ok()))
            }
        }
    }
}

/// The committer thread: batches, log appends, applies, rotation.
struct Committer {
    inner: Arc<Inner>,
    log: Log,
    /// The batch being encoded (reused).
    buf: Vec<u8>,
    /// The checkpoint of the previous log, if one was started.
    checkpoint: Option<JoinHandle<()>>,
    rotate_bytes: u64,
}

impl Committer {
    fn run(&mut self) {
        let mut batch = Vec::new();
        loop {
            {
                let mut q = lock(&self.inner.queue);
                while q.waiting.is_empty() && !q.closing {
                    q = self
                        .inner
                        .work
                        .wait(q)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if q.waiting.is_empty() {
                    break;
                }
                std::mem::swap(&mut batch, &mut q.waiting);
            }
            #[cfg(test)]
            let inner = Arc::clone(&self.inner);
            #[cfg(test)]
            let _hold = lock(&inner.hold);
            let committed =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.commit(&batch)));
            if committed.is_err() {
                // A bug: fail this batch and everything after it rather than
                // leave callers waiting forever.
                self.fail(&batch, "the committer panicked".into(), true);
            }
            batch.clear();
        }
        self.close();
    }

    /// Log, apply and acknowledge one batch.
    fn commit(&mut self, batch: &[Arc<Entry>]) {
        self.buf.clear();
        let first = self.log.records;
        let mut logged = Vec::with_capacity(batch.len());
        let mut refused = Vec::new();
        for e in batch {
            let seq = first + logged.len() as u64;
            match wal::encode(
                &mut self.buf,
                self.log.framing,
                seq,
                first,
                &e.key,
                e.value.op(),
            ) {
                Ok(()) => logged.push(Arc::clone(e)),
                Err(wal::TooLarge) => refused.push(Arc::clone(e)),
            }
        }
        if !logged.is_empty() {
            let appended = self.log.append(&self.buf);
            if self.buf.capacity() > KEPT_BUFFER {
                // Do not keep the memory of an exceptionally large batch.
                self.buf = Vec::new();
            }
            if let Err((e, undone)) = appended {
                let why = format!("write-ahead log {}: {e}", self.log.generation);
                if undone {
                    log::warn!("{why}; the batch of {} write(s) failed", logged.len());
                } else {
                    log::error!("{why}, and it could not be cut back; writes fail until a restart");
                }
                logged.extend(refused);
                self.fail(&logged, why, !undone);
                return;
            }
            self.log.records += logged.len() as u64;
        }
        let results: Vec<Result<(), StoreError>> = logged
            .iter()
            .map(|e| self.inner.apply(&e.key, e.value.op()))
            .collect();
        {
            let mut q = lock(&self.inner.queue);
            Inner::settle(&mut q, &logged);
            Inner::settle(&mut q, &refused);
        }
        for (e, r) in logged.iter().zip(results) {
            if let Err(err) = &r {
                log::warn!("write logged but not applied: {err}");
            }
            e.finish(r);
        }
        for e in &refused {
            e.finish(Err(StoreError::io(
                &e.key,
                "write log",
                io::Error::new(io::ErrorKind::InvalidInput, "value too large"),
            )));
        }
        self.maybe_rotate();
    }

    /// Fail `entries` and every write queued behind them (they may have
    /// compared against values that were never written); with `broken`,
    /// every later write too.
    fn fail(&self, entries: &[Arc<Entry>], why: String, broken: bool) {
        let queued = {
            let mut q = lock(&self.inner.queue);
            let queued = std::mem::take(&mut q.waiting);
            Inner::settle(&mut q, entries);
            Inner::settle(&mut q, &queued);
            if broken {
                q.broken = Some(why.clone());
            }
            queued
        };
        for e in entries.iter().chain(&queued) {
            if !e.finished() {
                e.finish(Err(StoreError::io(
                    &e.key,
                    "write log",
                    io::Error::other(why.clone()),
                )));
            }
        }
    }

    /// Start a new log when the current one is full, and checkpoint the
    /// old one on another thread.
    fn maybe_rotate(&mut self) {
        if self.log.len < self.rotate_bytes {
            return;
        }
        if let Some(h) = &self.checkpoint {
            if !h.is_finished() && self.log.len < self.rotate_bytes * MAX_LOG_FACTOR {
                return;
            }
        }
        if let Some(h) = self.checkpoint.take() {
            let _ = h.join();
        }
        let next = match Log::create(&self.inner.base, self.log.generation + 1) {
            Ok(log) => log,
            Err(e) => {
                log::warn!("cannot start a new write-ahead log ({e}); the current one grows");
                return;
            }
        };
        let upto = std::mem::replace(&mut self.log, next).generation;
        let inner = Arc::clone(&self.inner);
        let work = move || {
            if let Err(e) = inner.checkpoint(upto) {
                log::error!("checkpoint failed ({e}); the logs are kept until the next open");
            }
        };
        match std::thread::Builder::new()
            .name("starfish-checkpoint".into())
            .spawn(work)
        {
            Ok(h) => self.checkpoint = Some(h),
            Err(e) => log::warn!("cannot start a checkpoint ({e}); retried at the next rotation"),
        }
    }

    /// The store is closing and the queue is empty: checkpoint everything.
    /// The current log is emptied rather than deleted, so that the next
    /// open continues its generations: were they to start again at 1, a
    /// deleted log whose removal did not reach the disk could come back
    /// after a crash and be replayed after newer ones.
    fn close(&mut self) {
        if let Some(h) = self.checkpoint.take() {
            let _ = h.join();
        }
        if let Err(e) = self.inner.checkpoint(self.log.generation - 1) {
            log::warn!("checkpoint at close failed ({e}); the logs are replayed at the next open");
            return;
        }
        let len = wal::FILE_HEADER as u64;
        if let Err(e) = self
            .log
            .file
            .set_len(len)
            .and_then(|()| self.log.file.sync_data())
        {
            log::warn!("cannot empty the log at close ({e}); it is replayed at the next open");
        }
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
        self.inner.read_file(key, DOC_SUFFIX)
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        validate_key(key)?;
        self.write(key, Value::Doc(value.to_vec()), |_| Ok(true))
            .map(drop)
    }

    /// Compare with the key's newest document (queued writes included) and
    /// queue the write under the key's stripe lock: atomic against every
    /// other write in this process (one process owns a directory).
    fn swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, StoreError> {
        validate_key(key)?;
        self.write(key, Value::Doc(value.to_vec()), |inner| {
            inner.newest_doc_is(key, expected)
        })
    }

    /// [`swap`](Store::swap) without waiting: the queued write resolves
    /// when its batch is durable and applied.
    fn swap_deferred(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Option<Pending>, StoreError> {
        validate_key(key)?;
        let queued = self.queue(key, Value::Doc(value.to_vec()), |inner| {
            inner.newest_doc_is(key, expected)
        })?;
        Ok(queued.map(|e| Pending::queued(e)))
    }

    fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        validate_key(key)?;
        let Some(mut raw) = self.inner.read_file(key, BIN_SUFFIX)? else {
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
        let value = Value::Bin {
            media: media_type.to_owned(),
            bytes: bytes.to_vec(),
        };
        self.write(key, value, |_| Ok(true)).map(drop)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        // Deleting what is not there logs nothing.
        self.write(key, Value::Delete, |inner| inner.may_hold(key))
            .map(drop)
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
        let mut path = self.inner.base.clone();
        let mut key_prefix = String::new();
        if !dir_key.is_empty() {
            path.extend(dir_key.split('/'));
            key_prefix = format!("{dir_key}/");
        }
        let items = self.inner.read_items(&path, partial, prefix)?;
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
                    let items = self.inner.read_items(&path, "", prefix)?;
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
        let (dir, leaf) = self.inner.locate(key);
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
        let mut stack = vec![self.inner.base.clone()];
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

/// Create a new, uniquely named temp file in `dir` (`.~tmp/`).
fn create_temp(dir: &Path) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    loop {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("t{TMP_MARKER}{pid}.{n}"));
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

/// Whether a write failed because something foreign is in its way (a file
/// where a directory belongs, a directory where a value file belongs): it
/// fails the same way every time it is applied.
fn is_in_the_way(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { source, .. } if matches!(
        source.kind(),
        io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory
    ))
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

/// Flush everything written to the filesystem holding `dir` (files, their
/// names, directories) to disk: the checkpoint.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn sync_filesystem(dir: &File) -> io::Result<()> {
    rustix::fs::syncfs(dir).map_err(io::Error::from)
}

/// Without `syncfs`, every applied file was fsynced as it was written
/// ([`DEFERRED_SYNC`] is off): nothing left to flush.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn sync_filesystem(_dir: &File) -> io::Result<()> {
    Ok(())
}

/// Take the data directory for this store alone.
#[cfg(unix)]
fn lock_dir(dir: &File) -> io::Result<()> {
    use rustix::fs::{flock, FlockOperation};
    flock(dir, FlockOperation::NonBlockingLockExclusive).map_err(|e| {
        if e == rustix::io::Errno::WOULDBLOCK {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                "the data directory is in use by another store (another server?)",
            )
        } else {
            io::Error::from(e)
        }
    })
}

/// No `flock` off Unix: one store per directory is up to the operator.
#[cfg(not(unix))]
fn lock_dir(_dir: &File) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            static N: AtomicU64 = AtomicU64::new(0);
            let p = std::env::temp_dir().join(format!(
                "starfish-fs-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// The generations of the log files in `dir`.
    fn log_files(dir: &Path) -> Vec<u64> {
        let mut g: Vec<u64> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix(LOG_PREFIX)?
                    .parse()
                    .ok()
            })
            .collect();
        g.sort_unstable();
        g
    }

    /// A log file holding its header and no record.
    fn assert_empty_log(path: &Path) {
        let bytes = fs::read(path).unwrap();
        assert_eq!(bytes.len(), wal::FILE_HEADER, "{}", path.display());
        assert_eq!(&bytes[..8], wal::FILE_MAGIC);
        assert_eq!(wal::scan(&bytes), (vec![], wal::End::Clean));
    }

    /// The salt of the logs the tests write.
    const SALT: [u8; 8] = *b"fs-tests";

    /// A log file as a crash would leave it: `batches` of records.
    fn crashed_log(dir: &Path, generation: u64, batches: &[&[(&str, Op<'_>)]]) -> Vec<u8> {
        let mut out = wal::file_header(&SALT).to_vec();
        let mut seq = 0;
        for batch in batches {
            let first = seq;
            for (key, op) in *batch {
                wal::encode(&mut out, wal::Framing::of(&SALT), seq, first, key, *op).unwrap();
                seq += 1;
            }
        }
        fs::write(dir.join(format!("{LOG_PREFIX}{generation}")), &out).unwrap();
        out
    }

    #[test]
    fn open_replays_a_crashed_log_and_drops_its_torn_tail() {
        let dir = Dir::new("replay");
        // The value files the crash left: one a replayed delete removes,
        // one a replayed put overwrites, one the log does not touch.
        fs::create_dir_all(dir.0.join("a")).unwrap();
        fs::write(dir.0.join("gone.~doc"), b"old").unwrap();
        fs::write(dir.0.join("a/b.~doc"), b"old").unwrap();
        fs::write(dir.0.join("kept.~doc"), b"kept").unwrap();
        let mut log = crashed_log(
            &dir.0,
            7,
            &[
                &[
                    ("a/b", Op::Doc(b"v1")),
                    (
                        "c/d/img",
                        Op::Bin {
                            media: "image/png",
                            bytes: b"\x89PNG",
                        },
                    ),
                ],
                &[("gone", Op::Delete), ("a/b", Op::Doc(b"v2"))],
            ],
        );
        // A torn last batch: half of a record that must not land.
        let mut torn = Vec::new();
        wal::encode(
            &mut torn,
            wal::Framing::of(&SALT),
            4,
            4,
            "torn",
            Op::Doc(b"never"),
        )
        .unwrap();
        log.extend_from_slice(&torn[..torn.len() / 2]);
        fs::write(dir.0.join(format!("{LOG_PREFIX}7")), &log).unwrap();

        let s = FsStore::open(&dir.0).unwrap();
        assert_eq!(s.get("a/b").unwrap().as_deref(), Some(&b"v2"[..]));
        assert_eq!(
            s.get_bytes("c/d/img").unwrap(),
            Some((b"\x89PNG".to_vec(), "image/png".to_owned()))
        );
        assert_eq!(s.get("gone").unwrap(), None);
        assert_eq!(s.get("kept").unwrap().as_deref(), Some(&b"kept"[..]));
        assert_eq!(s.get("torn").unwrap(), None);
        // Replayed, checkpointed and deleted; the next log is generation 8.
        assert_eq!(log_files(&dir.0), [8]);
        // A document written over the replayed binary value removes it.
        s.put("c/d/img", b"{}").unwrap();
        assert!(!dir.0.join("c/d/img.~bin").exists());
        drop(s);
        // A clean close leaves the newest log, emptied, so that the next
        // open goes on from generation 9.
        assert_eq!(log_files(&dir.0), [8]);
        assert_empty_log(&dir.0.join(format!("{LOG_PREFIX}8")));

        // Replaying is idempotent: the same log again changes nothing but
        // what it writes.
        crashed_log(
            &dir.0,
            9,
            &[&[("a/b", Op::Doc(b"v2")), ("gone", Op::Delete)]],
        );
        let s = FsStore::open(&dir.0).unwrap();
        assert_eq!(s.get("a/b").unwrap().as_deref(), Some(&b"v2"[..]));
        assert_eq!(s.get("gone").unwrap(), None);
        assert_eq!(s.get("c/d/img").unwrap().as_deref(), Some(&b"{}"[..]));
        assert_eq!(log_files(&dir.0), [10]);
    }

    #[test]
    fn logs_replay_in_generation_order() {
        let dir = Dir::new("order");
        crashed_log(&dir.0, 10, &[&[("k", Op::Doc(b"newer"))]]);
        crashed_log(
            &dir.0,
            9,
            &[&[("k", Op::Doc(b"older")), ("j", Op::Doc(b"j"))]],
        );
        let s = FsStore::open(&dir.0).unwrap();
        assert_eq!(s.get("k").unwrap().as_deref(), Some(&b"newer"[..]));
        assert_eq!(s.get("j").unwrap().as_deref(), Some(&b"j"[..]));
        assert_eq!(log_files(&dir.0), [11]);
    }

    #[test]
    fn a_damaged_record_before_acknowledged_ones_refuses_to_open() {
        let dir = Dir::new("corrupt");
        let log = crashed_log(
            &dir.0,
            3,
            &[
                &[("x", Op::Doc(b"1")), ("y", Op::Doc(b"2"))],
                &[("z", Op::Doc(b"3"))],
            ],
        );
        // Flip a byte in the body of the second record ("y"): its batch
        // was followed by another, so it was acknowledged.
        let mut bad = log.clone();
        let mut first = wal::file_header(&SALT).to_vec();
        wal::encode(
            &mut first,
            wal::Framing::of(&SALT),
            0,
            0,
            "x",
            Op::Doc(b"1"),
        )
        .unwrap();
        bad[first.len() + wal::RECORD_HEADER] ^= 0x20;
        let path = dir.0.join(format!("{LOG_PREFIX}3"));
        fs::write(&path, &bad).unwrap();

        let err = FsStore::open(&dir.0).unwrap_err().to_string();
        assert!(err.contains("damaged record"), "{err}");
        assert!(err.contains(".~wal.3"), "{err}");
        // Nothing applied, nothing deleted: the operator decides.
        assert_eq!(fs::read(&path).unwrap(), bad);
        assert_eq!(log_files(&dir.0), [3]);
        assert!(!dir.0.join("x.~doc").exists());
        // The lock was released with the failed open: moving the log
        // aside opens the store.
        fs::rename(&path, dir.0.join("moved-aside")).unwrap();
        let s = FsStore::open(&dir.0).unwrap();
        assert_eq!(s.get("z").unwrap(), None);
    }

    #[test]
    fn logs_rotate_and_checkpoints_delete_them() {
        let dir = Dir::new("rotate");
        let s = FsStore::open_with(dir.0.clone(), 4096).unwrap();
        let value = vec![b'v'; 500];
        for i in 0..64 {
            s.put(&format!("r/{}/{i}", i % 4), &value).unwrap();
        }
        // Every 8 or so writes a new log; a checkpoint thread deletes the
        // old ones (the newest is being written).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let logs = log_files(&dir.0);
            if logs.len() <= 2 && logs.last() > Some(&4) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "logs left: {logs:?}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        drop(s);
        let left = log_files(&dir.0);
        assert_eq!(left.len(), 1, "{left:?}");
        let newest = left[0];
        assert_empty_log(&dir.0.join(format!("{LOG_PREFIX}{newest}")));
        let s = FsStore::open(&dir.0).unwrap();
        assert_eq!(log_files(&dir.0), [newest + 1], "generations go on");
        assert_eq!(s.list_keys("r/", None, 100).unwrap().len(), 64);
        assert_eq!(s.get("r/3/63").unwrap(), Some(value));
    }

    #[test]
    fn after_a_failed_checkpoint_no_log_is_deleted_until_the_next_open() {
        fn failing(_: &File) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(5)) // EIO from writeback
        }
        fn flushed(_: &File) -> io::Result<()> {
            Ok(())
        }
        // Control: an older log is deleted by a checkpoint that succeeds.
        let dir = Dir::new("ckpt-ok");
        let s = FsStore::open(&dir.0).unwrap();
        fs::write(
            dir.0.join(format!("{LOG_PREFIX}0")),
            wal::file_header(&SALT),
        )
        .unwrap();
        s.inner.checkpoint_with(0, flushed).unwrap();
        assert_eq!(log_files(&dir.0), vec![1]);
        drop(s);

        let dir = Dir::new("ckpt-failed");
        let s = FsStore::open(&dir.0).unwrap();
        s.put("k", b"acknowledged").unwrap();
        crashed_log(&dir.0, 0, &[&[("old", Op::Doc(b"from log 0"))]]);
        assert!(s.inner.checkpoint_with(0, failing).is_err());
        assert_eq!(log_files(&dir.0), vec![0, 1]);
        // A later flush that reports no error proves nothing about the
        // writes whose writeback failed: nothing is deleted, at close either.
        assert!(s.inner.checkpoint_with(0, flushed).is_err());
        assert_eq!(log_files(&dir.0), vec![0, 1]);
        drop(s);
        assert_eq!(log_files(&dir.0), vec![0, 1]);
        // The next open replays both logs and checkpoints them.
        let s = FsStore::open(&dir.0).unwrap();
        assert_eq!(s.get("k").unwrap().as_deref(), Some(&b"acknowledged"[..]));
        assert_eq!(s.get("old").unwrap().as_deref(), Some(&b"from log 0"[..]));
        assert_eq!(log_files(&dir.0), vec![2]);
    }

    #[test]
    fn a_log_that_cannot_be_made_durable_is_removed() {
        fn failing(_: &Path) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(5))
        }
        let dir = Dir::new("log-create");
        assert!(Log::create_with(&dir.0, 3, failing).is_err());
        assert_eq!(log_files(&dir.0), Vec::<u64>::new());
        // So the next attempt at the same generation can create it.
        let log = Log::create_with(&dir.0, 3, sync_dir).unwrap();
        assert_eq!(log.generation, 3);
        assert_empty_log(&dir.0.join(format!("{LOG_PREFIX}3")));
    }

    #[test]
    fn a_swap_compares_with_writes_still_queued() {
        let dir = Dir::new("queued");
        let s = Arc::new(FsStore::open(&dir.0).unwrap());
        s.put("k", b"v0").unwrap();
        // Keep the committer from committing while writes queue up.
        let hold = lock(&s.inner.hold);
        let put = {
            let s = Arc::clone(&s);
            std::thread::spawn(move || s.put("k", b"v1"))
        };
        while s.inner.pending("k").is_none() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // The file still holds v0, but v1 is the newest value.
        assert_eq!(s.get("k").unwrap().as_deref(), Some(&b"v0"[..]));
        assert!(s.swap_deferred("k", Some(b"v0"), b"x").unwrap().is_none());
        assert!(s.swap_deferred("k", None, b"x").unwrap().is_none());
        let queued = s.swap_deferred("k", Some(b"v1"), b"v2").unwrap().unwrap();
        // A queued delete makes "no document" the newest state.
        let deleter = {
            let s = Arc::clone(&s);
            std::thread::spawn(move || s.delete("k"))
        };
        while !s
            .inner
            .pending("k")
            .is_some_and(|e| matches!(e.value, Value::Delete))
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let created = s.swap_deferred("k", None, b"v3").unwrap().unwrap();
        drop(hold);
        put.join().unwrap().unwrap();
        // Awaited as a future and waited for by a thread alike.
        futures_lite::future::block_on(queued).unwrap();
        deleter.join().unwrap().unwrap();
        created.wait().unwrap();
        assert_eq!(s.get("k").unwrap().as_deref(), Some(&b"v3"[..]));
        assert!(s.inner.pending("k").is_none());
    }

    #[test]
    fn writes_queued_during_a_commit_share_the_next_one() {
        // 32 writers while the committer is held: at most the first write
        // gets a batch of its own, all the others share one write and one
        // fsync of the log.
        let dir = Dir::new("group");
        let s = Arc::new(FsStore::open(&dir.0).unwrap());
        let hold = lock(&s.inner.hold);
        let writers: Vec<_> = (0..32)
            .map(|t| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || s.put(&format!("g/{t}"), format!("{t}").as_bytes()))
            })
            .collect();
        while (0..32).any(|t| s.inner.pending(&format!("g/{t}")).is_none()) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(hold);
        for w in writers {
            w.join().unwrap().unwrap();
        }
        for t in 0..32 {
            let got = s.get(&format!("g/{t}")).unwrap();
            assert_eq!(got.as_deref(), Some(format!("{t}").as_bytes()));
        }
        let log = fs::read(dir.0.join(format!("{LOG_PREFIX}1"))).unwrap();
        let mut batches = wal::batches(&log);
        assert_eq!(batches.len(), 32);
        batches.dedup();
        assert!(batches.len() <= 2, "batches {batches:?}");
    }

    #[test]
    fn one_store_per_directory() {
        let dir = Dir::new("lock");
        let first = FsStore::open(&dir.0).unwrap();
        let err = FsStore::open(&dir.0).unwrap_err().to_string();
        assert!(err.contains("in use"), "{err}");
        drop(first);
        FsStore::open(&dir.0).unwrap();
    }

    #[test]
    fn deleting_nothing_logs_nothing() {
        let dir = Dir::new("nothing");
        let s = FsStore::open(&dir.0).unwrap();
        let log = dir.0.join(format!("{LOG_PREFIX}1"));
        let len = || fs::metadata(&log).unwrap().len();
        let before = len();
        s.delete("never/was").unwrap();
        assert_eq!(len(), before);
        s.put("now/is", b"1").unwrap();
        assert!(len() > before);
        let after_put = len();
        s.delete("now/is").unwrap();
        assert!(len() > after_put);
        assert!(
            !dir.0.join("now").exists(),
            "emptied directories are pruned"
        );
    }
}
