//! Assessment on labelled data: a dataset (any layout `train::dataset` reads) is decoded, normalised
//! and embedded with the active model, then handed to the scoring layer's evaluation protocol or
//! calibration. Shared by `countersign evaluate`, `countersign calibrate` and the GUI's Calibrate screen,
//! so all three report the same numbers for the same data.

use std::ops::ControlFlow;
use std::path::PathBuf;

use rayon::prelude::*;

use crate::imaging::NormalisedSignature;
use crate::imaging::decode::{DecodeLimits, decode_path};
use crate::imaging::normalise::{NormaliseParams, normalise};
use crate::model::{ModelError, SignatureModel};
use crate::scoring::{
    Calibration, Embedding, EvalConfig, EvaluationReport, Forgeries, LabelledEmbedding,
    OperatingPoint, ScoredPair, ScoringError, ThresholdChoice, Thresholds, choose_thresholds, eer,
    evaluation_scores, fit_platt, labelled_scores,
};
use crate::train::dataset::Dataset;

/// Images are decoded and normalised in parallel in chunks of this many, then embedded together, so
/// memory stays bounded by one chunk whatever the dataset's size.
const CHUNK: usize = 256;

/// A dataset's embeddings, and the files that could not be used (with the reason).
#[derive(Debug, Default)]
pub struct EmbeddedSet {
    pub samples: Vec<LabelledEmbedding>,
    pub failures: Vec<(PathBuf, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum AssessError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Scoring(#[from] ScoringError),
    #[error("none of the {0} images could be used (first problem: {1})")]
    NothingUsable(usize, String),
    #[error("stopped before every image was embedded")]
    Stopped,
    #[error("no model to embed with")]
    NoModel,
}

/// Decodes, normalises and embeds every sample. Unreadable images and images without ink are listed
/// in `failures` rather than stopping the run: one bad scan must not hide the figures for the rest.
/// `progress(done, total)` is called after each chunk; returning `Break` stops the run
/// ([`AssessError::Stopped`]), which is how the GUI's Stop button ends it.
pub fn embed_dataset(
    model: &SignatureModel,
    dataset: &Dataset,
    progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
) -> Result<EmbeddedSet, AssessError> {
    embed_dataset_with(&[model], false, dataset, progress)
}

/// As [`embed_dataset`], with an ensemble of `models` and optionally test-time augmentation: the levers
/// `countersign evaluate --ensemble-with / --tta` measures (docs/ACCURACY.md); the decision path uses
/// neither. Each model preprocesses every image with its own card's parameters and embeds it (with
/// [`crate::model::tta::embed`] when `tta`); the sample's embedding is [`ensemble_embedding`] of the
/// models' embeddings, so every scoring step downstream scores with the mean of the models' cosine
/// similarities. An image that any model cannot use is dropped for all of them and listed in
/// `failures` with the model that refused it, so every model scores exactly the same samples. With one
/// model and no TTA this is exactly [`embed_dataset`].
pub fn embed_dataset_with(
    models: &[&SignatureModel],
    tta: bool,
    dataset: &Dataset,
    progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
) -> Result<EmbeddedSet, AssessError> {
    if models.is_empty() {
        return Err(AssessError::NoModel);
    }
    let limits = DecodeLimits::default();
    // Models that share normalisation parameters share the normalised images.
    let mut params: Vec<(NormaliseParams, String)> = Vec::new();
    let param_of: Vec<usize> = models
        .iter()
        .map(|m| {
            let p = m.normalise_params();
            params.iter().position(|(q, _)| q == p).unwrap_or_else(|| {
                params.push((p.clone(), m.id()));
                params.len() - 1
            })
        })
        .collect();
    let several = params.len() > 1;
    let total = dataset.samples.len();
    let mut out = EmbeddedSet::default();
    for chunk in dataset.samples.chunks(CHUNK) {
        let prepared: Vec<Result<Vec<NormalisedSignature>, String>> = chunk
            .par_iter()
            .map(|s| {
                let img = decode_path(&s.path, &limits).map_err(|e| e.to_string())?;
                params
                    .iter()
                    .map(|(p, id)| {
                        normalise(&img, p).map_err(|e| {
                            if several {
                                format!("{e} (with the preprocessing of model {id})")
                            } else {
                                e.to_string()
                            }
                        })
                    })
                    .collect()
            })
            .collect();
        let mut ok_samples = Vec::with_capacity(chunk.len());
        let mut inputs = Vec::with_capacity(chunk.len());
        for (s, p) in chunk.iter().zip(prepared) {
            match p {
                Ok(n) => {
                    ok_samples.push(s);
                    inputs.push(n);
                }
                Err(e) => out.failures.push((s.path.clone(), e)),
            }
        }
        let mut per_model = Vec::with_capacity(models.len());
        for (model, &pi) in models.iter().zip(&param_of) {
            let batch: Vec<&NormalisedSignature> = inputs.iter().map(|n| &n[pi]).collect();
            per_model.push(if tta {
                crate::model::tta::embed(model, &batch)?
            } else {
                model.embed_refs(&batch)?
            });
        }
        let embeddings: Vec<Embedding> = match per_model.len() {
            1 => per_model.pop().unwrap_or_default(),
            _ => (0..ok_samples.len())
                .map(|i| {
                    ensemble_embedding(&per_model.iter().map(|e| &e[i][..]).collect::<Vec<_>>())
                })
                .collect(),
        };
        for (s, embedding) in ok_samples.into_iter().zip(embeddings) {
            out.samples.push(LabelledEmbedding {
                writer: s.writer.clone(),
                genuine: s.genuine,
                // The path below the dataset root, not the bare file name: a writer's genuine
                // `w1/01.png` and forged `w1_forg/01.png` must stay two samples.
                sample_id: s
                    .path
                    .strip_prefix(&dataset.root)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| s.sample_id()),
                embedding,
            });
        }
        if progress(out.samples.len() + out.failures.len(), total).is_break() {
            return Err(AssessError::Stopped);
        }
    }
    if out.samples.is_empty() {
        let first = out
            .failures
            .first()
            .map(|(p, e)| format!("{}: {e}", p.display()));
        return Err(AssessError::NothingUsable(
            total,
            first.unwrap_or_else(|| "empty dataset".into()),
        ));
    }
    Ok(out)
}

/// One sample's embedding for an ensemble: each model's embedding L2-normalised, scaled by
/// `1/sqrt(n)` and concatenated. The result has unit length, and its cosine similarity to another such
/// concatenation is exactly the mean of the models' cosine similarities, so aggregation, z-norm and
/// every figure work on an ensemble unchanged. A zero part stays zero (and fails scoring as before).
pub fn ensemble_embedding(parts: &[&[f32]]) -> Embedding {
    let scale = 1.0 / (parts.len().max(1) as f64).sqrt();
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        let norm = part
            .iter()
            .map(|&x| f64::from(x).powi(2))
            .sum::<f64>()
            .sqrt();
        let k = if norm > 0.0 { scale / norm } else { 0.0 };
        out.extend(part.iter().map(|&x| (f64::from(x) * k) as f32));
    }
    out
}

