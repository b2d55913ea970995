//! The GUI's own view of the data, so the screens do not depend on how other layers spell their
//! structs; when a layer changes, only the backend follows it.

use std::path::PathBuf;

use crate::scoring::{Decision, Thresholds};

/// Operator roles, as the store defines them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Clerk,
    Supervisor,
    Auditor,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Clerk => "clerk",
            Role::Supervisor => "supervisor",
            Role::Auditor => "auditor",
        }
    }
}

/// The signed-in operator.
#[derive(Clone, Debug, PartialEq)]
pub struct Operator {
    pub name: String,
    pub role: Role,
}

/// Which image a file is loaded into on the Verify screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// One of the account holder's reference signatures (0-based).
    Reference(usize),
    /// The cheque scan (or a bare questioned signature).
    Cheque,
}

impl Slot {
    pub fn label(self) -> String {
        match self {
            Slot::Reference(i) => format!("Reference {}", i + 1),
            Slot::Cheque => "Cheque".to_string(),
        }
    }
}

/// An 8-bit grayscale raster for display (0 black, 255 white).
#[derive(Clone, Debug, PartialEq)]
pub struct Gray {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// An RGBA raster for display (the overlay view).
#[derive(Clone, Debug, PartialEq)]
pub struct Rgba {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// A rectangle in the original image's pixel coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// What the worker sends back after loading a file into a slot.
#[derive(Clone, Debug)]
pub struct LoadedImage {
    pub slot: Slot,
    /// Where the image came from: a file path, or "account NNN reference k".
    pub source: String,
    /// The original size in pixels.
    pub width: u32,
    pub height: u32,
    /// A downscaled copy for the screen; `preview_scale` preview pixels per original pixel.
    pub preview: Gray,
    pub preview_scale: f32,
    /// For a cheque: the signature box the imaging layer found, and its confidence in [0, 1].
    pub detected: Option<(PixelBox, f32)>,
    /// Why no box was found, when none was.
    pub detection_note: Option<String>,
    /// SHA-256 of the file bytes (hex), as written to the audit row.
    pub sha256: String,
}

/// The outcome of one verification, before the clerk confirms or overrides it.
#[derive(Clone, Debug)]
pub struct VerifyOutcome {
    /// The raw similarity; `None` when no signature was scored (the row then holds NULL).
    pub score: Option<f64>,
    /// The calibrated probability of a genuine signature; `None` when nothing was calibrated (no
    /// calibration in force, too few references for the model's per-account stage) or scored.
    pub probability: Option<f64>,
    /// The cheque's amount in cents as the clerk typed it, when given (amount rules use it).
    pub amount_cents: Option<i64>,
    pub decision: Decision,
    pub thresholds: Thresholds,
    pub model_id: String,
    pub account: Option<String>,
    pub crop: Option<PixelBox>,
    pub signature_found: bool,
    /// The normalised questioned signature and references, as the network saw them.
    pub questioned: Gray,
    pub references: Vec<Gray>,
    /// The questioned signature in red over the first reference in blue.
    pub overlay: Rgba,
    /// Time spent in the worker from request to result, in milliseconds.
    pub latency_ms: f64,
    pub cheque_sha256: String,
    pub reference_sha256: Vec<String>,
    /// Why this decision: the thresholds that applied, or why the cheque was referred.
    pub reason: String,
    /// The clerk drew or moved the signature box (logged with the row, shown on the Audit screen).
    pub hand_drawn: bool,
    /// The Verify screen's choice of what the cheque-slot image is, and what it was taken as
    /// (logged with the row, as `verify` and `batch` log theirs).
    pub input_kind: crate::verify::InputKind,
    pub taken_as: crate::verify::QuestionedKind,
}

/// What the clerk did with a verification.
#[derive(Clone, Debug, PartialEq)]
pub enum FinalAction {
    Confirm,
    Override {
        decision: Decision,
        reason: String,
    },
    /// Shown, then left undecided (next cheque, a redrawn box): logged so no shown result vanishes.
    Abandoned,
}

/// One decision as the screens list it: the store's row (the record, the action and the decision in
/// force), formatted where it is shown.
pub use crate::store::DecisionRow;

/// The action in force as the lists show it, saying when the signature box was drawn by hand.
pub fn action_label(row: &DecisionRow) -> String {
    let action = row.effective_action().as_str();
    if row.record.hand_drawn_box {
        format!("{action} (box by hand)")
    } else {
        action.to_string()
    }
}

/// A decision's time as the screens show it: `YYYY-MM-DD HH:MM:SS`, UTC.
pub fn shown_time(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .unwrap_or_default()
}

/// Filters of the Audit screen; empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditFilter {
    /// Inclusive dates, `YYYY-MM-DD`.
    pub from: String,
    pub to: String,
    pub operator: String,
    pub account: String,
    /// The model's decision.
    pub decision: Option<Decision>,
    /// The decision in force (after overrides and resolutions).
    pub final_decision: Option<Decision>,
    /// The action in force (confirm, override, pending, resolve, abandoned).
    pub action: Option<crate::store::FinalAction>,
    /// Only cheques waiting in the referral queue.
    pub open_referrals: bool,
    /// Only decisions whose signature box was drawn by hand.
    pub hand_drawn: bool,
}

/// Detail of one decision, with the images where the store has them.
#[derive(Clone, Debug)]
pub struct DecisionDetail {
    pub row: DecisionRow,
    /// The questioned signature as the network saw it, logged with the decision.
    pub signature: Option<Gray>,
    /// Why there is no logged signature, or why it cannot be trusted.
    pub signature_note: Option<String>,
    pub cheque: Option<Gray>,
    pub reference: Option<Gray>,
    pub fields: Vec<(String, String)>,
}

/// The result of walking the hash chain.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainReport {
    pub ok: bool,
    pub rows_checked: u64,
    pub message: String,
}

