//! Long tasks that run on their own threads with their own database connection, so the worker stays
//! free for the clerk's verifications: evaluation and calibration, training, batches.

use std::path::{Path, PathBuf};

use super::advice::UserError;
use super::view::{BatchRow, EvalSummary, TrainOptions, TrainUpdate};
use super::{BackendConfig, StopFlag, load_model, open_store, stopped, stopped_error};

/// Evaluates the model in force on a labelled folder (writer folders, CEDAR layout or a manifest) and
/// calibrates it with [`crate::assess::calibrate`], the function `countersign calibrate` calls, with
/// its defaults (`references` genuine signatures per writer as references, all forgeries, skilled and
/// random). The screen's plots are drawn from the scored pairs that calibration was fitted on.
pub fn evaluate(
    config: &BackendConfig,
    folder: &Path,
    references: usize,
    progress: &mut dyn FnMut(f32, &str),
    stop: &StopFlag,
) -> Result<EvalSummary, UserError> {
    use crate::scoring::{EvalConfig, Forgeries, eer, labelled_scores, roc_points};
    let store = open_store(config).ok();
    let model = load_model(config, store.as_ref())?;
    progress(0.0, "Reading the folder");
    let ds = crate::train::dataset::scan(folder, crate::train::dataset::Layout::Auto).map_err(|e| {
        UserError::new(
            format!("{} is not a labelled signature folder: {e}", folder.display()),
            "Choose a folder with one folder per writer (NNN/ genuine, NNN_forg/ forgeries), a CEDAR folder, or a manifest.",
        )
    })?;
    // The same decoding, normalisation and embedding as `countersign evaluate` and `calibrate`.
    let set = crate::assess::embed_dataset(&model, &ds, &mut |done, total| {
        progress(
            0.9 * done as f32 / total.max(1) as f32,
            &format!("Embedded {done} of {total} signatures"),
        );
        if stopped(stop) {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })
    .map_err(|e| match e {
        crate::assess::AssessError::Stopped => stopped_error(),
        e => UserError::new(
            format!("The folder could not be embedded: {e}"),
            "Check that the folder holds signature images the application can read.",
        ),
    })?;
    let skipped = set.failures.len();
    // The protocol of `countersign calibrate` with its defaults, the model's per-account stage included.
    let cfg = crate::assess::protocol_for(
        &model,
        EvalConfig {
            references,
            ..EvalConfig::default()
        },
    );
    let bad = |e: &dyn std::fmt::Display| {
        UserError::new(
            format!("The folder cannot be evaluated: {e}"),
            format!(
                "Each writer needs more than {references} genuine signatures ({references} are its references; \
                 lower \"References per writer\" for a small folder), and the folder needs forgeries (NNN_forg/)."
            ),
        )
    };
    let (result, pairs) = crate::assess::calibrate(
        &set.samples,
        &cfg,
        crate::assess::DEFAULT_TARGET_FAR,
        crate::assess::DEFAULT_REFER_BAND,
    )
    .map_err(|e| bad(&e))?;
    let calibration = result.calibration;
    let (scores, labels) = labelled_scores(&pairs, Forgeries::All);
    let probs: Vec<f64> = scores.iter().map(|&s| calibration.probability(s)).collect();
    let split = |genuine: bool| -> Vec<f64> {
        probs
            .iter()
            .zip(&labels)
            .filter(|(_, l)| **l == genuine)
            .map(|(p, _)| *p)
            .collect()
    };
    let roc = roc_points(&probs, &labels).map_err(|e| bad(&e))?;
    let roc = crate::scoring::downsample(&roc, 400);
    // The EER on the scores, as `calibrate` reports it; its threshold shown as a probability.
    let e = eer(&scores, &labels).map_err(|e| bad(&e))?;
    // The operating point in force, by the policy's own rule (store, else card; `None` under the
    // built-in default that refers everything).
    let policy = crate::verify::Policy::resolve(store.as_ref(), &model).ok();
    let current = policy
        .as_ref()
        .filter(|p| p.source != crate::verify::PolicySource::BuiltInDefault)
        .map(|p| p.decision.thresholds);
    let calibration_in_force = policy.as_ref().and_then(|p| p.calibration);
    progress(1.0, "Done");
    let writers = pairs
        .iter()
        .map(|p| p.writer.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();
    let skipped_note = if skipped > 0 {
        format!(" ({skipped} unreadable images left out)")
    } else {
        String::new()
    };
    Ok(EvalSummary {
        genuine: split(true),
        forgery: split(false),
        roc: roc.iter().map(|p| (p.far(), p.tpr)).collect(),
        det: roc.iter().map(|p| (p.far(), p.frr())).collect(),
        eer: result.eer,
        eer_threshold: calibration.probability(e.threshold).clamp(0.0, 1.0),
        model_id: format!("{}{skipped_note}", model.id()),
        writers,
        current,
        calibration: Some(calibration),
        calibration_in_force,
        score_ceiling: (model.card().score_normalisation
            == crate::scoring::ScoreNormalisation::None)
            .then_some(1.0),
        proposed: Some(result.choice),
        scores,
        labels,
        references,
    })
}

/// Trains a model with the training layer's loop on this thread, reporting every step.
pub fn train(
    config: &BackendConfig,
    options: &TrainOptions,
    on_update: &mut dyn FnMut(TrainUpdate),
    stop: &StopFlag,
) -> Result<Option<PathBuf>, UserError> {
    use crate::train::{LossKind, SourceSpec, TrainConfig};
    let device = config
        .device
        .resolve()
        .map_err(|e| UserError::new(format!("{e}"), "Train with --device cpu."))?;
    let mut sources = Vec::new();
    if !options.data.as_os_str().is_empty() {
        let name = options
            .data
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "data".into());
        sources.push(SourceSpec::Data {
            name,
            path: options.data.clone(),
            layout: crate::train::Layout::Auto,
            weight: 1.0,
            licence: "the bank's own data".into(),
        });
    }
    if options.synthetic_writers > 0 {
        sources.push(SourceSpec::Synthetic {
            writers: options.synthetic_writers,
            genuine: 12,
            forgeries: 6,
            weight: 1.0,
        });
    }
    let defaults = TrainConfig::default();
    // A batch is P writers x (K genuine + F forgeries); the screen asks for the batch size.
    let per_writer = defaults.genuine_per_writer + defaults.forgeries_per_writer;
    let cfg = TrainConfig {
        sources,
        out: options.out.clone(),
        epochs: options.epochs.max(1) as u32,
        writers_per_batch: (options.batch_size / per_writer.max(1)).max(2),
        loss: if options.triplet {
            LossKind::Triplet
        } else {
            LossKind::Contrastive
        },
        lr: options.learning_rate,
        seed: options.seed,
        init: options.init.clone(),
        device,
        command_line: format!(
            "countersign gui (Train screen): data {} synthetic {} epochs {} batch {} lr {} loss {} seed {} init {}",
            options.data.display(),
            options.synthetic_writers,
            options.epochs,
            options.batch_size,
            options.learning_rate,
            if options.triplet {
                "triplet"
            } else {
                "contrastive"
            },
            options.seed,
            options
                .init
                .as_ref()
                .map_or_else(|| "none".into(), |p| p.display().to_string())
        ),
        ..defaults
    };
    let epochs = f64::from(cfg.epochs);
    let outcome = crate::train::run(
        &cfg,
        |e| {
            if let Some(m) = &e.message {
                on_update(TrainUpdate::Message(m.clone()));
            }
            if let Some(v) = e.val_eer {
                on_update(TrainUpdate::Epoch { epoch: e.epoch as usize, train_loss: e.loss, val_eer: v });
            } else if e.step > 0 && e.loss.is_finite() {
                let x = e.step as f64 / e.total_steps.max(1) as f64 * epochs;
                on_update(TrainUpdate::Step { x, fraction: e.step as f32 / e.total_steps.max(1) as f32, loss: e.loss });
            }
        },
        stop.clone(),
    )
    .map_err(|e| {
        UserError::new(
            format!("Training failed: {e}"),
            "Check the dataset folder (one folder per writer with genuine signatures) and the options.",
        )
    })?;
    // Whether the run stopped is the training loop's answer, not the flag's: a stop pressed after
    // the last step still ends with a written model.
    let Some(weights) = outcome.weights.clone().filter(|_| !outcome.stopped) else {
        on_update(TrainUpdate::Stopped {
            epochs_completed: outcome.epochs_completed,
            epochs: cfg.epochs,
            checkpoint: outcome.checkpoint.clone(),
            best: outcome.best.clone(),
        });
        return Ok(None);
    };
    let card = card_fields(&crate::model::card_path(&weights));
    on_update(TrainUpdate::Finished {
        model_path: weights.clone(),
        card,
    });
    Ok(Some(weights))
}

/// The model card as (field, value) lines for display, nested objects flattened with dots.
pub fn card_fields(card: &Path) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            serde_json::Value::Array(a) if a.len() > 6 => {
                out.push((prefix.to_string(), format!("[{} items]", a.len())))
            }
            serde_json::Value::Null => {}
            other => out.push((
                prefix.to_string(),
                other.to_string().trim_matches('"').to_string(),
            )),
        }
    }
    let mut out = Vec::new();
    match std::fs::read_to_string(card).map(|t| serde_json::from_str::<serde_json::Value>(&t)) {
        Ok(Ok(v)) => walk("", &v, &mut out),
        _ => out.push((
            "card".into(),
            format!("{} could not be read", card.display()),
        )),
    }
    out
}

