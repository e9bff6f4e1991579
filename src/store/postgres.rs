//! [`PgStore`]: documents and binary values in one PostgreSQL database,
//! shared by several `starfish serve` nodes (feature `postgres`, issue 14).
//!
//! ## Schema (version 2)
//!
//! | table | columns |
//! |---|---|
//! | `starfish_schema` | `version` (one row: the schema version written) |
//! | `starfish_values` | `key TEXT COLLATE "C" PRIMARY KEY`, `media TEXT` (`NULL` for a document, else a binary value's media type), `body BYTEA`, `digest BYTEA` (SHA-256 of `body`) |
//! | `starfish_nonces` | `signer`, `nonce`, `expires_ms`: the replay ledger shared by the nodes ([`NonceLedger`]) |
//! | `starfish_revocations` | `iss` (primary key), `generation`, `list` (canonical JSON): the newest revocation list of each issuer any node holds ([`RevocationLedger`], version 2) |
//!
//! [`PgStore::connect`] creates or migrates the schema under a transaction
//! advisory lock, so nodes starting together do not race; a database with
//! a newer schema version than this build knows is refused.
//!
//! ## Compare and swap
//!
//! [`Store::swap`] is one statement: `INSERT … ON CONFLICT DO UPDATE …
//! WHERE media IS NOT NULL` to create (or replace a binary value), `UPDATE
//! … WHERE digest = sha256(expected)` to update. Two nodes can therefore
//! never both accept a push from the same `baseHash`: the database decides,
//! not an in-process lock.
//!
//! ## Writes of several values
//!
//! An append to a chunked log writes a chunk, then the head: one swap
//! cannot guard both. [`Store::exclusive`] runs such a write under a
//! session advisory lock for the key (two-key form, class
//! `KEY_LOCK_CLASS`), taken on a connection of a small pool of its own.
//!
//! ## Shared replay protection
//!
//! As a [`NonceLedger`], a signed request's `(signer, nonce)` is inserted
//! if absent (or expired) in one statement; a request replayed to another
//! node finds it and is refused. Each node's own nonce cache bounds what it
//! admits (per signer and in total), so the table holds at most that many
//! live rows per node; expired rows are deleted on the server's timer
//! wheel ([`crate::auth::nonce::sweep_shared`]). The ledger's calls are
//! futures, awaited on the request's own task.
//!
//! Every [`Store`] method blocks on the database round trip (sqlx on its
//! smol runtime); the server calls the store from its blocking pool. Writes are
//! durable when PostgreSQL commits them (`synchronous_commit` as set on the
//! server).

use std::io;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row;

use crate::auth::nonce::{LedgerError, LedgerFuture, NonceLedger};
use crate::auth::revocation_shared::RevocationLedger;

use super::{
    binary_size, split_prefix, validate_key, validate_media_type, Store, StoreError, StoreUsage,
};

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: i32 = 2;

/// Advisory lock key taken (per transaction) while creating or migrating
/// the schema.
const MIGRATE_LOCK: i64 = 0x5354_4152_4649_5301; // "STARFIS" 1

/// A [`Store`] over a PostgreSQL database (see the module docs).
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// What `--store` said, with any password removed (for logs).
    shown: String,
    /// The connection holding the replica scheduling lock, while we hold it.
    lease: std::sync::Arc<std::sync::Mutex<Option<sqlx::PgConnection>>>,
    /// Where to open that connection.
    options: PgConnectOptions,
    /// Connections that hold per-key write locks ([`Store::exclusive`]),
    /// apart from `pool` so a lock holder can always get a connection for
    /// its reads and writes.
    locks: PgPool,
}

/// First half of the two-key advisory locks taken per storage key by
/// [`Store::exclusive`] (the two-key space is apart from the one-key
/// locks above); the second half is 32 bits of the key's SHA-256.
const KEY_LOCK_CLASS: i32 = 0x5346_4b01; // "SFK" 1

/// Connections holding per-key locks at once (more writers wait).
const KEY_LOCK_CONNECTIONS: u32 = 4;

fn key_lock_id(key: &str) -> i32 {
    let d = Sha256::digest(key.as_bytes());
    i32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// Session advisory lock held by the node that runs the replica's
/// scheduled syncs.
const SCHEDULE_LOCK: i64 = 0x5354_4152_4649_5302; // "STARFIS" 2

/// Whether `--store` names a PostgreSQL database.
pub fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// `url` with the password (if any) replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn db_err(key: &str, op: &'static str, e: sqlx::Error) -> StoreError {
    StoreError::io(key, op, io::Error::other(e.to_string()))
}

