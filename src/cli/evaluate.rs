//! `countersign evaluate`: the documented evaluation protocol on labelled data, as a readable summary
//! and as JSON.

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::GlobalOpts;
use crate::cli::assess_args::{DataArgs, embed_with_progress, load_model};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Protocol: for each writer the first K genuine signatures (natural file-name order) are the \
references; the remaining genuine signatures and all skilled forgeries are questioned, plus random forgeries \
(genuine signatures of other writers, drawn with a fixed seed). EER uses one global threshold for all writers."
)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Write the full report (ROC/DET points, histograms, per-writer EER) as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(global: &GlobalOpts, args: &EvaluateArgs) -> anyhow::Result<()> {
    let model = load_model(global)?;
    let ds = args.data.dataset()?;
    let set = embed_with_progress(&model, &ds)?;
    let mut cfg = args.data.eval_config();
    let settings = super::operator::open_store(global)
        .ok()
        .and_then(|s| s.current_settings().ok());
    cfg.operating = crate::assess::operating_point(&model, settings.as_ref());
    let report = crate::assess::evaluate(&model.id(), &set.samples, &cfg)?;
    println!(
        "model {}  data {} ({})",
        model.id(),
        ds.root.display(),
        ds.layout
    );
    if !set.failures.is_empty() {
        println!(
            "{} images could not be used (listed above)",
            set.failures.len()
        );
    }
    print!("{}", report.summary());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(())
}
