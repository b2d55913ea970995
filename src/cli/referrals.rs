//! `countersign referrals list|resolve`: the referral queue from the command line. A cheque whose
//! decision in force is REFER (confirmed as referred by a clerk, or a batch row that ended REFER)
//! waits here until a supervisor resolves it to ACCEPT or REJECT with a reason.

use clap::{Args, Subcommand};

use super::GlobalOpts;
use super::operator::{open_store, sign_in};
use crate::scoring::Decision;
use crate::store::{DecisionRow, Permission};

#[derive(Debug, Args)]
pub struct ReferralsArgs {
    #[command(subcommand)]
    pub command: ReferralsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ReferralsCommand {
    /// List the cheques waiting for a supervisor, oldest first (supervisor or auditor).
    List {
        /// Show at most this many.
        #[arg(long, default_value_t = 200)]
        limit: u64,
    },
    /// Resolve a referred cheque to ACCEPT or REJECT (supervisor).
    Resolve {
        /// The decision's row id (from `referrals list`).
        decision: i64,
        /// ACCEPT or REJECT.
        #[arg(long, value_parser = super::settings::parse_decision)]
        to: Decision,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
}

/// One queue line: row, time, account, cheque, amount, probability, source and who referred it.
pub fn describe(row: &DecisionRow) -> String {
    let r = &row.record;
    let by = row
        .action
        .as_ref()
        .map_or(r.operator.as_str(), |a| a.operator.as_str());
    format!(
        "#{}  {}  account {}  cheque {}  amount {}  probability {}  model {}  {}  referred by {}",
        row.id,
        crate::store::format_time(r.time),
        r.account.as_deref().unwrap_or("-"),
        r.cheque_id.as_deref().unwrap_or("-"),
        r.amount_cents
            .map(crate::verify::format_amount)
            .unwrap_or_else(|| "-".into()),
        r.probability
            .map(|p| format!("{:.1}%", p * 100.0))
            .unwrap_or_else(|| "-".into()),
        r.decision.as_str(),
        r.source.as_str(),
        by
    )
}

pub fn run(global: &GlobalOpts, args: &ReferralsArgs) -> anyhow::Result<()> {
    let mut store = open_store(global)?;
    let op = sign_in(&mut store, global)?;
    match &args.command {
        ReferralsCommand::List { limit } => {
            if !op.can(Permission::ResolveReferral) {
                store.require(&op, Permission::ReadAudit)?;
            }
            let rows = store.referral_queue(*limit)?;
            if rows.is_empty() {
                println!("the referral queue is empty");
            }
            for r in &rows {
                println!("{}", describe(r));
            }
        }
        ReferralsCommand::Resolve {
            decision,
            to,
            reason,
        } => {
            let row = store.resolve_referral(&op, *decision, *to, reason)?;
            println!(
                "decision {decision} resolved to {} by {} (row {row})",
                to.as_str(),
                op.name()
            );
        }
    }
    Ok(())
}
