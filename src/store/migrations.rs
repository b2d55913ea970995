//! Numbered schema migrations, tracked with `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`. A shipped migration is never edited:
//! the chain's canonical encoding and old files depend on it. Add a new entry instead.

use rusqlite::{Connection, TransactionBehavior};

/// Version 1: operators, accounts, reference signatures, and the hash-chained ledger with the
/// triggers that make it append-only. The column order of `ledger` is part of the chain's canonical
/// encoding (see `chain.rs`).
const V1: &str = r#"
CREATE TABLE operators (
    name            TEXT PRIMARY KEY NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('clerk', 'supervisor', 'auditor')),
    pin_hash        TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until    TEXT
) STRICT;

CREATE TABLE accounts (
    id         TEXT PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
) STRICT;

CREATE TABLE reference_signatures (
    id             INTEGER PRIMARY KEY,
    account        TEXT NOT NULL REFERENCES accounts(id),
    image          BLOB NOT NULL,
    sha256         TEXT NOT NULL,
    width          INTEGER NOT NULL,
    height         INTEGER NOT NULL,
    enrolled_at    TEXT NOT NULL,
    enrolled_by    TEXT NOT NULL,
    retired        INTEGER NOT NULL DEFAULT 0,
    retired_at     TEXT,
    retired_by     TEXT,
    retired_reason TEXT,
    UNIQUE (account, sha256)
) STRICT;

CREATE TABLE ledger (
    id                INTEGER PRIMARY KEY,
    kind              TEXT NOT NULL,
    time              TEXT NOT NULL,
    operator          TEXT NOT NULL,
    account           TEXT,
    cheque_id         TEXT,
    amount_cents      INTEGER,
    cheque_sha256     TEXT,
    reference_sha256s TEXT,
    crop_x            INTEGER,
    crop_y            INTEGER,
    crop_w            INTEGER,
    crop_h            INTEGER,
    raw_score         REAL,
    probability       REAL,
    t_accept          REAL,
    t_reject          REAL,
    decision          TEXT,
    final_action      TEXT,
    reason            TEXT,
    model_id          TEXT,
    device            TEXT,
    latency_ms        REAL,
    source            TEXT,
    ref_id            INTEGER,
    payload           TEXT,
    prev_hash         TEXT NOT NULL,
    hash              TEXT NOT NULL
) STRICT;

CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'the audit ledger is append-only: UPDATE refused'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'the audit ledger is append-only: DELETE refused'); END;
"#;

