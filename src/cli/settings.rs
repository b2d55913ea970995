//! `countersign settings thresholds|activate-model` and `countersign settings confirm|override`:
//! the supervisor's audited changes and a clerk's decision actions, from the command line.
//!
//! Each one signs in with `--operator`/`--pin` and goes through the store's role check, which writes
//! a refusal to the audit chain before the error (exit code 6) is returned.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::GlobalOpts;
use super::operator::{open_store, sign_in};
use crate::scoring::Thresholds;
use crate::store::{FinalAction, Permission, SettingsChange};

#[derive(Debug, Args)]
pub struct SettingsArgs {
    #[command(subcommand)]
    pub command: SettingsCommand,
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Set the decision thresholds on the calibrated probability (supervisor). They are used once a
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
    /// Make a weights file (with its card beside it) the active model (supervisor). The model is
    /// loaded and checked first; one that does not load is never activated.
    ActivateModel {
        weights: PathBuf,
        #[arg(long)]
        reason: String,
    },
    /// Confirm a recorded decision (clerk or supervisor).
    Confirm {
        /// The decision's row id in the audit log.
        decision: i64,
    },
    /// Override a recorded decision (clerk or supervisor; a REJECT needs a supervisor).
    Override {
        decision: i64,
        #[arg(long)]
        reason: String,
    },
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
            let s = store.change_settings(&op, &change, reason)?;
            crate::outln!(
                "thresholds set (settings row {}): ACCEPT at {:.3} or more, REJECT below {:.3}",
                s.version,
                s.thresholds.accept,
                s.thresholds.reject
            );
            // The verify service uses the store's thresholds together with a stored calibration
            // only; say so rather than let the supervisor believe the change is in force.
            let calibrated = store
                .settings_history()?
                .iter()
                .any(|h| matches!(h.change, SettingsChange::Calibration(_)));
            if !calibrated {
                crate::outln!(
                    "note: no calibration is stored yet, so verification keeps the model card's                      calibration and thresholds until `countersign calibrate --save` stores one"
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
            let s = store.change_settings(&op, &change, reason)?;
            crate::outln!(
                "model {} is now active (settings row {})",
                slot.id(),
                s.version
            );
        }
        SettingsCommand::Confirm { decision } => {
            let row = store.record_action(&op, *decision, FinalAction::Confirm, None)?;
            crate::outln!("decision {decision} confirmed (row {row})");
        }
        SettingsCommand::Override { decision, reason } => {
            let row = store.record_action(&op, *decision, FinalAction::Override, Some(reason))?;
            crate::outln!("decision {decision} overridden (row {row})");
        }
    }
    Ok(())
}