fn digest(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// Run a future to completion on this (blocking) thread.
fn wait<T>(f: impl std::future::Future<Output = T>) -> T {
    async_io::block_on(f)
}

impl PgStore {
    /// Connect to `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`; the
    /// password may also come from `PGPASSWORD`), with at most
    /// `max_connections` connections, and create or migrate the schema.
    pub fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let shown = redact(url);
        let opts: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| db_err(&shown, "parse url", e))?;
        let opts_for_lease = opts.clone();
        let pool = wait(
            PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts.clone()),
        )
        .map_err(|e| db_err(&shown, "connect", e))?;
        let locks = PgPoolOptions::new()
            .max_connections(KEY_LOCK_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(opts.clone());
        let store = PgStore {
            pool,
            shown,
            lease: Default::default(),
            options: opts_for_lease,
            locks,
        };
        wait(store.migrate())?;
        Ok(store)
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The database URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let e = |op| {
            let shown = self.shown.clone();
            move |err| db_err(&shown, op, err)
        };
        let mut tx = self.pool.begin().await.map_err(e("begin"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATE_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(e("lock"))?;
        sqlx::query("CREATE TABLE IF NOT EXISTS starfish_schema (version INTEGER NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(e("create"))?;
        let found: Option<i32> = sqlx::query_scalar("SELECT max(version) FROM starfish_schema")
            .fetch_one(&mut *tx)
            .await
            .map_err(e("schema version"))?;
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::io(
                    &self.shown,
                    "schema version",
                    io::Error::other(format!(
                        "the database has schema version {v}; this build knows up to {SCHEMA_VERSION}"
                    )),
                ));
            }
            Some(v) if v == SCHEMA_VERSION => {}
            found => {
                let from = found.unwrap_or(0);
                let mut steps: Vec<&str> = Vec::new();
                if from < 1 {
                    steps.extend([
                        r#"CREATE TABLE IF NOT EXISTS starfish_values (
                            key TEXT COLLATE "C" PRIMARY KEY,
                            media TEXT,
                            body BYTEA NOT NULL,
                            digest BYTEA NOT NULL)"#,
                        r#"CREATE TABLE IF NOT EXISTS starfish_nonces (
                            signer TEXT NOT NULL,
                            nonce TEXT NOT NULL,
                            expires_ms BIGINT NOT NULL,
                            PRIMARY KEY (signer, nonce))"#,
                        "CREATE INDEX IF NOT EXISTS starfish_nonces_expiry ON starfish_nonces (expires_ms)",
                    ]);
                }
                if from < 2 {
                    steps.push(
                        r#"CREATE TABLE IF NOT EXISTS starfish_revocations (
                            iss TEXT COLLATE "C" PRIMARY KEY,
                            generation DOUBLE PRECISION NOT NULL,
                            list TEXT NOT NULL)"#,
                    );
                }
                steps.push("DELETE FROM starfish_schema");
                for stmt in steps {
                    sqlx::query(stmt)
                        .execute(&mut *tx)
                        .await
                        .map_err(e("migrate"))?;
                }
                sqlx::query("INSERT INTO starfish_schema (version) VALUES ($1)")
                    .bind(SCHEMA_VERSION)
                    .execute(&mut *tx)
                    .await
                    .map_err(e("migrate"))?;
                log::info!("database schema migrated from version {from} to {SCHEMA_VERSION}");
            }
        }
        tx.commit().await.map_err(e("commit"))?;
        Ok(())
    }

    fn write(&self, key: &str, media: Option<&str>, bytes: &[u8]) -> Result<(), StoreError> {
        wait(
            sqlx::query(
                "INSERT INTO starfish_values (key, media, body, digest) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key) DO UPDATE
                 SET media = EXCLUDED.media, body = EXCLUDED.body, digest = EXCLUDED.digest",
            )
            .bind(key)
            .bind(media)
            .bind(bytes)
            .bind(digest(bytes))
            .execute(&self.pool),
        )
        .map_err(|e| db_err(key, "write", e))?;
        Ok(())
    }
}

