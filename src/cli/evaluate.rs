//! `countersign evaluate`: the documented evaluation protocol on labelled data, as a readable summary
//! and as JSON.

use std::path::PathBuf;

use crate::cli::GlobalOpts;
use crate::cli::assess_args::{DataArgs, embed_with_progress, load_model};
use crate::scoring::{CohortNormalisation, EvalConfig, LabelledEmbedding};

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
    /// Measure cohort score normalisation: each score normalised against the other writers of its
    /// collection (their K references only): tnorm, snorm, cznorm (cohort z-norm), or atnorm[:N],
    /// asnorm[:N], acznorm[:N] (adaptive: the N highest cohort scores, default 20). With --znorm, averaged with the reference z-norm. For
    /// measurement only (no decision path applies it); the figures are compared with reference z-norm
    /// on the same embeddings.
    #[arg(long, value_name = "METHOD", conflicts_with = "write_card")]
    pub cohort: Option<CohortNormalisation>,
}

pub fn run(global: &GlobalOpts, args: &EvaluateArgs) -> anyhow::Result<()> {
    // Output files are checked before any work: never the audit database, by any name.
    if let Some(p) = &args.json {
        global.protected().check(p)?;
    }
    let model = load_model(global)?;
    let collections = args.data.collections()?;
    let names: Vec<String> = collections.iter().map(|c| c.name.clone()).collect();
    let ds = args.data.dataset()?;
    let set = embed_with_progress(&model, &ds)?;
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
        None => crate::assess::protocol_for(&model, base),
    };
    let settings = super::operator::open_store(global)
        .ok()
        .and_then(|s| s.current_settings().ok());
    cfg.operating = crate::assess::operating_point(&model, settings.as_ref());
    let report = crate::assess::evaluate(&model.id(), &set.samples, &cfg)?;
    crate::outln!(
        "model {}  data {} ({})",
        model.id(),
        names.join(" + "),
        ds.layout
    );
    if !set.failures.is_empty() {
        crate::outln!(
            "{} images could not be used (listed above)",
            set.failures.len()
        );
    }
    crate::out!("{}", report.summary());
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
    let spread = spread_rows(&set.samples, &cfg, &names)?;
    crate::outln!();
    crate::out!("{}", spread_table(&spread, &cfg));
    if let Some(path) = &args.json {
        // The report as before, plus the per-collection rows.
        let mut value = serde_json::to_value(&report)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("collections".into(), serde_json::to_value(&figures)?);
            obj.insert("spread".into(), serde_json::to_value(&spread)?);
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

/// Writer resamples of the spread, and their seed (the numbers `train` uses for the card).
const BOOTSTRAP_ROUNDS: usize = 1000;
const BOOTSTRAP_SEED: u64 = 2011;

/// The writer-bootstrap spread of one collection's (or the pooled) skilled EER and, with a cohort
/// stage, the same against reference z-norm on the same embeddings.
#[derive(Debug, serde::Serialize)]
pub struct SpreadRow {
    pub collection: String,
    /// The run's skilled EER and spread (`None` without skilled forgeries or with one writer).
    pub skilled: Option<crate::scoring::EerSpread>,
    pub random_eer: Option<f64>,
    /// With --cohort: the cohort run against the baseline, paired on the same writer resamples.
    pub against_baseline: Option<crate::scoring::PairedEerSpread>,
    pub baseline: Option<String>,
    pub baseline_random_eer: Option<f64>,
}

fn random_eer(pairs: &[crate::scoring::ScoredPair]) -> Option<f64> {
    let (s, l) = crate::scoring::labelled_scores(pairs, crate::scoring::Forgeries::Random);
    crate::scoring::eer(&s, &l).ok().map(|e| e.eer)
}

fn spread_rows(
    samples: &[LabelledEmbedding],
    cfg: &EvalConfig,
    names: &[String],
) -> anyhow::Result<Vec<SpreadRow>> {
    let mut scopes: Vec<(String, Vec<LabelledEmbedding>)> = Vec::new();
    if names.len() > 1 {
        for name in names {
            scopes.push((
                name.clone(),
                crate::scoring::collection_samples(samples, name),
            ));
        }
    }
    let all = if names.len() > 1 {
        "pooled"
    } else {
        names.first().map_or("data", String::as_str)
    };
    scopes.push((all.to_string(), samples.to_vec()));
    // The shipped per-account stage (reference z-norm) is the baseline a cohort stage must beat.
    let baseline = cfg.cohort.map(|_| EvalConfig {
        cohort: None,
        znorm: cfg.references >= 2,
        operating: None,
        ..cfg.clone()
    });
    let mut rows = Vec::new();
    for (collection, scope) in scopes {
        let pairs = crate::scoring::evaluation_scores(&scope, cfg)?;
        let mut row = SpreadRow {
            collection,
            skilled: None,
            random_eer: random_eer(&pairs),
            against_baseline: None,
            baseline: None,
            baseline_random_eer: None,
        };
        match &baseline {
            Some(b) => {
                let base_pairs = crate::scoring::evaluation_scores(&scope, b)?;
                row.against_baseline = crate::scoring::paired_writer_bootstrap(
                    &pairs,
                    &base_pairs,
                    BOOTSTRAP_ROUNDS,
                    BOOTSTRAP_SEED,
                )?;
                row.skilled = row.against_baseline.map(|p| p.lever);
                row.baseline = Some(if b.znorm { "reference z-norm" } else { "raw" }.to_string());
                row.baseline_random_eer = random_eer(&base_pairs);
            }
            None => {
                row.skilled =
                    crate::scoring::writer_bootstrap(&pairs, BOOTSTRAP_ROUNDS, BOOTSTRAP_SEED)?;
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

fn spread_table(rows: &[SpreadRow], cfg: &EvalConfig) -> String {
    use std::fmt::Write as _;
    let pct = |v: f64| format!("{:.2}%", 100.0 * v);
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), pct);
    let spread = |s: &crate::scoring::EerSpread| {
        format!(
            "{} (sd {:.2}, 95% {:.2}..{:.2})",
            pct(s.value),
            100.0 * s.sd,
            100.0 * s.ci95.0,
            100.0 * s.ci95.1
        )
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "spread: skilled EER K={} over {BOOTSTRAP_ROUNDS} writer resamples (seed {BOOTSTRAP_SEED}); sd and interval in points",
        cfg.references
    );
    for r in rows {
        let _ = write!(
            out,
            "  {:<20} {}  random {}",
            r.collection,
            r.skilled.as_ref().map_or_else(|| "-".to_string(), spread),
            opt(r.random_eer)
        );
        if let (Some(p), Some(name)) = (&r.against_baseline, &r.baseline) {
            let _ = write!(
                out,
                "\n  {:<20} {name} on the same embeddings: {}  random {}\n  {:<20} difference {:+.2} points (paired sd {:.2}, 95% {:+.2}..{:+.2})",
                "",
                spread(&p.baseline),
                opt(r.baseline_random_eer),
                "",
                100.0 * p.difference.value,
                100.0 * p.difference.sd,
                100.0 * p.difference.ci95.0,
                100.0 * p.difference.ci95.1
            );
        }
        let _ = writeln!(out);
    }
    out
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
