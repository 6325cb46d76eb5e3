//! The run store: the dashboard's runs in an embedded SQLite database under the data folder.
//!
//! One thread owns the connection and does every read and write, in the order they were
//! asked, so SQLite's blocking calls never run on the async workers and a run's writes never
//! overtake each other. The connection holds the database's lock for as long as it is open:
//! two dashboards never share a data folder, and neither can take the other's running run
//! for an interrupted one.

pub mod codec;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use shared::api::RunSummary;
use shared::record::Arena;
use shared::telemetry::Telemetry;
use shared::{ModelInfo, PointStats, RequestRecord, RunReport, RunStatus, SweepSpec};
use tokio::sync::oneshot;

use codec::CodecError;

/// The database's file name inside the data folder.
pub const FILE_NAME: &str = "runs.sqlite3";

/// Every schema change, in order; the database's `user_version` counts those applied. Never
/// edit one that has shipped: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: runs, their settled points and every request's record.
    "CREATE TABLE runs (
        key INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        started_unix_ns INTEGER NOT NULL,
        spec TEXT NOT NULL,
        status TEXT NOT NULL,
        model TEXT,
        tool TEXT NOT NULL,
        simulated INTEGER NOT NULL,
        prompt_lengths_approximate INTEGER NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        notes TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL DEFAULT '[]',
        finished_requests INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE points (
        run INTEGER NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
        point INTEGER NOT NULL,
        stats TEXT NOT NULL,
        PRIMARY KEY (run, point)
    ) WITHOUT ROWID;
    CREATE TABLE requests (
        run INTEGER NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
        record BLOB NOT NULL
    );
    CREATE INDEX requests_by_run ON requests(run);",
    // 2: when each run entered the store, for retention; earlier runs count from their start.
    "ALTER TABLE runs ADD COLUMN added_unix_ns INTEGER NOT NULL DEFAULT 0;
    UPDATE runs SET added_unix_ns = started_unix_ns;",
    // 3: what each run cost the engine (JSON), once it has ended.
    "ALTER TABLE runs ADD COLUMN engine TEXT;",
    // 4: the server's metrics read during each run (deflated JSON), kept as points settle.
    "ALTER TABLE runs ADD COLUMN telemetry BLOB;",
];

/// SQLite's largest page: a page holds dozens of records, so the space left over at the end of
/// each is small beside them (with 16 KiB, a run of 3 KB records took 17% more room).
const PAGE_SIZE: u32 = 65_536;

/// Checkpoint the write-ahead log at about 4 MB rather than SQLite's 1,000 pages (64 MB here).
const WAL_CHECKPOINT_PAGES: u32 = 64;

/// How long opening waits for another connection to let go of the database.
const LOCK_WAIT: Duration = Duration::from_secs(1);

/// A store failure, worded for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data folder {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open the run store {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error(
        "the run store {path} was written by a newer tokenscope (schema version {found}; this one reads up to {supported})"
    )]
    TooNew { path: PathBuf, found: u32, supported: u32 },
    #[error("the run store failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("run {run}: a stored request is damaged: {source}")]
    Damaged { run: String, source: CodecError },
    #[error("run {run}: a stored value is damaged: {source}")]
    BadValue { run: String, source: serde_json::Error },
    #[error("there is no stored run {0}")]
    NoRun(String),
    #[error("the run store has been closed")]
    Closed,
}

impl StoreError {
    /// The failure in words for a client of the dashboard: the same, less the local paths,
    /// which only the dashboard's own log and terminal name.
    pub fn for_client(&self) -> String {
        match self {
            StoreError::CreateDir { source, .. } => format!("cannot create the data folder: {source}"),
            StoreError::Open { source, .. } => format!("cannot open the run store: {source}"),
            StoreError::TooNew { found, supported, .. } => format!(
                "the run store was written by a newer tokenscope (schema version {found}; this one reads up to {supported})"
            ),
            other => other.to_string(),
        }
    }

    /// Whether the database is held by another process.
    pub fn is_locked(&self) -> bool {
        let source = match self {
            StoreError::Open { source, .. } | StoreError::Sql(source) => source,
            _ => return false,
        };
        matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A run as it is first written: what is known when it starts.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub spec: SweepSpec,
    pub started_unix_ns: i64,
    pub simulated: bool,
    pub tool: String,
}

/// The user's words on a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMeta {
    pub name: String,
    pub notes: String,
    pub tags: Vec<String>,
}

/// The open database; lives on the store's thread.
pub struct Db {
    conn: Connection,
}

