//! `countersign train`: trains or fine-tunes the embedding network offline (see [`crate::train`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

use crate::cli::GlobalOpts;
use crate::train::{Holdout, Layout, LossKind, SourceSpec, TrainConfig, TrainEvent};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// A labelled dataset (CEDAR folders, writer folders or a CSV manifest); repeat to mix several.
    #[arg(long = "data", value_name = "DIR|CSV")]
    pub data: Vec<PathBuf>,
    /// Layout of every --data (auto detects it).
    #[arg(long, value_enum, default_value_t = Layout::Auto)]
    pub layout: Layout,
    /// Sampling weight of each --data, in the same order (default 1 each).
    #[arg(long = "data-weight", value_name = "W")]
    pub data_weight: Vec<f64>,
    /// Licence of each --data, in the same order, recorded in the model card.
    #[arg(long = "licence", value_name = "TEXT")]
    pub licence: Vec<String>,
    /// Also train on N synthetic writers generated on the fly.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub synthetic: usize,
    /// Genuine signatures per synthetic writer.
    #[arg(long, default_value_t = 12)]
    pub synthetic_genuine: usize,
    /// Skilled forgeries per synthetic writer.
    #[arg(long, default_value_t = 6)]
    pub synthetic_forgeries: usize,
    /// Sampling weight of the synthetic writers.
    #[arg(long, default_value_t = 1.0)]
    pub synthetic_weight: f64,
    /// A dataset used only for validation (all its writers), e.g. real data when training on synthetic
    /// writers only; repeatable.
    #[arg(long = "val-data", value_name = "DIR|CSV")]
    pub val_data: Vec<PathBuf>,
    /// Writers of the --data sets to hold out for validation, one per line (`writer` or `name:writer`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["holdout_count", "no_holdout"])]
    pub holdout: Option<PathBuf>,
    /// Hold out this many writers of every --data set, chosen with the seed (default: a fifth).
    #[arg(long, value_name = "N", conflicts_with = "no_holdout")]
    pub holdout_count: Option<usize>,
    /// Hold out fold K of N of every --data set's writers (shuffled with the seed), e.g. 0/4; run
    /// 0/4 .. 3/4 for a cross-validation over every writer.
    #[arg(long, value_name = "K/N", conflicts_with_all = ["holdout", "holdout_count", "no_holdout"])]
    pub holdout_fold: Option<String>,
    /// Train on every writer of the --data sets (validation only on --val-data).
    #[arg(long)]
    pub no_holdout: bool,
    /// Where to write the weights (.safetensors; the card goes beside them as .json).
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    /// Fine-tune from these weights instead of a random initialisation.
    #[arg(long, value_name = "MODEL")]
    pub init: Option<PathBuf>,
    /// Continue from the checkpoint beside --out (written every epoch and on Ctrl-C).
    #[arg(long)]
    pub resume: bool,
    #[arg(long, default_value_t = 20)]
    pub epochs: u32,
    /// Optimisation steps per epoch.
    #[arg(long, default_value_t = 100)]
    pub steps: u32,
    /// Writers per batch (P).
    #[arg(long, default_value_t = 12)]
    pub writers: usize,
    /// Genuine samples per writer in a batch (K).
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    /// Skilled forgeries per writer in a batch, when the writer has any.
    #[arg(long, default_value_t = 2)]
    pub forgeries: usize,
    #[arg(long, value_enum, default_value_t = LossKind::Triplet)]
    pub loss: LossKind,
    /// Loss margin (default: 0.3 for triplet, 1.0 for contrastive).
    #[arg(long)]
    pub margin: Option<f64>,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 1e-2)]
    pub weight_decay: f64,
    /// Linear warm-up steps before the cosine decay.
    #[arg(long, default_value_t = 100)]
    pub warmup: u32,
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Train without augmentation.
    #[arg(long)]
    pub no_augment: bool,
    /// Network input size WIDTHxHEIGHT (default 192x96; SigNet uses 220x150). A fine-tune (--init)
    /// keeps its model's size.
    #[arg(long, value_name = "WxH", conflicts_with = "init")]
    pub input: Option<String>,
    /// How ink reaches the network: grey keeps its tone, binary sets all kept ink to full intensity
    /// (grey and bitonal scans then look alike). A fine-tune (--init) keeps its model's choice.
    #[arg(long, value_enum, conflicts_with = "init")]
    pub ink: Option<crate::imaging::normalise::InkMode>,
    /// Train nothing: measure the --init model on the validation writers this command line selects
    /// (same split and protocol as after training) and write the figures into its card.
    #[arg(long, requires = "init")]
    pub evaluate_only: bool,
    /// No progress bar (log lines only).
    #[arg(long)]
    pub quiet: bool,
}

