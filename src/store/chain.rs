//! The hash chain over the `ledger` table.
//!
//! # Canonical encoding (version 1; never change it, add a version 2 instead)
//!
//! `canonical(row)` is the ASCII tag `countersign-ledger-v1` followed by the row's 26 data columns in
//! this fixed order: `id, kind, time, operator, account, cheque_id, amount_cents, cheque_sha256,
//! reference_sha256s, crop_x, crop_y, crop_w, crop_h, raw_score, probability, t_accept, t_reject,
//! decision, final_action, reason, model_id, device, latency_ms, source, ref_id, payload`. Each value is
//! written as one type byte and its bytes:
//!
//! | type    | byte | then                                          |
//! |---------|------|-----------------------------------------------|
//! | NULL    | 0x00 | nothing                                       |
//! | integer | 0x01 | 8 bytes, i64 little-endian                    |
//! | real    | 0x02 | 8 bytes, the IEEE-754 bits little-endian      |
//! | text    | 0x03 | u32 little-endian byte length, then UTF-8     |
//! | blob    | 0x04 | u32 little-endian byte length, then the bytes |
//!
//! # Version 2: the final decision column (schema version 7)
//!
//! A row whose `final_decision` column (the decision an override or a resolution chose) is not NULL
//! is encoded as the ASCII tag `countersign-ledger-v2`, the same 26 columns in the same order, then
//! `final_decision` as a 27th value. A row whose `final_decision` is NULL (every row written before
//! the column existed, and every row that chose nothing) keeps the version 1 encoding, so old chains
//! verify unchanged. Which version applies follows from the row itself, so setting or clearing the
//! column outside Countersign changes the encoded bytes and breaks the chain at that row.
//!
//! `hash = SHA-256(prev || canonical(row))`, where `prev` is the previous row's hash as 32 raw bytes
//! (32 zero bytes for the first row); both are stored as lowercase hex in `prev_hash` and `hash`.
//! Because the row id is inside the hashed bytes and every row commits to its predecessor, an edited
//! field, a deleted row, an inserted row and a reordering all break the chain at a named row.
//!
//! # The keyed chain
//!
//! The hash chain alone cannot tell a row Countersign appended from one appended with a valid hash by
//! someone who can write the file (the encoding above is public). With a chain key configured (the
//! file named by [`CHAIN_KEY_ENV`], at least 32 bytes, readable by the account Countersign runs as and
//! by nobody else), every row appended also gets `mac = HMAC-SHA-256(key, hash)` (lowercase hex) in
//! `ledger_macs`, in the same transaction. [`Store::verify_chain`] with the key then names the first
//! row whose MAC is wrong or missing after the first keyed row: a row forged without the key. Rows
//! from before the key was configured are reported as unkeyed. Without the key, MACs are not checked.

use std::path::Path;

use hmac::Mac;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Transaction, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Store, StoreError};

/// Tag that starts the canonical encoding of a row without a final decision (version 1).
pub const CANONICAL_TAG: &[u8] = b"countersign-ledger-v1";

/// Tag that starts the canonical encoding of a row with a final decision (version 2).
pub const CANONICAL_TAG_V2: &[u8] = b"countersign-ledger-v2";

/// The `prev_hash` of the first row.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// Environment variable naming the chain key file (see the module documentation).
pub const CHAIN_KEY_ENV: &str = "COUNTERSIGN_CHAIN_KEY_FILE";

/// The shortest accepted chain key, in bytes.
pub const MIN_CHAIN_KEY_BYTES: usize = 32;

/// The chain key in force for this process: read once from [`CHAIN_KEY_ENV`]. `Ok(None)` when none is
/// configured; an error when one is configured but cannot be used (every append then fails rather
/// than write rows that would later read as forged).
pub fn chain_key() -> Result<Option<&'static [u8]>, String> {
    static KEY: std::sync::OnceLock<Result<Option<Vec<u8>>, String>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let Some(path) = std::env::var_os(CHAIN_KEY_ENV).filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let path = std::path::PathBuf::from(path);
        let bytes = std::fs::read(&path)
            .map_err(|e| format!("the chain key {} cannot be read: {e}", path.display()))?;
        if bytes.len() < MIN_CHAIN_KEY_BYTES {
            return Err(format!(
                "the chain key {} has {} bytes; it needs at least {MIN_CHAIN_KEY_BYTES} (e.g. `head -c 32 /dev/urandom`)",
                path.display(),
                bytes.len()
            ));
        }
        Ok(Some(bytes))
    })
    .as_ref()
    .map(|k| k.as_deref())
    .map_err(Clone::clone)
}

