//! SQLite connections on their own threads. Each job is a closure that runs synchronously
//! on the connection, so a transaction of many statements costs one thread handoff, not one
//! per statement.
//!
//! The writer batches: it takes every job waiting, runs them in one `BEGIN IMMEDIATE`
//! transaction, commits once, and only then answers each caller. Answers therefore always
//! follow a durable commit (group commit).
//!
//! A job that fails without having written anything (the rule for jobs: decide, then write)
//! simply drops out of the batch. One that fails after writing (a database error midway)
//! cannot be undone alone, so the transaction is rolled back and the batch run again without
//! it: jobs may run more than once and keep no state between runs. This costs nothing when
//! nothing fails, where a savepoint per job cost SQLite a copy of every page a job touched
//! that an earlier job of the batch had touched too (about 15 % of the writer's
//! instructions).
//!
//! Copying the WAL back into the database (a checkpoint, with its two fsyncs) is left to a
//! checkpointer thread with its own connection: done by the committing writer, as SQLite does
//! by default, it stalled one commit in about forty for several milliseconds.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use rusqlite::Connection;
use tokio::sync::oneshot;
use wagroups_core::store::StoreError;

/// A write job: run (perhaps more than once, if its batch is run again), then answered.
trait WriteJob: Send {
    /// Runs on the connection; says whether it succeeded.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller with the outcome of its last run, given its transaction's fate.
    fn finish(self: Box<Self>, committed: Result<(), String>);
}

type Job = Box<dyn WriteJob>;

struct Typed<F, T, E> {
    f: F,
    result: Option<Result<T, E>>,
    tx: oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> WriteJob for Typed<F, T, E>
where
    F: FnMut(&Connection) -> Result<T, E> + Send,
    T: Send,
    E: From<StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        // Nothing from an earlier run may answer for this one (should `f` panic).
        self.result = None;
        let result = (self.f)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, committed: Result<(), String>) {
        let answer = match (committed, self.result) {
            // A failed job's own error stands, whatever became of the others.
            (_, Some(Err(e))) => Err(e),
            (Ok(()), Some(ok)) => ok,
            (Ok(()), None) => Err(StoreError::Database("the write job failed (it panicked)".into()).into()),
            (Err(e), _) => Err(StoreError::Database(format!("commit failed: {e}")).into()),
        };
        let _ = self.tx.send(answer);
    }
}

/// Most jobs committed together.
const BATCH_MAX: usize = 512;

pub fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

pub fn open(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(db)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(db)?;
    // WAL with synchronous=NORMAL: a commit survives a process crash (SIGKILL); only an OS
    // crash or power loss may drop the last commits, and never corrupts the file.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
         PRAGMA cache_size = -16000; PRAGMA temp_store = MEMORY;",
    )
    .map_err(db)?;
    conn.set_prepared_statement_cache_capacity(256);
    // Plans that do not depend on bound values: a cached statement is never prepared again
    // because a parameter changed.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(db)?;
    Ok(conn)
}

/// The single writer.
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

/// Checkpoints run on their own thread and connection, so that copying the WAL back into the
/// database (and its fsync) does not stall the writer. A checkpoint follows writes after this
/// pause, which lets several commits share it. (200 ms was a little cheaper per delivery but
/// doubled the p99 latency of creates at 1,000/s: each checkpoint, and each catch-up the
/// writer waits for, then had ten times the pages to copy.)
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(20);
/// Under steady writes the checkpointer never quite catches up, and SQLite only starts the
/// WAL over from its beginning when the writer begins a transaction with every frame copied
/// back. Past this length (in pages: 16 MiB) the writer waits, between two transactions, for
/// the checkpointer to catch up (a checkpoint of the last few frames), so the WAL restarts.
const WAL_CATCH_UP_PAGES: i32 = 4096;
/// The longest the writer waits for that.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// What the writer asks of the checkpointer.
enum Checkpoint {
    /// Commits were made: checkpoint soon.
    Written,
    /// Checkpoint now, and answer when done.
    CatchUp(mpsc::SyncSender<()>),
}

thread_local! {
    /// Pages in the WAL after this thread's connection's last commit (set by its WAL hook).
    static WAL_PAGES: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
}