fn print_validation(v: &crate::model::ValidationMetrics) {
    let pct = |x: Option<f64>| {
        x.map(|x| format!("{:.2}%", 100.0 * x))
            .unwrap_or_else(|| "-".to_string())
    };
    crate::outln!("validation {}", v.protocol);
    crate::outln!("  EER skilled, 1 reference   {}", pct(v.eer_skilled_1ref));
    crate::outln!("  EER skilled, 5 references  {}", pct(v.eer_skilled_5ref));
    if let (Some(sd), Some((lo, hi))) = (
        v.eer_skilled_5ref_bootstrap_std,
        v.eer_skilled_5ref_bootstrap_ci95,
    ) {
        crate::outln!(
            "    writer bootstrap: sd {:.2} points, 95% interval {:.2}%-{:.2}%",
            100.0 * sd,
            100.0 * lo,
            100.0 * hi
        );
    }
    crate::outln!("  EER random, 5 references   {}", pct(v.eer_random_5ref));
    crate::outln!(
        "  FRR at FAR 1%, 5 refs      {}",
        pct(v.frr_at_far_1pct_5ref)
    );
}

fn evaluate_only(cfg: &TrainConfig) -> anyhow::Result<()> {
    let Some(init) = &cfg.init else {
        anyhow::bail!("--evaluate-only needs --init MODEL");
    };
    let model = crate::model::SignatureModel::load(init, cfg.device)?;
    let Some(metrics) = crate::train::evaluate_holdout(cfg, &model)? else {
        anyhow::bail!("this command line selects no validation writers");
    };
    print_validation(&metrics);
    let mut card = model.card().clone();
    card.validation = Some(metrics);
    crate::model::SignatureModel::update_card(init, &card)?;
    crate::outln!(
        "figures written to {}",
        crate::model::card_path(init).display()
    );
    Ok(())
}

/// The normalisation the run trains with: the --init model's own (a fine-tune must keep it), else the
/// defaults with --input and --ink applied.
fn normalise_params(
    args: &TrainArgs,
) -> anyhow::Result<crate::imaging::normalise::NormaliseParams> {
    use crate::imaging::normalise::NormaliseParams;
    if let Some(init) = &args.init {
        let card = crate::model::read_card(&crate::model::card_path(init))
            .with_context(|| format!("reading the card of --init {}", init.display()))?;
        return Ok(card.preprocessing.params);
    }
    let mut p = NormaliseParams::default();
    if let Some(size) = &args.input {
        (p.width, p.height) = NormaliseParams::parse_size(size)?;
    }
    if let Some(ink) = args.ink {
        p.ink = ink;
    }
    p.validate()?;
    Ok(p)
}

