//! The audit store: accounts, references, operators, hash-chained decisions, settings, export.
//!
//! One SQLite file (WAL, foreign keys, a busy timeout so the GUI and a CLI batch can share it).
//! Everything that must be provable later (decisions, clerks' confirmations and overrides, settings
//! changes, security events such as failed sign-ins and refused actions, account changes, exports)
//! is a row of one append-only table, `ledger`, whose rows form a single SHA-256 hash chain (see
//! [`chain`] for the exact canonical encoding). Mutable bookkeeping (operators' failure counters,
//! the embedding cache, a reference's retired flag) lives in ordinary tables, and every change to it
//! that matters is also written to the ledger.
//!
//! What the chain proves, and what it cannot: any edit, deletion, insertion or reordering of rows
//! *inside* the chain is found by [`Store::verify_chain`], naming the first bad row. Someone with
//! write access to the file who recomputes every hash from a point on (or who truncates the tail)
//! produces a chain that is internally consistent; only an anchor kept outside the file (the chain
//! head written into each export's side file, or a checkpoint file from `audit checkpoint`) detects
//! that, by [`Store::verify_checkpoint`]. The chain does not prove that a row's content was true when
//! written, only that it has not changed since.

pub mod accounts;
pub mod bench;
pub mod chain;
pub mod decisions;
pub mod events;
pub mod export;
pub mod migrations;
pub mod operators;
pub mod sessions;
pub mod settings;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use time::OffsetDateTime;

pub use accounts::{Account, Reference};
pub use chain::{ChainHead, ChainReport, Checkpoint, CheckpointReport};
pub use decisions::{
    CropBox, DecisionFilter, DecisionRecord, DecisionRow, FinalAction, ImageKind,
    MAX_SIGNATURE_PNG, Recorded, Source, override_rule, override_targets,
};
pub use export::{ExportFormat, ExportSummary};
pub use operators::{KdfCost, Operator, Permission, Role};
pub use settings::{AmountRule, ApprovedOverrides, Settings, SettingsChange, SettingsRequest};

/// Default time a writer waits for another writer's lock before giving up.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything that can go wrong in the store. The command line maps each variant to a documented exit
/// code (`cli::exit::for_store`); the store itself knows nothing of exit codes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("could not use the database file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the database {path} is busy: another program held its write lock for longer than {waited_ms} ms; \
         wait for the other batch or window to finish and try again"
    )]
    Busy { path: PathBuf, waited_ms: u64 },
    #[error(
        "the database {path} is damaged ({detail}); Countersign will not write to it. To recover: keep a copy \
         of the damaged file, restore the latest backup (or rebuild one with `sqlite3 {path} .recover | sqlite3 \
         recovered.sqlite3`), then run `countersign audit verify` on the result"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "the database {path} is read-only ({detail}); open it read-only to inspect it, or fix its permissions"
    )]
    ReadOnly { path: PathBuf, detail: String },
    #[error(
        "the database {path} has schema version {found}, but this Countersign knows versions up to {known}; \
         use a newer Countersign (the file was not changed)"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "the disk holding {path} is full; free space and try again (the transaction in progress was rolled back; \
         everything committed before it is kept)"
    )]
    DiskFull { path: PathBuf },
    #[error("wrong operator name or PIN")]
    AuthFailed,
    #[error(
        "operator {operator} may not sign in: {detail}. The operators table was changed outside Countersign \
         (roles and PINs are only changed through it, and each change is in the audit chain); ask an auditor \
         to run `countersign audit verify`"
    )]
    CredentialsTampered { operator: String, detail: String },
    #[error(
        "{detail}; Countersign will not decide with it. Keep the database as evidence and ask an auditor to run \
         `countersign audit verify`"
    )]
    Tampered { detail: String },
    #[error(
        "the signature image logged with decision {decision} does not match the SHA-256 in the audit chain: \
         it was changed outside Countersign; keep the database as evidence"
    )]
    SignatureTampered { decision: i64 },
    #[error(
        "operator {operator} is locked out after {failures} wrong PINs (since {since}); a supervisor must unlock \
         them with `countersign operator unlock {operator}`"
    )]
    LockedOut {
        operator: String,
        failures: i64,
        since: String,
    },
    #[error("permission denied: operator {operator} may not {action}; it needs the {needed} role")]
    PermissionDenied {
        operator: String,
        action: String,
        needed: String,
    },
    #[error(
        "the database has no operators yet: create the first supervisor with `countersign operator add`"
    )]
    NoOperators,
    #[error(
        "no operator given: pass --operator NAME and --pin (or COUNTERSIGN_OPERATOR / COUNTERSIGN_PIN)"
    )]
    MissingCredentials,
    #[error("{what} not found: {id}")]
    NotFound { what: &'static str, id: String },
    #[error("{what} already exists: {id}")]
    AlreadyExists { what: &'static str, id: String },
    #[error("invalid input: {0}")]
    Invalid(String),
}

/// Options for opening a store.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// How long a writer waits for another writer's lock.
    pub busy_timeout: Duration,
    /// Run `PRAGMA quick_check` at open (on by default; the benchmark reports its cost).
    pub integrity_check: bool,
    /// Argon2 cost for PINs hashed through this handle (tests use [`KdfCost::Test`]).
    pub kdf: KdfCost,
    /// A size cap in database pages (`PRAGMA max_page_count`): writes beyond it fail like a full
    /// disk. `None` leaves SQLite's default (no practical cap).
    pub max_pages: Option<u32>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            integrity_check: true,
            kdf: KdfCost::Production,
            max_pages: None,
        }
    }
}