impl NonceLedger for PgStore {
    fn check_and_remember<'a>(
        &'a self,
        signer: &'a str,
        nonce: &'a str,
        now_ms: i64,
        expires_ms: i64,
    ) -> LedgerFuture<'a, bool> {
        Box::pin(async move {
            let fresh = sqlx::query_scalar::<_, i32>(
                "INSERT INTO starfish_nonces (signer, nonce, expires_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (signer, nonce) DO UPDATE SET expires_ms = EXCLUDED.expires_ms
                 WHERE starfish_nonces.expires_ms < $4
                 RETURNING 1",
            )
            .bind(signer)
            .bind(nonce)
            .bind(expires_ms)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| LedgerError(e.to_string()))?;
            Ok(fresh.is_some())
        })
    }

    fn sweep(&self, now_ms: i64) -> LedgerFuture<'_, u64> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM starfish_nonces WHERE expires_ms < $1")
                .bind(now_ms)
                .execute(&self.pool)
                .await
                .map_err(|e| LedgerError(e.to_string()))?;
            Ok(done.rows_affected())
        })
    }
}

impl RevocationLedger for PgStore {
    fn publish<'a>(&'a self, iss: &'a str, generation: f64, list: &'a str) -> LedgerFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO starfish_revocations (iss, generation, list) VALUES ($1, $2, $3)
                 ON CONFLICT (iss) DO UPDATE
                 SET generation = EXCLUDED.generation, list = EXCLUDED.list
                 WHERE starfish_revocations.generation < EXCLUDED.generation",
            )
            .bind(iss)
            .bind(generation)
            .bind(list)
            .execute(&self.pool)
            .await
            .map_err(|e| LedgerError(e.to_string()))?;
            Ok(())
        })
    }

    fn newer_than<'a>(&'a self, known: &'a [(String, f64)]) -> LedgerFuture<'a, Vec<String>> {
        Box::pin(async move {
            let (issuers, generations): (Vec<&str>, Vec<f64>) =
                known.iter().map(|(i, g)| (i.as_str(), *g)).unzip();
            sqlx::query_scalar::<_, String>(
                "SELECT r.list FROM starfish_revocations r
                 LEFT JOIN unnest($1::text[], $2::float8[]) AS k(iss, generation)
                   ON k.iss = r.iss
                 WHERE k.generation IS NULL OR r.generation > k.generation",
            )
            .bind(issuers)
            .bind(generations)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| LedgerError(e.to_string()))
        })
    }
}

