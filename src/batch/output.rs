//! The results file of a batch: one CSV row per manifest row, in manifest order.
//!
//! Columns: `cheque_id, line, account_id, decision, probability, score, crop_x, crop_y, crop_width,
//! crop_height, find_confidence, reason, error`. `decision` is ACCEPT, REFER or REJECT for a decided
//! cheque (also written to the audit store), ERROR for a row that could not be verified (`error` says
//! why; nothing is written to the store, so a rerun tries it again), and SKIPPED for a cheque id that
//! the audit store had already decided (a resumed batch). Written with the csv crate, so paths and
//! reasons holding commas, quotes or newlines stay one well-formed field.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

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
        }
    }
}

/// Writes result rows to a CSV file.
pub struct ResultWriter {
    path: PathBuf,
    writer: csv::Writer<BufWriter<File>>,
}

impl std::fmt::Debug for ResultWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultWriter")
            .field("path", &self.path)
            .finish()
    }
}

impl ResultWriter {
    /// Creates (or truncates) the results file.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = File::create(path)?;
        let writer = csv::WriterBuilder::new()
            .has_headers(true)
            .from_writer(BufWriter::with_capacity(1 << 16, file));
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

    /// Flushes to the operating system (after each committed chunk, so the file and the store agree
    /// up to the last chunk if the process dies).
    pub fn flush(&mut self) -> std::io::Result<()> {
        // csv's flush also flushes the BufWriter underneath.
        self.writer.flush()
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