/// `HMAC-SHA-256(key, hash)`, lowercase hex.
pub fn row_mac(key: &[u8], hash: &[u8; 32]) -> String {
    // HMAC accepts keys of any length; the error is unreachable.
    match hmac::Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(hash);
            hex::encode(m.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// The data columns, in canonical order (followed in the table by `prev_hash`, `hash`).
pub(crate) const COLUMNS: &str = "id, kind, time, operator, account, cheque_id, amount_cents, cheque_sha256, \
     reference_sha256s, crop_x, crop_y, crop_w, crop_h, raw_score, probability, t_accept, t_reject, decision, \
     final_action, reason, model_id, device, latency_ms, source, ref_id, payload, final_decision";
const N_COLUMNS: usize = 27;

/// One ledger row to append (everything but id and hashes, which the chain assigns).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Entry {
    pub kind: &'static str,
    pub time: String,
    pub operator: String,
    pub account: Option<String>,
    pub cheque_id: Option<String>,
    pub amount_cents: Option<i64>,
    pub cheque_sha256: Option<String>,
    pub reference_sha256s: Option<String>,
    pub crop: [Option<i64>; 4],
    pub raw_score: Option<f64>,
    pub probability: Option<f64>,
    pub t_accept: Option<f64>,
    pub t_reject: Option<f64>,
    pub decision: Option<String>,
    pub final_action: Option<String>,
    pub reason: Option<String>,
    pub model_id: Option<String>,
    pub device: Option<String>,
    pub latency_ms: Option<f64>,
    pub source: Option<String>,
    pub ref_id: Option<i64>,
    pub payload: Option<String>,
    /// The decision an override or a resolution chose (`ACCEPT`, `REFER`, `REJECT`); `None` when the
    /// row chose none.
    pub final_decision: Option<String>,
}

impl Entry {
    /// An event row (security, account, export, ...) with a JSON payload.
    pub(crate) fn event(kind: &'static str, operator: &str, payload: serde_json::Value) -> Entry {
        Entry {
            kind,
            time: super::now_utc(),
            operator: operator.to_string(),
            payload: Some(payload.to_string()),
            ..Default::default()
        }
    }

    fn values(&self, id: i64) -> [ValueRef<'_>; N_COLUMNS] {
        fn t(s: &Option<String>) -> ValueRef<'_> {
            s.as_deref()
                .map_or(ValueRef::Null, |s| ValueRef::Text(s.as_bytes()))
        }
        fn i(v: Option<i64>) -> ValueRef<'static> {
            v.map_or(ValueRef::Null, ValueRef::Integer)
        }
        fn r(v: Option<f64>) -> ValueRef<'static> {
            v.map_or(ValueRef::Null, ValueRef::Real)
        }
        [
            ValueRef::Integer(id),
            ValueRef::Text(self.kind.as_bytes()),
            ValueRef::Text(self.time.as_bytes()),
            ValueRef::Text(self.operator.as_bytes()),
            t(&self.account),
            t(&self.cheque_id),
            i(self.amount_cents),
            t(&self.cheque_sha256),
            t(&self.reference_sha256s),
            i(self.crop[0]),
            i(self.crop[1]),
            i(self.crop[2]),
            i(self.crop[3]),
            r(self.raw_score),
            r(self.probability),
            r(self.t_accept),
            r(self.t_reject),
            t(&self.decision),
            t(&self.final_action),
            t(&self.reason),
            t(&self.model_id),
            t(&self.device),
            r(self.latency_ms),
            t(&self.source),
            i(self.ref_id),
            t(&self.payload),
            t(&self.final_decision),
        ]
    }
}