/// An open audit database. Not `Sync`: one thread (the GUI's worker, a batch run) owns it.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    read_only: bool,
    /// Opened with SQLite's `immutable=1` (read-only media): no locks, no WAL.
    immutable: bool,
    busy_timeout: Duration,
    kdf: KdfCost,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl Store {
    /// Opens (creating it and its parent folders if needed) the database for reading and writing,
    /// runs the integrity check and the pending migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// [`Store::open`] with explicit options.
    pub fn open_with(path: &Path, opts: &OpenOptions) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        // SQLite silently falls back to read-only when the file is not writable; say so up front
        // instead (the permission bits are checked because a privileged user bypasses them).
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().readonly()
        {
            return Err(StoreError::ReadOnly {
                path: path.to_path_buf(),
                detail: "the file's permissions do not allow writing".into(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| map_err(path, opts.busy_timeout, e))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            read_only: false,
            immutable: false,
            busy_timeout: opts.busy_timeout,
            kdf: opts.kdf,
        };
        store.configure(opts)?;
        Ok(store)
    }

    /// Opens an existing database read-only (an auditor's copy, a file on read-only media). Nothing
    /// is migrated; a database older than this binary is refused with a hint to open it read-write.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        Self::open_read_only_with(path, &OpenOptions::default())
    }

    /// [`Store::open_read_only`] with explicit options. A file on read-only media (a mount, a
    /// write-protected medium), where SQLite cannot even create the shared-memory file a WAL database
    /// needs, is opened again with `immutable=1`: nothing is locked or written, and a `-wal` file
    /// beside it is not read ([`Store::is_immutable`] says so).
    pub fn open_read_only_with(path: &Path, opts: &OpenOptions) -> Result<Store, StoreError> {
        if !path.is_file() {
            return Err(StoreError::NotFound {
                what: "database file",
                id: path.display().to_string(),
            });
        }
        match Self::open_read_only_mode(path, opts, false) {
            Ok(s) => Ok(s),
            Err(
                e @ (StoreError::NewerSchema { .. }
                | StoreError::Corrupt { .. }
                | StoreError::NotFound { .. }),
            ) => Err(e),
            Err(first) => Self::open_read_only_mode(path, opts, true).map_err(|_| first),
        }
    }

    /// Opens read-only, as immutable when asked (see [`Store::open_read_only_with`]).
    pub fn open_read_only_mode(
        path: &Path,
        opts: &OpenOptions,
        immutable: bool,
    ) -> Result<Store, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = if immutable {
            Connection::open_with_flags(immutable_uri(path), flags)
        } else {
            Connection::open_with_flags(path, flags)
        }
        .map_err(|e| map_err(path, opts.busy_timeout, e))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            read_only: true,
            immutable,
            busy_timeout: opts.busy_timeout,
            kdf: opts.kdf,
        };
        store.configure(opts)?;
        Ok(store)
    }

    /// Whether this handle was opened with `immutable=1` (read-only media).
    pub fn is_immutable(&self) -> bool {
        self.immutable
    }

    fn configure(&mut self, opts: &OpenOptions) -> Result<(), StoreError> {
        let path = self.path.clone();
        let wrap = |e| map_err(&path, opts.busy_timeout, e);
        self.conn.busy_timeout(opts.busy_timeout).map_err(wrap)?;
        // The header is read by the first statement; a file that is not a database fails here.
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(wrap)?;
        let known = migrations::MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        if opts.integrity_check {
            self.quick_check()?;
        }
        if !self.read_only {
            // WAL lets the GUI read while a batch writes. FULL sync makes every commit durable even
            // against power loss: a committed decision must never be lost, and batches commit in bulk.
            let mode: String = self
                .conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
                .map_err(wrap)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Invalid(format!(
                    "could not switch the database to WAL mode (got {mode})"
                )));
            }
            self.conn
                .pragma_update(None, "synchronous", "FULL")
                .map_err(wrap)?;
        }
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(wrap)?;
        if let Some(pages) = opts.max_pages {
            self.conn
                .pragma_update(None, "max_page_count", pages)
                .map_err(wrap)?;
        }
        if self.read_only {
            if version < known {
                return Err(StoreError::ReadOnly {
                    path: self.path.clone(),
                    detail: format!(
                        "it has schema version {version} and needs migrating to {known}; open it read-write once"
                    ),
                });
            }
        } else {
            migrations::migrate(&mut self.conn).map_err(|e| self.map(e))?;
        }
        Ok(())
    }

    /// Runs `PRAGMA quick_check` and turns any finding into [`StoreError::Corrupt`].
    pub fn quick_check(&self) -> Result<(), StoreError> {
        let mut findings = Vec::new();
        let res = (|| -> rusqlite::Result<()> {
            let mut stmt = self.conn.prepare("PRAGMA quick_check(20)")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let line: String = row.get(0)?;
                if line != "ok" {
                    findings.push(line);
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            return Err(self.map(e));
        }
        if findings.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Corrupt {
                path: self.path.clone(),
                detail: findings.join("; "),
            })
        }
    }

    /// Copies the WAL into the main file (`PRAGMA wal_checkpoint(TRUNCATE)`), e.g. before a backup.
    pub fn checkpoint_wal(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.map(e))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The schema version of the open file (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.map(e))
    }

    /// The argon2 cost used for PINs set through this handle.
    pub fn set_kdf_cost(&mut self, kdf: KdfCost) {
        self.kdf = kdf;
    }

    /// Turns a SQLite error into the store's typed error for this file.
    pub(crate) fn map(&self, e: rusqlite::Error) -> StoreError {
        map_err(&self.path, self.busy_timeout, e)
    }

    /// A mapper that owns what it needs, for use while a transaction borrows the store.
    pub(crate) fn mapper(&self) -> impl Fn(rusqlite::Error) -> StoreError + use<> {
        let path = self.path.clone();
        let busy = self.busy_timeout;
        move |e| map_err(&path, busy, e)
    }

    /// Starts a write transaction that takes the write lock at once, so the chain head read inside
    /// it cannot change before the commit.
    pub(crate) fn write_tx(&mut self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
                detail: "opened read-only".into(),
            });
        }
        let path = self.path.clone();
        let busy = self.busy_timeout;
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| map_err(&path, busy, e))
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// A `file:` URI for `path` with `immutable=1`, escaping the characters a URI gives meaning to.
fn immutable_uri(path: &Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut uri = String::from("file:");
    for b in abs.as_os_str().as_encoded_bytes() {
        match *b {
            b'%' | b'?' | b'#' => uri.push_str(&format!("%{b:02X}")),
            b if b.is_ascii_graphic() => uri.push(char::from(b)),
            b => uri.push_str(&format!("%{b:02X}")),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Maps SQLite's error codes to the store's kinds so callers (and exit codes) can tell them apart.
pub(crate) fn map_err(path: &Path, busy: Duration, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    if let rusqlite::Error::SqliteFailure(f, ref msg) = e {
        let detail = msg.clone().unwrap_or_else(|| f.to_string());
        match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return StoreError::Busy {
                    path: path.to_path_buf(),
                    waited_ms: busy.as_millis() as u64,
                };
            }
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                return StoreError::Corrupt {
                    path: path.to_path_buf(),
                    detail,
                };
            }
            ErrorCode::ReadOnly => {
                return StoreError::ReadOnly {
                    path: path.to_path_buf(),
                    detail,
                };
            }
            ErrorCode::DiskFull => {
                return StoreError::DiskFull {
                    path: path.to_path_buf(),
                };
            }
            _ => {}
        }
    }
    StoreError::Sqlite(e)
}

/// The current UTC time as the store writes it: RFC 3339 with milliseconds and `Z`, fixed width so
/// that text order is time order.
pub fn now_utc() -> String {
    format_time(OffsetDateTime::now_utc())
}

/// Formats a time the way the store writes it (see [`now_utc`]).
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses a date (`YYYY-MM-DD`, meaning its midnight UTC) or an RFC 3339 time.
pub fn parse_time(s: &str) -> Result<OffsetDateTime, StoreError> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t.to_offset(time::UtcOffset::UTC));
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            StoreError::Invalid(format!("not a date (YYYY-MM-DD) or RFC 3339 time: {s:?}"))
        })
}