fn note_wal_pages(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

impl Writer {
    /// Takes the writing connection; `path` opens the checkpointer's own. Threads are named
    /// after `name` (`NAME-writer`, `NAME-ckpt`); metrics carry the label `db="NAME"`.
    pub fn start(conn: Connection, path: &Path, name: &str) -> Result<Writer, StoreError> {
        // The checkpointer, not the committing writer, copies the WAL back (the hook replaces
        // SQLite's automatic checkpoints).
        conn.wal_hook(Some(note_wal_pages));
        conn.execute_batch("PRAGMA journal_size_limit = 67108864").map_err(db)?;
        let checkpointer = open(path, false)?;
        let (wal_tx, wal_rx) = mpsc::sync_channel::<Checkpoint>(1);
        thread::Builder::new()
            .name(format!("{name}-ckpt"))
            .spawn({
                let name = name.to_string();
                move || checkpoint_loop(checkpointer, wal_rx, name)
            })
            .map_err(|e| StoreError::Database(format!("cannot start the SQLite checkpointer: {e}")))?;
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name(format!("{name}-writer"))
            .spawn({
                let name = name.to_string();
                move || write_loop(conn, rx, wal_tx, name)
            })
            .map_err(|e| StoreError::Database(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Writer { jobs: tx })
    }

    /// Runs `f` in a write transaction; answers after the commit. `f` must not write
    /// before it knows it will succeed (a database error aside), and may be run more than
    /// once (see the module's documentation).
    pub async fn run<T, E>(&self, f: impl FnMut(&Connection) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(Typed { f, result: None, tx });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Database("the SQLite writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Database("the SQLite writer dropped a job".into()))?
    }
}

/// Runs a statement of the writer's protocol, prepared once.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Checkpoints after writes, and at once when asked, until the writer is gone; then once
/// more, in full.
fn checkpoint_loop(conn: Connection, asked: mpsc::Receiver<Checkpoint>, name: String) {
    let checkpoints = metrics::counter!("wagroups_sqlite_checkpoints_total", "db" => name);
    while let Ok(first) = asked.recv() {
        let mut answer = Vec::new();
        if let Checkpoint::CatchUp(done) = first {
            answer.push(done);
        }
        // Let a few commits share the checkpoint, unless the writer waits for it.
        let until = std::time::Instant::now() + CHECKPOINT_PAUSE;
        while answer.is_empty() {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match asked.recv_timeout(left) {
                Ok(Checkpoint::CatchUp(done)) => answer.push(done),
                Ok(Checkpoint::Written) => {}
                Err(_) => break,
            }
        }
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
        checkpoints.increment(1);
        for done in answer {
            let _ = done.send(());
        }
    }
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "final WAL checkpoint failed");
    }
}

fn write_loop(conn: Connection, rx: mpsc::Receiver<Job>, checkpointer: mpsc::SyncSender<Checkpoint>, name: String) {
    let commits = metrics::counter!("wagroups_sqlite_commits_total", "db" => name.clone());
    let jobs = metrics::counter!("wagroups_sqlite_write_jobs_total", "db" => name);
    let mut catch_up_at = WAL_CATCH_UP_PAGES;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let (batch, committed) = run_batch(&conn, batch);
        commits.increment(1);
        jobs.increment(batch.len() as u64);
        for job in batch {
            job.finish(committed.clone());
        }
        let pages = WAL_PAGES.with(std::cell::Cell::get);
        if pages >= catch_up_at {
            // Between two transactions: once the checkpointer has copied every frame, the
            // next transaction starts the WAL over. (A reader holding an old snapshot may
            // prevent that: then the next try waits for as many pages again.)
            let (done, caught_up) = mpsc::sync_channel(1);
            if checkpointer.send(Checkpoint::CatchUp(done)).is_ok() {
                let _ = caught_up.recv_timeout(CATCH_UP_WAIT);
            }
            catch_up_at = pages.saturating_add(WAL_CATCH_UP_PAGES);
        } else {
            if pages < WAL_CATCH_UP_PAGES {
                // The WAL started over.
                catch_up_at = WAL_CATCH_UP_PAGES;
            }
            // Wakes the checkpointer unless a wake-up is already waiting.
            let _ = checkpointer.try_send(Checkpoint::Written);
        }
    }
}