/// The id a report names for `models` embedded with or without TTA: the model's own id when it is one
/// model without TTA, so the product's reports are unchanged.
pub fn embedding_id(models: &[&SignatureModel], tta: bool) -> String {
    let ids: Vec<String> = models.iter().map(|m| m.id()).collect();
    let mut id = match ids.as_slice() {
        [one] => one.clone(),
        _ => format!("ensemble[{}]", ids.join(" + ")),
    };
    if tta {
        id.push_str(&format!(" with TTA x{}", crate::model::tta::PASSES));
    }
    id
}

/// The protocol with the model's per-account stage switched on when its card names one, so that every
/// calibration (CLI, GUI) is fitted on the scores the decision path will compute.
pub fn protocol_for(model: &SignatureModel, cfg: EvalConfig) -> EvalConfig {
    let stage = model.card().score_normalisation;
    EvalConfig {
        znorm: cfg.znorm || stage == crate::scoring::ScoreNormalisation::ReferenceZnorm,
        ..cfg
    }
}

/// Runs the documented evaluation protocol on embedded samples and stamps the model id.
pub fn evaluate(
    model_id: &str,
    samples: &[LabelledEmbedding],
    cfg: &EvalConfig,
) -> Result<EvaluationReport, AssessError> {
    let mut report = crate::scoring::evaluate(samples, cfg)?;
    report.model_id = Some(model_id.to_string());
    Ok(report)
}

