//! `countersign audit verify|export|checkpoint|settings`: prove the log intact and take it out.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::operator::{open_store, sign_in};
use super::{ExitError, GlobalOpts, exit};
use crate::scoring::Decision;
use crate::store::{Checkpoint, DecisionFilter, ExportFormat, Store, StoreError, parse_time};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DecisionArg {
    Accept,
    Refer,
    Reject,
}

impl From<DecisionArg> for Decision {
    fn from(d: DecisionArg) -> Decision {
        match d {
            DecisionArg::Accept => Decision::Accept,
            DecisionArg::Refer => Decision::Refer,
            DecisionArg::Reject => Decision::Reject,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain and name the first row that was edited, deleted, inserted or reordered
    /// (exit code 7 when broken). Needs no sign-in and works on a read-only copy.
    Verify {
        /// Also check that the chain still holds an anchored head (a checkpoint file or an export's
        /// .anchor.json): detects a chain rewritten from a point on.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Export decisions for a date range as CSV or JSON Lines (auditor or supervisor). Writes
    /// OUT.sha256 and OUT.anchor.json beside the file.
    Export {
        /// First day (YYYY-MM-DD, inclusive) or an RFC 3339 time.
        #[arg(long)]
        from: Option<String>,
        /// Last day (YYYY-MM-DD, inclusive) or an RFC 3339 time (exclusive).
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum)]
        decision: Option<DecisionArg>,
        #[arg(long = "for-operator", alias = "by")]
        for_operator: Option<String>,
        #[arg(long)]
        account: Option<String>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the chain head (row id, hash, time) to a file to keep somewhere else (auditor or
    /// supervisor).
    Checkpoint {
        #[arg(long)]
        out: PathBuf,
    },
    /// Show the settings in force and their history.
    Settings,
}

/// A `--to` day is inclusive: the filter's bound is the next midnight.
fn parse_to(s: &str) -> Result<time::OffsetDateTime, StoreError> {
    let t = parse_time(s)?;
    let is_plain_date = s.trim().len() == 10;
    Ok(if is_plain_date {
        t + time::Duration::days(1)
    } else {
        t
    })
}

/// Opens for verification: read-write when possible (so pending migrations run), else read-only
/// (a copy on read-only media: see [`Store::open_read_only`], which falls back to SQLite's
/// `immutable` mode when not even the shared-memory file can be created).
fn open_for_reading(global: &GlobalOpts) -> anyhow::Result<Store> {
    let path = global.db_path();
    match Store::open(&path) {
        Ok(s) => Ok(s),
        Err(
            e @ (StoreError::NewerSchema { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Busy { .. }),
        ) => Err(e.into()),
        Err(first) => Store::open_read_only(&path).map_err(|second| {
            anyhow::Error::new(second).context(format!(
                "opening the audit database {} (read-write failed too: {first})",
                path.display()
            ))
        }),
    }
}

pub fn run(global: &GlobalOpts, args: &AuditArgs) -> anyhow::Result<()> {
    match &args.command {
        AuditCommand::Verify { checkpoint } => {
            let store = open_for_reading(global)?;
            let report = store.verify_chain()?;
            if let Some((row, why)) = &report.first_bad {
                return Err(ExitError::new(
                    exit::CHAIN_BROKEN,
                    format!(
                        "the audit chain is broken at row {row}: {why} ({} rows before it verified)",
                        report.rows_checked
                    ),
                )
                .into());
            }
            if store.is_immutable() {
                eprintln!(
                    "note: {} is on read-only media and was opened as immutable: a -wal file beside it is not \
                     read (fold it in with `PRAGMA wal_checkpoint` on a writable copy)",
                    store.path().display()
                );
            }
            // Reference images, cached embeddings and logged signature images live beside the
            // chain; each must match the hash the chain recorded for it, and the triggers that
            // protect them must all be in place.
            let side = store.side_table_problems()?;
            if !side.is_empty() {
                return Err(ExitError::new(
                    exit::CHAIN_BROKEN,
                    format!(
                        "the chain is intact ({} rows), but {} problem(s) were found beside it:\n  {}",
                        report.rows_checked,
                        side.len(),
                        side.join("\n  ")
                    ),
                )
                .into());
            }
            // Roles and PINs live in their own table; each must match what the chain recorded.
            let differing = store.operators_differing_from_chain()?;
            if !differing.is_empty() {
                let list: Vec<String> = differing.iter().map(|(_, why)| why.clone()).collect();
                return Err(ExitError::new(
                    exit::CHAIN_BROKEN,
                    format!(
                        "the chain is intact ({} rows), but the operators table was changed outside Countersign: {}",
                        report.rows_checked,
                        list.join("; ")
                    ),
                )
                .into());
            }
            match (report.macs_checked, report.keyed_from) {
                (true, Some(from)) => crate::outln!(
                    "keyed chain: rows {from} to the head carry a valid MAC under the chain key{}",
                    if from > 1 {
                        format!(" (rows 1 to {} predate the key)", from - 1)
                    } else {
                        String::new()
                    }
                ),
                (true, None) => crate::outln!(
                    "keyed chain: no row carries a MAC yet (every row predates the chain key)"
                ),
                (false, _) => crate::outln!(
                    "unkeyed: no chain key is configured ({}), so a row appended with a valid hash by someone who \
                     can write the file is only caught by a checkpoint taken after it",
                    crate::store::chain::CHAIN_KEY_ENV
                ),
            }
            match &report.head {
                Some(h) => crate::outln!(
                    "chain intact: {} rows verified; head row {} ({}) hash {}",
                    report.rows_checked,
                    h.row_id,
                    h.time,
                    h.hash
                ),
                None => crate::outln!("chain intact: the ledger is empty"),
            }
            if let Some(path) = checkpoint {
                let cp = Checkpoint::read(path)?;
                let r = store.verify_checkpoint(&cp)?;
                if !r.matches {
                    return Err(ExitError::new(
                        exit::CHAIN_BROKEN,
                        format!("checkpoint mismatch: {}", r.detail),
                    )
                    .into());
                }
                crate::outln!("checkpoint matches: {}", r.detail);
            }
        }
        AuditCommand::Export {
            from,
            to,
            decision,
            for_operator,
            account,
            format,
            out,
        } => {
            let mut store = open_store(global)?;
            let op = sign_in(&mut store, global)?;
            let filter = DecisionFilter {
                from: from.as_deref().map(parse_time).transpose()?,
                to: to.as_deref().map(parse_to).transpose()?,
                decision: decision.map(Decision::from),
                operator: for_operator.clone(),
                account: account.clone(),
                cheque_id: None,
                ..Default::default()
            };
            // Check the role before counting, so a refused export reads nothing.
            store.require(&op, crate::store::Permission::ExportAudit)?;
            let total = store.count_decisions(&filter)?;
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let summary =
                store.export_decisions(&op, &filter, *format, out, &mut |n| bar.set_position(n))?;
            bar.finish_and_clear();
            crate::outln!("exported {} decisions to {}", summary.rows, out.display());
            crate::outln!(
                "sha256 {}  ({})",
                summary.file_sha256,
                summary.sha256_path.display()
            );
            if let Some(h) = &summary.chain_head {
                crate::outln!(
                    "chain head row {} hash {}  ({})",
                    h.row_id,
                    h.hash,
                    summary.anchor_path.display()
                );
            }
        }
        AuditCommand::Checkpoint { out } => {
            let mut store = open_store(global)?;
            let op = sign_in(&mut store, global)?;
            let cp = store.write_checkpoint(&op, out)?;
            crate::outln!(
                "checkpoint: row {} hash {} ({}) written to {}",
                cp.row_id,
                cp.hash,
                cp.time,
                out.display()
            );
            crate::outln!(
                "keep this file somewhere else; `countersign audit verify --checkpoint FILE` checks it"
            );
        }
        AuditCommand::Settings => {
            let mut store = open_store(global)?;
            let op = sign_in(&mut store, global)?;
            store.require(&op, crate::store::Permission::ReadAudit)?;
            let s = store.current_settings()?;
            crate::outln!("{}", serde_json::to_string_pretty(&s)?);
            for h in store.settings_history()? {
                crate::outln!(
                    "row {} {} by {}: {} ({})",
                    h.id,
                    h.time,
                    h.operator,
                    serde_json::to_string(&h.change)?,
                    h.reason
                );
            }
        }
    }
    Ok(())
}