/// Runs a batch in one transaction and commits it; answers the jobs to finish (jobs that
/// failed after writing were finished already) and how the commit went.
fn run_batch(conn: &Connection, mut batch: Vec<Job>) -> (Vec<Job>, Result<(), String>) {
    loop {
        // A transaction left open by a failed rollback would make every BEGIN fail.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        if let Err(e) = control(conn, "BEGIN IMMEDIATE") {
            return (batch, Err(e.to_string()));
        }
        let mut spoiled = None;
        for (i, job) in batch.iter_mut().enumerate() {
            let before = conn.total_changes();
            let ok = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(conn))) {
                Ok(ok) => ok,
                Err(_) => {
                    tracing::error!("a write job panicked");
                    false
                }
            };
            // Failed after writing; or failed so badly (disk full, I/O error) that SQLite
            // rolled the whole transaction back itself, which would leave the jobs after it
            // writing outside any transaction.
            if conn.is_autocommit() || (!ok && conn.total_changes() != before) {
                spoiled = Some(i);
                break;
            }
        }
        let Some(i) = spoiled else {
            let committed = control(conn, "COMMIT").map_err(|e| e.to_string());
            if committed.is_err() && !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return (batch, committed);
        };
        // Undo the transaction, answer the job with its own error (or, had it succeeded, with
        // the failure of the transaction it ran in), and run the others again without it.
        tracing::warn!("a write job failed after writing; its batch is run again without it");
        if !conn.is_autocommit()
            && let Err(e) = conn.execute_batch("ROLLBACK")
        {
            return (batch, Err(e.to_string()));
        }
        batch.remove(i).finish(Err("its transaction was rolled back".into()));
    }
}

/// Read-only connections used inline, on the calling thread, for indexed point lookups and
/// short bounded range reads that take microseconds: cheaper than a handoff to a reader
/// thread and back.
pub struct Inline {
    path: std::path::PathBuf,
    pool: std::sync::Mutex<Vec<Connection>>,
}

impl Inline {
    pub fn new(path: &Path) -> Inline {
        Inline {
            path: path.to_path_buf(),
            pool: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn run<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => open(&self.path, true)?,
        };
        let result = f(&conn);
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        result
    }
}

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// Read-only connections, each on its own thread; jobs go round-robin.
pub struct Readers {
    senders: Vec<mpsc::Sender<ReadJob>>,
    next: Arc<AtomicUsize>,
}

