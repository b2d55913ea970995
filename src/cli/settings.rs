//! `countersign settings thresholds|activate-model|pending|approve|decline` and
//! `countersign settings confirm|override`: the supervisors' audited changes (four eyes: one asks, a
//! second approves) and a clerk's decision actions, from the command line.
//!
//! Each one signs in with `--operator`/`--pin` and goes through the store's role check, which writes
//! a refusal to the audit chain before the error (exit code 6) is returned.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::GlobalOpts;
use super::operator::{open_store, sign_in};
use crate::scoring::{Decision, Thresholds};
use crate::store::{FinalAction, Permission, SettingsChange, SettingsRequest};

#[derive(Debug, Args)]
pub struct SettingsArgs {
    #[command(subcommand)]
    pub command: SettingsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Ask for new decision thresholds on the calibrated probability (supervisor). The change takes
    /// effect when a second supervisor approves it (`settings approve`). They are used once a
    /// calibration is stored too (`countersign calibrate --save`).
    Thresholds {
        /// ACCEPT at this probability or more.
        #[arg(long)]
        accept: f64,
        /// REJECT below this probability.
        #[arg(long)]
        reject: f64,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Ask to make a weights file (with its card beside it) the active model (supervisor); a second
    /// supervisor approves it. The model is loaded and checked first; one that does not load is
    /// never requested.
    ActivateModel {
        weights: PathBuf,
        #[arg(long)]
        reason: String,
    },
    /// Set which part of an X9 item's on-us field is the account number (supervisor): a regular
    /// expression whose group `account` (else its first group) is the account id. `--default`
    /// restores the built-in rule (the digits before the first `/`).
    X9AccountRule {
        #[arg(required_unless_present = "default", conflicts_with = "default")]
        pattern: Option<String>,
        #[arg(long)]
        default: bool,
        #[arg(long)]
        reason: String,
    },
    /// Confirm a recorded decision (clerk or supervisor).
    Confirm {
        /// The decision's row id in the audit log.
        decision: i64,
    },
    /// Override a recorded decision (a clerk may only make it stricter: ACCEPT to REFER or REJECT;
    /// a supervisor may change any decision).
    Override {
        decision: i64,
        /// The new decision.
        #[arg(long, value_parser = parse_decision)]
        to: Decision,
        #[arg(long)]
        reason: String,
    },
    /// List the settings changes that wait for a second supervisor.
    Pending,
    /// Approve a pending settings change (a supervisor other than the one who asked).
    Approve {
        /// The request's number (from `settings pending`).
        request: i64,
        /// A note recorded with the approval.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Decline (or withdraw) a pending settings change.
    Decline {
        request: i64,
        #[arg(long)]
        reason: String,
    },
}

/// Parses ACCEPT / REFER / REJECT, any case.
pub fn parse_decision(s: &str) -> Result<Decision, String> {
    match s.trim().to_ascii_uppercase().as_str() {
        "ACCEPT" => Ok(Decision::Accept),
        "REFER" => Ok(Decision::Refer),
        "REJECT" => Ok(Decision::Reject),
        _ => Err(format!("{s:?} is not ACCEPT, REFER or REJECT")),
    }
}

/// One line per request: number, who, when, what changes (before -> after) and why.
pub fn describe_request(r: &SettingsRequest) -> String {
    format!(
        "#{}  asked by {} at {}  {}  reason: {}",
        r.id,
        r.operator,
        r.time,
        r.describe_change(),
        r.reason
    )
}

fn requested(r: &SettingsRequest) {
    crate::outln!("{}", describe_request(r));
    crate::outln!(
        "waiting for a second supervisor: `countersign settings approve {}` (four eyes; nothing changed yet)",
        r.id
    );
}

pub fn run(global: &GlobalOpts, args: &SettingsArgs) -> anyhow::Result<()> {
    let mut store = open_store(global)?;
    let op = sign_in(&mut store, global)?;
    match &args.command {
        SettingsCommand::Thresholds {
            accept,
            reject,
            reason,
        } => {
            let change = SettingsChange::Thresholds(Thresholds {
                accept: *accept,
                reject: *reject,
            });
            let r = store.request_settings_change(&op, &change, reason)?;
            requested(&r);
            // Once approved, the thresholds apply on their own (verify::Policy::resolve); until a
            // calibration is stored, they meet the model card's calibration. Say which one.
            let calibrated = store
                .settings_history()?
                .iter()
                .any(|h| matches!(h.change, SettingsChange::Calibration(_)));
            if !calibrated {
                crate::outln!(
                    "note: no calibration is stored yet, so once approved these thresholds apply to the model \
                     card's calibration (a new calibration is a change of its own: `countersign calibrate --save`)"
                );
            }
        }
        SettingsCommand::ActivateModel { weights, reason } => {
            // The role first, so a clerk's attempt is refused (and logged) before any work.
            store.require(&op, Permission::ChangeModel)?;
            let device = global.device.resolve()?;
            let slot = crate::model::ModelSlot::load(weights, device)?;
            let abs = std::fs::canonicalize(weights).unwrap_or_else(|_| weights.clone());
            let change = SettingsChange::Model {
                id: slot.id(),
                path: Some(abs.display().to_string()),
            };
            let r = store.request_settings_change(&op, &change, reason)?;
            requested(&r);
        }
        SettingsCommand::X9AccountRule {
            pattern,
            default: _,
            reason,
        } => {
            let change = SettingsChange::X9AccountRule {
                pattern: pattern.clone(),
            };
            // The rule decides whose references an X9 item is verified against: policy, so it
            // takes effect only when a second supervisor approves, like thresholds and models.
            let r = store.request_settings_change(&op, &change, reason)?;
            requested(&r);
        }
        SettingsCommand::Confirm { decision } => {
            let row = store.record_action(&op, *decision, FinalAction::Confirm, None)?;
            crate::outln!("decision {decision} confirmed (row {row})");
        }
        SettingsCommand::Override {
            decision,
            to,
            reason,
        } => {
            let row = store.override_decision(&op, *decision, *to, reason)?;
            crate::outln!(
                "decision {decision} overridden to {} (row {row})",
                to.as_str()
            );
        }
        SettingsCommand::Pending => {
            let pending = store.pending_settings_requests()?;
            if pending.is_empty() {
                crate::outln!("no settings change waits for approval");
            }
            for r in &pending {
                crate::outln!("{}", describe_request(r));
            }
        }
        SettingsCommand::Approve { request, note } => {
            let s = store.approve_settings_change(&op, *request, note)?;
            crate::outln!(
                "settings change {request} approved by {} and in force now (settings row {}): ACCEPT at {:.3} or more, \
                 REJECT below {:.3}, calibration a {:.4} b {:.4}, model {}",
                op.name(),
                s.version,
                s.thresholds.accept,
                s.thresholds.reject,
                s.calibration.a,
                s.calibration.b,
                s.model_id.as_deref().unwrap_or("(bundled default)")
            );
        }
        SettingsCommand::Decline { request, reason } => {
            let row = store.decline_settings_change(&op, *request, reason)?;
            crate::outln!("settings change {request} declined (row {row}); nothing changed");
        }
    }
    Ok(())
}
