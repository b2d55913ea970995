//! `countersign account add|enrol|list|show|retire-reference`: accounts and reference signatures.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::GlobalOpts;
use super::operator::{open_store, sign_in};

#[derive(Debug, Args)]
pub struct AccountArgs {
    #[command(subcommand)]
    pub command: AccountCommand,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account (clerk or supervisor).
    Add {
        /// The bank's account id.
        id: String,
        /// The account holder's name.
        #[arg(long)]
        holder: String,
    },
    /// Enrol reference signature images for an account (clerk or supervisor).
    Enrol {
        id: String,
        /// Image files (PNG, JPEG, TIFF, BMP).
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// List accounts.
    List,
    /// Show an account and its references.
    Show {
        id: String,
        /// Include retired references.
        #[arg(long)]
        all: bool,
    },
    /// Retire a reference signature (supervisor).
    RetireReference {
        /// The reference id (see `account show`).
        reference: i64,
        #[arg(long)]
        reason: String,
    },
}

pub fn run(global: &GlobalOpts, args: &AccountArgs) -> anyhow::Result<()> {
    let mut store = open_store(global)?;
    let op = sign_in(&mut store, global)?;
    match &args.command {
        AccountCommand::Add { id, holder } => {
            let a = store.add_account(&op, id, holder)?;
            crate::outln!("added account {} ({})", a.id, a.holder);
        }
        AccountCommand::Enrol { id, images } => {
            for path in images {
                let bytes =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let r = store
                    .enrol_reference(&op, id, &bytes)
                    .with_context(|| format!("enrolling {}", path.display()))?;
                crate::outln!(
                    "enrolled reference {} for {id}: {}x{} sha256 {}",
                    r.id,
                    r.width,
                    r.height,
                    r.sha256
                );
            }
        }
        AccountCommand::List => {
            for a in store.list_accounts()? {
                crate::outln!(
                    "{}\t{}\t{} references\tcreated {} by {}",
                    a.id,
                    a.holder,
                    a.active_references,
                    a.created_at,
                    a.created_by
                );
            }
        }
        AccountCommand::Show { id, all } => {
            let a = store
                .account(id)?
                .ok_or_else(|| crate::store::StoreError::NotFound {
                    what: "account",
                    id: id.clone(),
                })?;
            crate::outln!(
                "account {}\nholder  {}\ncreated {} by {}",
                a.id,
                a.holder,
                a.created_at,
                a.created_by
            );
            for r in store.references(id, *all)? {
                let retired = if r.retired { " (retired)" } else { "" };
                crate::outln!(
                    "  reference {}: {}x{}, {} bytes, sha256 {}, enrolled {} by {}{retired}",
                    r.id,
                    r.width,
                    r.height,
                    r.bytes,
                    r.sha256,
                    r.enrolled_at,
                    r.enrolled_by
                );
            }
        }
        AccountCommand::RetireReference { reference, reason } => {
            store.retire_reference(&op, *reference, reason)?;
            crate::outln!("retired reference {reference}");
        }
    }
    Ok(())
}