/// Builds the library configuration from the command line.
pub fn config(global: &GlobalOpts, args: &TrainArgs) -> anyhow::Result<TrainConfig> {
    let mut sources = Vec::new();
    if !args.data_weight.is_empty() && args.data_weight.len() != args.data.len() {
        anyhow::bail!(
            "give one --data-weight per --data ({} data, {} weights)",
            args.data.len(),
            args.data_weight.len()
        );
    }
    if !args.licence.is_empty() && args.licence.len() != args.data.len() {
        anyhow::bail!(
            "give one --licence per --data ({} data, {} licences)",
            args.data.len(),
            args.licence.len()
        );
    }
    for (i, path) in args.data.iter().enumerate() {
        sources.push(SourceSpec::Data {
            name: crate::train::dataset::collection_name(path),
            path: path.clone(),
            layout: args.layout,
            weight: args.data_weight.get(i).copied().unwrap_or(1.0),
            licence: args
                .licence
                .get(i)
                .cloned()
                .unwrap_or_else(|| "not stated (give --licence)".to_string()),
        });
    }
    if args.synthetic > 0 {
        sources.push(SourceSpec::Synthetic {
            writers: args.synthetic,
            genuine: args.synthetic_genuine,
            forgeries: args.synthetic_forgeries,
            weight: args.synthetic_weight,
        });
    }
    let holdout = if args.no_holdout {
        Holdout::None
    } else if let Some(file) = &args.holdout {
        let list = crate::train::dataset::read_writer_list(file)?;
        if list.is_empty() {
            anyhow::bail!("holdout list {} names no writer", file.display());
        }
        Holdout::List(list)
    } else if let Some(fold) = &args.holdout_fold {
        let parsed = fold
            .split_once('/')
            .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
        let Some((k, n)) = parsed else {
            anyhow::bail!("--holdout-fold takes K/N, e.g. 0/4 (got {fold:?})");
        };
        Holdout::Fold(k, n)
    } else if let Some(n) = args.holdout_count {
        Holdout::Count(n)
    } else {
        Holdout::Fifth
    };
    // The program's own path says nothing about the run; it is recorded as plain `countersign`.
    let command_line = std::iter::once("countersign".to_string())
        .chain(std::env::args().skip(1))
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
        .collect::<Vec<_>>()
        .join(" ");
    Ok(TrainConfig {
        sources,
        validation_data: args
            .val_data
            .iter()
            .map(|p| {
                (
                    crate::train::dataset::collection_name(p),
                    p.clone(),
                    args.layout,
                )
            })
            .collect(),
        holdout,
        out: args.out.clone(),
        init: args.init.clone(),
        resume: args.resume,
        epochs: args.epochs,
        steps_per_epoch: args.steps,
        writers_per_batch: args.writers,
        genuine_per_writer: args.samples,
        forgeries_per_writer: args.forgeries,
        loss: args.loss,
        margin: args.margin,
        lr: args.lr,
        weight_decay: args.weight_decay,
        warmup_steps: args.warmup,
        seed: args.seed,
        augment: !args.no_augment,
        params: normalise_params(args)?,
        command_line,
        device: global.device.resolve()?,
    })
}

pub fn run(global: &GlobalOpts, args: &TrainArgs) -> anyhow::Result<()> {
    let cfg = config(global, args)?;
    if args.evaluate_only {
        return evaluate_only(&cfg);
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // A second handler (another command in the same process) cannot be installed; training then
        // simply cannot be interrupted cleanly, which is not worth failing for.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(cfg.epochs as u64 * cfg.steps_per_epoch as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps, {per_sec}, ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };
    let mut last_val: Option<f64> = None;
    let on_event = |e: &TrainEvent| {
        if let Some(m) = &e.message {
            if args.quiet {
                eprintln!("{m}");
            } else {
                bar.println(m);
            }
        }
        if e.val_eer.is_some() {
            last_val = e.val_eer;
        }
        if e.step > 0 {
            bar.set_position(e.step);
            let val = last_val
                .map(|v| format!(" val EER {:.2}%", 100.0 * v))
                .unwrap_or_default();
            bar.set_message(format!(
                "epoch {} loss {:.4} lr {:.2e}{val}",
                e.epoch, e.loss, e.lr
            ));
        }
    };
    let outcome = crate::train::run(&cfg, on_event, stop).context("training failed")?;
    bar.finish_and_clear();
    for (path, why) in &outcome.skipped_images {
        eprintln!("skipped {}: {why}", path.display());
    }
    if outcome.stopped {
        crate::outln!(
            "stopped after {} epochs; checkpoint {} (continue with --resume)",
            outcome.epochs_completed,
            outcome.checkpoint.display()
        );
        return Ok(());
    }
    if let Some(w) = &outcome.weights {
        crate::outln!("weights   {}", w.display());
        crate::outln!("card      {}", crate::model::card_path(w).display());
    }
    if let Some(b) = &outcome.best {
        crate::outln!("best      {}", b.display());
    }
    if let Some(v) = &outcome.validation {
        print_validation(v);
    }
    crate::outln!("time      {:.0} s", outcome.wall_seconds);
    Ok(())
}