fn encode_value(buf: &mut Vec<u8>, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => buf.push(0),
        ValueRef::Integer(i) => {
            buf.push(1);
            buf.extend_from_slice(&i.to_le_bytes());
        }
        ValueRef::Real(f) => {
            buf.push(2);
            buf.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        ValueRef::Text(b) | ValueRef::Blob(b) => {
            buf.push(if matches!(v, ValueRef::Text(_)) { 3 } else { 4 });
            // Fields are bounded far below 4 GiB by SQLite's own limits; saturate rather than wrap.
            let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(b);
        }
    }
}

/// Hashes one row: `SHA-256(prev || canonical(values))`, version 1 when the last column
/// (`final_decision`) is NULL, else version 2 (see the module documentation).
fn row_hash(buf: &mut Vec<u8>, prev: &[u8; 32], values: &[ValueRef<'_>; N_COLUMNS]) -> [u8; 32] {
    buf.clear();
    buf.extend_from_slice(prev);
    let (tag, encoded) = match values[N_COLUMNS - 1] {
        ValueRef::Null => (CANONICAL_TAG, &values[..N_COLUMNS - 1]),
        _ => (CANONICAL_TAG_V2, &values[..]),
    };
    buf.extend_from_slice(tag);
    for v in encoded {
        encode_value(buf, *v);
    }
    Sha256::digest(buf.as_slice()).into()
}

fn parse_hash(hex_text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    Some(out)
}

/// The newest row of the chain: an anchor to keep elsewhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub row_id: i64,
    pub hash: String,
    pub time: String,
}

/// A chain head saved to a file by `audit checkpoint` (also the `.anchor.json` beside each export).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub row_id: i64,
    pub hash: String,
    #[serde(default)]
    pub time: String,
}

impl Checkpoint {
    /// Reads a checkpoint (or an export's anchor file, which carries the same fields).
    pub fn read(path: &Path) -> Result<Checkpoint, StoreError> {
        let text = std::fs::read_to_string(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            StoreError::Invalid(format!("{} is not a checkpoint file: {e}", path.display()))
        })?;
        // An export anchor nests the head under "chain_head".
        let v = v.get("chain_head").cloned().unwrap_or(v);
        serde_json::from_value(v).map_err(|e| {
            StoreError::Invalid(format!("{} is not a checkpoint file: {e}", path.display()))
        })
    }

    /// Writes the checkpoint as pretty JSON (through [`crate::output`]: never over the database).
    pub fn write_guarded(
        &self,
        path: &Path,
        protected: &crate::output::Protected,
    ) -> Result<(), StoreError> {
        let text =
            serde_json::to_string_pretty(self).map_err(|e| StoreError::Invalid(e.to_string()))?;
        crate::output::write(path, protected, (text + "\n").as_bytes()).map_err(|e| match e {
            crate::output::OutputError::Io { path, source } => StoreError::Io { path, source },
            e => StoreError::Invalid(e.to_string()),
        })
    }
}

/// The result of walking the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Rows whose hash was recomputed and found right (up to the first bad one).
    pub rows_checked: u64,
    /// The first row that is wrong and why.
    pub first_bad: Option<(i64, String)>,
    /// The last good row.
    pub head: Option<ChainHead>,
    /// With a chain key: the first row carrying a MAC (every later row was checked to carry a
    /// valid one); `None` when no row is keyed or no key was given.
    pub keyed_from: Option<i64>,
    /// Whether MACs were checked (a chain key is configured).
    pub macs_checked: bool,
}