impl Db {
    /// Opens (creating when needed) the database in `dir` and brings its schema up to date.
    pub fn open(dir: &Path) -> Result<Db> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { path: dir.into(), source })?;
        let path = dir.join(FILE_NAME);
        let open_error = |source| StoreError::Open { path: path.clone(), source };
        let mut conn = Connection::open(&path).map_err(open_error)?;
        configure(&conn).map_err(open_error)?;
        migrate(&mut conn, MIGRATIONS).map_err(|err| match err {
            StoreError::Sql(source) => open_error(source),
            StoreError::TooNew { found, supported, .. } => StoreError::TooNew { path: path.clone(), found, supported },
            other => other,
        })?;
        Ok(Db { conn })
    }

    /// The schema version of the open database.
    pub fn version(&self) -> Result<u32> {
        Ok(self.conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
    }

    /// Writes a run that has just started.
    pub fn insert_run(&mut self, run: &NewRun) -> Result<()> {
        insert_run(&self.conn, run, &RunStatus::Running)?;
        Ok(())
    }

    /// Notes the model a run measures.
    pub fn set_model(&mut self, id: &str, model: &ModelInfo) -> Result<()> {
        let model = serde_json::to_string(model).expect("a model serializes");
        self.conn.execute("UPDATE runs SET model = ?2 WHERE id = ?1", params![id, model])?;
        Ok(())
    }

    /// Adds finished requests, in one transaction.
    pub fn add_requests(&mut self, id: &str, records: &[RequestRecord]) -> Result<()> {
        let tx = self.conn.transaction()?;
        let (key, base) = run_key(&tx, id)?;
        insert_requests(&tx, key, base, records)?;
        let errors = records.iter().filter(|r| r.error.is_some()).count() as i64;
        tx.execute(
            "UPDATE runs SET finished_requests = finished_requests + ?2, errors = errors + ?3 WHERE key = ?1",
            params![key, records.len() as i64, errors],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Replaces a running run's spec: a capacity search adds each probe's rate as it starts.
    pub fn set_spec(&mut self, id: &str, spec: &SweepSpec) -> Result<()> {
        let spec = serde_json::to_string(spec).expect("a spec serializes");
        self.conn.execute("UPDATE runs SET spec = ?2 WHERE id = ?1", params![id, spec])?;
        Ok(())
    }

    /// Keeps a point's settled statistics.
    /// Keeps the server's metrics of a run so far, replacing what was kept.
    pub fn set_telemetry(&mut self, id: &str, telemetry: &Telemetry) -> Result<()> {
        let changed = self
            .conn
            .execute("UPDATE runs SET telemetry = ?2 WHERE id = ?1", params![id, codec::encode_telemetry(telemetry)])?;
        if changed == 0 {
            return Err(StoreError::NoRun(id.into()));
        }
        Ok(())
    }

    pub fn set_point(&mut self, id: &str, point: u32, stats: &PointStats) -> Result<()> {
        let tx = self.conn.transaction()?;
        let (key, _) = run_key(&tx, id)?;
        insert_point(&tx, key, point, stats)?;
        tx.commit()?;
        Ok(())
    }

    /// Writes how a run ended. Requests whose batch could not be written (a full disk that
    /// has since been freed) are written again from the report.
    pub fn finish(&mut self, id: &str, report: &RunReport) -> Result<()> {
        let tx = self.conn.transaction()?;
        let (key, _) = run_key(&tx, id)?;
        write_outcome(&tx, key, report)?;
        tx.commit()?;
        Ok(())
    }

    /// Writes a whole finished run (an import) in one transaction.
    pub fn import(&mut self, run: &NewRun, report: &RunReport) -> Result<()> {
        let tx = self.conn.transaction()?;
        let key = insert_run(&tx, run, &report.status)?;
        write_outcome(&tx, key, report)?;
        tx.commit()?;
        Ok(())
    }

    /// Replaces a run's name, notes and tags.
    pub fn set_meta(&mut self, id: &str, meta: &RunMeta) -> Result<()> {
        let tags = serde_json::to_string(&meta.tags).expect("tags serialize");
        let changed = self.conn.execute(
            "UPDATE runs SET name = ?2, notes = ?3, tags = ?4 WHERE id = ?1",
            params![id, meta.name, meta.notes, tags],
        )?;
        if changed == 0 {
            return Err(StoreError::NoRun(id.into()));
        }
        Ok(())
    }

    /// Deletes a run with its points and requests.
    pub fn delete(&mut self, id: &str) -> Result<()> {
        if self.conn.execute("DELETE FROM runs WHERE id = ?1", [id])? == 0 {
            return Err(StoreError::NoRun(id.into()));
        }
        Ok(())
    }

    /// Marks every run still marked running as interrupted: the process that ran it is gone.
    /// As a cancelled run's engine does, the point it was measuring gets the statistics of
    /// the requests it finished, and whether prompt lengths are the server's counts is read
    /// from the records. Answers how many runs there were.
    pub fn interrupt_running(&mut self) -> Result<usize> {
        let running: Vec<String> = self
            .conn
            .prepare("SELECT id FROM runs WHERE status = ?1")?
            .query_map([status_json(&RunStatus::Running)], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for id in &running {
            // A run that cannot be read is still marked; its records stay as they are.
            let report = self.report(id).inspect_err(|err| {
                tracing::warn!(run = %id, cause = %err, "an interrupted run's last point cannot be settled");
            });
            let tx = self.conn.transaction()?;
            let (key, _) = run_key(&tx, id)?;
            if let Ok(report) = report {
                let settled = report.points.len();
                let partial: Vec<&RequestRecord> =
                    report.requests.iter().filter(|r| r.point as usize == settled).collect();
                if settled < report.spec.point_count() && !partial.is_empty() {
                    insert_point(&tx, key, settled as u32, &PointStats::of_point(&report.spec, settled, partial))?;
                }
                let approximate = RunReport::lengths_approximate(&report.spec, &report.requests);
                tx.execute(
                    "UPDATE runs SET prompt_lengths_approximate = ?2 WHERE key = ?1",
                    params![key, approximate],
                )?;
            }
            tx.execute(
                "UPDATE runs SET status = ?2 WHERE key = ?1",
                params![key, status_json(&RunStatus::Interrupted)],
            )?;
            tx.commit()?;
        }
        Ok(running.len())
    }

    /// Every stored run's summary, oldest first, without reading any request. A run whose
    /// row cannot be read is left out of the list, and out of harm's way: it is named in a
    /// warning and stays in the database as it is.
    pub fn summaries(&mut self) -> Result<Vec<RunSummary>> {
        let mut points = self.points_by_run()?;
        let mut statement = self.conn.prepare(
            "SELECT key, id, started_unix_ns, spec, status, model, simulated, name, notes, tags,
                    finished_requests, errors
             FROM runs ORDER BY key",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                [
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, Option<String>>(5)?.unwrap_or_default(),
                ],
                row.get::<_, bool>(6)?,
                [row.get::<_, String>(7)?, row.get::<_, String>(8)?, row.get::<_, String>(9)?],
                [row.get::<_, i64>(10)?, row.get::<_, i64>(11)?],
            ))
        })?;
        let mut summaries = Vec::new();
        for row in rows {
            let (key, id, started_unix_ns, [spec, status, model], simulated, [name, notes, tags], [finished, errors]) =
                row?;
            let bad = |source| StoreError::BadValue { run: id.clone(), source };
            let summary = (|| {
                let spec: SweepSpec = serde_json::from_str(&spec).map_err(bad)?;
                let status: RunStatus = serde_json::from_str(&status).map_err(bad)?;
                Ok::<_, StoreError>(RunSummary {
                    total_requests: spec.requests_sent_bound((status != RunStatus::Running).then_some(finished as u64)),
                    spec,
                    started_unix_ns,
                    simulated,
                    status,
                    model: (!model.is_empty()).then(|| serde_json::from_str(&model)).transpose().map_err(bad)?,
                    finished_requests: finished as u64,
                    errors: errors as u64,
                    points: parse_points(&id, points.remove(&key).unwrap_or_default())?,
                    name,
                    notes,
                    tags: serde_json::from_str(&tags).map_err(bad)?,
                    not_saved: None,
                    id: id.clone(),
                })
            })();
            match summary {
                Ok(summary) => summaries.push(summary),
                Err(err) => tracing::warn!(
                    run = %id,
                    cause = %err,
                    "a stored run cannot be read and is left out of the list; it stays in the database untouched"
                ),
            }
        }
        Ok(summaries)
    }

    /// When each stored run entered the store, in nanoseconds since the Unix epoch, by id.
    pub fn added_times(&mut self) -> Result<std::collections::HashMap<String, i64>> {
        let mut statement = self.conn.prepare("SELECT id, added_unix_ns FROM runs")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A stored run in full: every request's record, in the order they finished.
    pub fn report(&mut self, id: &str) -> Result<RunReport> {
        let row = self
            .conn
            .query_row(
                "SELECT key, started_unix_ns, spec, status, model, tool, prompt_lengths_approximate, engine, telemetry
                 FROM runs WHERE id = ?1",
                [id],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        [row.get::<_, String>(2)?, row.get::<_, String>(3)?],
                        row.get::<_, Option<String>>(4)?,
                        row.get::<_, String>(5)?,
                        row.get::<_, bool>(6)?,
                        row.get::<_, Option<String>>(7)?,
                        row.get::<_, Option<Vec<u8>>>(8)?,
                    ))
                },
            )
            .optional()?
            .ok_or_else(|| StoreError::NoRun(id.into()))?;
        let (key, started_unix_ns, [spec, status], model, tool, prompt_lengths_approximate, engine, telemetry) = row;
        let bad = |source| StoreError::BadValue { run: id.into(), source };
        let stats: Vec<String> = self
            .conn
            .prepare("SELECT stats FROM points WHERE run = ?1 ORDER BY point")?
            .query_map([key], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let (mut requests, mut arena) = (Vec::new(), Arena::default());
        let mut statement = self.conn.prepare("SELECT record FROM requests WHERE run = ?1 ORDER BY rowid")?;
        let mut rows = statement.query([key])?;
        while let Some(row) = rows.next()? {
            let blob = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
            let mut record = codec::decode(blob, started_unix_ns)
                .map_err(|source| StoreError::Damaged { run: id.into(), source })?;
            record.responses.keep_in(&mut arena);
            requests.push(record);
        }
        Ok(RunReport {
            tool,
            spec: serde_json::from_str(&spec).map_err(bad)?,
            started_unix_ns,
            model: model.map(|m| serde_json::from_str(&m)).transpose().map_err(bad)?,
            status: serde_json::from_str(&status).map_err(bad)?,
            prompt_lengths_approximate,
            points: parse_points(id, stats)?,
            requests,
            engine: engine.map(|e| serde_json::from_str(&e)).transpose().map_err(bad)?,
            telemetry: telemetry
                .map(|blob| codec::decode_telemetry(&blob))
                .transpose()
                .map_err(|source| StoreError::Damaged { run: id.into(), source })?,
        })
    }

    fn points_by_run(&self) -> Result<std::collections::HashMap<i64, Vec<String>>> {
        let mut points = std::collections::HashMap::<i64, Vec<String>>::new();
        let mut statement = self.conn.prepare("SELECT run, stats FROM points ORDER BY run, point")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            points.entry(row.get(0)?).or_default().push(row.get(1)?);
        }
        Ok(points)
    }
}

