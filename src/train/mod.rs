//! Offline training: dataset layouts, batch sampling, augmentation, losses, the training loop.
//!
//! [`run`] is the whole training as one library call, used by `countersign train` and the GUI's Train
//! screen: it reports progress through a callback ([`TrainEvent`]), stops cleanly (with a checkpoint)
//! when its stop flag is set, and returns a [`TrainOutcome`].
//!
//! The loop, in order:
//! 1. Every source is scanned ([`dataset::scan`]) or generated (synthetic writers), decoded once and
//!    kept in memory ([`data`]): a cropped, moderately downscaled copy for augmentation and, for
//!    validation writers, the exact inference-time normalisation of the full image.
//! 2. Writers are split writer-disjointly: a fixed list (`--holdout FILE`) or a seeded choice of N
//!    writers per real source is held out; the held-out writers are recorded in the model card.
//! 3. Each step draws a batch of P writers x K genuine samples (+ F skilled forgeries of those writers
//!    when the data has them), sources mixed by weight; a producer thread augments and normalises the
//!    next batches while libtorch trains on the current one.
//! 4. AdamW with linear warm-up and cosine decay; triplet (semi-hard) or contrastive loss ([`loss`]).
//! 5. After every epoch: validation EER on the held-out writers with the protocol of
//!    [`crate::scoring::evaluate`] (so `countersign evaluate` reproduces the card's figures), a
//!    checkpoint, and the best checkpoint so far.
//!
//! Every random choice comes from the seed (libtorch's generator for initialisation and dropout,
//! ChaCha for everything else, re-seeded per step), so a run on the CPU is reproducible.

pub mod augment;
pub mod data;
pub mod dataset;
pub mod loss;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor, nn, nn::OptimizerConfig};

pub use dataset::{Dataset, Layout, Sample, scan};
pub use loss::{BatchLabel, LossKind};

use crate::imaging::NormalisedSignature;
use crate::imaging::normalise::NormaliseParams;
use crate::model::{ModelError, SignatureModel, TrainingInfo, ValidationMetrics};
use crate::scoring::{EvalConfig, Forgeries, LabelledEmbedding};
use data::{TrainItem, ValItem, WriterPool};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("dataset {path}: {problem}")]
    Dataset { path: PathBuf, problem: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid training configuration: {0}")]
    Config(String),
    #[error("no usable training data: {0}")]
    NoData(String),
    #[error("synthetic writers: {0}")]
    Synthetic(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("libtorch failed during training: {0}")]
    Torch(#[from] tch::TchError),
    #[error("validation failed: {0}")]
    Validation(#[from] crate::scoring::ScoringError),
    #[error("the batch producer thread stopped unexpectedly")]
    Producer,
}

/// One source of training signatures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SourceSpec {
    /// A dataset on disk.
    Data {
        /// Short name used in the card and in writer ids (`<name>:<writer>`).
        name: String,
        path: PathBuf,
        layout: Layout,
        /// Relative sampling weight.
        weight: f64,
        /// Licence of the data, for the card.
        licence: String,
    },
    /// Synthetic writers generated at the start of training (see [`crate::synth`]).
    Synthetic {
        writers: usize,
        genuine: usize,
        forgeries: usize,
        weight: f64,
    },
}

impl SourceSpec {
    pub fn name(&self) -> String {
        match self {
            SourceSpec::Data { name, .. } => name.clone(),
            SourceSpec::Synthetic { .. } => "synthetic".to_string(),
        }
    }

    pub fn weight(&self) -> f64 {
        match self {
            SourceSpec::Data { weight, .. } | SourceSpec::Synthetic { weight, .. } => *weight,
        }
    }
}

/// Which writers of the real (on-disk) sources are held out for validation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Holdout {
    /// None: validation uses only `validation_data` (or synthetic writers when there is nothing else).
    None,
    /// This many writers of every on-disk source, chosen with the seed.
    Count(usize),
    /// These writers (`writer` or `<source>:<writer>`).
    List(Vec<String>),
    /// A fifth of the writers of every on-disk source (at least one), chosen with the seed.
    #[default]
    Fifth,
    /// Fold `k` (0-based) of `n`: the writers, shuffled with the seed, cut into `n` near-equal parts;
    /// part `k` is held out. Running k = 0..n gives a cross-validation over every writer.
    Fold(usize, usize),
}

