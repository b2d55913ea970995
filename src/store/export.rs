//! Streaming export of decisions (CSV or JSON Lines) with a SHA-256 and a chain anchor beside it.
//!
//! For `OUT` the export writes `OUT` itself, `OUT.sha256` (`sha256sum` format, so `sha256sum -c`
//! checks it) and `OUT.anchor.json`: the chain head at the time of the export (row id, hash, time),
//! the filter, the row count and the file's SHA-256. An auditor keeps the anchor; `audit verify
//! --checkpoint OUT.anchor.json` later proves the chain up to that row was not rewritten. The export
//! itself is then logged as a chained row.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::params_from_iter;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::chain::{ChainHead, Entry};
use super::decisions::{ACTION_JOIN, DecisionFilter, DecisionRow, ROW_COLUMNS, read_row};
use super::{Operator, Permission, Store, StoreError, format_time};

/// Export file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

/// One exported decision: a flat view of a [`DecisionRow`] (its record, the action in force and the
/// chain hash), the same columns in CSV and JSON Lines. A file format, so it keeps its own shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportRecord {
    pub id: i64,
    pub time: String,
    pub operator: String,
    pub account: Option<String>,
    pub cheque_id: Option<String>,
    pub amount_cents: Option<i64>,
    pub cheque_sha256: String,
    /// JSON array of the reference images' SHA-256.
    pub reference_sha256s: String,
    pub crop_x: Option<u32>,
    pub crop_y: Option<u32>,
    pub crop_w: Option<u32>,
    pub crop_h: Option<u32>,
    /// Empty (CSV) or null (JSON) when nothing was scored or calibrated.
    pub raw_score: Option<f64>,
    pub probability: Option<f64>,
    pub t_accept: f64,
    pub t_reject: f64,
    pub decision: String,
    pub final_action: String,
    pub reason: Option<String>,
    pub model_id: String,
    pub device: String,
    pub latency_ms: f64,
    pub source: String,
    /// The action in force after later confirm/override rows.
    pub effective_action: String,
    pub action_operator: Option<String>,
    pub action_time: Option<String>,
    pub action_reason: Option<String>,
    pub hash: String,
    /// The decision in force after overrides and resolutions (the model's `decision` otherwise).
    pub final_decision: String,
    /// What the operator said the questioned image is (`auto`, `cheque`, `signature`) and what it was
    /// taken as; empty (CSV) or null (JSON) where not recorded.
    #[serde(default)]
    pub kind_chosen: Option<String>,
    #[serde(default)]
    pub kind_resolved: Option<String>,
}

impl From<&DecisionRow> for ExportRecord {
    fn from(row: &DecisionRow) -> Self {
        let d = &row.record;
        ExportRecord {
            id: row.id,
            time: format_time(d.time),
            operator: d.operator.clone(),
            account: d.account.clone(),
            cheque_id: d.cheque_id.clone(),
            amount_cents: d.amount_cents,
            cheque_sha256: d.cheque_sha256.clone(),
            reference_sha256s: serde_json::Value::from(d.reference_sha256s.clone()).to_string(),
            crop_x: d.crop.map(|c| c.x),
            crop_y: d.crop.map(|c| c.y),
            crop_w: d.crop.map(|c| c.w),
            crop_h: d.crop.map(|c| c.h),
            raw_score: d.raw_score,
            probability: d.probability,
            t_accept: d.t_accept,
            t_reject: d.t_reject,
            decision: d.decision.as_str().into(),
            final_action: d.final_action.as_str().into(),
            reason: d.reason.clone(),
            model_id: d.model_id.clone(),
            device: d.device.clone(),
            latency_ms: d.latency_ms,
            source: d.source.as_str().into(),
            effective_action: row.effective_action().as_str().into(),
            action_operator: row.action.as_ref().map(|a| a.operator.clone()),
            action_time: row.action.as_ref().map(|a| a.time.clone()),
            action_reason: row.action.as_ref().and_then(|a| a.reason.clone()),
            hash: row.hash.clone(),
            final_decision: row.final_decision.as_str().into(),
            kind_chosen: d.image_kind.as_ref().map(|k| k.chosen.clone()),
            kind_resolved: d.image_kind.as_ref().map(|k| k.resolved.clone()),
        }
    }
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExportSummary {
    pub rows: u64,
    pub file_sha256: String,
    pub chain_head: Option<ChainHead>,
    pub sha256_path: PathBuf,
    pub anchor_path: PathBuf,
    /// The ledger row that logs this export.
    pub logged_as: i64,
}

/// Counts and hashes the bytes going to the file.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

enum Sink<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Jsonl(W),
}

