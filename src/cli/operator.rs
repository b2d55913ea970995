//! `countersign operator add|list|unlock|set-pin`: operators and their PINs.
//!
//! Also holds the helpers every audited command uses to open the database and sign in.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::GlobalOpts;
use crate::store::{Operator, Role, Store, StoreError};

/// Environment variable for a new PIN (so it stays off the command line).
pub const NEW_PIN_ENV: &str = "COUNTERSIGN_NEW_PIN";

#[derive(Debug, Args)]
pub struct OperatorArgs {
    #[command(subcommand)]
    pub command: OperatorCommand,
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Add an operator. The first one (in an empty database) must be a supervisor and needs no
    /// sign-in; afterwards a supervisor signs in with --operator/--pin.
    Add {
        /// The new operator's name.
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        /// The new operator's PIN (prefer the environment variable).
        #[arg(long, env = NEW_PIN_ENV, hide_env_values = true)]
        new_pin: String,
    },
    /// List operators, their roles and lockouts (supervisor or auditor).
    List,
    /// Clear an operator's wrong-PIN lockout (supervisor).
    Unlock { name: String },
    /// Set a PIN: your own, or anyone's as a supervisor.
    SetPin {
        name: String,
        #[arg(long, env = NEW_PIN_ENV, hide_env_values = true)]
        new_pin: String,
    },
}

/// Opens the database named by the global options, read-write.
pub fn open_store(global: &GlobalOpts) -> anyhow::Result<Store> {
    let path = global.db_path();
    Store::open(&path).with_context(|| format!("opening the audit database {}", path.display()))
}

/// Signs in with the global `--operator` / `--pin`.
pub fn sign_in(store: &mut Store, global: &GlobalOpts) -> anyhow::Result<Operator> {
    let (Some(name), Some(pin)) = (global.operator.as_deref(), global.pin.as_deref()) else {
        return Err(StoreError::MissingCredentials.into());
    };
    Ok(store.authenticate(name, pin)?)
}

pub fn run(global: &GlobalOpts, args: &OperatorArgs) -> anyhow::Result<()> {
    let mut store = open_store(global)?;
    match &args.command {
        OperatorCommand::Add {
            name,
            role,
            new_pin,
        } => {
            let by = if store.operator_count()? == 0 {
                None
            } else {
                Some(sign_in(&mut store, global)?)
            };
            let op = store.add_operator(by.as_ref(), name, *role, new_pin)?;
            crate::outln!("added operator {} ({})", op.name(), op.role());
        }
        OperatorCommand::List => {
            let by = sign_in(&mut store, global)?;
            store.require(&by, crate::store::Permission::ReadAudit)?;
            for o in store.list_operators()? {
                let lock = o
                    .locked_until
                    .map(|u| format!(", locked until {u}"))
                    .unwrap_or_default();
                crate::outln!(
                    "{}\t{}\tcreated {} by {}\t{} failed sign-ins{lock}",
                    o.name,
                    o.role,
                    o.created_at,
                    o.created_by,
                    o.failed_attempts
                );
            }
        }
        OperatorCommand::Unlock { name } => {
            let by = sign_in(&mut store, global)?;
            store.unlock_operator(&by, name)?;
            crate::outln!("unlocked {name}");
        }
        OperatorCommand::SetPin { name, new_pin } => {
            let by = sign_in(&mut store, global)?;
            store.set_pin(&by, name, new_pin)?;
            crate::outln!("PIN set for {name}");
        }
    }
    Ok(())
}