/// The false-accept rate `calibrate` chooses the accept threshold for when none is given (CLI and GUI).
pub const DEFAULT_TARGET_FAR: f64 = 0.01;
/// The share of genuine signatures that may be rejected outright when none is given (CLI and GUI).
pub const DEFAULT_REFER_BAND: f64 = 0.02;

/// What `calibrate` found: the fitted calibration, the chosen thresholds, and the scored pairs
/// behind them (for plots).
#[derive(Debug, Clone, serde::Serialize)]
pub struct CalibrationResult {
    pub calibration: Calibration,
    pub choice: ThresholdChoice,
    pub pairs: usize,
    pub genuine_pairs: usize,
    pub forgery_pairs: usize,
    /// The equal error rate of genuine vs all forgery pairs (the pairs the calibration is fitted on).
    pub eer: f64,
}

/// Fits Platt scaling on genuine vs skilled-and-random forgery pairs of the evaluation protocol and
/// chooses thresholds for a target false-accept rate.
pub fn calibrate(
    samples: &[LabelledEmbedding],
    cfg: &EvalConfig,
    target_far: f64,
    refer_band: f64,
) -> Result<(CalibrationResult, Vec<ScoredPair>), AssessError> {
    let pairs = evaluation_scores(samples, cfg)?;
    // Both skilled and random forgeries are what a cheque can carry, so both shape the threshold.
    let (scores, labels) = labelled_scores(&pairs, Forgeries::All);
    let calibration = fit_platt(&scores, &labels)?;
    let choice = choose_thresholds(&scores, &labels, &calibration, target_far, refer_band)?;
    let genuine_pairs = labels.iter().filter(|g| **g).count();
    Ok((
        CalibrationResult {
            calibration,
            choice,
            pairs: labels.len(),
            genuine_pairs,
            forgery_pairs: labels.len() - genuine_pairs,
            eer: eer(&scores, &labels)?.eer,
        },
        pairs,
    ))
}

/// Calibration that holds across collections: Platt scaling is fitted on every collection's protocol
/// pairs pooled, and the thresholds are the strictest any one collection needs, so that on the
/// calibration data each collection on its own stays within `target_far` (forgeries accepted) and
/// `refer_band` (genuine rejected). A pooled threshold would let a large, easy collection hide a
/// small, hard one. Writers are named `COLLECTION:WRITER` (see `cli::assess_args`).
pub fn calibrate_collections(
    samples: &[LabelledEmbedding],
    collections: &[String],
    cfg: &EvalConfig,
    target_far: f64,
    refer_band: f64,
) -> Result<(CalibrationResult, Vec<ScoredPair>), AssessError> {
    if collections.len() < 2 {
        return calibrate(samples, cfg, target_far, refer_band);
    }
    let mut per_collection = Vec::with_capacity(collections.len());
    let mut pairs = Vec::new();
    for name in collections {
        let p = evaluation_scores(&crate::scoring::collection_samples(samples, name), cfg)?;
        per_collection.push(p.clone());
        pairs.extend(p);
    }
    let (scores, labels) = labelled_scores(&pairs, Forgeries::All);
    let calibration = fit_platt(&scores, &labels)?;
    let mut accept = 0.0f64;
    let mut reject = 1.0f64;
    for p in &per_collection {
        let (s, l) = labelled_scores(p, Forgeries::All);
        let c = choose_thresholds(&s, &l, &calibration, target_far, refer_band)?;
        accept = accept.max(c.thresholds.accept);
        reject = reject.min(c.thresholds.reject);
    }
    let thresholds = Thresholds {
        accept,
        reject: reject.min(accept),
    };
    thresholds.validate()?;
    // What the pooled data sees at those thresholds.
    let probs: Vec<f64> = scores.iter().map(|&s| calibration.probability(s)).collect();
    let genuine = labels.iter().filter(|g| **g).count();
    let forgeries = labels.len() - genuine;
    let count = |f: &dyn Fn(f64, bool) -> bool| {
        probs
            .iter()
            .zip(&labels)
            .filter(|&(&p, &g)| f(p, g))
            .count() as f64
    };
    let choice = ThresholdChoice {
        thresholds,
        target_far,
        refer_band,
        far: count(&|p, g| !g && p >= accept) / forgeries.max(1) as f64,
        frr: count(&|p, g| g && p < accept) / genuine.max(1) as f64,
        genuine_rejected: count(&|p, g| g && p < thresholds.reject) / genuine.max(1) as f64,
        refer_rate: count(&|p, _| p >= thresholds.reject && p < accept)
            / labels.len().max(1) as f64,
    };
    Ok((
        CalibrationResult {
            calibration,
            choice,
            pairs: labels.len(),
            genuine_pairs: genuine,
            forgery_pairs: forgeries,
            eer: eer(&scores, &labels)?.eer,
        },
        pairs,
    ))
}