/// Version 2: the embedding cache, one vector per (reference, model).
const V2: &str = r#"
CREATE TABLE embeddings (
    reference_id INTEGER NOT NULL REFERENCES reference_signatures(id),
    model_id     TEXT NOT NULL,
    dim          INTEGER NOT NULL,
    vector       BLOB NOT NULL,
    computed_at  TEXT NOT NULL,
    PRIMARY KEY (reference_id, model_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX reference_signatures_account ON reference_signatures(account);
"#;

/// Version 3: indexes for the audit screen and exports (date, operator, account, decision,
/// cheque id) and for finding a decision's confirmation and the latest settings. Partial indexes
/// keep them small: only decision rows are filtered this way.
const V3: &str = r#"
CREATE INDEX ledger_decision_time     ON ledger(time)              WHERE kind = 'decision';
CREATE INDEX ledger_decision_operator ON ledger(operator, time)    WHERE kind = 'decision';
CREATE INDEX ledger_decision_account  ON ledger(account, time)     WHERE kind = 'decision';
CREATE INDEX ledger_decision_outcome  ON ledger(decision, time)    WHERE kind = 'decision';
CREATE INDEX ledger_decision_cheque   ON ledger(cheque_id)         WHERE kind = 'decision';
CREATE INDEX ledger_action_ref        ON ledger(ref_id)            WHERE kind = 'action';
CREATE INDEX ledger_kind              ON ledger(kind, id)          WHERE kind <> 'decision';
"#;

/// Version 4: the questioned signature of each decision as the network saw it (a small PNG), so an
/// auditor sees what was compared. Its SHA-256 is in the decision's chained payload; the table is
/// append-only like the ledger.
const V4: &str = r#"
CREATE TABLE decision_signatures (
    decision_id INTEGER PRIMARY KEY NOT NULL REFERENCES ledger(id),
    png         BLOB NOT NULL
) STRICT;
CREATE TRIGGER decision_signatures_no_update BEFORE UPDATE ON decision_signatures
BEGIN SELECT RAISE(ABORT, 'logged signatures are append-only: UPDATE refused'); END;
CREATE TRIGGER decision_signatures_no_delete BEFORE DELETE ON decision_signatures
BEGIN SELECT RAISE(ABORT, 'logged signatures are append-only: DELETE refused'); END;
"#;

/// Version 5: reference embeddings keyed by (image SHA-256, model id), each one's vector digest chained
/// in the ledger (an `embedding` row) and checked on every read; the enrolled images themselves
/// become immutable (only the retired columns may change), and the chain's reference rows get an
/// index so that every use can check a reference against its enrolment row.
const V5: &str = r#"
CREATE TABLE reference_embeddings (
    image_sha256 TEXT NOT NULL,
    model_id     TEXT NOT NULL,
    dim          INTEGER NOT NULL,
    vector       BLOB NOT NULL,
    computed_at  TEXT NOT NULL,
    PRIMARY KEY (image_sha256, model_id)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER reference_embeddings_no_update BEFORE UPDATE ON reference_embeddings
BEGIN SELECT RAISE(ABORT, 'cached embeddings are replaced, never edited: UPDATE refused'); END;
CREATE TRIGGER reference_signatures_no_delete BEFORE DELETE ON reference_signatures
BEGIN SELECT RAISE(ABORT, 'reference signatures are retired, never deleted: DELETE refused'); END;
CREATE TRIGGER reference_signatures_fixed
BEFORE UPDATE OF id, account, image, sha256, width, height, enrolled_at, enrolled_by ON reference_signatures
BEGIN SELECT RAISE(ABORT, 'an enrolled reference image cannot be changed: UPDATE refused'); END;
CREATE INDEX ledger_account_ref ON ledger(ref_id) WHERE kind = 'account';
CREATE INDEX ledger_embedding ON ledger(cheque_sha256, model_id) WHERE kind = 'embedding';
"#;

/// Version 6: the keyed chain. With a chain key configured (`COUNTERSIGN_CHAIN_KEY_FILE`), every
/// ledger row gets an HMAC-SHA-256 of its hash under that key, in this append-only side table (the
/// ledger's own columns, and so its canonical encoding, are unchanged).
const V6: &str = r#"
CREATE TABLE ledger_macs (
    id  INTEGER PRIMARY KEY NOT NULL REFERENCES ledger(id),
    mac TEXT NOT NULL
) STRICT;
CREATE TRIGGER ledger_macs_no_update BEFORE UPDATE ON ledger_macs
BEGIN SELECT RAISE(ABORT, 'the chain MACs are append-only: UPDATE refused'); END;
CREATE TRIGGER ledger_macs_no_delete BEFORE DELETE ON ledger_macs
BEGIN SELECT RAISE(ABORT, 'the chain MACs are append-only: DELETE refused'); END;
"#;

/// Version 7: the decision an override (or a referral's resolution) chose gets its own column,
/// instead of a key in the row's JSON payload (or, in the oldest GUI rows, the words "Changed to X:"
/// in the reason). The chain covers it: a row with a final decision is hashed with the canonical
/// encoding version 2 (see `chain`); older rows keep NULL here and version 1.
const V7: &str = r#"
ALTER TABLE ledger ADD COLUMN final_decision TEXT
    CHECK (final_decision IS NULL OR final_decision IN ('ACCEPT', 'REFER', 'REJECT'));
"#;

/// All migrations, in order. Never edit a shipped entry; append.
pub const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7];

/// The triggers that make the audit tables append-only (or their images immutable). `audit verify`
/// reports any that is missing: someone dropped it to edit the table.
pub const PROTECTING_TRIGGERS: &[&str] = &[
    "ledger_no_update",
    "ledger_no_delete",
    "decision_signatures_no_update",
    "decision_signatures_no_delete",
    "reference_embeddings_no_update",
    "reference_signatures_no_delete",
    "reference_signatures_fixed",
    "ledger_macs_no_update",
    "ledger_macs_no_delete",
];

/// The schema version this binary creates and understands.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the schema up to date in one transaction. The write lock is taken only when something is
/// pending, so opening an up-to-date file never waits for another writer.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current >= latest_version() {
        return Ok(());
    }
    apply_up_to(conn, MIGRATIONS.len())
}

/// Applies the migrations from the file's current version up to `target` (exclusive index into
/// [`MIGRATIONS`], i.e. the resulting version) in one transaction. Public so tests can build files at
/// every older version.
pub fn apply_up_to(conn: &mut Connection, target: usize) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Read again inside the lock: another process may have migrated meanwhile.
    let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let start = usize::try_from(current).unwrap_or(0);
    for sql in MIGRATIONS.iter().take(target).skip(start) {
        tx.execute_batch(sql)?;
    }
    if target > start {
        tx.pragma_update(None, "user_version", target as i64)?;
    }
    tx.commit()
}