/// An evaluation of the active model on a labelled folder, as the Calibrate screen needs it: what
/// [`crate::assess::calibrate`] found, and the scored pairs behind it.
#[derive(Clone, Debug, Default)]
pub struct EvalSummary {
    /// Calibrated probabilities of genuine pairs and of forgery pairs (skilled and random).
    pub genuine: Vec<f64>,
    pub forgery: Vec<f64>,
    /// ROC points (FAR, TPR) and DET points (FAR, FRR), each in [0, 1].
    pub roc: Vec<(f64, f64)>,
    pub det: Vec<(f64, f64)>,
    pub eer: f64,
    pub eer_threshold: f64,
    pub model_id: String,
    pub writers: usize,
    pub current: Option<Thresholds>,
    /// The calibration fitted on this data (a change of its own, requested apart from thresholds).
    pub calibration: Option<crate::scoring::Calibration>,
    /// The calibration in force now (store settings, else the model card; `None`: none, so every
    /// cheque is referred), to show before and after.
    pub calibration_in_force: Option<crate::scoring::Calibration>,
    /// The highest score the model's scoring stage can give (cosine: 1), when it is bounded.
    pub score_ceiling: Option<f64>,
    /// The thresholds `countersign calibrate` chooses on this data with its default target FAR.
    pub proposed: Option<crate::scoring::ThresholdChoice>,
    /// The raw scores of the protocol's pairs and their labels (true: genuine).
    pub scores: Vec<f64>,
    pub labels: Vec<bool>,
    /// Genuine signatures per writer used as references.
    pub references: usize,
}

impl EvalSummary {
    /// The raw scores behind `genuine`, to see them through either calibration.
    pub fn genuine_scores(&self) -> Vec<f64> {
        self.scores_labelled(true)
    }

    /// The raw scores behind `forgery`.
    pub fn forgery_scores(&self) -> Vec<f64> {
        self.scores_labelled(false)
    }

    fn scores_labelled(&self, genuine: bool) -> Vec<f64> {
        self.scores
            .iter()
            .zip(&self.labels)
            .filter(|(_, l)| **l == genuine)
            .map(|(s, _)| *s)
            .collect()
    }

    /// The thresholds `countersign calibrate --target-far TARGET` chooses on this data (same rule,
    /// same refer band), for the fitted calibration.
    pub fn thresholds_for(
        &self,
        target_far: f64,
    ) -> Result<crate::scoring::ThresholdChoice, crate::scoring::ScoringError> {
        let calibration = self.calibration.ok_or_else(|| {
            crate::scoring::ScoringError::InvalidParameter("no calibration was fitted".into())
        })?;
        crate::scoring::choose_thresholds(
            &self.scores,
            &self.labels,
            &calibration,
            target_far,
            crate::assess::DEFAULT_REFER_BAND,
        )
    }
}

/// Options of the Train screen.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    pub data: PathBuf,
    pub out: PathBuf,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub synthetic_writers: usize,
    pub triplet: bool,
    pub seed: u64,
    /// Fine-tune: start from these weights (with their card) instead of a fresh network.
    pub init: Option<PathBuf>,
}

/// Progress of a training run.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainUpdate {
    /// One step: `x` is the position in epochs (for the loss plot), `fraction` the share of the run done.
    Step {
        x: f64,
        fraction: f32,
        loss: f64,
    },
    Epoch {
        epoch: usize,
        train_loss: f64,
        val_eer: f64,
    },
    Message(String),
    Finished {
        model_path: PathBuf,
        card: Vec<(String, String)>,
    },
    /// The run was stopped before its last epoch: no model was written; what was kept is named.
    Stopped {
        epochs_completed: u32,
        epochs: u32,
        /// The checkpoint (the last full epoch plus the partial one); starting again with the same
        /// output continues from it.
        checkpoint: PathBuf,
        /// The best epoch's weights so far, when validation ran.
        best: Option<PathBuf>,
    },
}

/// One result row of a batch run.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchRow {
    pub cheque_id: String,
    pub account: String,
    /// `ACCEPT`, `REFER`, `REJECT` or `ERROR`.
    pub outcome: String,
    pub probability: Option<f64>,
    pub score: Option<f64>,
    pub error: String,
    /// Why the decision was taken (thresholds used, or why it was referred).
    pub reason: String,
}

/// What the status bar shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusInfo {
    pub device: String,
    pub model: String,
    pub database: String,
    /// The X9 account rule in force (the Batch screen shows it).
    pub x9_account_rule: String,
    /// The thresholds a supervisor's approved settings put in force (`None` while none were ever
    /// approved: the model card's apply). Read again after every approval, so screens never show a
    /// stale "in force now".
    pub thresholds_in_force: Option<Thresholds>,
    /// The probability calibration an approved calibration change put in force (`None` while none
    /// was approved: the model card's applies). Read again with the thresholds.
    pub calibration_in_force: Option<crate::scoring::Calibration>,
}

pub(super) fn role_of(r: crate::store::Role) -> Role {
    match r {
        crate::store::Role::Clerk => Role::Clerk,
        crate::store::Role::Supervisor => Role::Supervisor,
        crate::store::Role::Auditor => Role::Auditor,
    }
}