/// Everything a training run needs. [`TrainConfig::default`] holds the defaults of `countersign train`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub sources: Vec<SourceSpec>,
    /// Extra datasets used only for validation (all their writers), e.g. real data when training on
    /// synthetic writers only.
    pub validation_data: Vec<(String, PathBuf, Layout)>,
    pub holdout: Holdout,
    /// Where the final weights go (`.safetensors`; the card goes beside them).
    pub out: PathBuf,
    /// Start from these weights (fine-tuning) instead of a random initialisation.
    pub init: Option<PathBuf>,
    /// Continue from `<out stem>.checkpoint.safetensors` when it exists.
    pub resume: bool,
    pub epochs: u32,
    pub steps_per_epoch: u32,
    /// P: writers per batch.
    pub writers_per_batch: usize,
    /// K: genuine samples per writer in a batch.
    pub genuine_per_writer: usize,
    /// F: skilled forgeries per writer in a batch (when the writer has any).
    pub forgeries_per_writer: usize,
    pub loss: LossKind,
    /// Margin of the loss; `None` for the loss's default.
    pub margin: Option<f64>,
    pub lr: f64,
    pub weight_decay: f64,
    /// Linear warm-up steps before the cosine decay.
    pub warmup_steps: u32,
    pub seed: u64,
    pub augment: bool,
    pub params: NormaliseParams,
    /// The command line to record in the card.
    pub command_line: String,
    /// Where libtorch runs (resolve `--device` with [`crate::device::DeviceChoice::resolve`]).
    #[serde(skip, default = "default_device")]
    pub device: Device,
}

fn default_device() -> Device {
    Device::Cpu
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            sources: Vec::new(),
            validation_data: Vec::new(),
            holdout: Holdout::default(),
            out: PathBuf::from("model.safetensors"),
            init: None,
            resume: false,
            epochs: 20,
            steps_per_epoch: 100,
            writers_per_batch: 12,
            genuine_per_writer: 4,
            forgeries_per_writer: 2,
            loss: LossKind::Triplet,
            margin: None,
            lr: 2e-3,
            weight_decay: 1e-2,
            warmup_steps: 100,
            seed: 2026,
            augment: true,
            params: NormaliseParams::default(),
            command_line: String::new(),
            device: Device::Cpu,
        }
    }
}

impl TrainConfig {
    fn check(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.sources.is_empty() {
            return bad("no training source: give --data DIR and/or --synthetic N");
        }
        if self.epochs == 0 || self.steps_per_epoch == 0 {
            return bad("epochs and steps per epoch must be at least 1");
        }
        if self.writers_per_batch < 2 || self.genuine_per_writer < 2 {
            return bad("a batch needs at least 2 writers with at least 2 genuine samples each");
        }
        let lr_ok = self.lr.is_finite() && self.lr > 0.0;
        let wd_ok = self.weight_decay.is_finite() && self.weight_decay >= 0.0;
        if !(lr_ok && wd_ok) {
            return bad("the learning rate must be positive and the weight decay non-negative");
        }
        if let Holdout::Fold(k, n) = self.holdout
            && (n < 2 || k >= n)
        {
            return bad("a holdout fold k/n needs n >= 2 and k < n");
        }
        if self.margin.is_some_and(|m| !(m.is_finite() && m > 0.0)) {
            return bad("the margin must be positive");
        }
        if self
            .sources
            .iter()
            .any(|s| !(s.weight().is_finite() && s.weight() > 0.0))
        {
            return bad("every source weight must be positive");
        }
        if self.out.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            return bad("the output file must end in .safetensors");
        }
        self.params
            .validate()
            .map_err(|e| TrainError::Config(e.to_string()))?;
        Ok(())
    }

    fn margin(&self) -> f64 {
        self.margin.unwrap_or_else(|| self.loss.default_margin())
    }

    fn total_steps(&self) -> u64 {
        u64::from(self.epochs) * u64::from(self.steps_per_epoch)
    }
}