impl ChainReport {
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Whether the chain still contains an anchored row unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckpointReport {
    pub matches: bool,
    pub detail: String,
}

/// Reads the chain head inside a transaction.
pub(crate) fn head_in(tx: &Transaction<'_>) -> rusqlite::Result<Option<(i64, [u8; 32])>> {
    let mut stmt = tx.prepare_cached("SELECT id, hash FROM ledger ORDER BY id DESC LIMIT 1")?;
    let mut rows = stmt.query([])?;
    match rows.next()? {
        None => Ok(None),
        Some(r) => {
            let id: i64 = r.get(0)?;
            let h: String = r.get(1)?;
            // A head whose hash is not hex is itself tampering; chaining onto zeros keeps appends
            // possible while verify names the bad row.
            Ok(Some((id, parse_hash(&h).unwrap_or(GENESIS_HASH))))
        }
    }
}

/// Appends rows to the chain inside the caller's (immediate) transaction; returns their ids.
pub(crate) fn append(tx: &Transaction<'_>, entries: &[Entry]) -> rusqlite::Result<Vec<i64>> {
    let (mut id, mut prev) = head_in(tx)?.unwrap_or((0, GENESIS_HASH));
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT INTO ledger ({COLUMNS}, prev_hash, hash) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, \
         ?24, ?25, ?26, ?27, ?28, ?29)"
    ))?;
    // A key that is configured but unusable stops every append: rows written without their MAC
    // would later read as forged.
    let key = chain_key().map_err(|e| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_AUTH),
            Some(e),
        )
    })?;
    let mut mac_stmt = match key {
        Some(_) => Some(tx.prepare_cached("INSERT INTO ledger_macs (id, mac) VALUES (?1, ?2)")?),
        None => None,
    };
    let mut buf = Vec::with_capacity(1024);
    let mut ids = Vec::with_capacity(entries.len());
    for e in entries {
        id += 1;
        let values = e.values(id);
        let hash = row_hash(&mut buf, &prev, &values);
        let prev_hex = hex::encode(prev);
        let hash_hex = hex::encode(hash);
        let outs: Vec<ToSqlOutput<'_>> = values.iter().map(|v| ToSqlOutput::Borrowed(*v)).collect();
        let mut params: Vec<&dyn rusqlite::ToSql> =
            outs.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
        params.push(&prev_hex);
        params.push(&hash_hex);
        stmt.execute(params.as_slice())?;
        if let (Some(key), Some(m)) = (key, mac_stmt.as_mut()) {
            m.execute(params![id, row_mac(key, &hash)])?;
        }
        ids.push(id);
        prev = hash;
    }
    Ok(ids)
}

impl Store {
    /// The newest row of the chain, if any.
    pub fn chain_head(&self) -> Result<Option<ChainHead>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT id, hash, time FROM ledger ORDER BY id DESC LIMIT 1")
            .map_err(|e| self.map(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.map(e))?;
        match rows.next().map_err(|e| self.map(e))? {
            None => Ok(None),
            Some(r) => Ok(Some(ChainHead {
                row_id: r.get(0).map_err(|e| self.map(e))?,
                hash: r.get(1).map_err(|e| self.map(e))?,
                time: r.get(2).map_err(|e| self.map(e))?,
            })),
        }
    }

    /// Walks the whole chain in id order, recomputing every hash, and names the first row that was
    /// edited, deleted, inserted or reordered.
    pub fn verify_chain(&self) -> Result<ChainReport, StoreError> {
        self.verify_chain_with(&mut |_| {})
    }

