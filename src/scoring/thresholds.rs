//! Choosing the two decision thresholds on labelled calibration data.
//!
//! The rule, on the calibrated probabilities of the labelled pairs:
//!
//! - `accept` is the most accepting probability threshold whose false accept rate on the data is at
//!   most `target_far` ([`threshold_for_far`]): the bank's stated risk appetite.
//! - `reject` is the highest probability threshold below which at most a fraction `refer_band` of
//!   the genuine signatures fall: "confident of forgery" means that auto-rejecting costs at most
//!   `refer_band` of honest customers. It is capped at `accept`, so the REFER band
//!   `[reject, accept)` is never negative.
//!
//! To set the accept threshold at the EER instead of a target FAR, pass the FAR at the EER
//! threshold: `target_far = eer(&scores, &labels)?.far` (the calibration is monotone, so the FAR of
//! a score threshold and of the matching probability threshold are the same).

use serde::{Deserialize, Serialize};

use super::error::check_labelled;
use super::metrics::{far_frr, threshold_for_far};
use super::{Calibration, ScoringError, Thresholds};

/// The chosen thresholds and what they give on the data they were chosen on.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdChoice {
    pub thresholds: Thresholds,
    /// The requested maximum false accept rate.
    pub target_far: f64,
    /// The requested maximum fraction of genuine signatures rejected outright.
    pub refer_band: f64,
    /// Forgeries accepted (`p >= accept`) / forgeries. Always `<= target_far`.
    pub far: f64,
    /// Genuine not accepted (`p < accept`) / genuine.
    pub frr: f64,
    /// Genuine rejected (`p < reject`) / genuine. Always `<= refer_band`.
    pub genuine_rejected: f64,
    /// All pairs referred (`reject <= p < accept`) / all pairs.
    pub refer_rate: f64,
}

/// Chooses `accept` and `reject` probability thresholds (module documentation) from labelled raw
/// scores (`labels[i]` true = genuine) and a fitted calibration. Errors: length mismatch, NaN
/// scores, an empty class, `target_far` or `refer_band` outside [0, 1], or a calibration whose
/// slope is not positive (a higher score must mean a more probably genuine signature).
pub fn choose_thresholds(
    scores: &[f64],
    labels: &[bool],
    calibration: &Calibration,
    target_far: f64,
    refer_band: f64,
) -> Result<ThresholdChoice, ScoringError> {
    check_labelled(scores, labels, "threshold choice")?;
    if !(refer_band.is_finite() && (0.0..=1.0).contains(&refer_band)) {
        return Err(ScoringError::InvalidParameter(format!(
            "refer band {refer_band} is not a rate in [0, 1]"
        )));
    }
    if !(calibration.a.is_finite() && calibration.b.is_finite() && calibration.a > 0.0) {
        return Err(ScoringError::InvalidParameter(format!(
            "calibration sigmoid({} s + {}) must have a finite positive slope",
            calibration.a, calibration.b
        )));
    }
    let probs: Vec<f64> = scores.iter().map(|&s| calibration.probability(s)).collect();
    let accept_point = threshold_for_far(&probs, labels, target_far)?;
    // Probabilities live in [0, 1]; "accept nothing" is a threshold just above the top probability,
    // which can exceed 1 only when some probability is exactly 1. Clamp and keep the FAR honest.
    let accept = accept_point.threshold.clamp(0.0, 1.0);

    let mut genuine: Vec<f64> = probs
        .iter()
        .zip(labels)
        .filter(|&(_, &l)| l)
        .map(|(&p, _)| p)
        .collect();
    genuine.sort_by(f64::total_cmp);
    let n = genuine.len();
    // At most m genuine may lie strictly below `reject`; `genuine[m]` has at most m below it.
    let m = (refer_band * n as f64 + 1e-9).floor() as usize;
    let reject = if m >= n {
        accept
    } else {
        genuine[m].min(accept)
    };
    let thresholds = Thresholds { accept, reject };
    thresholds.validate()?;

    let at_accept = far_frr(&probs, labels, accept)?;
    if at_accept.far > target_far {
        // Only possible when forgeries reach a probability of exactly 1, so that no threshold in
        // [0, 1] rejects them; better to say so than to store a threshold that breaks the target.
        return Err(ScoringError::NotEnoughData(format!(
            "no accept threshold in [0, 1] gives FAR <= {target_far}: forgeries saturate the \
             calibration at probability 1 (FAR {:.4}); refit the calibration",
            at_accept.far
        )));
    }
    let at_reject = far_frr(&probs, labels, reject)?;
    let referred = probs.iter().filter(|&&p| p >= reject && p < accept).count();
    Ok(ThresholdChoice {
        thresholds,
        target_far,
        refer_band,
        far: at_accept.far,
        frr: at_accept.frr,
        genuine_rejected: at_reject.frr,
        refer_rate: referred as f64 / probs.len() as f64,
    })
}