/// Runs a batch with the batch layer (the same code as `countersign batch`), reporting progress from
/// its counter; the results are written to a temporary CSV and read back for the table.
pub fn run_batch(
    config: &BackendConfig,
    operator: &crate::store::Operator,
    manifest: &Path,
    progress: &(dyn Fn(u64, u64, &[BatchRow]) + Sync),
    stop: &StopFlag,
) -> Result<Vec<BatchRow>, UserError> {
    let mut store = open_store(config)?;
    let model = load_model(config, Some(&store))?;
    let verifier = crate::verify::Verifier::from_store(
        crate::verify::shared_model(model),
        crate::imaging::cheque::ChequeLayout::default(),
        Some(&store),
    )
    .map_err(|e| {
        UserError::new(
            format!("The batch cannot start: {e}"),
            "Ask a supervisor to check the thresholds and the model.",
        )
    })?;
    // A private temporary folder (removed when this returns, on every path) holds the results file.
    let scratch = tempfile::Builder::new()
        .prefix("countersign-batch-")
        .tempdir()
        .map_err(|e| {
            UserError::new(
                format!("The batch cannot start: no temporary folder: {e}"),
                "Free disk space in the temporary folder, then try again.",
            )
        })?;
    let out = scratch.path().join("results.csv");
    // An X9 image cash letter is recognised by its content, whatever its name.
    let is_x9 = crate::x9::looks_like_x9(manifest);
    let opts = if is_x9 {
        crate::batch::BatchOptions::x9(manifest, &out)
    } else {
        crate::batch::BatchOptions::new(manifest, &out)
    };
    let total = if is_x9 {
        // The batch checks the whole file again before it starts; this pass only counts the items.
        crate::x9::scan(manifest).map(|s| s.items).unwrap_or(0)
    } else {
        crate::batch::manifest::count_rows(manifest).unwrap_or(0)
    };
    // The batch reports each finished chunk; the screen's counter follows it.
    progress(0, total, &[]);
    let done = std::cell::Cell::new(0u64);
    let result = crate::batch::run(&verifier, &mut store, operator, &opts, stop, &|rows| {
        done.set(done.get() + rows);
        progress(done.get(), total.max(done.get()), &[]);
    });
    let summary = result.map_err(|e| {
        UserError::new(
            format!("The batch failed: {e}"),
            if is_x9 {
                "The X9 file was refused as a whole (nothing in it was decided): ask the sending bank for a corrected file."
            } else {
                "Check the manifest (columns cheque_id, cheque path, account or reference). Rows already decided are kept; run it again to continue."
            },
        )
    })?;
    let mut rows = Vec::new();
    let mut reader = csv::Reader::from_path(&out).map_err(|e| {
        UserError::new(
            format!("The results could not be read: {e}"),
            "Run the batch again.",
        )
    })?;
    for r in reader.deserialize::<crate::batch::output::ResultRow>() {
        let r = r.map_err(|e| {
            UserError::new(
                format!("The results could not be read: {e}"),
                "Run the batch again.",
            )
        })?;
        rows.push(BatchRow {
            cheque_id: r.cheque_id,
            account: r.account_id.unwrap_or_default(),
            outcome: r.decision.as_str().to_string(),
            probability: r.probability,
            score: r.score,
            error: r.error,
            reason: r.reason,
        });
    }
    progress(summary.rows, total.max(summary.rows), &[]);
    if summary.stopped.is_some() && stopped(stop) {
        return Err(stopped_error());
    }
    Ok(rows)
}

/// Writes batch results as CSV (this is the GUI's own export of what it shows).
pub fn export_batch(rows: &[BatchRow], out: &Path) -> Result<String, UserError> {
    let write = || -> anyhow::Result<()> {
        let mut w = csv::Writer::from_path(out)?;
        w.write_record([
            "cheque_id",
            "account",
            "outcome",
            "probability",
            "score",
            "error",
        ])?;
        for r in rows {
            w.write_record([
                r.cheque_id.as_str(),
                r.account.as_str(),
                r.outcome.as_str(),
                &r.probability.map(|p| format!("{p:.6}")).unwrap_or_default(),
                &r.score.map(|s| format!("{s:.6}")).unwrap_or_default(),
                r.error.as_str(),
            ])?;
        }
        w.flush()?;
        Ok(())
    };
    write()
        .map_err(|e| UserError::from_anyhow(&format!("Could not write {}", out.display()), &e))?;
    Ok(format!("Wrote {} rows to {}", rows.len(), out.display()))
}