    /// [`Store::verify_chain`] reporting progress (rows checked so far) every 10,000 rows.
    pub fn verify_chain_with(
        &self,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ChainReport, StoreError> {
        let map = |e| self.map(e);
        let mut stmt = self
            .conn()
            .prepare(&format!(
                "SELECT {COLUMNS}, prev_hash, hash, m.mac FROM ledger LEFT JOIN ledger_macs m USING (id) ORDER BY id"
            ))
            .map_err(map)?;
        let mut rows = stmt.query([]).map_err(map)?;
        let mut prev = GENESIS_HASH;
        let mut last_id = 0i64;
        let mut last_time = String::new();
        let mut checked = 0u64;
        let mut buf = Vec::with_capacity(1024);
        let mut first_bad = None;
        let key = chain_key().map_err(StoreError::Invalid)?;
        let mut keyed_from: Option<i64> = None;
        while let Some(row) = rows.next().map_err(map)? {
            let id: i64 = match row.get_ref(0).map_err(map)? {
                ValueRef::Integer(i) => i,
                _ => {
                    first_bad = Some((last_id + 1, "the row id is not an integer".to_string()));
                    break;
                }
            };
            if id != last_id + 1 {
                let why = if id > last_id + 1 {
                    if id == last_id + 2 {
                        format!("row {} is missing: it was deleted", last_id + 1)
                    } else {
                        format!(
                            "rows {} to {} are missing: they were deleted",
                            last_id + 1,
                            id - 1
                        )
                    }
                } else {
                    format!("the row id does not follow row {last_id}")
                };
                first_bad = Some((id, why));
                break;
            }
            let stored_prev = match row.get_ref(N_COLUMNS).map_err(map)? {
                ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(parse_hash),
                _ => None,
            };
            if stored_prev != Some(prev) {
                let why = if id == 1 {
                    "its prev_hash is not the genesis value: rows before it were removed or it was forged".to_string()
                } else {
                    format!(
                        "its prev_hash does not match the hash of row {last_id}: a row was inserted, \
                         removed or reordered here, or row {last_id} was rewritten"
                    )
                };
                first_bad = Some((id, why));
                break;
            }
            let mut values = [ValueRef::Null; N_COLUMNS];
            for (i, v) in values.iter_mut().enumerate() {
                *v = row.get_ref(i).map_err(map)?;
            }
            let computed = row_hash(&mut buf, &prev, &values);
            let stored = match row.get_ref(N_COLUMNS + 1).map_err(map)? {
                ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(parse_hash),
                _ => None,
            };
            if stored != Some(computed) {
                first_bad = Some((
                    id,
                    "its contents do not match its hash: the row was edited or forged".to_string(),
                ));
                break;
            }
            if let Some(key) = key {
                let mac: Option<String> = match row.get_ref(N_COLUMNS + 2).map_err(map)? {
                    ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
                    _ => None,
                };
                match (mac, keyed_from) {
                    (Some(m), _) if m == row_mac(key, &computed) => {
                        keyed_from.get_or_insert(id);
                    }
                    (Some(_), _) => {
                        first_bad = Some((
                            id,
                            "its MAC does not match the chain key: the row was forged by someone without the key"
                                .to_string(),
                        ));
                        break;
                    }
                    (None, Some(from)) => {
                        first_bad = Some((
                            id,
                            format!(
                                "it has no MAC although the chain is keyed from row {from}: it was appended outside \
                                 Countersign, by someone without the chain key"
                            ),
                        ));
                        break;
                    }
                    (None, None) => {}
                }
            }
            prev = computed;
            last_id = id;
            if let ValueRef::Text(t) = values[2] {
                last_time = String::from_utf8_lossy(t).into_owned();
            }
            checked += 1;
            if checked.is_multiple_of(10_000) {
                progress(checked);
            }
        }
        let head = (last_id > 0).then(|| ChainHead {
            row_id: last_id,
            hash: hex::encode(prev),
            time: last_time,
        });
        Ok(ChainReport {
            rows_checked: checked,
            first_bad,
            head,
            keyed_from,
            macs_checked: key.is_some(),
        })
    }

    /// Checks that an anchored row (from a checkpoint or an export) is still in the chain with the
    /// same hash. Together with an intact [`Store::verify_chain`], this proves nothing up to the
    /// anchor was rewritten since the anchor was taken.
    pub fn verify_checkpoint(&self, cp: &Checkpoint) -> Result<CheckpointReport, StoreError> {
        let found: Option<String> = self
            .conn()
            .query_row(
                "SELECT hash FROM ledger WHERE id = ?1",
                params![cp.row_id],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| {
                if e == rusqlite::Error::QueryReturnedNoRows {
                    Ok(None)
                } else {
                    Err(e)
                }
            })
            .map_err(|e| self.map(e))?;
        Ok(match found {
            None => CheckpointReport {
                matches: false,
                detail: format!(
                    "the anchored row {} is no longer in the chain: the chain was truncated or rewritten",
                    cp.row_id
                ),
            },
            Some(h) if h.eq_ignore_ascii_case(&cp.hash) => CheckpointReport {
                matches: true,
                detail: format!("row {} still has the anchored hash {}", cp.row_id, cp.hash),
            },
            Some(h) => CheckpointReport {
                matches: false,
                detail: format!(
                    "row {} has hash {h}, but the checkpoint recorded {}: the chain was rewritten from that \
                     row or earlier",
                    cp.row_id, cp.hash
                ),
            },
        })
    }

    /// Appends one event row (security, account, export, checkpoint) to the chain in its own
    /// transaction; returns its id.
    pub(crate) fn append_event(&mut self, entry: Entry) -> Result<i64, StoreError> {
        let m = self.mapper();
        let tx = self.write_tx()?;
        let ids = append(&tx, std::slice::from_ref(&entry)).map_err(&m)?;
        tx.commit().map_err(&m)?;
        Ok(ids.first().copied().unwrap_or(0))
    }
}