/// Progress of a training run, sent after every step and at the end of every epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainEvent {
    /// Epoch, counting from 1.
    pub epoch: u32,
    /// Global step, counting from 1 (0 for events before training starts).
    pub step: u64,
    /// All steps of the run.
    pub total_steps: u64,
    /// Loss of this step (for an end-of-epoch event, the epoch's mean loss).
    pub loss: f64,
    pub lr: f64,
    /// Validation EER, on end-of-epoch events.
    pub val_eer: Option<f64>,
    /// A line for the log (data loading, checkpoints); `None` for plain steps.
    pub message: Option<String>,
}

/// What a finished (or stopped) run produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOutcome {
    /// The final weights (`None` when stopped before the end: then only the checkpoint exists).
    pub weights: Option<PathBuf>,
    pub checkpoint: PathBuf,
    pub best: Option<PathBuf>,
    pub epochs_completed: u32,
    pub stopped: bool,
    /// Mean loss of the first and of the last completed epoch.
    pub first_epoch_loss: Option<f64>,
    pub last_epoch_loss: Option<f64>,
    /// Validation EER after each completed epoch.
    pub val_eer_per_epoch: Vec<f64>,
    /// Final validation figures (also in the card).
    pub validation: Option<ValidationMetrics>,
    /// Images that could not be decoded or normalised, and why; they were left out.
    pub skipped_images: Vec<(PathBuf, String)>,
    pub wall_seconds: f64,
}

/// Paths derived from the output path: `<stem>.checkpoint.safetensors`, `<stem>.best.safetensors`.
pub fn checkpoint_path(out: &Path) -> PathBuf {
    out.with_extension("checkpoint.safetensors")
}

pub fn best_path(out: &Path) -> PathBuf {
    out.with_extension("best.safetensors")
}

fn state_path(out: &Path) -> PathBuf {
    out.with_extension("checkpoint.state.json")
}

/// Resume state written beside the checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ResumeState {
    epochs_completed: u32,
    seed: u64,
    val_eer_per_epoch: Vec<f64>,
    epoch_losses: Vec<f64>,
    best_val_eer: Option<f64>,
}

