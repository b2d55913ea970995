//! Calibration: from a raw score to the probability that the signature is genuine.
//!
//! The stored default is Platt scaling, `P(genuine | s) = sigmoid(a * s + b)` ([`Calibration`],
//! [`fit_platt`]): two parameters, monotone, and well-behaved with a few hundred labelled pairs.
//! Isotonic regression ([`fit_isotonic`]) makes no shape assumption but needs much more data; it is
//! refused below [`ISOTONIC_MIN_PAIRS`] pairs or [`ISOTONIC_MIN_PER_CLASS`] pairs of either class.

use serde::{Deserialize, Serialize};

use super::error::check_labelled;
use super::{Calibration, ScoringError};

/// `1 / (1 + exp(-x))` without overflow for large |x|.
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl Calibration {
    /// The calibrated probability that a signature with raw score `score` is genuine:
    /// `sigmoid(a * score + b)`, in [0, 1]. A NaN score gives NaN, which [`super::decide`] refers.
    pub fn probability(&self, score: f64) -> f64 {
        sigmoid(self.a * score + self.b)
    }

    /// The raw score at which the probability equals `p` (the inverse of [`Calibration::probability`]),
    /// for showing a probability threshold on a score histogram. `None` when `a == 0` or `p` is not
    /// strictly inside (0, 1).
    pub fn score_for_probability(&self, p: f64) -> Option<f64> {
        if !(p > 0.0 && p < 1.0) || self.a == 0.0 || !self.a.is_finite() {
            return None;
        }
        Some(((p / (1.0 - p)).ln() - self.b) / self.a)
    }
}

/// Fits Platt scaling on labelled scores (`labels[i]` is true for a genuine signature).
///
/// The algorithm is Platt (1999) as corrected by Lin, Lin and Weng (2007), "A note on Platt's
/// probabilistic outputs for support vector machines": the 0/1 labels are replaced by the smoothed
/// targets `(N+ + 1) / (N+ + 2)` and `1 / (N- + 2)`, which keeps the optimum finite even when the
/// classes are perfectly separated; the negative log-likelihood is minimised by Newton's method with
/// a backtracking (Armijo) line search and a tiny ridge on the Hessian, computed in a form that never
/// overflows. Errors: length mismatch, non-finite scores, or one class empty.
pub fn fit_platt(scores: &[f64], labels: &[bool]) -> Result<Calibration, ScoringError> {
    let (n_pos, n_neg) = check_labelled(scores, labels, "Platt calibration")?;
    let hi = (n_pos as f64 + 1.0) / (n_pos as f64 + 2.0);
    let lo = 1.0 / (n_neg as f64 + 2.0);
    let targets: Vec<f64> = labels.iter().map(|&l| if l { hi } else { lo }).collect();

    // Lin et al. write the model as P = 1 / (1 + exp(A s + B)); we keep their parametrisation in the
    // loop (so the code can be checked line by line against the paper) and return a = -A, b = -B.
    const MAX_ITER: usize = 100;
    const MIN_STEP: f64 = 1e-10;
    const SIGMA: f64 = 1e-12;
    const EPS: f64 = 1e-5;

    let objective = |a: f64, b: f64| -> f64 {
        scores
            .iter()
            .zip(&targets)
            .map(|(&s, &t)| {
                let f = s * a + b;
                if f >= 0.0 {
                    t * f + (-f).exp().ln_1p()
                } else {
                    (t - 1.0) * f + f.exp().ln_1p()
                }
            })
            .sum()
    };

    let mut a = 0.0;
    let mut b = ((n_neg as f64 + 1.0) / (n_pos as f64 + 1.0)).ln();
    let mut fval = objective(a, b);
    for _ in 0..MAX_ITER {
        let (mut h11, mut h22, mut h21, mut g1, mut g2) = (SIGMA, SIGMA, 0.0, 0.0, 0.0);
        for (&s, &t) in scores.iter().zip(&targets) {
            let f = s * a + b;
            // p = P(genuine) = 1 / (1 + exp(f)), q = 1 - p, both computed without overflow.
            let (p, q) = if f >= 0.0 {
                let e = (-f).exp();
                (e / (1.0 + e), 1.0 / (1.0 + e))
            } else {
                let e = f.exp();
                (1.0 / (1.0 + e), e / (1.0 + e))
            };
            let d2 = p * q;
            h11 += s * s * d2;
            h22 += d2;
            h21 += s * d2;
            let d1 = t - p;
            g1 += s * d1;
            g2 += d1;
        }
        if g1.abs() < EPS && g2.abs() < EPS {
            break;
        }
        let det = h11 * h22 - h21 * h21;
        if !(det.is_finite() && det > 0.0) {
            break;
        }
        let da = -(h22 * g1 - h21 * g2) / det;
        let db = -(-h21 * g1 + h11 * g2) / det;
        let gd = g1 * da + g2 * db;
        let mut step = 1.0;
        let mut accepted = false;
        while step >= MIN_STEP {
            let (na, nb) = (a + step * da, b + step * db);
            let nf = objective(na, nb);
            if nf < fval + 1e-4 * step * gd {
                a = na;
                b = nb;
                fval = nf;
                accepted = true;
                break;
            }
            step /= 2.0;
        }
        if !accepted {
            // The line search cannot improve further: we are at the optimum to machine precision.
            break;
        }
    }
    if !(a.is_finite() && b.is_finite()) {
        return Err(ScoringError::NotEnoughData(
            "Platt calibration did not converge to finite parameters".to_string(),
        ));
    }
    Ok(Calibration { a: -a, b: -b })
}

