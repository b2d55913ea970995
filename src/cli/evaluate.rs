//! `countersign evaluate`: the documented evaluation protocol on labelled data, as a readable summary
//! and as JSON.

use std::path::PathBuf;

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
    /// Record these figures as the model card's validation metrics (for whoever builds a model; the
    /// weights and their hash are untouched).
    #[arg(long)]
    pub write_card: bool,
}

pub fn run(global: &GlobalOpts, args: &EvaluateArgs) -> anyhow::Result<()> {
    // Output files are checked before any work: never the audit database, by any name.
    if let Some(p) = &args.json {
        global.protected().check(p)?;
    }
    let model = load_model(global)?;
    let ds = args.data.dataset()?;
    let set = embed_with_progress(&model, &ds)?;
    let mut cfg = args.data.eval_config();
    let settings = super::operator::open_store(global)
        .ok()
        .and_then(|s| s.current_settings().ok());
    cfg.operating = crate::assess::operating_point(&model, settings.as_ref());
    let report = crate::assess::evaluate(&model.id(), &set.samples, &cfg)?;
    crate::outln!(
        "model {}  data {} ({})",
        model.id(),
        ds.root.display(),
        ds.layout
    );
    if !set.failures.is_empty() {
        crate::outln!(
            "{} images could not be used (listed above)",
            set.failures.len()
        );
    }
    crate::out!("{}", report.summary());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        global.write_output(path, text.as_bytes())?;
        crate::outln!("report written to {}", path.display());
    }
    if args.write_card {
        let weights = global.model_path()?.0;
        let card_file = crate::model::card_path(&weights);
        let mut card = model.card().clone();
        record_in_card(&mut card, &report, &args.data.data);
        global.write_output(&card_file, serde_json::to_string_pretty(&card)?.as_bytes())?;
        crate::outln!("figures recorded in the model card {}", card_file.display());
    }
    Ok(())
}

/// Copies the report's headline figures into the card's validation block, keeping what training
/// recorded there (split statistics, notes), so `evaluate` with the same data and options prints
/// exactly the numbers the card reports.
pub fn record_in_card(
    card: &mut crate::model::card::ModelCard,
    report: &crate::scoring::EvaluationReport,
    data: &std::path::Path,
) {
    let mut v = card.validation.clone().unwrap_or_default();
    let c = &report.config;
    let name = data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    v.protocol = format!(
        "countersign evaluate on {name} (held-out writers): K = {} references/writer, aggregation {}, z-norm {}, {} random forgeries/writer (seed {}), one global threshold",
        c.references,
        c.aggregation.label(),
        if c.znorm { "on" } else { "off" },
        c.random_forgeries_per_writer,
        c.seed
    );
    v.eer_skilled_5ref = report.skilled.as_ref().map(|m| m.eer);
    v.auc_skilled_5ref = report.skilled.as_ref().map(|m| m.auc);
    v.eer_random_5ref = report.random.as_ref().map(|m| m.eer);
    v.writers = report.counts.writers;
    v.genuine = report.counts.genuine;
    v.forgeries = report.counts.skilled;
    card.validation = Some(v);
}