impl Readers {
    /// `n` reader threads named `NAME-read-I`.
    pub fn start(path: &Path, n: usize, name: &str) -> Result<Readers, StoreError> {
        let mut senders = Vec::with_capacity(n);
        for i in 0..n {
            let conn = open(path, true)?;
            let (tx, rx) = mpsc::channel::<ReadJob>();
            thread::Builder::new()
                .name(format!("{name}-read-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job(&conn);
                    }
                })
                .map_err(|e| StoreError::Database(e.to_string()))?;
            senders.push(tx);
        }
        Ok(Readers {
            senders,
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len();
        self.senders[i]
            .send(Box::new(move |conn| {
                let _ = tx.send(f(conn));
            }))
            .map_err(|_| StoreError::Database("an SQLite reader has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Database("an SQLite reader dropped a job".into()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer on a new database holding `schema`, in a directory of its own (`t.db`).
    fn writer_on(schema: &str) -> (tempfile::TempDir, Arc<Writer>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let c = open(&path, false).unwrap();
        c.execute_batch(schema).unwrap();
        let w = Arc::new(Writer::start(c, &path, "t").unwrap());
        (dir, w)
    }

    /// Runs `job(n, connection)` for every n below `count`, all at once (so that batches form);
    /// answers the ns whose job was answered as committed, in order.
    async fn run_all<F>(w: &Arc<Writer>, count: i64, job: F) -> Vec<i64>
    where
        F: Fn(i64, &Connection) -> Result<(), StoreError> + Clone + Send + 'static,
    {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..count {
            let (w, job) = (w.clone(), job.clone());
            tasks.spawn(async move { (n, w.run(move |c| job(n, c)).await.is_ok()) });
        }
        let mut committed = Vec::new();
        while let Some(r) = tasks.join_next().await {
            let (n, ok) = r.unwrap();
            if ok {
                committed.push(n);
            }
        }
        committed.sort();
        committed
    }

    /// The ns in table `t`, in order.
    fn stored(dir: &tempfile::TempDir) -> Vec<i64> {
        let c = open(&dir.path().join("t.db"), true).unwrap();
        let mut st = c.prepare("SELECT n FROM t ORDER BY n").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    }

    fn insert(n: i64, c: &Connection) -> Result<(), StoreError> {
        c.execute("INSERT INTO t (n) VALUES (?1)", [n]).map(|_| ()).map_err(db)
    }

    #[tokio::test]
    async fn a_failing_job_leaves_no_trace_while_its_batch_commits() {
        let (dir, w) = writer_on("CREATE TABLE t (n INTEGER PRIMARY KEY)");
        let committed = run_all(&w, 200, |n, c| {
            insert(n, c)?;
            if n % 2 == 1 {
                // Written, then refused: the batch runs again without it.
                return Err(StoreError::Database("odd".into()));
            }
            Ok(())
        })
        .await;
        let evens: Vec<i64> = (0..200).filter(|n| n % 2 == 0).collect();
        assert_eq!(committed, evens);
        assert_eq!(stored(&dir), evens);
    }

    #[tokio::test]
    async fn a_job_failing_before_it_writes_costs_the_others_nothing() {
        let (dir, w) = writer_on("CREATE TABLE t (n INTEGER PRIMARY KEY)");
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let committed = run_all(&w, 200, move |n, c| {
            counted.fetch_add(1, Ordering::Relaxed);
            if n % 2 == 1 {
                return Err(StoreError::Database("refused before writing".into()));
            }
            insert(n, c)
        })
        .await;
        let evens: Vec<i64> = (0..200).filter(|n| n % 2 == 0).collect();
        assert_eq!(committed, evens);
        assert_eq!(stored(&dir), evens);
        assert_eq!(runs.load(Ordering::Relaxed), 200, "no batch was run again");
    }

    /// A job whose failure makes SQLite roll the whole transaction back (disk full, I/O
    /// error: here the job rolls back itself) must not leave the jobs after it writing
    /// outside any transaction, nor the jobs before it answered as committed.
    #[tokio::test]
    async fn a_transaction_rolled_back_under_the_batch_is_run_again() {
        let (dir, w) = writer_on("CREATE TABLE t (n INTEGER PRIMARY KEY)");
        let committed = run_all(&w, 100, |n, c| {
            if n == 50 {
                c.execute_batch("ROLLBACK").map_err(db)?;
                return Err(StoreError::Database("disk full".into()));
            }
            insert(n, c)
        })
        .await;
        let expected: Vec<i64> = (0..100).filter(|n| *n != 50).collect();
        assert_eq!(committed, expected);
        assert_eq!(
            stored(&dir),
            expected,
            "every job answered as committed is, exactly once"
        );
    }

    /// 40 MB written without a pause: the WAL still starts over every 16 MiB or so.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sustained_writes_keep_the_wal_bounded() {
        let (dir, w) = writer_on("CREATE TABLE t (n INTEGER PRIMARY KEY, b BLOB)");
        let mut tasks = tokio::task::JoinSet::new();
        for k in 0..64i64 {
            let w = w.clone();
            tasks.spawn(async move {
                for i in 0..160i64 {
                    w.run(move |c| {
                        c.execute("INSERT INTO t (n, b) VALUES (?1, zeroblob(4000))", [k * 1000 + i])
                            .map_err(db)
                    })
                    .await
                    .unwrap();
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("t.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(wal < 24 << 20, "the WAL grew to {wal} bytes");
    }

    #[tokio::test]
    async fn the_checkpointer_copies_commits_into_the_database_file() {
        let (dir, w) = writer_on("CREATE TABLE t (n INTEGER PRIMARY KEY, b BLOB)");
        let path = dir.path().join("t.db");
        for n in 0..200i64 {
            w.run(move |c| {
                c.execute("INSERT INTO t (n, b) VALUES (?1, zeroblob(4000))", [n])
                    .map_err(db)
            })
            .await
            .unwrap();
        }
        // 200 rows of 4 KB: the database file itself holds them once checkpointed.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        while size() < 800_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "not checkpointed: {} bytes",
                size()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
