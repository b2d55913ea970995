//! Scores, calibration, decisions and evaluation metrics.
//!
//! CONTRACT (shared with model cards, the store and the GUI): `Embedding`, `Calibration`, `Thresholds`,
//! `Decision`. The scoring work adds similarity, calibration fitting, metrics and the decision rules.
//!
//! Pure computation: no tch, no SQL, no GUI. The pieces, in the order a verification uses them:
//!
//! - [`score_against_references`]: cosine similarity of the questioned embedding to each reference,
//!   aggregated ([`Aggregation`]); optionally z-normalised per account ([`ReferenceStats`],
//!   [`normalise_score`]). Cohort normalisation against other writers ([`cohort`]) is measured by
//!   the evaluation protocol only.
//! - [`Calibration::probability`]: Platt scaling fitted by [`fit_platt`] (or [`fit_isotonic`] with a
//!   large archive, via [`CalibrationModel`]).
//! - [`decide`]: ACCEPT / REFER / REJECT against a [`DecisionPolicy`].
//!
//! For supervisors and model cards: [`evaluate`] runs the fixed evaluation protocol (documented in
//! the [`evaluation`] module) into an [`EvaluationReport`]; [`evaluation_scores`] +
//! [`labelled_scores`] give the labelled scores that [`fit_platt`] and [`choose_thresholds`] take.
//! Metric conventions (FAR/FRR, ROC ties, AUC, EER interpolation, DET clamping) are documented in
//! the [`metrics`] module and on [`eer`].

use serde::{Deserialize, Serialize};

/// An L2-normalised embedding of one signature.
pub type Embedding = Vec<f32>;

/// Platt scaling: `P(genuine | score s) = sigmoid(a * s + b)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub a: f64,
    pub b: f64,
}

/// Two thresholds on the calibrated probability: ACCEPT at or above `accept`, REJECT below `reject`,
/// REFER in between.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub accept: f64,
    pub reject: f64,
}

/// The outcome of one verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Decision {
    Accept,
    Refer,
    Reject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accept => "ACCEPT",
            Decision::Refer => "REFER",
            Decision::Reject => "REJECT",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub mod bench;
pub mod calibration;
pub mod cohort;
pub mod decision;
pub mod error;
pub mod evaluation;
pub mod metrics;
pub mod similarity;
pub mod spread;
pub mod thresholds;

pub use calibration::{
    CalibrationModel, ISOTONIC_MIN_PAIRS, ISOTONIC_MIN_PER_CLASS, IsotonicCalibration,
    fit_isotonic, fit_platt,
};
pub use cohort::{
    CohortNormalisation, CohortStats, DEFAULT_COHORT_TOP, MIN_COHORT_ACCOUNTS,
    account_cohort_scores, questioned_cohort_scores,
};
pub use decision::{AmountRule, DecisionOutcome, DecisionPolicy, decide};
pub use error::ScoringError;
pub use evaluation::{
    AggregationComparison, ClassMetrics, CollectionFigures, EvalConfig, EvaluationCounts,
    EvaluationReport, Forgeries, LabelledEmbedding, MAX_CURVE_POINTS, OperatingPoint,
    OperatingRates, ScoreHistograms, ScoredPair, SkippedWriter, collection_figures,
    collection_samples, compare_aggregations, evaluate, evaluation_scores, figures_table,
    labelled_scores,
};
pub use metrics::{
    DetPoint, EerResult, FarFrr, Histogram, RocPoint, WriterEer, WriterEerBasis, auc, det_points,
    downsample, eer, far_frr, histogram, inverse_normal_cdf, per_writer_eer, roc_points,
    threshold_for_far,
};
pub use similarity::{
    Aggregation, MIN_REFERENCE_STD, ReferenceStats, ScoreNormalisation, cosine_similarity,
    l2_normalise, normalise_score, score_against_references,
};
pub use spread::{
    BOOTSTRAP_ROUNDS, BOOTSTRAP_SEED, EerSpread, PairedEerSpread, SpreadRow,
    paired_writer_bootstrap, spread_rows, spread_table, writer_bootstrap,
};
pub use thresholds::{ThresholdChoice, choose_thresholds};
