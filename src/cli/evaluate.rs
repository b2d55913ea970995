//! `countersign evaluate`: the documented evaluation protocol on labelled data, as a readable summary
//! and as JSON.

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::GlobalOpts;
use crate::cli::assess_args::{DataArgs, embed_with_progress_using, load_model};
use crate::model::SignatureModel;
use crate::scoring::{BOOTSTRAP_ROUNDS, BOOTSTRAP_SEED, CohortNormalisation, EvalConfig};

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
    /// Also embed with this model and score every pair with the mean of the models' cosine
    /// similarities (an ensemble). Repeat for more models; each preprocesses with its own card. A
    /// lever to measure (docs/ACCURACY.md): verify and batch do not use ensembles.
    #[arg(long = "ensemble-with", value_name = "MODEL")]
    pub ensemble_with: Vec<PathBuf>,
    /// Test-time augmentation: embed each image also slightly scaled and rotated (as a scanner and the
    /// crop vary it) and average the embeddings; costs 5 forward passes per image. A lever to measure
    /// (docs/ACCURACY.md): verify and batch do not use it.
    #[arg(long)]
    pub tta: bool,
    /// Measure cohort score normalisation: each score normalised against the other writers of its
    /// collection (their K references only): tnorm, snorm, cznorm (cohort z-norm), or atnorm[:N],
    /// asnorm[:N], acznorm[:N] (adaptive: the N highest cohort scores, default 20). With --znorm,
    /// averaged with the reference z-norm. For measurement only (no decision path applies it); the
    /// figures are compared with reference z-norm on the same embeddings.
    #[arg(long, value_name = "METHOD", conflicts_with = "write_card")]
    pub cohort: Option<CohortNormalisation>,
}

