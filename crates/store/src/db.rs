//! What the SQLite stores share: a database file opened with its migrations applied, its
//! connections (one writer thread, reader threads, inline lookups), and query helpers.

use std::{path::Path, str::FromStr, sync::Arc};

use rusqlite::{Connection, Row};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use wagroups_core::{store::StoreError, time::Timestamp};

use crate::conn::{self, Inline, Readers, Writer, db};

/// An open database file.
#[derive(Clone)]
pub(crate) struct Db {
    writer: Arc<Writer>,
    readers: Arc<Readers>,
    inline: Arc<Inline>,
}

/// The file of an `sqlite://PATH` URL (a file is needed: the connections share it).
pub(crate) fn file_of(url: &str) -> Result<std::path::PathBuf, StoreError> {
    let opts = SqliteConnectOptions::from_str(url).map_err(|e| StoreError::Database(e.to_string()))?;
    let path = opts.get_filename().to_path_buf();
    if path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:") {
        return Err(StoreError::Database(
            "an SQLite database file is needed (sqlite://PATH): readers and the writer share it".into(),
        ));
    }
    Ok(path)
}

impl Db {
    /// Opens (creating if missing) the database at `path`, applies `migrator`'s migrations and
    /// starts the connections, with `readers` reader threads; threads are named after `name`.
    pub(crate) async fn open(
        path: &Path,
        migrator: &sqlx::migrate::Migrator,
        readers: usize,
        name: &str,
    ) -> Result<Db, StoreError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Database(e.to_string()))?;
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(e.to_string()))?;
        pool.close().await;
        let writer = Writer::start(conn::open(path, false)?, path, name)?;
        let readers = Readers::start(path, readers, name)?;
        Ok(Db {
            writer: Arc::new(writer),
            readers: Arc::new(readers),
            inline: Arc::new(Inline::new(path)),
        })
    }

    /// Runs `f` in a write transaction; answers after the commit. `f` decides before it writes
    /// and may run more than once ([`Writer::run`]).
    pub(crate) async fn write<T, E>(&self, f: impl FnMut(&Connection) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.writer.run(f).await
    }

    /// A read on a reader thread (for scans and pages).
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.readers.run(f).await
    }

    /// An indexed point lookup, run on the calling thread.
    pub(crate) fn lookup<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.inline.run(f)
    }
}

// ---------------------------------------------------------------------------------------
// Query helpers

pub(crate) fn all<T>(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    map: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = c.prepare_cached(sql).map_err(db)?;
    let mut rows = stmt.query(p).map_err(db)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(db)? {
        out.push(map(r)?);
    }
    Ok(out)
}

pub(crate) fn one<T>(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    map: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut stmt = c.prepare_cached(sql).map_err(db)?;
    let mut rows = stmt.query(p).map_err(db)?;
    match rows.next().map_err(db)? {
        Some(r) => Ok(Some(map(r)?)),
        None => Ok(None),
    }
}

pub(crate) fn exec(c: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<usize, StoreError> {
    c.prepare_cached(sql).map_err(db)?.execute(p).map_err(db)
}

pub(crate) fn get<T: rusqlite::types::FromSql>(r: &Row, col: &str) -> Result<T, StoreError> {
    r.get(col).map_err(db)
}

/// A typed identifier (`OrgId`, `EndpointId`, …) kept as text.
pub(crate) fn id<T: From<String>>(r: &Row, col: &str) -> Result<T, StoreError> {
    get::<String>(r, col).map(T::from)
}

/// Column `i`, a typed identifier kept as text.
pub(crate) fn id_at<T: From<String>>(r: &Row, i: usize) -> Result<T, StoreError> {
    at::<String>(r, i).map(T::from)
}

/// Column `i` of a row (for hot mappings of a fixed column list).
pub(crate) fn at<T: rusqlite::types::FromSql>(r: &Row, i: usize) -> Result<T, StoreError> {
    r.get(i).map_err(db)
}

/// Column `i`, parsed by `f`.
pub(crate) fn parse_at<T>(r: &Row, i: usize, col: &str, f: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    let s: String = at(r, i)?;
    f(&s).ok_or_else(|| corrupt(col, &s))
}

pub(crate) fn ts(r: &Row, col: &str) -> Result<Timestamp, StoreError> {
    Ok(Timestamp(get::<i64>(r, col)?))
}

pub(crate) fn opt_ts(r: &Row, col: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(get::<Option<i64>>(r, col)?.map(Timestamp))
}

pub(crate) fn parse<T>(r: &Row, col: &str, f: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    let s: String = get(r, col)?;
    f(&s).ok_or_else(|| corrupt(col, &s))
}

pub(crate) fn json_list(r: &Row, col: &str) -> Result<Option<Vec<String>>, StoreError> {
    let raw: Option<String> = get(r, col)?;
    raw.map(|s| serde_json::from_str::<Vec<String>>(&s).map_err(|_| corrupt(col, &s)))
        .transpose()
}

pub(crate) fn to_json_list(list: &Option<Vec<String>>) -> Option<String> {
    list.as_ref().map(|l| serde_json::Value::from(l.clone()).to_string())
}

pub(crate) fn ids_json(ids: &[i64]) -> String {
    serde_json::Value::from(ids.to_vec()).to_string()
}

pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("unexpected {what} {value:?}"))
}
