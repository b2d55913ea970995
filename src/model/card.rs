//! The model card: a JSON file beside the weights that says what the weights are, how they were made,
//! how well they did, and how to turn their scores into decisions.
//!
//! `<stem>.safetensors` holds the weights and `<stem>.json` this card. The card is checked before any
//! weight is used: architecture, input size, preprocessing version and the SHA-256 of the weights file
//! must all match, so a bank can never score cheques with weights it cannot account for.

use serde::{Deserialize, Serialize};

use crate::imaging::normalise::NormaliseParams;
use crate::scoring::{Calibration, CollectionFigures, ScoreNormalisation, Thresholds};

/// Version of the card's own format; bumped when fields change meaning. Version 2 added
/// `score_normalisation`; a card without it (normalisation none) is still written as version 1, and a
/// card of a version above this one is refused on load.
pub const CARD_FORMAT_VERSION: u32 = 2;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Version of this JSON format ([`CARD_FORMAT_VERSION`]).
    pub card_version: u32,
    /// Network architecture name (see [`crate::model::net::ARCH_NAME`]).
    pub architecture: String,
    /// Version of that architecture's layout and variable names.
    pub architecture_version: u32,
    /// Network input width in pixels (equal to `preprocessing.params.width`).
    pub input_width: u32,
    /// Network input height in pixels (equal to `preprocessing.params.height`).
    pub input_height: u32,
    /// Length of the L2-normalised embedding.
    pub embedding_dim: usize,
    /// Trainable parameters.
    pub parameters: u64,
    /// Floating-point operations for one embedding (a multiply-accumulate counts as two).
    pub flops: u64,
    /// Exactly how images were normalised for training; inference must do the same.
    pub preprocessing: Preprocessing,
    /// The per-account stage between similarity and calibration; the calibration below was fitted on
    /// scores normalised this way (absent from version-1 cards: none).
    #[serde(default, skip_serializing_if = "is_raw")]
    pub score_normalisation: ScoreNormalisation,
    /// Platt scaling of the (normalised) similarity into a probability of "genuine", when fitted.
    #[serde(default)]
    pub calibration: Option<Calibration>,
    /// Decision thresholds on that probability, when chosen.
    #[serde(default)]
    pub thresholds: Option<Thresholds>,
    /// How the weights were trained, when they were (None for freshly initialised weights).
    #[serde(default)]
    pub training: Option<TrainingInfo>,
    /// Figures measured on held-out writers, when measured.
    #[serde(default)]
    pub validation: Option<ValidationMetrics>,
    /// When the weights were written, RFC 3339 UTC.
    pub created_at: String,
    /// Lower-case hex SHA-256 of the `.safetensors` file.
    pub weights_sha256: String,
}

fn is_raw(n: &ScoreNormalisation) -> bool {
    *n == ScoreNormalisation::None
}

impl ModelCard {
    /// Sets the per-account stage the calibration was fitted with, and the card format it needs.
    pub fn set_score_normalisation(&mut self, n: ScoreNormalisation) {
        self.score_normalisation = n;
        self.card_version = self.card_version.max(self.needed_version());
    }

    /// The card format version these fields need (see [`CARD_FORMAT_VERSION`]).
    pub fn needed_version(&self) -> u32 {
        if self.score_normalisation == ScoreNormalisation::None {
            1
        } else {
            CARD_FORMAT_VERSION
        }
    }
}

/// The imaging pipeline a model was trained with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// [`crate::imaging::normalise::PREPROCESSING_VERSION`] at training time.
    pub version: u32,
    /// The full normalisation parameters.
    pub params: NormaliseParams,
}

