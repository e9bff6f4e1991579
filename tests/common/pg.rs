//! A fresh PostgreSQL database per use, on the server `STARFISH_PG_URL`
//! names (`tests/postgres/run.sh` starts one and sets it).

use starfish::store::postgres::PgStore;
use std::sync::atomic::{AtomicU64, Ordering};

/// The server's URL; a build with the `postgres` feature needs it.
pub fn url() -> String {
    std::env::var("STARFISH_PG_URL").expect(
        "built with --features postgres: set STARFISH_PG_URL (tests/postgres/run.sh starts a database)",
    )
}

/// The URL of a new, empty database.
pub fn fresh_url(tag: &str) -> String {
    use sqlx::Connection;
    static N: AtomicU64 = AtomicU64::new(0);
    let url = url();
    let db = format!(
        "t_{}_{}_{}",
        tag.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    async_io::block_on(async {
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&mut c)
            .await
            .unwrap();
    });
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{db}")
}

/// A store on a new, empty database.
pub fn fresh(tag: &str) -> PgStore {
    PgStore::connect(&fresh_url(tag), 8).unwrap()
}