pub fn run(global: &GlobalOpts, args: &EvaluateArgs) -> anyhow::Result<()> {
    // Output files are checked before any work: never the audit database, by any name.
    if let Some(p) = &args.json {
        global.protected().check(p)?;
    }
    // An ensemble's or TTA's figures are not the model's: they must never become its card's.
    let lever = !args.ensemble_with.is_empty() || args.tta;
    if lever && args.write_card {
        anyhow::bail!(
            "--write-card records the model's own figures; it cannot be combined with --ensemble-with or --tta"
        );
    }
    let model = load_model(global)?;
    let mut extra = Vec::with_capacity(args.ensemble_with.len());
    for path in &args.ensemble_with {
        let m = SignatureModel::load(path, global.device.resolve()?)
            .with_context(|| format!("loading --ensemble-with model {}", path.display()))?;
        extra.push(m);
    }
    let models: Vec<&SignatureModel> = std::iter::once(&model).chain(&extra).collect();
    let id = crate::assess::embedding_id(&models, args.tta);
    let collections = args.data.collections()?;
    let names: Vec<String> = collections.iter().map(|c| c.name.clone()).collect();
    let ds = args.data.dataset()?;
    let set = embed_with_progress_using(&models, args.tta, &ds)?;
    let base = EvalConfig {
        collections: if names.len() > 1 {
            names.clone()
        } else {
            Vec::new()
        },
        ..args.data.eval_config()
    };
    let mut cfg = match args.cohort {
        // A measurement of another per-account stage: the model's own stage is not switched on
        // underneath it (with --znorm it is, on purpose).
        Some(c) => EvalConfig {
            cohort: Some(c),
            ..base
        },
        // The main model's per-account stage applies to an ensemble's score as it would to its own.
        None => crate::assess::protocol_for(&model, base),
    };
    let settings = super::operator::open_store(global)
        .ok()
        .and_then(|s| s.current_settings().ok());
    // A calibration is fitted on one model's scores; rates at its thresholds would be meaningless
    // for an ensemble's or TTA's scores, so none are reported.
    cfg.operating = if lever {
        None
    } else {
        crate::assess::operating_point(&model, settings.as_ref())
    };
    let report = crate::assess::evaluate(&id, &set.samples, &cfg)?;
    crate::outln!("model {id}  data {} ({})", names.join(" + "), ds.layout);
    if lever {
        crate::outln!(
            "a lever under measurement: no operating point (the calibration belongs to the model alone)"
        );
    }
    if !set.failures.is_empty() {
        crate::outln!(
            "{} images could not be used (listed above)",
            set.failures.len()
        );
    }
    crate::out!("{}", report.summary());
    // A lever is judged against the main model alone on the very same samples and pairs: the paired
    // bootstrap's spread is that of the difference, not of either figure.
    let paired = if lever {
        let alone = embed_with_progress_using(&[&model], false, &ds)?;
        let kept: std::collections::HashSet<(&str, &str)> = set
            .samples
            .iter()
            .map(|s| (s.writer.as_str(), s.sample_id.as_str()))
            .collect();
        let same: Vec<_> = alone
            .samples
            .into_iter()
            .filter(|s| kept.contains(&(s.writer.as_str(), s.sample_id.as_str())))
            .collect();
        let pairs = crate::scoring::evaluation_scores(&set.samples, &cfg)?;
        let base = crate::scoring::evaluation_scores(&same, &cfg)?;
        crate::scoring::paired_writer_bootstrap(&pairs, &base, BOOTSTRAP_ROUNDS, BOOTSTRAP_SEED)?
    } else {
        None
    };
    if let Some(c) = &paired {
        crate::outln!(
            "  against {} alone on the same pairs: skilled EER {:.2}% -> {:.2}%, change {:+.2} points \
             (paired writer bootstrap sd {:.2}, 95% interval {:+.2} to {:+.2})",
            model.id(),
            c.baseline.value * 100.0,
            c.lever.value * 100.0,
            c.difference.value * 100.0,
            c.difference.sd * 100.0,
            c.difference.ci95.0 * 100.0,
            c.difference.ci95.1 * 100.0
        );
    }
    // Per collection and pooled, with 1 and 5 references: the figure to steer by is the one of a
    // collection the model never saw, which a pooled figure averages away.
    let mut figures = Vec::new();
    if names.len() > 1 {
        for name in &names {
            let samples = crate::scoring::collection_samples(&set.samples, name);
            figures.push(crate::scoring::collection_figures(name, &samples, &cfg)?);
        }
    }
    figures.push(crate::scoring::collection_figures(
        if names.len() > 1 {
            "pooled"
        } else {
            names.first().map_or("data", String::as_str)
        },
        &set.samples,
        &cfg,
    )?);
    crate::outln!();
    crate::out!("{}", crate::scoring::figures_table(&figures));
    let spread = crate::scoring::spread_rows(&set.samples, &cfg, &names)?;
    crate::outln!();
    crate::out!("{}", crate::scoring::spread_table(&spread, &cfg));
    if let Some(path) = &args.json {
        // The report as before, plus the per-collection rows.
        let mut value = serde_json::to_value(&report)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("collections".into(), serde_json::to_value(&figures)?);
            obj.insert("spread".into(), serde_json::to_value(&spread)?);
            if lever {
                obj.insert(
                    "change_against_model_alone".into(),
                    serde_json::to_value(paired)?,
                );
            }
        }
        let text = serde_json::to_string_pretty(&value)?;
        global.write_output(path, text.as_bytes())?;
        crate::outln!("report written to {}", path.display());
    }
    if args.write_card {
        let weights = global.model_path()?.0;
        let card_file = crate::model::card_path(&weights);
        let mut card = model.card().clone();
        record_in_card(&mut card, &report, &names.join(" + "), &figures);
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
    name: &str,
    figures: &[crate::scoring::CollectionFigures],
) {
    let mut v = card.validation.clone().unwrap_or_default();
    let c = &report.config;
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
    v.collections = figures.to_vec();
    card.validation = Some(v);
}