/// Provenance: what data, which command, which seed, which writers were held out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Each data source that was mixed into training.
    pub sources: Vec<DataSourceInfo>,
    /// The exact command line that produced the weights.
    pub command_line: String,
    /// Seed of every random choice (initialisation, sampling, augmentation, split).
    pub seed: u64,
    /// Writers held out for validation (writer-disjoint split), as `<source>:<writer>`.
    pub validation_writers: Vec<String>,
    /// Writers used for training, as `<source>:<writer>` (synthetic writers are summarised by count).
    #[serde(default)]
    pub training_writer_count: usize,
    /// Loss function and its margin, e.g. "triplet(margin=0.2, semi-hard)".
    pub loss: String,
    pub epochs: u32,
    pub steps_per_epoch: u32,
    /// Writers x samples per writer in each batch.
    pub batch: String,
    pub optimiser: String,
    /// Augmentations applied to training images.
    pub augmentation: String,
    /// Weights the training started from (`--init`), if any, with their id.
    #[serde(default)]
    pub initialised_from: Option<String>,
    /// Wall-clock training time in seconds and where it ran.
    #[serde(default)]
    pub wall_seconds: f64,
    #[serde(default)]
    pub device: String,
}

/// One data source used in training.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DataSourceInfo {
    /// Human name, e.g. "sigcomp2011-dutch" or "synthetic".
    pub name: String,
    /// "cedar", "folders", "manifest" or "synthetic".
    pub layout: String,
    /// Writers, genuine signatures and skilled forgeries in the source.
    pub writers: usize,
    pub genuine: usize,
    pub forgeries: usize,
    /// Relative sampling weight in the training mix.
    pub weight: f64,
    /// Licence or terms of the data; the images themselves are never shipped.
    pub licence: String,
}

/// Validation figures on held-out writers. EERs are fractions (0.05 = 5%).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationMetrics {
    /// Which data and protocol the figures below come from.
    pub protocol: String,
    /// EER, skilled forgeries, 1 reference per writer (first genuine), global threshold.
    #[serde(default)]
    pub eer_skilled_1ref: Option<f64>,
    /// EER, skilled forgeries, 5 references per writer (first five genuine), global threshold.
    #[serde(default)]
    pub eer_skilled_5ref: Option<f64>,
    /// EER against random forgeries (other writers' genuine), 5 references.
    #[serde(default)]
    pub eer_random_5ref: Option<f64>,
    /// FRR at the threshold where FAR (skilled) is 1%, 5 references.
    #[serde(default)]
    pub frr_at_far_1pct_5ref: Option<f64>,
    /// Area under the ROC curve (skilled, 5 references).
    #[serde(default)]
    pub auc_skilled_5ref: Option<f64>,
    /// Spread of the 5-reference skilled EER over the held-out writers: the standard deviation and the
    /// 2.5% / 97.5% quantiles of the EER over 1000 bootstrap resamples of the writers (with
    /// replacement, seed 2011). It says how much the figure could move with other writers.
    #[serde(default)]
    pub eer_skilled_5ref_bootstrap_std: Option<f64>,
    #[serde(default)]
    pub eer_skilled_5ref_bootstrap_ci95: Option<(f64, f64)>,
    /// The same protocol repeated over several writer splits (separately trained models): mean and
    /// standard deviation of the 5-reference skilled EER, and the number of splits.
    #[serde(default)]
    pub eer_skilled_5ref_splits_mean: Option<f64>,
    #[serde(default)]
    pub eer_skilled_5ref_splits_std: Option<f64>,
    #[serde(default)]
    pub splits: Option<u32>,
    /// Counts behind the figures.
    #[serde(default)]
    pub writers: usize,
    #[serde(default)]
    pub genuine: usize,
    #[serde(default)]
    pub forgeries: usize,
    /// The held-out figures per collection and pooled (`countersign evaluate` with several --data).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<CollectionFigures>,
    /// Leave one collection out: each row is a model trained WITHOUT that collection (same recipe),
    /// tested on all of its writers. The stand-in for a bank's own writers, scanners and script.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leave_one_collection_out: Vec<CollectionFigures>,
    /// Anything else a reader should know (other measurements, limits).
    #[serde(default)]
    pub notes: Vec<String>,
}