/// Isotonic calibration needs at least this many labelled pairs in total.
pub const ISOTONIC_MIN_PAIRS: usize = 1000;
/// ... and at least this many of each class.
pub const ISOTONIC_MIN_PER_CLASS: usize = 200;

/// A monotone (non-decreasing), piecewise-linear calibration curve from isotonic regression: the block means
/// of the pool-adjacent-violators fit at the blocks' mean scores, linearly interpolated in between
/// and held constant beyond the ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IsotonicCalibration {
    /// Knot positions (mean raw score of each PAV block), strictly increasing.
    pub scores: Vec<f64>,
    /// Probability at each knot, non-decreasing, strictly inside (0, 1).
    pub probabilities: Vec<f64>,
}

impl IsotonicCalibration {
    /// The calibrated probability at `score` (NaN for a NaN score).
    pub fn probability(&self, score: f64) -> f64 {
        let (xs, ys) = (&self.scores, &self.probabilities);
        if score.is_nan() || xs.is_empty() || xs.len() != ys.len() {
            return f64::NAN;
        }
        let last = xs.len() - 1;
        if score <= xs[0] {
            return ys[0];
        }
        if score >= xs[last] {
            return ys[last];
        }
        // First knot strictly greater than score; it exists and is > 0 by the checks above.
        let hi = xs.partition_point(|&x| x <= score);
        let lo = hi - 1;
        let t = (score - xs[lo]) / (xs[hi] - xs[lo]);
        ys[lo] + t * (ys[hi] - ys[lo])
    }
}

/// Fits isotonic regression (pool adjacent violators) of the label on the score. The labels are
/// smoothed exactly as in [`fit_platt`] so that no probability is exactly 0 or 1. Refused with
/// [`ScoringError::NotEnoughData`] below [`ISOTONIC_MIN_PAIRS`] pairs or [`ISOTONIC_MIN_PER_CLASS`]
/// per class: with less data the step function overfits and Platt is the better choice.
pub fn fit_isotonic(scores: &[f64], labels: &[bool]) -> Result<IsotonicCalibration, ScoringError> {
    let (n_pos, n_neg) = check_labelled(scores, labels, "isotonic calibration")?;
    if scores.len() < ISOTONIC_MIN_PAIRS || n_pos.min(n_neg) < ISOTONIC_MIN_PER_CLASS {
        return Err(ScoringError::NotEnoughData(format!(
            "isotonic calibration needs >= {ISOTONIC_MIN_PAIRS} pairs with >= \
             {ISOTONIC_MIN_PER_CLASS} of each class; got {n_pos} genuine and {n_neg} forgeries \
             (use Platt scaling)"
        )));
    }
    let hi = (n_pos as f64 + 1.0) / (n_pos as f64 + 2.0);
    let lo = 1.0 / (n_neg as f64 + 2.0);
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&i, &j| scores[i].total_cmp(&scores[j]));

    // Each block: (sum of targets, sum of scores, count). Tied scores are pooled first so that the
    // fit is a function of the score.
    let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
    let mut prev_score = f64::NAN;
    for &i in &order {
        let t = if labels[i] { hi } else { lo };
        match blocks.last_mut() {
            Some(last) if scores[i] == prev_score => {
                last.0 += t;
                last.1 += scores[i];
                last.2 += 1.0;
            }
            _ => blocks.push((t, scores[i], 1.0)),
        }
        prev_score = scores[i];
        // Pool while the previous block's mean exceeds the last block's mean.
        while blocks.len() >= 2 {
            let n = blocks.len();
            let (b1, b2) = (blocks[n - 2], blocks[n - 1]);
            if b1.0 / b1.2 > b2.0 / b2.2 {
                blocks[n - 2] = (b1.0 + b2.0, b1.1 + b2.1, b1.2 + b2.2);
                blocks.pop();
            } else {
                break;
            }
        }
    }
    let mut xs = Vec::with_capacity(blocks.len());
    let mut ys = Vec::with_capacity(blocks.len());
    for (t, s, n) in blocks {
        let x = s / n;
        // Pooled mean scores are strictly increasing in exact arithmetic; guard against rounding.
        if xs.last().is_some_and(|&l: &f64| x <= l) {
            continue;
        }
        xs.push(x);
        ys.push(t / n);
    }
    Ok(IsotonicCalibration {
        scores: xs,
        probabilities: ys,
    })
}

/// A fitted calibration of either kind. Platt ([`Calibration`]) is what model cards and settings
/// store by default; isotonic is an option for banks with large labelled archives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CalibrationModel {
    Platt(Calibration),
    Isotonic(IsotonicCalibration),
}

impl CalibrationModel {
    /// The calibrated probability that a signature with raw score `score` is genuine.
    pub fn probability(&self, score: f64) -> f64 {
        match self {
            CalibrationModel::Platt(c) => c.probability(score),
            CalibrationModel::Isotonic(c) => c.probability(score),
        }
    }
}

impl From<Calibration> for CalibrationModel {
    fn from(c: Calibration) -> Self {
        CalibrationModel::Platt(c)
    }
}