/// WAL lets a crash lose at most the transaction being written, and NORMAL syncs only at
/// checkpoints, which keeps a commit per batch cheap. The exclusive lock is taken at once, so
/// a second dashboard on the same folder is refused at start rather than at its first write.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(LOCK_WAIT)?;
    // A request's record takes a few kilobytes; with small pages, most of a page around each
    // one would stay empty. Applies when the database is created.
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode = %mode, "the run store could not use write-ahead logging");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;")
}

/// Applies the migrations the database lacks, each in a transaction of its own with the
/// version it brings, so a crash leaves the database at one version or the next.
fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<usize> {
    let found: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let supported = migrations.len() as u32;
    if found > supported {
        return Err(StoreError::TooNew { path: PathBuf::new(), found, supported });
    }
    for (version, sql) in migrations.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as u32 + 1)?;
        tx.commit()?;
    }
    Ok((supported - found) as usize)
}

fn status_json(status: &RunStatus) -> String {
    serde_json::to_string(status).expect("a status serializes")
}

fn insert_run(conn: &Connection, run: &NewRun, status: &RunStatus) -> Result<i64> {
    conn.execute(
        "INSERT INTO runs (id, started_unix_ns, spec, status, tool, simulated, prompt_lengths_approximate, added_unix_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7)",
        params![
            run.id,
            run.started_unix_ns,
            serde_json::to_string(&run.spec).expect("a spec serializes"),
            status_json(status),
            run.tool,
            run.simulated,
            crate::clock::unix_now_ns(),
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The run's key and wall-clock anchor.
fn run_key(conn: &Connection, id: &str) -> Result<(i64, i64)> {
    conn.query_row("SELECT key, started_unix_ns FROM runs WHERE id = ?1", [id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?
        .ok_or_else(|| StoreError::NoRun(id.into()))
}

fn insert_requests(tx: &Transaction<'_>, key: i64, base: i64, records: &[RequestRecord]) -> Result<()> {
    let mut insert = tx.prepare_cached("INSERT INTO requests (run, record) VALUES (?1, ?2)")?;
    for record in records {
        insert.execute(params![key, codec::encode(record, base)])?;
    }
    Ok(())
}

fn insert_point(tx: &Transaction<'_>, key: i64, point: u32, stats: &PointStats) -> Result<()> {
    let stats = serde_json::to_string(stats).expect("statistics serialize");
    tx.execute("INSERT OR REPLACE INTO points (run, point, stats) VALUES (?1, ?2, ?3)", params![key, point, stats])?;
    Ok(())
}

/// Status, model and points from the report; its requests too when some are missing. A
/// report that holds less than the store (a run whose engine died) never replaces what the
/// store already has.
fn write_outcome(tx: &Transaction<'_>, key: i64, report: &RunReport) -> Result<()> {
    let model = report.model.as_ref().map(|m| serde_json::to_string(m).expect("a model serializes"));
    tx.execute(
        "UPDATE runs SET status = ?2, model = ?3, tool = ?4, prompt_lengths_approximate = ?5, spec = ?6, engine = ?7
         WHERE key = ?1",
        params![
            key,
            status_json(&report.status),
            model,
            report.tool,
            report.prompt_lengths_approximate,
            serde_json::to_string(&report.spec).expect("a spec serializes"),
            report.engine.as_ref().map(|e| serde_json::to_string(e).expect("an engine report serializes")),
        ],
    )?;
    if let Some(telemetry) = &report.telemetry {
        tx.execute("UPDATE runs SET telemetry = ?2 WHERE key = ?1", params![key, codec::encode_telemetry(telemetry)])?;
    }
    let points: i64 = tx.query_row("SELECT count(*) FROM points WHERE run = ?1", [key], |row| row.get(0))?;
    if report.points.len() >= points as usize {
        tx.execute("DELETE FROM points WHERE run = ?1", [key])?;
        for (point, stats) in report.points.iter().enumerate() {
            insert_point(tx, key, point as u32, stats)?;
        }
    }
    let stored: i64 = tx.query_row("SELECT count(*) FROM requests WHERE run = ?1", [key], |row| row.get(0))?;
    if (stored as usize) < report.requests.len() {
        tx.execute("DELETE FROM requests WHERE run = ?1", [key])?;
        insert_requests(tx, key, report.started_unix_ns, &report.requests)?;
        let errors = report.requests.iter().filter(|r| r.error.is_some()).count() as i64;
        tx.execute(
            "UPDATE runs SET finished_requests = ?2, errors = ?3 WHERE key = ?1",
            params![key, report.requests.len() as i64, errors],
        )?;
    }
    Ok(())
}

fn parse_points(id: &str, stats: Vec<String>) -> Result<Vec<PointStats>> {
    stats
        .iter()
        .map(|s| serde_json::from_str(s).map_err(|source| StoreError::BadValue { run: id.into(), source }))
        .collect()
}

type Job = Box<dyn FnOnce(&mut Option<Db>) + Send>;

/// The handle the dashboard holds: sends work to the store's thread. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    path: Arc<PathBuf>,
}

impl Store {
    /// Opens the store in `dir` on a thread of its own.
    pub async fn open(dir: &Path) -> Result<Store> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened, open_result) = oneshot::channel();
        let owned = dir.to_path_buf();
        std::thread::Builder::new()
            .name("tokenscope-store".into())
            .spawn(move || {
                let mut db = match Db::open(&owned) {
                    Ok(db) => {
                        let _ = opened.send(Ok(()));
                        Some(db)
                    }
                    Err(err) => {
                        let _ = opened.send(Err(err));
                        return;
                    }
                };
                while let Ok(job) = queue.recv() {
                    job(&mut db);
                }
            })
            .map_err(|source| StoreError::CreateDir { path: dir.into(), source })?;
        open_result.await.map_err(|_| StoreError::Closed)??;
        Ok(Store { jobs, path: Arc::new(dir.join(FILE_NAME)) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `job` on the store's thread after everything asked before, and answers its result.
    pub async fn call<T: Send + 'static>(&self, job: impl FnOnce(&mut Db) -> Result<T> + Send + 'static) -> Result<T> {
        self.queue(job).await
    }

    /// Queues `job` at once, behind everything asked before and ahead of everything asked
    /// after; the future answers its result.
    pub fn queue<T, J>(&self, job: J) -> impl Future<Output = Result<T>> + use<T, J>
    where
        T: Send + 'static,
        J: FnOnce(&mut Db) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            let _ = reply.send(db.as_mut().map_or(Err(StoreError::Closed), job));
        });
        let queued = self.jobs.send(job).map_err(|_| StoreError::Closed);
        async move {
            queued?;
            answer.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// Queues `job` without waiting for it; a failure is logged with `what` it was doing.
    pub fn submit(&self, what: &'static str, job: impl FnOnce(&mut Db) -> Result<()> + Send + 'static) {
        let path = self.path.clone();
        let job: Job = Box::new(move |db| {
            if let Err(err) = db.as_mut().map_or(Err(StoreError::Closed), job) {
                tracing::error!(cause = %err, store = %path.display(), "could not {what}; the run is kept in memory only");
            }
        });
        if self.jobs.send(job).is_err() {
            tracing::error!(store = %self.path.display(), "could not {what}: the run store has been closed");
        }
    }

    /// Closes the database once everything asked before is written, letting go of its lock.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            db.take();
            let _ = reply.send(());
        });
        if self.jobs.send(job).is_ok() {
            let _ = done.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::spec::LoadLevel;
    use shared::{ResponseRecord, TokenCountSource};

    fn record(point: u32, seq: u32, error: Option<&str>) -> RequestRecord {
        RequestRecord {
            point,
            seq,
            warmup: seq == 0,
            id: format!("{point}-{seq}"),
            prompt_words: 16,
            num_input_tokens: None,
            send_ns: 1_000 * u64::from(seq),
            intended_ns: None,
            server_recv_unix_ns: None,
            responses: vec![ResponseRecord {
                at_ns: 5_000 + 1_000 * u64::from(seq),
                tokens: 1,
                text: " lorem",
                server_send_unix_ns: Some(77),
            }]
            .into(),
            final_ns: Some(5_000 + 1_000 * u64::from(seq)),
            token_source: TokenCountSource::Responses,
            error: error.map(Into::into),
            finish_reason: None,
        }
    }

    /// Two scrapes of a server: one with a counter and a gauge, one that failed.
    fn telemetry() -> Telemetry {
        use shared::telemetry::{MetricKind, Recorder, Sample};
        let mut recorder = Recorder::new("http://127.0.0.1:8002/metrics", 250);
        let sample = |name: &str, kind, value| Sample {
            name: name.into(),
            family: name.into(),
            kind,
            labels: vec![("model".into(), "m".into())],
            value,
        };
        recorder.record(
            1000,
            300,
            Ok(vec![
                sample("nv_inference_request_success", MetricKind::Counter, 3.0),
                sample("nv_inference_pending_request_count", MetricKind::Gauge, 0.5),
            ]),
        );
        recorder.record(251_000, 1_000_000, Err("no answer within 1000 ms".into()));
        recorder.into_telemetry()
    }

    fn new_run(id: &str) -> NewRun {
        NewRun {
            id: id.into(),
            spec: SweepSpec { prompt_lengths: vec![16, 32], requests: 2, warmup: 1, ..SweepSpec::default() },
            started_unix_ns: 1_764_000_000_000_000_000,
            simulated: true,
            tool: "tokenscope test".into(),
        }
    }

    #[test]
    fn a_fresh_store_is_at_the_latest_version_and_reopening_applies_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        assert_eq!(db.version().unwrap(), MIGRATIONS.len() as u32);
        let mode: String = db.conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        drop(db);
        let mut conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(migrate(&mut conn, MIGRATIONS).unwrap(), 0);
    }

    #[test]
    fn migrations_apply_in_order_from_where_the_database_stands() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn, &["CREATE TABLE a (x)"]).unwrap(), 1);
        conn.execute("INSERT INTO a VALUES (1)", []).unwrap();
        let two = ["CREATE TABLE a (x)", "ALTER TABLE a ADD COLUMN y DEFAULT 2"];
        assert_eq!(migrate(&mut conn, &two).unwrap(), 1);
        let y: i64 = conn.query_row("SELECT y FROM a", [], |r| r.get(0)).unwrap();
        assert_eq!(y, 2);
        // A failing migration leaves the version where it was.
        assert!(migrate(&mut conn, &[two[0], two[1], "CREATE TABLE b (x); nonsense"]).is_err());
        let version: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, 2);
    }

    #[test]
    fn runs_are_dated_by_when_they_entered_the_store() {
        let dir = tempfile::tempdir().unwrap();
        // A store of the first version: its runs count from their start.
        let mut conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        migrate(&mut conn, &MIGRATIONS[..1]).unwrap();
        insert_run_v1(&conn, &new_run("old"));
        drop(conn);
        let mut db = Db::open(dir.path()).unwrap();
        let before = crate::clock::unix_now_ns();
        db.insert_run(&new_run("new")).unwrap();
        let added = db.added_times().unwrap();
        assert_eq!(added["old"], new_run("old").started_unix_ns);
        assert!(added["new"] >= before && added["new"] <= crate::clock::unix_now_ns(), "{added:?}");
    }

    fn insert_run_v1(conn: &Connection, run: &NewRun) {
        conn.execute(
            "INSERT INTO runs (id, started_unix_ns, spec, status, tool, simulated, prompt_lengths_approximate)
             VALUES (?1, ?2, ?3, '{\"state\":\"completed\"}', 't', 0, 1)",
            params![run.id, run.started_unix_ns, serde_json::to_string(&run.spec).unwrap()],
        )
        .unwrap();
    }

    #[test]
    fn a_store_from_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = Db::open(dir.path()).err().expect("refused");
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains("newer tokenscope") && message.contains(FILE_NAME), "{message}");
    }

    #[test]
    fn a_second_store_on_the_same_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Db::open(dir.path()).unwrap();
        let err = Db::open(dir.path()).err().expect("refused");
        assert!(err.is_locked(), "{err}");
    }

    #[test]
    fn runs_are_kept_summarised_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(dir.path()).unwrap();
        let run = new_run("r1");
        db.insert_run(&run).unwrap();
        let first = [record(0, 0, None), record(0, 2, Some("boom"))];
        db.add_requests("r1", &first).unwrap();
        let stats = PointStats::compute(16, &first);
        db.set_point("r1", 0, &stats).unwrap();
        db.add_requests("r1", &[record(0, 1, None)]).unwrap();
        db.set_meta("r1", &RunMeta { name: "n".into(), notes: "x".into(), tags: vec!["a".into()] }).unwrap();
        drop(db);

        let mut db = Db::open(dir.path()).unwrap();
        assert_eq!(db.interrupt_running().unwrap(), 1);
        let summaries = db.summaries().unwrap();
        assert_eq!(summaries.len(), 1);
        let summary = &summaries[0];
        assert_eq!(summary.status, RunStatus::Interrupted);
        assert_eq!((summary.finished_requests, summary.errors, summary.total_requests), (3, 1, 6));
        assert_eq!(summary.points, vec![stats.clone()]);
        assert_eq!((summary.name.as_str(), summary.tags.clone()), ("n", vec!["a".to_string()]));
        let report = db.report("r1").unwrap();
        assert_eq!(report.requests, vec![first[0].clone(), first[1].clone(), record(0, 1, None)]);
        assert_eq!(report.status, RunStatus::Interrupted);
        assert_eq!(report.points, vec![stats]);

        db.delete("r1").unwrap();
        assert!(db.summaries().unwrap().is_empty());
        assert!(matches!(db.report("r1"), Err(StoreError::NoRun(_))));
        let left: i64 = db.conn.query_row("SELECT count(*) FROM requests", [], |r| r.get(0)).unwrap();
        assert_eq!(left, 0, "a deleted run's requests go with it");
        assert!(matches!(db.delete("r1"), Err(StoreError::NoRun(_))));
    }

    #[test]
    fn recovering_a_run_whose_record_claims_four_billion_tokens_takes_no_memory_for_them() {
        // A record stored before the caps: its second response claims u32::MAX tokens. Its
        // token gaps are one weighted sample, not four billion (34 GB), so the recovery at
        // the next start settles the point instead of failing for memory, again and again.
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(dir.path()).unwrap();
        db.insert_run(&new_run("r1")).unwrap();
        let mut huge = record(0, 1, None);
        let at = huge.responses.first().unwrap().at_ns;
        huge.responses.push(ResponseRecord {
            at_ns: at + 4_294_967_295,
            tokens: u32::MAX,
            text: "",
            server_send_unix_ns: None,
        });
        db.add_requests("r1", &[huge]).unwrap();
        assert_eq!(db.interrupt_running().unwrap(), 1);
        let report = db.report("r1").unwrap();
        assert_eq!(report.status, RunStatus::Interrupted);
        let t2t = report.points[0].t2t_ms.as_ref().expect("the point settled");
        assert_eq!((t2t.count, t2t.p50), (u64::from(u32::MAX), 1e-6));
    }

    #[test]
    fn an_interrupted_runs_last_point_gets_the_statistics_of_what_finished() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(dir.path()).unwrap();
        db.insert_run(&new_run("r1")).unwrap();
        let first = [record(0, 0, None), record(0, 1, None)];
        db.add_requests("r1", &first).unwrap();
        db.set_point("r1", 0, &PointStats::compute(16, &first)).unwrap();
        let mut counted = record(1, 0, None);
        counted.num_input_tokens = Some(70);
        let partial = [counted, record(1, 1, Some("boom"))];
        db.add_requests("r1", &partial).unwrap();
        drop(db);

        let mut db = Db::open(dir.path()).unwrap();
        assert_eq!(db.interrupt_running().unwrap(), 1);
        let report = db.report("r1").unwrap();
        assert_eq!(report.status, RunStatus::Interrupted);
        let settled = PointStats::of_point(&report.spec, 1, &partial);
        assert_eq!(
            (settled.prompt_length, settled.load),
            (report.spec.prompt_lengths[1], Some(LoadLevel::Concurrency(1)))
        );
        assert_eq!(report.points, vec![PointStats::compute(16, &first), settled]);
        assert!(!report.prompt_lengths_approximate, "a record has the server's count");
        assert_eq!(db.summaries().unwrap()[0].points, report.points);
        // Nothing is left running, so a second start changes nothing.
        assert_eq!(db.interrupt_running().unwrap(), 0);
    }

    #[test]
    fn a_damaged_run_is_left_out_of_the_list_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(dir.path()).unwrap();
        for id in ["r1", "r2", "r3"] {
            db.insert_run(&new_run(id)).unwrap();
        }
        db.conn.execute("UPDATE runs SET spec = '{not json' WHERE id = 'r2'", []).unwrap();
        drop(db);
        let mut db = Db::open(dir.path()).unwrap();
        let ids: Vec<_> = db.summaries().unwrap().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["r1", "r3"]);
        assert!(matches!(db.report("r2"), Err(StoreError::BadValue { .. })));
        let kept: i64 = db.conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0)).unwrap();
        assert_eq!(kept, 3);
    }

    #[test]
    fn finishing_writes_requests_that_a_failed_batch_missed() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(dir.path()).unwrap();
        let run = new_run("r1");
        db.insert_run(&run).unwrap();
        db.add_requests("r1", &[record(0, 0, None)]).unwrap();
        let mut report = RunReport {
            tool: "tokenscope test".into(),
            spec: run.spec.clone(),
            started_unix_ns: run.started_unix_ns,
            model: None,
            status: RunStatus::Completed,
            prompt_lengths_approximate: true,
            points: Vec::new(),
            requests: vec![record(0, 0, None), record(0, 1, None), record(0, 2, Some("late"))],
            engine: Some(shared::report::EngineReport {
                cpu_s: 0.25,
                wall_s: 1.0,
                responses: 3,
                waited_p99_ms: 0.1,
                waited_max_ms: 0.2,
                pacing: Some(shared::report::PacingReport {
                    woke_late_p99_ms: 0.05,
                    woke_late_max_ms: 0.5,
                    handoff_p99_ms: 0.2,
                    handoff_max_ms: 1.0,
                }),
                scheduling: Some(shared::report::Scheduling::Refused { reason: "not permitted".into() }),
            }),
            telemetry: Some(telemetry()),
        };
        report.recompute_points();
        // Metrics kept while the run goes are read back before its end is written.
        db.set_telemetry("r1", &telemetry()).unwrap();
        assert_eq!(db.report("r1").unwrap().telemetry, Some(telemetry()));
        db.finish("r1", &report).unwrap();
        assert_eq!(db.report("r1").unwrap(), report);
        let summary = db.summaries().unwrap().remove(0);
        assert_eq!((summary.finished_requests, summary.errors), (3, 1));

        db.import(&NewRun { id: "r2".into(), simulated: false, ..run }, &report).unwrap();
        assert_eq!(db.report("r2").unwrap(), report);
    }

    #[tokio::test]
    async fn the_store_thread_answers_in_order_and_closes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).await.unwrap();
        let run = new_run("r1");
        store.submit("start", move |db| db.insert_run(&run));
        store.submit("add", |db| db.add_requests("r1", &[record(0, 0, None)]));
        let summaries = store.call(|db| db.summaries()).await.unwrap();
        assert_eq!(summaries[0].finished_requests, 1);
        store.close().await;
        assert!(matches!(store.call(|db| db.summaries()).await, Err(StoreError::Closed)));
        // Closed means the lock is free.
        Db::open(dir.path()).unwrap();
    }
}