/// The operating point in force: the store's settings once a supervisor has saved any, else the
/// model card's own calibration and thresholds, else none (then no FAR/FRR at thresholds is reported).
pub fn operating_point(
    model: &SignatureModel,
    settings: Option<&crate::store::Settings>,
) -> Option<OperatingPoint> {
    // Both kinds of calibration are fitted on the model's own scores: the card's with its stage, a
    // supervisor's through `protocol_for`.
    let znorm =
        model.card().score_normalisation == crate::scoring::ScoreNormalisation::ReferenceZnorm;
    if let Some(s) = settings.filter(|s| s.version > 0) {
        return Some(OperatingPoint {
            calibration: s.calibration,
            thresholds: s.thresholds,
            znorm,
        });
    }
    let card = model.card();
    match (card.calibration, card.thresholds) {
        (Some(calibration), Some(thresholds)) => Some(OperatingPoint {
            calibration,
            thresholds,
            znorm,
        }),
        _ => None,
    }
}

/// Thresholds as text, e.g. "accept >= 0.912, reject < 0.301".
pub fn describe_thresholds(t: &Thresholds) -> String {
    format!("accept >= {:.3}, reject < {:.3}", t.accept, t.reject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::cosine_similarity;

    #[test]
    fn an_ensemble_embedding_scores_the_mean_of_the_models_cosines() {
        // Two "models" with embeddings of different lengths and dimensions.
        let (a1, b1) = (vec![3.0f32, 1.0, -2.0], vec![1.0f32, 2.0, 0.5]);
        let (a2, b2) = (vec![0.2f32, -0.4, 0.1, 0.9], vec![-0.3f32, 0.5, 0.2, 0.7]);
        let a = ensemble_embedding(&[&a1, &a2]);
        let b = ensemble_embedding(&[&b1, &b2]);
        assert_eq!(a.len(), 7);
        let unit = a.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
        assert!((unit - 1.0).abs() < 1e-6, "squared length {unit}");
        let mean =
            (cosine_similarity(&a1, &b1).unwrap() + cosine_similarity(&a2, &b2).unwrap()) / 2.0;
        let got = cosine_similarity(&a, &b).unwrap();
        assert!((got - mean).abs() < 1e-6, "{got} vs {mean}");
        // A model with itself scores as the model alone.
        let alone = cosine_similarity(&a1, &b1).unwrap();
        let twice = cosine_similarity(
            &ensemble_embedding(&[&a1, &a1]),
            &ensemble_embedding(&[&b1, &b1]),
        )
        .unwrap();
        assert!((alone - twice).abs() < 1e-6, "{alone} vs {twice}");
    }
}