fn side_path(out: &Path, suffix: &str) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

impl Store {
    /// The files no output may replace: this database and SQLite's files beside it, by name and by
    /// identity (hard links and symlinks included). See [`crate::output`].
    pub fn protected_files(&self) -> crate::output::Protected {
        crate::output::Protected::database(&self.path)
    }

    /// Refuses an output file that is the database itself, one of SQLite's files beside it, or another
    /// name (a link) for one of them: writing it would destroy committed decisions.
    pub fn refuse_own_files(&self, outs: &[&Path]) -> Result<(), StoreError> {
        let p = self.protected_files();
        for out in outs {
            p.check(out)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
        }
        Ok(())
    }

    /// Streams the matching decisions (oldest first) to `out` in constant memory, writes the
    /// `.sha256` and `.anchor.json` side files, and logs the export. Auditor or supervisor only.
    /// `progress` is called with the rows written so far, every 10,000 rows and at the end.
    pub fn export_decisions(
        &mut self,
        by: &Operator,
        filter: &DecisionFilter,
        format: ExportFormat,
        out: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExportSummary, StoreError> {
        self.require(by, Permission::ExportAudit)?;
        if self.read_only {
            // Every export is logged in the chain; a read-only handle cannot do that.
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
                detail: "exports are logged in the audit chain, which needs write access; use `audit verify` \
                         on a read-only copy"
                    .into(),
            });
        }
        self.refuse_own_files(&[
            out,
            &side_path(out, ".sha256"),
            &side_path(out, ".anchor.json"),
        ])?;
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StoreError::Io {
                path: p.clone(),
                source,
            }
        };
        let m = self.mapper();
        let (rows, file_sha256, head) = {
            // One read transaction: the head and the rows come from the same snapshot.
            let tx = self.conn().unchecked_transaction().map_err(&m)?;
            let head = self.chain_head()?;
            let file = crate::output::create(out, &self.protected_files()).map_err(output_err)?;
            let w = HashingWriter {
                inner: file,
                hasher: Sha256::new(),
            };
            let csv_err = |e: csv::Error| StoreError::Io {
                path: out.to_path_buf(),
                source: std::io::Error::other(e.to_string()),
            };
            let mut sink = match format {
                ExportFormat::Csv => Sink::Csv(Box::new(
                    csv::WriterBuilder::new().has_headers(false).from_writer(w),
                )),
                ExportFormat::Jsonl => Sink::Jsonl(w),
            };
            if let Sink::Csv(c) = &mut sink {
                // Written by hand so that an empty export still has its header line.
                c.write_record(csv_header()).map_err(csv_err)?;
            }
            let (clause, p) = filter.sql();
            let sql = format!(
                "SELECT {ROW_COLUMNS} FROM ledger d {ACTION_JOIN} WHERE {clause} ORDER BY d.time, d.id"
            );
            let mut stmt = tx.prepare(&sql).map_err(&m)?;
            let mut q = stmt.query(params_from_iter(p)).map_err(&m)?;
            let mut n = 0u64;
            let mut line = Vec::with_capacity(1024);
            while let Some(row) = q.next().map_err(&m)? {
                let rec = ExportRecord::from(&read_row(row).map_err(&m)?);
                match &mut sink {
                    Sink::Csv(c) => c.serialize(&rec).map_err(csv_err)?,
                    Sink::Jsonl(w) => {
                        line.clear();
                        serde_json::to_writer(&mut line, &rec)
                            .map_err(|e| StoreError::Invalid(e.to_string()))?;
                        line.push(b'\n');
                        w.write_all(&line).map_err(io(out))?;
                    }
                }
                n += 1;
                if n.is_multiple_of(10_000) {
                    progress(n);
                }
            }
            drop(q);
            drop(stmt);
            tx.commit().map_err(&m)?;
            let mut w = match sink {
                Sink::Csv(c) => c.into_inner().map_err(|e| StoreError::Io {
                    path: out.to_path_buf(),
                    source: std::io::Error::other(e.to_string()),
                })?,
                Sink::Jsonl(w) => w,
            };
            w.flush().map_err(io(out))?;
            let digest = hex::encode(w.hasher.finalize());
            w.inner.commit().map_err(output_err)?;
            (n, digest, head)
        };
        progress(rows);
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sha256_path = side_path(out, ".sha256");
        crate::output::write(
            &sha256_path,
            &self.protected_files(),
            format!("{file_sha256}  {name}\n").as_bytes(),
        )
        .map_err(output_err)?;
        let anchor_path = side_path(out, ".anchor.json");
        let filter_json = serde_json::json!({
            "from": filter.from.map(format_time),
            "to": filter.to.map(format_time),
            "decision": filter.decision.map(|d| d.as_str()),
            "operator": filter.operator,
            "account": filter.account,
            "cheque_id": filter.cheque_id,
        });
        let anchor = serde_json::json!({
            "file": name,
            "format": format,
            "rows": rows,
            "file_sha256": file_sha256,
            "filter": filter_json,
            "exported_by": by.name(),
            "exported_at": super::now_utc(),
            "chain_head": head,
        });
        let text = serde_json::to_string_pretty(&anchor)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        crate::output::write(
            &anchor_path,
            &self.protected_files(),
            (text + "\n").as_bytes(),
        )
        .map_err(output_err)?;
        let mut e = Entry::event(
            "export",
            by.name(),
            serde_json::json!({"event": "export", "file": name, "format": format, "rows": rows,
                "file_sha256": file_sha256, "filter": filter_json,
                "chain_head": head.as_ref().map(|h| serde_json::json!({"row_id": h.row_id, "hash": h.hash}))}),
        );
        e.reason = None;
        let logged_as = self.append_event(e)?;
        Ok(ExportSummary {
            rows,
            file_sha256,
            chain_head: head,
            sha256_path,
            anchor_path,
            logged_as,
        })
    }

    /// Writes the chain head to a checkpoint file to keep elsewhere, and logs it. Auditor or
    /// supervisor only.
    pub fn write_checkpoint(
        &mut self,
        by: &Operator,
        out: &Path,
    ) -> Result<super::Checkpoint, StoreError> {
        self.require(by, Permission::ExportAudit)?;
        self.refuse_own_files(&[out])?;
        let head = self
            .chain_head()?
            .ok_or_else(|| StoreError::Invalid("the chain is empty".into()))?;
        let cp = super::Checkpoint {
            row_id: head.row_id,
            hash: head.hash.clone(),
            time: head.time.clone(),
        };
        cp.write_guarded(out, &self.protected_files())?;
        self.append_event(Entry::event(
            "checkpoint",
            by.name(),
            serde_json::json!({"event": "checkpoint", "row_id": cp.row_id, "hash": cp.hash}),
        ))?;
        Ok(cp)
    }
}

/// The CSV header, in [`ExportRecord`] field order.
pub fn csv_header() -> [&'static str; 31] {
    [
        "id",
        "time",
        "operator",
        "account",
        "cheque_id",
        "amount_cents",
        "cheque_sha256",
        "reference_sha256s",
        "crop_x",
        "crop_y",
        "crop_w",
        "crop_h",
        "raw_score",
        "probability",
        "t_accept",
        "t_reject",
        "decision",
        "final_action",
        "reason",
        "model_id",
        "device",
        "latency_ms",
        "source",
        "effective_action",
        "action_operator",
        "action_time",
        "action_reason",
        "hash",
        "final_decision",
        "kind_chosen",
        "kind_resolved",
    ]
}

/// An output refused or failed, as a store error (the database itself was not touched).
fn output_err(e: crate::output::OutputError) -> StoreError {
    match e {
        crate::output::OutputError::Io { path, source } => StoreError::Io { path, source },
        e @ crate::output::OutputError::Protected { .. } => StoreError::Invalid(e.to_string()),
    }
}
