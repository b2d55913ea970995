//! The results file of a batch: one CSV row per manifest row, in manifest order.
//!
//! Columns: `cheque_id, line, account_id, decision, probability, score, crop_x, crop_y, crop_width,
//! crop_height, find_confidence, reason, error, run, audit_row`. `decision` is ACCEPT, REFER or REJECT
//! for a decided cheque (recorded in the audit store as row `audit_row`), ERROR for a row that could
//! not be verified (`error` says why; nothing is written to the store, so a rerun tries it again). The
//! file always covers the whole manifest: a cheque decided by an earlier run (a resumed batch) shows
//! that run's decision with `run` = `earlier`, and `run` = `this` marks the decisions of this run.
//! SKIPPED is only left for a row whose earlier decision could not be read back.
//!
//! The file is written through [`crate::output`]: to a temporary file renamed over the destination at
//! the end, so it is never the database and never half-written. Written with the csv crate, so paths and
//! reasons holding commas, quotes or newlines stay one well-formed field.

use std::path::{Path, PathBuf};

use crate::output::{OutputFile, Protected};
use crate::store::{DecisionRecord, DecisionRow};

use serde::Serialize;

/// What happened to one manifest row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RowStatus {
    Accept,
    Refer,
    Reject,
    Error,
    Skipped,
}

impl RowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Accept => "ACCEPT",
            RowStatus::Refer => "REFER",
            RowStatus::Reject => "REJECT",
            RowStatus::Error => "ERROR",
            RowStatus::Skipped => "SKIPPED",
        }
    }
}

impl From<crate::scoring::Decision> for RowStatus {
    fn from(d: crate::scoring::Decision) -> Self {
        match d {
            crate::scoring::Decision::Accept => RowStatus::Accept,
            crate::scoring::Decision::Refer => RowStatus::Refer,
            crate::scoring::Decision::Reject => RowStatus::Reject,
        }
    }
}

/// One row of the results file.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ResultRow {
    pub cheque_id: String,
    /// The row's line in the manifest (the header is line 1).
    pub line: u64,
    pub account_id: Option<String>,
    pub decision: RowStatus,
    pub probability: Option<f64>,
    pub score: Option<f64>,
    pub crop_x: Option<u32>,
    pub crop_y: Option<u32>,
    pub crop_width: Option<u32>,
    pub crop_height: Option<u32>,
    pub find_confidence: Option<f64>,
    /// The decision's reason (thresholds used, or why it was referred).
    pub reason: String,
    /// Why the row could not be verified (ERROR rows only).
    pub error: String,
    /// Which run decided the row: `this` or `earlier` (empty for ERROR rows).
    #[serde(default)]
    pub run: String,
    /// The audit row of the decision (empty for ERROR rows).
    #[serde(default)]
    pub audit_row: Option<i64>,
}

impl ResultRow {
    /// A row that carries only a status and a message (ERROR, SKIPPED).
    pub fn bare(
        cheque_id: &str,
        line: u64,
        account_id: Option<&str>,
        status: RowStatus,
        message: String,
    ) -> Self {
        let (reason, error) = if status == RowStatus::Error {
            (String::new(), message)
        } else {
            (message, String::new())
        };
        Self {
            cheque_id: cheque_id.to_string(),
            line,
            account_id: account_id.map(str::to_string),
            decision: status,
            probability: None,
            score: None,
            crop_x: None,
            crop_y: None,
            crop_width: None,
            crop_height: None,
            find_confidence: None,
            reason,
            error,
            run: String::new(),
            audit_row: None,
        }
    }

    /// The row of a cheque decided by this run: a view of the decision record it is about to store
    /// (the audit row's id is filled in once the store has it). `find_confidence` is the signature
    /// finder's, which the record does not keep.
    pub fn decided(line: u64, d: &DecisionRecord, find_confidence: Option<f64>) -> Self {
        Self {
            cheque_id: d.cheque_id.clone().unwrap_or_default(),
            line,
            account_id: d.account.clone(),
            decision: d.decision.into(),
            probability: d.probability,
            score: d.raw_score,
            crop_x: d.crop.map(|c| c.x),
            crop_y: d.crop.map(|c| c.y),
            crop_width: d.crop.map(|c| c.w),
            crop_height: d.crop.map(|c| c.h),
            find_confidence,
            reason: d.reason.clone().unwrap_or_default(),
            error: String::new(),
            run: "this".into(),
            audit_row: None,
        }
    }

    /// The row of a cheque decided by an earlier run, from its audit row.
    pub fn earlier(line: u64, row: &DecisionRow) -> Self {
        let d = &row.record;
        Self {
            reason: format!(
                "decided by an earlier run at {} (audit row {}): {}",
                crate::store::format_time(d.time),
                row.id,
                d.reason.as_deref().unwrap_or_default()
            ),
            run: "earlier".into(),
            audit_row: Some(row.id),
            ..Self::decided(line, d, None)
        }
    }
}

/// Writes result rows to a CSV file.
pub struct ResultWriter {
    path: PathBuf,
    writer: csv::Writer<OutputFile>,
}

impl std::fmt::Debug for ResultWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultWriter")
            .field("path", &self.path)
            .finish()
    }
}

impl ResultWriter {
    /// Starts the results file (a temporary file until [`ResultWriter::commit`]), refusing the
    /// protected files.
    pub fn create(path: &Path, protected: &Protected) -> Result<Self, crate::output::OutputError> {
        let file = crate::output::create(path, protected)?;
        let writer = csv::WriterBuilder::new()
            .has_headers(true)
            .from_writer(file);
        Ok(Self {
            path: path.to_path_buf(),
            writer,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, row: &ResultRow) -> std::io::Result<()> {
        self.writer.serialize(row).map_err(csv_to_io)
    }

    /// Flushes to the operating system (after each committed chunk).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }

    /// Renames the finished file over the destination.
    pub fn commit(self) -> Result<(), crate::output::OutputError> {
        let path = self.path.clone();
        let file = self
            .writer
            .into_inner()
            .map_err(|e| crate::output::OutputError::Io {
                path,
                source: e.into_error(),
            })?;
        file.commit()
    }
}

fn csv_to_io(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

/// Reads a results file back (tests, and tools that post-process a batch).
pub fn read_results(path: &Path) -> Result<Vec<ResultRow>, csv::Error> {
    let mut r = csv::Reader::from_path(path)?;
    r.deserialize().collect()
}