/// Learning rate at a step (0-based): linear warm-up, then cosine decay to 1% of the peak.
pub fn learning_rate(base: f64, step: u64, warmup: u64, total: u64) -> f64 {
    if warmup > 0 && step < warmup {
        return base * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let t = ((step.saturating_sub(warmup)) as f64 / span).clamp(0.0, 1.0);
    let floor = 0.01;
    base * (floor + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// One prepared batch.
struct Batch {
    pixels: Vec<f32>,
    labels: Vec<BatchLabel>,
    /// Dropout mask `[n, POOLED_DIM]`, drawn from the step's seed.
    dropout: Vec<f32>,
}

/// Draws the writers and samples of the batch for `step` (module documentation, step 3).
fn draw_batch(
    cfg: &TrainConfig,
    pools: &[WriterPool],
    by_source: &[(f64, Vec<usize>)],
    step: u64,
) -> Vec<(usize, bool, u64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let total_weight: f64 = by_source.iter().map(|(w, _)| w).sum();
    let mut chosen: Vec<usize> = Vec::with_capacity(cfg.writers_per_batch);
    let n_writers: usize = by_source.iter().map(|(_, v)| v.len()).sum();
    let want = cfg.writers_per_batch.min(n_writers);
    let mut attempts = 0;
    while chosen.len() < want && attempts < want * 50 {
        attempts += 1;
        let mut r = rng.random_range(0.0..total_weight);
        let mut source = &by_source[0].1;
        for (w, v) in by_source {
            source = v;
            if r < *w {
                break;
            }
            r -= w;
        }
        if source.is_empty() {
            continue;
        }
        let w = source[rng.random_range(0..source.len())];
        if !chosen.contains(&w) {
            chosen.push(w);
        }
    }
    let mut picks = Vec::new();
    for &w in &chosen {
        let pool = &pools[w];
        let mut g = pool.genuine.clone();
        g.shuffle(&mut rng);
        for i in 0..cfg.genuine_per_writer {
            picks.push((g[i % g.len()], true, rng.random::<u64>()));
        }
        let mut f = pool.forgeries.clone();
        f.shuffle(&mut rng);
        for &item in f.iter().take(cfg.forgeries_per_writer) {
            picks.push((item, false, rng.random::<u64>()));
        }
    }
    picks
}

/// Augments and normalises the drawn samples (in parallel; each sample has its own seed, so the result
/// does not depend on the thread count).
fn build_batch(cfg: &TrainConfig, items: &[TrainItem], picks: &[(usize, bool, u64)]) -> Batch {
    let aug = augment::AugmentParams::default();
    let sigs: Vec<NormalisedSignature> = picks
        .par_iter()
        .map(|&(i, _, seed)| {
            let item = &items[i];
            if !cfg.augment {
                return item.fallback.clone();
            }
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let img = augment::augment(&item.image, &aug, &mut rng);
            // Augmentation can, rarely, wash the ink out; the un-augmented image stands in then.
            crate::imaging::normalise::normalise(&img, &cfg.params)
                .unwrap_or_else(|_| item.fallback.clone())
        })
        .collect();
    let mut pixels = Vec::with_capacity(sigs.iter().map(|s| s.pixels.len()).sum());
    for s in &sigs {
        pixels.extend_from_slice(&s.pixels);
    }
    let labels = picks
        .iter()
        .map(|&(i, genuine, _)| BatchLabel {
            writer: items[i].writer,
            genuine,
        })
        .collect();
    let p = crate::model::net::DROPOUT;
    let keep = (1.0 / (1.0 - p)) as f32;
    let mut rng = ChaCha8Rng::seed_from_u64(picks.first().map_or(0, |p| p.2) ^ 0xD0D0);
    let dropout = (0..picks.len() * crate::model::net::POOLED_DIM as usize)
        .map(|_| if rng.random_bool(p) { 0.0 } else { keep })
        .collect();
    Batch {
        pixels,
        labels,
        dropout,
    }
}

/// Runs a whole training (module documentation). `on_event` is called on the training thread;
/// setting `stop` ends the run after the current step with a checkpoint.
pub fn run(
    cfg: &TrainConfig,
    mut on_event: impl FnMut(&TrainEvent),
    stop: Arc<AtomicBool>,
) -> Result<TrainOutcome, TrainError> {
    cfg.check()?;
    let started = Instant::now();
    let say = |on_event: &mut dyn FnMut(&TrainEvent), msg: String| {
        on_event(&TrainEvent {
            epoch: 0,
            step: 0,
            total_steps: cfg.total_steps(),
            loss: f64::NAN,
            lr: 0.0,
            val_eer: None,
            message: Some(msg),
        });
    };

    // 1-2. Data, split, cache.
    say(
        &mut on_event,
        "loading and caching the training data".to_string(),
    );
    let mut loaded = data::load_all(cfg)?;
    say(
        &mut on_event,
        format!(
            "{} training writers ({} images), {} validation writers ({} images), {} images skipped; loaded in {:.1} s",
            loaded.pools.len(),
            loaded.items.len(),
            loaded.val_writers.len(),
            loaded.val.len(),
            loaded.skipped.len(),
            started.elapsed().as_secs_f64()
        ),
    );
    let items = Arc::new(std::mem::take(&mut loaded.items));
    let pools = Arc::new(std::mem::take(&mut loaded.pools));
    let by_source = Arc::new(std::mem::take(&mut loaded.by_source));

    // Model: resumed checkpoint, --init weights, or a fresh initialisation from the seed.
    let ckpt = checkpoint_path(&cfg.out);
    let mut state = ResumeState {
        epochs_completed: 0,
        seed: cfg.seed,
        val_eer_per_epoch: Vec::new(),
        epoch_losses: Vec::new(),
        best_val_eer: None,
    };
    let mut initialised_from = None;
    let mut model = if cfg.resume && ckpt.is_file() && state_path(&cfg.out).is_file() {
        let text =
            std::fs::read_to_string(state_path(&cfg.out)).map_err(|source| TrainError::Io {
                path: state_path(&cfg.out),
                source,
            })?;
        state = serde_json::from_str(&text)
            .map_err(|e| TrainError::Config(format!("unreadable resume state: {e}")))?;
        say(
            &mut on_event,
            format!(
                "resuming after epoch {} from {}",
                state.epochs_completed,
                ckpt.display()
            ),
        );
        let mut m = SignatureModel::load(&ckpt, cfg.device)?;
        m.unfreeze();
        initialised_from = m
            .card()
            .training
            .as_ref()
            .and_then(|t| t.initialised_from.clone());
        m
    } else if let Some(init) = &cfg.init {
        let mut m = SignatureModel::load(init, cfg.device)?;
        if m.normalise_params() != &cfg.params {
            return Err(TrainError::Config(format!(
                "--init model {} was trained with other normalisation parameters",
                init.display()
            )));
        }
        m.unfreeze();
        initialised_from = Some(format!("{} ({})", init.display(), m.id()));
        m
    } else {
        SignatureModel::new_seeded(cfg.params.clone(), cfg.device, cfg.seed)?
    };

    let mut opt = nn::AdamW {
        wd: cfg.weight_decay,
        ..Default::default()
    }
    .build(model.var_store(), cfg.lr)?;
    let total = cfg.total_steps();
    let warmup = u64::from(cfg.warmup_steps).min(total / 2);
    let margin = cfg.margin();
    let (h, w) = (i64::from(cfg.params.height), i64::from(cfg.params.width));

    // 3. The producer thread prepares batches ahead of the training step.
    let first_step = u64::from(state.epochs_completed) * u64::from(cfg.steps_per_epoch);
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(3);
    let producer_stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (cfg, items, pools, by_source, pstop) = (
            cfg.clone(),
            items.clone(),
            pools.clone(),
            by_source.clone(),
            producer_stop.clone(),
        );
        std::thread::spawn(move || {
            for step in first_step..total {
                if pstop.load(Ordering::Relaxed) {
                    break;
                }
                let picks = draw_batch(&cfg, &pools, &by_source, step);
                if tx.send(build_batch(&cfg, &items, &picks)).is_err() {
                    break;
                }
            }
        })
    };

    let val_k = loaded.val_references;
    let mut outcome = TrainOutcome {
        weights: None,
        checkpoint: ckpt.clone(),
        best: None,
        epochs_completed: state.epochs_completed,
        stopped: false,
        first_epoch_loss: state.epoch_losses.first().copied(),
        last_epoch_loss: state.epoch_losses.last().copied(),
        val_eer_per_epoch: state.val_eer_per_epoch.clone(),
        validation: None,
        skipped_images: loaded.skipped.clone(),
        wall_seconds: 0.0,
    };
    let mut step = first_step;
    let result = (|| -> Result<(), TrainError> {
        for epoch in (state.epochs_completed + 1)..=cfg.epochs {
            let epoch_started = Instant::now();
            let mut losses = Vec::new();
            for _ in 0..cfg.steps_per_epoch {
                if stop.load(Ordering::Relaxed) {
                    outcome.stopped = true;
                    return Ok(());
                }
                let batch = rx.recv().map_err(|_| TrainError::Producer)?;
                let lr = learning_rate(cfg.lr, step, warmup, total);
                opt.set_lr(lr);
                let n = batch.labels.len() as i64;
                let input = Tensor::f_from_slice(&batch.pixels)?
                    .f_reshape([n, 1, h, w])?
                    .f_to_device(cfg.device)?;
                let mask = Tensor::f_from_slice(&batch.dropout)?
                    .f_reshape([n, crate::model::net::POOLED_DIM])?
                    .f_to_device(cfg.device)?;
                let emb = model.net().forward_train_with_mask(&input, &mask)?;
                step += 1;
                let Some(loss) = loss::batch_loss(cfg.loss, &emb, &batch.labels, margin)? else {
                    continue;
                };
                opt.zero_grad();
                loss.f_backward()?;
                opt.step();
                let lv = loss.f_double_value(&[])?;
                losses.push(lv);
                on_event(&TrainEvent {
                    epoch,
                    step,
                    total_steps: total,
                    loss: lv,
                    lr,
                    val_eer: None,
                    message: None,
                });
            }
            let mean_loss = if losses.is_empty() {
                f64::NAN
            } else {
                losses.iter().sum::<f64>() / losses.len() as f64
            };
            state.epoch_losses.push(mean_loss);
            // 5. Validation, checkpoint, best.
            let val_eer = validation_eer(&model, &loaded.val, val_k)?;
            state.epochs_completed = epoch;
            outcome.epochs_completed = epoch;
            if let Some(e) = val_eer {
                state.val_eer_per_epoch.push(e);
            }
            record_card(
                &mut model,
                cfg,
                &loaded,
                initialised_from.clone(),
                started,
                epoch,
                None,
            );
            model.save(&ckpt)?;
            let state_json = serde_json::to_string_pretty(&state)
                .map_err(|e| TrainError::Config(format!("cannot write resume state: {e}")))?;
            std::fs::write(state_path(&cfg.out), state_json).map_err(|source| TrainError::Io {
                path: state_path(&cfg.out),
                source,
            })?;
            let mut message = format!(
                "epoch {epoch}: mean loss {mean_loss:.4} ({:.1} s)",
                epoch_started.elapsed().as_secs_f64()
            );
            if let Some(e) = val_eer {
                message += &format!(", validation EER {:.2}%", 100.0 * e);
                if state.best_val_eer.is_none_or(|b| e < b) {
                    state.best_val_eer = Some(e);
                    model.save(&best_path(&cfg.out))?;
                    outcome.best = Some(best_path(&cfg.out));
                    message += " (best so far)";
                }
            }
            on_event(&TrainEvent {
                epoch,
                step,
                total_steps: total,
                loss: mean_loss,
                lr: learning_rate(cfg.lr, step.saturating_sub(1), warmup, total),
                val_eer,
                message: Some(message),
            });
        }
        Ok(())
    })();
    producer_stop.store(true, Ordering::Relaxed);
    drop(rx);
    let _ = producer.join();
    outcome.first_epoch_loss = state.epoch_losses.first().copied();
    outcome.last_epoch_loss = state.epoch_losses.last().copied();
    outcome.val_eer_per_epoch = state.val_eer_per_epoch.clone();
    if best_path(&cfg.out).is_file() {
        outcome.best = Some(best_path(&cfg.out));
    }
    result?;

    if outcome.stopped {
        // Ctrl-C or the GUI's stop: keep the work done so far as a checkpoint of the last full epoch
        // plus the partial one (resume restarts that epoch).
        record_card(
            &mut model,
            cfg,
            &loaded,
            initialised_from,
            started,
            state.epochs_completed,
            None,
        );
        model.save(&ckpt)?;
        say(
            &mut on_event,
            format!("stopped; checkpoint written to {}", ckpt.display()),
        );
        outcome.wall_seconds = started.elapsed().as_secs_f64();
        return Ok(outcome);
    }

    // Final figures on the held-out writers, in the card.
    let metrics = final_metrics(&model, &loaded)?;
    record_card(
        &mut model,
        cfg,
        &loaded,
        initialised_from,
        started,
        cfg.epochs,
        metrics.clone(),
    );
    model.save(&cfg.out)?;
    outcome.weights = Some(cfg.out.clone());
    outcome.validation = metrics;
    outcome.wall_seconds = started.elapsed().as_secs_f64();
    say(
        &mut on_event,
        format!("wrote {} ({})", cfg.out.display(), model.id()),
    );
    Ok(outcome)
}

/// Measures an existing model on the validation writers `cfg` selects (the same split and protocol as
/// at the end of training), without training. `None` when the configuration selects no validation
/// writers.
pub fn evaluate_holdout(
    cfg: &TrainConfig,
    model: &SignatureModel,
) -> Result<Option<ValidationMetrics>, TrainError> {
    let loaded = data::load_validation(cfg)?;
    final_metrics(model, &loaded)
}

/// Fills the card's training provenance (and validation figures when given).
fn record_card(
    model: &mut SignatureModel,
    cfg: &TrainConfig,
    loaded: &data::Loaded,
    initialised_from: Option<String>,
    started: Instant,
    epochs: u32,
    validation: Option<ValidationMetrics>,
) {
    let device = crate::device::describe(cfg.device);
    let card = model.card_mut();
    card.created_at = crate::model::now_rfc3339();
    card.training = Some(TrainingInfo {
        sources: loaded.source_info.clone(),
        command_line: cfg.command_line.clone(),
        seed: cfg.seed,
        validation_writers: loaded.val_writers.clone(),
        training_writer_count: loaded.train_writer_count,
        loss: format!(
            "{}(margin={}{})",
            match cfg.loss {
                LossKind::Triplet => "triplet",
                LossKind::Contrastive => "contrastive",
            },
            cfg.margin(),
            if cfg.loss == LossKind::Triplet {
                ", semi-hard mining"
            } else {
                ""
            }
        ),
        epochs,
        steps_per_epoch: cfg.steps_per_epoch,
        batch: format!(
            "{} writers x ({} genuine + up to {} skilled forgeries)",
            cfg.writers_per_batch, cfg.genuine_per_writer, cfg.forgeries_per_writer
        ),
        optimiser: format!(
            "AdamW(lr={}, weight_decay={}), {} warm-up steps then cosine decay to 1%",
            cfg.lr, cfg.weight_decay, cfg.warmup_steps
        ),
        augmentation: if cfg.augment {
            "rotation +-6 deg, shear +-0.18, aspect +-15%, elastic 2.5%, stroke width (3x3 dilation/erosion), \
             ink darkness and paper level, resolution 45-90%, blur, noise, JPEG 25-85"
                .to_string()
        } else {
            "none".to_string()
        },
        initialised_from,
        wall_seconds: started.elapsed().as_secs_f64(),
        device,
    });
    if validation.is_some() {
        card.validation = validation;
    }
}

/// Embeds the validation signatures as labelled embeddings for the scoring protocol.
fn embed_validation(
    model: &SignatureModel,
    val: &[ValItem],
) -> Result<Vec<LabelledEmbedding>, TrainError> {
    let sigs: Vec<&NormalisedSignature> = val.iter().map(|v| &v.sig).collect();
    let embs = model.embed_refs(&sigs)?;
    Ok(val
        .iter()
        .zip(embs)
        .map(|(v, e)| LabelledEmbedding {
            writer: v.writer.clone(),
            genuine: v.genuine,
            sample_id: v.sample_id.clone(),
            embedding: e,
        })
        .collect())
}

fn eval_config(k: usize) -> EvalConfig {
    EvalConfig {
        references: k,
        ..EvalConfig::default()
    }
}

/// The epoch's validation EER: skilled forgeries when the held-out writers have them, else random
/// forgeries; `None` without validation writers.
fn validation_eer(
    model: &SignatureModel,
    val: &[ValItem],
    k: usize,
) -> Result<Option<f64>, TrainError> {
    if val.is_empty() {
        return Ok(None);
    }
    let labelled = embed_validation(model, val)?;
    let report = crate::scoring::evaluate(&labelled, &eval_config(k))?;
    Ok(report
        .skilled
        .as_ref()
        .or(report.random.as_ref())
        .map(|m| m.eer))
}

/// The card's validation figures: EER with 1 and K references, FRR at 1% FAR, AUC (module docs).
fn final_metrics(
    model: &SignatureModel,
    loaded: &data::Loaded,
) -> Result<Option<ValidationMetrics>, TrainError> {
    if loaded.val.is_empty() {
        return Ok(None);
    }
    let labelled = embed_validation(model, &loaded.val)?;
    let k = loaded.val_references;
    let report_k = crate::scoring::evaluate(&labelled, &eval_config(k))?;
    let report_1 = crate::scoring::evaluate(&labelled, &eval_config(1))?;
    let pairs = crate::scoring::evaluation_scores(&labelled, &eval_config(k))?;
    let (scores, labels) = crate::scoring::labelled_scores(&pairs, Forgeries::Skilled);
    let frr = if labels.iter().any(|l| !l) {
        crate::scoring::threshold_for_far(&scores, &labels, 0.01)
            .ok()
            .map(|p| p.frr)
    } else {
        None
    };
    // The spread `evaluate` prints, with the same resamples and seed.
    let spread = crate::scoring::writer_bootstrap(
        &pairs,
        crate::scoring::BOOTSTRAP_ROUNDS,
        crate::scoring::BOOTSTRAP_SEED,
    )?
    .map(|s| (s.sd, s.ci95));
    // Per held-out collection as well as pooled, when several collections hold writers out.
    let mut collections = Vec::new();
    if loaded.val_sources.len() > 1 {
        for name in &loaded.val_sources {
            let samples = crate::scoring::collection_samples(&labelled, name);
            if !samples.is_empty() {
                collections.push(crate::scoring::collection_figures(
                    name,
                    &samples,
                    &eval_config(k),
                )?);
            }
        }
        collections.push(crate::scoring::collection_figures(
            "pooled",
            &labelled,
            &eval_config(k),
        )?);
    }
    let mut notes = vec![format!(
        "protocol of scoring::evaluate: first K genuine (natural order of file names) as references, \
         aggregation {}, one global threshold; K = {k} (the 5-reference fields use K = {k})",
        report_k.config.aggregation
    )];
    if k != 5 {
        notes.push(format!(
            "validation writers have too few genuine samples for K = 5; K = {k} used"
        ));
    }
    Ok(Some(ValidationMetrics {
        protocol: format!(
            "held-out writers: {} ({} writers)",
            loaded.val_sources.join(", "),
            loaded.val_writers.len()
        ),
        eer_skilled_1ref: report_1.skilled.as_ref().map(|m| m.eer),
        eer_skilled_5ref: report_k.skilled.as_ref().map(|m| m.eer),
        eer_random_5ref: report_k.random.as_ref().map(|m| m.eer),
        frr_at_far_1pct_5ref: frr,
        auc_skilled_5ref: report_k.skilled.as_ref().map(|m| m.auc),
        eer_skilled_5ref_bootstrap_std: spread.map(|s| s.0),
        eer_skilled_5ref_bootstrap_ci95: spread.map(|s| s.1),
        eer_skilled_5ref_splits_mean: None,
        eer_skilled_5ref_splits_std: None,
        splits: None,
        writers: loaded.val_writers.len(),
        genuine: loaded.val.iter().filter(|v| v.genuine).count(),
        forgeries: loaded.val.iter().filter(|v| !v.genuine).count(),
        collections,
        leave_one_collection_out: Vec::new(),
        notes,
    }))
}
