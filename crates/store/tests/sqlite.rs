//! The store conformance suite on SQLite (a fresh database file per test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use wagroups_store::SqliteStore;

async fn sqlite_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    (SqliteStore::open(&url).await.unwrap(), dir)
}

wagroups_store::conformance_tests!(sqlite_store());
