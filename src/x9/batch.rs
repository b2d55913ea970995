//! The thin layer between an X9 file and the batch: each item becomes a batch row.
//!
//! - cheque id: `X9-<first 16 hex digits of the file's SHA-256>-<item sequence number>` (see
//!   [`cheque_id`]), so the id names the item and the exact file it came from, and a second run over
//!   the same file resumes instead of deciding again;
//! - account: from the on-us field through the supervisor's [`AccountRule`]; amount: the item's;
//! - image: the front image's bytes (hashed and decoded like any cheque scan);
//! - the file itself (path, SHA-256, counts, totals, encoding, notes) is one `x9_file` row of the
//!   audit chain, written before any of its items is decided.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{AccountRule, ItemReader, X9Error, X9Item, X9Summary};
use crate::batch::manifest::{ManifestRow, RowReferences};
use crate::store::{Operator, Permission, Store, StoreError};
use crate::verify::ImageSource;

/// The batch cheque id of an item.
pub fn cheque_id(file_sha256: &str, sequence: &str) -> String {
    let prefix = file_sha256.get(..16).unwrap_or(file_sha256);
    format!("X9-{prefix}-{sequence}")
}

/// The item sequence number in a cheque id made by [`cheque_id`].
pub fn sequence_of(cheque_id: &str) -> Option<&str> {
    let rest = cheque_id.strip_prefix("X9-")?;
    rest.split_once('-').map(|(_, seq)| seq)
}

/// Records, in the audit chain, that `operator` ran the batch over this file.
pub fn log_file(
    store: &mut Store,
    by: &Operator,
    path: &Path,
    s: &X9Summary,
    rule: &AccountRule,
) -> Result<i64, StoreError> {
    store.require(by, Permission::Verify)?;
    let payload = serde_json::json!({
        "event": "x9_file",
        "file": path.display().to_string(),
        "sha256": s.sha256,
        "bytes": s.bytes,
        "encoding": s.encoding,
        "framing": s.framing,
        "standard_level": s.header.as_ref().map(|h| h.standard_level.clone()),
        "origin_routing": s.header.as_ref().map(|h| h.origin_routing.clone()),
        "creation_date": s.header.as_ref().map(|h| h.creation_date.clone()),
        "records": s.records,
        "cash_letters": s.cash_letters,
        "bundles": s.bundles,
        "items": s.items,
        "total_cents": s.total_cents,
        "account_rule": rule.pattern(),
        "notes": s.notes,
    });
    store.append_event(crate::store::chain::Entry::event(
        "x9_file",
        by.name(),
        payload,
    ))
}

/// Items of a checked file as batch rows, with their front images.
pub struct X9Rows {
    items: ItemReader<BufReader<std::fs::File>>,
    path: PathBuf,
    sha256: String,
    rule: AccountRule,
}

impl X9Rows {
    pub fn open(path: &Path, summary: &X9Summary, rule: AccountRule) -> Result<Self, X9Error> {
        Ok(Self {
            items: super::open(path)?,
            path: path.to_path_buf(),
            sha256: summary.sha256.clone(),
            rule,
        })
    }

    /// The next row and its image, or `None` at the end of the file.
    pub fn next_row(&mut self) -> Result<Option<(ManifestRow, Option<ImageSource>)>, X9Error> {
        let Some(item) = self.items.next_item()? else {
            return Ok(None);
        };
        Ok(Some(self.row(item)))
    }

    fn row(&self, item: X9Item) -> (ManifestRow, Option<ImageSource>) {
        let id = cheque_id(&self.sha256, &item.sequence);
        let name = format!("{} item {}", self.path.display(), item.sequence);
        let (account, account_problem) = match self.rule.account(&item.on_us) {
            Ok(a) => (Some(a), None),
            Err(e) => (None, Some(e)),
        };
        let problem = item
            .problem
            .map(|p| format!("item {}: {p}", item.sequence))
            .or(account_problem.map(|p| format!("item {}: {p}", item.sequence)));
        let image = item.front.map(|bytes| ImageSource::Bytes {
            name: name.clone(),
            bytes: Arc::from(bytes),
        });
        (
            ManifestRow {
                line: item.record,
                cheque_id: id,
                cheque_path: PathBuf::from(name),
                account_id: account,
                references: RowReferences::Account,
                amount_cents: Some(item.amount_cents),
                // An item of a cash letter is a cheque by definition.
                kind: crate::verify::InputKind::Cheque,
                problem,
            },
            image,
        )
    }
}

/// One row of the return list.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReturnRow {
    pub sequence: String,
    pub cheque_id: String,
    pub routing: String,
    pub on_us: String,
    pub account_id: Option<String>,
    pub amount_cents: i64,
    /// REFER, REJECT or ERROR.
    pub decision: String,
    pub reason: String,
}

/// `RESULTS-returns.csv` beside the results file.
pub fn default_returns(results: &Path) -> PathBuf {
    let stem = results
        .file_stem()
        .map_or_else(|| "results".into(), |s| s.to_string_lossy().into_owned());
    results.with_file_name(format!("{stem}-returns.csv"))
}

/// Writes the return list: the items of the file whose result is REFER, REJECT or ERROR, in file
/// order, with sequence number, MICR data, amount and reason. Reads the results file and the X9 file
/// (without images) once each. Returns the number of rows written.
pub fn write_returns(
    x9: &Path,
    summary: &X9Summary,
    results: &Path,
    out: &Path,
    protected: &crate::output::Protected,
) -> anyhow::Result<u64> {
    let mut wanted: HashMap<String, (String, Option<String>, String)> = HashMap::new();
    let mut r = csv::Reader::from_path(results)?;
    for row in r.deserialize::<crate::batch::output::ResultRow>() {
        let row = row?;
        use crate::batch::output::RowStatus as S;
        if matches!(row.decision, S::Refer | S::Reject | S::Error) {
            let why = if row.error.is_empty() {
                row.reason
            } else {
                row.error
            };
            wanted.insert(
                row.cheque_id,
                (row.decision.as_str().to_string(), row.account_id, why),
            );
        }
    }
    // Through the one output function: never the database, written whole or not at all.
    let mut w = csv::Writer::from_writer(crate::output::create(out, protected)?);
    let mut items = ItemReader::new(
        BufReader::with_capacity(1 << 16, std::fs::File::open(x9)?),
        false,
        None,
    )?;
    let mut n = 0;
    while let Some(item) = items.next_item()? {
        let id = cheque_id(&summary.sha256, &item.sequence);
        if let Some((decision, account_id, reason)) = wanted.remove(&id) {
            w.serialize(ReturnRow {
                sequence: item.sequence,
                cheque_id: id,
                routing: item.routing,
                on_us: item.on_us,
                account_id,
                amount_cents: item.amount_cents,
                decision,
                reason,
            })?;
            n += 1;
        }
    }
    w.flush()?;
    w.into_inner()
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?
        .commit()?;
    Ok(n)
}