impl Store for PgStore {
    /// The node holding the session advisory lock [`SCHEDULE_LOCK`] on its
    /// own connection runs the scheduled syncs. While held, each call
    /// checks that the connection is alive; a node that dies loses its
    /// connection and so the lock, and the next node to ask takes it.
    fn schedule_lease(&self) -> bool {
        use sqlx::Connection;
        let mut lease = self.lease.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(conn) = lease.as_mut() {
            if wait(conn.ping()).is_ok() {
                return true;
            }
            log::warn!("lost the replica scheduling lock's connection; trying again");
            *lease = None;
        }
        let mut conn = match wait(sqlx::PgConnection::connect_with(&self.options)) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("replica scheduling lock: {e}");
                return false;
            }
        };
        let got = wait(
            sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                .bind(SCHEDULE_LOCK)
                .fetch_one(&mut conn),
        )
        .unwrap_or(false);
        if got {
            log::info!("this node now runs the replica's scheduled syncs");
            *lease = Some(conn);
        }
        got
    }

    /// A session advisory lock on a connection of the lock pool, held
    /// while `work` runs (its own reads and writes use the main pool) and
    /// released after, even when `work` panics. A node that dies holding
    /// it loses its connection, and with it the lock.
    fn exclusive(&self, key: &str, work: &mut dyn FnMut()) -> Result<(), StoreError> {
        let id = key_lock_id(key);
        let mut conn = wait(self.locks.acquire()).map_err(|e| db_err(key, "lock", e))?;
        wait(
            sqlx::query("SELECT pg_advisory_lock($1, $2)")
                .bind(KEY_LOCK_CLASS)
                .bind(id)
                .execute(&mut *conn),
        )
        .map_err(|e| db_err(key, "lock", e))?;
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let unlocked = wait(
            sqlx::query_scalar::<_, bool>("SELECT pg_advisory_unlock($1, $2)")
                .bind(KEY_LOCK_CLASS)
                .bind(id)
                .fetch_one(&mut *conn),
        );
        if !matches!(unlocked, Ok(true)) {
            // Never hand a connection that may still hold the lock back to
            // the pool: closing it releases the lock.
            log::warn!("releasing the write lock of {key:?} failed; closing its connection");
            drop(conn.detach());
        }
        if let Err(p) = ran {
            std::panic::resume_unwind(p);
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate_key(key)?;
        wait(
            sqlx::query_scalar::<_, Vec<u8>>(
                "SELECT body FROM starfish_values WHERE key = $1 AND media IS NULL",
            )
            .bind(key)
            .fetch_optional(&self.pool),
        )
        .map_err(|e| db_err(key, "read", e))
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        validate_key(key)?;
        self.write(key, None, value)
    }

    fn swap(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, StoreError> {
        validate_key(key)?;
        let done = match expected {
            None => wait(
                sqlx::query(
                    "INSERT INTO starfish_values (key, media, body, digest) VALUES ($1, NULL, $2, $3)
                     ON CONFLICT (key) DO UPDATE
                     SET media = NULL, body = EXCLUDED.body, digest = EXCLUDED.digest
                     WHERE starfish_values.media IS NOT NULL",
                )
                .bind(key)
                .bind(value)
                .bind(digest(value))
                .execute(&self.pool),
            ),
            Some(old) => wait(
                sqlx::query(
                    "UPDATE starfish_values SET body = $2, digest = $3
                     WHERE key = $1 AND media IS NULL AND digest = $4",
                )
                .bind(key)
                .bind(value)
                .bind(digest(value))
                .bind(digest(old))
                .execute(&self.pool),
            ),
        }
        .map_err(|e| db_err(key, "swap", e))?;
        Ok(done.rows_affected() == 1)
    }

    fn get_bytes(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        validate_key(key)?;
        let row = wait(
            sqlx::query(
                "SELECT body, media FROM starfish_values WHERE key = $1 AND media IS NOT NULL",
            )
            .bind(key)
            .fetch_optional(&self.pool),
        )
        .map_err(|e| db_err(key, "read", e))?;
        row.map(|r| {
            Ok((
                r.try_get::<Vec<u8>, _>(0)
                    .map_err(|e| db_err(key, "read", e))?,
                r.try_get::<String, _>(1)
                    .map_err(|e| db_err(key, "read", e))?,
            ))
        })
        .transpose()
    }

    fn put_bytes(&self, key: &str, bytes: &[u8], media_type: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        validate_media_type(media_type)?;
        self.write(key, Some(media_type), bytes)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        wait(
            sqlx::query("DELETE FROM starfish_values WHERE key = $1")
                .bind(key)
                .execute(&self.pool),
        )
        .map_err(|e| db_err(key, "delete", e))?;
        Ok(())
    }

    fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        split_prefix(prefix)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Keys are ASCII in the "C" collation: byte order, and `key >=
        // prefix` lets the primary key index start at the prefix.
        wait(
            sqlx::query_scalar::<_, String>(
                "SELECT key FROM starfish_values
                 WHERE key >= $1 AND starts_with(key, $1) AND ($2::text IS NULL OR key > $2)
                 ORDER BY key LIMIT $3",
            )
            .bind(prefix)
            .bind(start_after)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool),
        )
        .map_err(|e| db_err(prefix, "list", e))
    }

    fn value_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        validate_key(key)?;
        let row = wait(
            sqlx::query(
                "SELECT octet_length(body)::BIGINT, octet_length(media)::BIGINT
                 FROM starfish_values WHERE key = $1",
            )
            .bind(key)
            .fetch_optional(&self.pool),
        )
        .map_err(|e| db_err(key, "stat", e))?;
        let Some(row) = row else { return Ok(None) };
        let body: i64 = row.try_get(0).map_err(|e| db_err(key, "stat", e))?;
        let media: Option<i64> = row.try_get(1).map_err(|e| db_err(key, "stat", e))?;
        Ok(Some(match media {
            None => body as u64,
            Some(m) => body as u64 + m as u64 + 1,
        }))
    }

    fn measure(&self) -> Result<StoreUsage, StoreError> {
        let row = wait(
            sqlx::query(
                "SELECT COALESCE(SUM(octet_length(body) + COALESCE(octet_length(media) + 1, 0)), 0)::BIGINT,
                        COUNT(*)::BIGINT
                 FROM starfish_values",
            )
            .fetch_one(&self.pool),
        )
        .map_err(|e| db_err(&self.shown, "measure", e))?;
        let bytes: i64 = row.try_get(0).map_err(|e| db_err("", "measure", e))?;
        let values: i64 = row.try_get(1).map_err(|e| db_err("", "measure", e))?;
        let _ = binary_size; // same formula as binary_size, in SQL
        Ok(StoreUsage {
            bytes: bytes as u64,
            values: values as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert!(is_url("postgresql://x/y") && !is_url("./data"));
    }
}
