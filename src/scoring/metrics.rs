//! Verification metrics, with conventions fixed so that every figure can be checked by hand.
//!
//! Conventions used throughout:
//!
//! - A **score** is higher for more genuine-looking signatures; a threshold `t` **accepts** a score
//!   `s` when `s >= t`. Labels are `true` for genuine, `false` for forgery.
//! - **FAR(t)** (false accept rate) = forgeries with `s >= t` / forgeries. **FRR(t)** (false reject
//!   rate) = genuine with `s < t` / genuine. FAR never increases and FRR never decreases as `t` rises.
//! - The **ROC** has one point per distinct score value `t` (plus a first point at a threshold just
//!   above the highest score, which accepts nothing): `FPR = FAR(t)`, `TPR = 1 - FRR(t)`. Tied scores
//!   move together, so a tie between a genuine and a forgery gives a diagonal step.
//! - **AUC** is the Mann-Whitney statistic: the fraction of (genuine, forgery) pairs where the genuine
//!   scores higher, with ties counting 1/2. It equals the trapezoidal area under the ROC above.
//! - **EER**: walking the ROC from the strictest threshold, FAR - FRR goes from -1 to +1; on the
//!   first segment where it changes sign (to >= 0) the two rates are interpolated linearly and the
//!   EER is where they meet. This is the rate a randomised choice between the two neighbouring
//!   thresholds would achieve, and it makes all-tied scores give exactly 0.5. The reported
//!   threshold is the end of that segment whose `|FAR - FRR|` is smaller (the stricter one on a tie),
//!   with its actual FAR and FRR.
//! - **DET** points are `(probit(FAR), probit(FRR))` on the ROC thresholds; rates are clamped to
//!   `[0.5 / n, 1 - 0.5 / n]` of their class (half a sample) so that the points stay finite.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ScoringError;
use super::error::{check_finite, check_labelled};
use super::evaluation::ScoredPair;

/// FAR and FRR at one threshold.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FarFrr {
    pub threshold: f64,
    pub far: f64,
    pub frr: f64,
}

/// FAR and FRR at threshold `t` (accept when `score >= t`). Errors on mismatched lengths, NaN
/// scores or threshold, or an empty class.
pub fn far_frr(scores: &[f64], labels: &[bool], threshold: f64) -> Result<FarFrr, ScoringError> {
    let (n_pos, n_neg) = check_labelled(scores, labels, "FAR/FRR")?;
    if threshold.is_nan() {
        return Err(ScoringError::InvalidParameter(
            "threshold is NaN".to_string(),
        ));
    }
    let mut false_accepts = 0usize;
    let mut false_rejects = 0usize;
    for (&s, &l) in scores.iter().zip(labels) {
        match (l, s >= threshold) {
            (false, true) => false_accepts += 1,
            (true, false) => false_rejects += 1,
            _ => {}
        }
    }
    Ok(FarFrr {
        threshold,
        far: false_accepts as f64 / n_neg as f64,
        frr: false_rejects as f64 / n_pos as f64,
    })
}

/// One point of the ROC: accepting `score >= threshold` gives this false and true positive rate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    pub threshold: f64,
    /// False positive rate = FAR.
    pub fpr: f64,
    /// True positive rate = 1 - FRR.
    pub tpr: f64,
}

impl RocPoint {
    pub fn far(&self) -> f64 {
        self.fpr
    }
    pub fn frr(&self) -> f64 {
        1.0 - self.tpr
    }
}

/// The full ROC, from the strictest threshold (a value just above the highest score: FPR = TPR = 0)
/// down to the lowest score (FPR = TPR = 1), one point per distinct score.
pub fn roc_points(scores: &[f64], labels: &[bool]) -> Result<Vec<RocPoint>, ScoringError> {
    let (n_pos, n_neg) = check_labelled(scores, labels, "ROC")?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]));
    let top = scores[order[0]];
    let mut points = Vec::with_capacity(scores.len() + 1);
    points.push(RocPoint {
        threshold: top.next_up(),
        fpr: 0.0,
        tpr: 0.0,
    });
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < order.len() {
        let t = scores[order[i]];
        // All scores tied at t are accepted together by the threshold t.
        while i < order.len() && scores[order[i]] == t {
            if labels[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        points.push(RocPoint {
            threshold: t,
            fpr: fp as f64 / n_neg as f64,
            tpr: tp as f64 / n_pos as f64,
        });
    }
    Ok(points)
}

/// Area under the ROC by the Mann-Whitney statistic, ties counting 1/2 (average ranks). In [0, 1];
/// 0.5 is chance, 1 is perfect separation.
pub fn auc(scores: &[f64], labels: &[bool]) -> Result<f64, ScoringError> {
    let (n_pos, n_neg) = check_labelled(scores, labels, "AUC")?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&i, &j| scores[i].total_cmp(&scores[j]));
    // Sum of the (1-based, tie-averaged) ranks of the genuine scores.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += avg_rank * order[i..j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j;
    }
    let (p, n) = (n_pos as f64, n_neg as f64);
    let u = rank_sum - p * (p + 1.0) / 2.0;
    Ok((u / (p * n)).clamp(0.0, 1.0))
}

/// The equal error rate and an operating threshold near it (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EerResult {
    /// The interpolated rate where FAR = FRR, in [0, 1].
    pub eer: f64,
    /// A real threshold next to the crossing (accept `score >= threshold`).
    pub threshold: f64,
    /// FAR at `threshold`.
    pub far: f64,
    /// FRR at `threshold`.
    pub frr: f64,
}

/// The equal error rate (see the module documentation for the interpolation convention).
pub fn eer(scores: &[f64], labels: &[bool]) -> Result<EerResult, ScoringError> {
    let roc = roc_points(scores, labels)?;
    Ok(eer_from_roc(&roc))
}

/// EER from a full ROC as built by [`roc_points`] (at least two points, first FAR 0 / FRR 1, last
/// FAR 1 / FRR 0).
pub(crate) fn eer_from_roc(roc: &[RocPoint]) -> EerResult {
    let diff = |p: &RocPoint| p.far() - p.frr();
    for w in roc.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if diff(a) < 0.0 && diff(b) >= 0.0 {
            // Solve far_a + l (far_b - far_a) = frr_a + l (frr_b - frr_a) for l in (0, 1].
            let denom = (b.far() - a.far()) - (b.frr() - a.frr());
            let l = if denom > 0.0 {
                ((a.frr() - a.far()) / denom).clamp(0.0, 1.0)
            } else {
                1.0
            };
            let rate = a.far() + l * (b.far() - a.far());
            let best = if diff(a).abs() <= diff(b).abs() { a } else { b };
            return EerResult {
                eer: rate.clamp(0.0, 1.0),
                threshold: best.threshold,
                far: best.far(),
                frr: best.frr(),
            };
        }
    }
    // Unreachable for a ROC from `roc_points` (it starts at diff -1 and ends at +1); fall back to
    // the worst case rather than panicking.
    let last = roc.last().copied().unwrap_or(RocPoint {
        threshold: f64::NAN,
        fpr: 1.0,
        tpr: 1.0,
    });
    EerResult {
        eer: 0.5,
        threshold: last.threshold,
        far: last.far(),
        frr: last.frr(),
    }
}

/// One DET point: FAR and FRR at a threshold and their probits (normal deviates).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetPoint {
    pub threshold: f64,
    pub far: f64,
    pub frr: f64,
    /// `inverse_normal_cdf(clamped FAR)`.
    pub far_probit: f64,
    /// `inverse_normal_cdf(clamped FRR)`.
    pub frr_probit: f64,
}

/// DET points on every ROC threshold (see the module documentation for the clamping).
pub fn det_points(scores: &[f64], labels: &[bool]) -> Result<Vec<DetPoint>, ScoringError> {
    let (n_pos, n_neg) = check_labelled(scores, labels, "DET")?;
    let roc = roc_points(scores, labels)?;
    Ok(det_from_roc(&roc, n_pos, n_neg))
}

pub(crate) fn det_from_roc(roc: &[RocPoint], n_pos: usize, n_neg: usize) -> Vec<DetPoint> {
    let clamp = |rate: f64, n: usize| {
        let eps = 0.5 / n.max(1) as f64;
        rate.clamp(eps, 1.0 - eps)
    };
    roc.iter()
        .map(|p| DetPoint {
            threshold: p.threshold,
            far: p.far(),
            frr: p.frr(),
            far_probit: inverse_normal_cdf(clamp(p.far(), n_neg)),
            frr_probit: inverse_normal_cdf(clamp(p.frr(), n_pos)),
        })
        .collect()
}

/// The inverse of the standard normal CDF (the probit), by Acklam's rational approximation (relative
/// error below 1.2e-9). Returns -inf at 0, +inf at 1 and NaN outside [0, 1].
pub fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.02425;
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

/// Counts of values in `bins` equal-width bins over `[lo, hi]`. Bin `i` holds
/// `lo + i w <= v < lo + (i + 1) w` (the last bin also holds `hi`); values outside the range are
/// counted in the first or last bin so that no sample disappears from a plot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<usize>,
}

impl Histogram {
    /// Width of one bin.
    pub fn bin_width(&self) -> f64 {
        (self.hi - self.lo) / self.counts.len().max(1) as f64
    }
    /// The `[start, end)` edges of bin `i`.
    pub fn bin_edges(&self, i: usize) -> (f64, f64) {
        let w = self.bin_width();
        (self.lo + i as f64 * w, self.lo + (i + 1) as f64 * w)
    }
}

/// Builds a [`Histogram`]. Errors when `bins == 0`, the range is not finite with `lo < hi`, or a
/// value is not finite.
pub fn histogram(values: &[f64], lo: f64, hi: f64, bins: usize) -> Result<Histogram, ScoringError> {
    if bins == 0 {
        return Err(ScoringError::InvalidParameter(
            "a histogram needs at least one bin".to_string(),
        ));
    }
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(ScoringError::InvalidParameter(format!(
            "histogram range [{lo}, {hi}] is not a finite range with lo < hi"
        )));
    }
    check_finite(values, "histogram value")?;
    let mut counts = vec![0usize; bins];
    let w = (hi - lo) / bins as f64;
    for &v in values {
        let idx = ((v - lo) / w).floor();
        let idx = if idx < 0.0 {
            0
        } else {
            (idx as usize).min(bins - 1)
        };
        counts[idx] += 1;
    }
    Ok(Histogram { lo, hi, counts })
}

/// The most accepting threshold whose FAR on the given data is at most `target_far`, with its FAR
/// and FRR. The threshold is placed halfway between the lowest accepted score and the next lower
/// distinct score (the first one that would break the target), so it accepts exactly the same data
/// while leaving a margin on both sides. When no threshold meets the target except accepting
/// nothing, the threshold is just above the highest score (FAR 0, FRR 1).
pub fn threshold_for_far(
    scores: &[f64],
    labels: &[bool],
    target_far: f64,
) -> Result<FarFrr, ScoringError> {
    if !(target_far.is_finite() && (0.0..=1.0).contains(&target_far)) {
        return Err(ScoringError::InvalidParameter(format!(
            "target FAR {target_far} is not a rate in [0, 1]"
        )));
    }
    let roc = roc_points(scores, labels)?;
    // FAR is non-decreasing along the ROC; take the last point that still meets the target.
    let k = roc.iter().rposition(|p| p.fpr <= target_far).unwrap_or(0);
    let chosen = roc[k];
    let threshold = match roc.get(k + 1) {
        // k = 0 is the "accept nothing" point whose threshold is already above every score.
        Some(next) if k > 0 => {
            let mid = chosen.threshold / 2.0 + next.threshold / 2.0;
            if mid > next.threshold && mid <= chosen.threshold {
                mid
            } else {
                chosen.threshold
            }
        }
        _ => chosen.threshold,
    };
    Ok(FarFrr {
        threshold,
        far: chosen.far(),
        frr: chosen.frr(),
    })
}

/// Which forgeries a writer's EER was measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriterEerBasis {
    /// Genuine vs the writer's skilled forgeries.
    Skilled,
    /// Genuine vs random forgeries (the writer has no skilled forgeries).
    Random,
}

/// The EER of one writer with a threshold of their own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WriterEer {
    pub writer: String,
    pub basis: WriterEerBasis,
    pub eer: f64,
    pub genuine: usize,
    pub forgeries: usize,
}

/// The EER of each writer (sorted by writer), genuine vs that writer's skilled forgeries, or vs their
/// random forgeries when they have no skilled ones. Writers without questioned genuine signatures or
/// without any forgery are left out. Errors on a non-finite score.
pub fn per_writer_eer(pairs: &[ScoredPair]) -> Result<Vec<WriterEer>, ScoringError> {
    let mut by_writer: BTreeMap<&str, Vec<&ScoredPair>> = BTreeMap::new();
    for (index, p) in pairs.iter().enumerate() {
        if !p.score.is_finite() {
            return Err(ScoringError::NonFinite {
                what: "score",
                index,
                value: p.score,
            });
        }
        by_writer.entry(p.writer.as_str()).or_default().push(p);
    }
    let mut out = Vec::new();
    for (writer, ps) in by_writer {
        let genuine: Vec<f64> = ps.iter().filter(|p| p.genuine).map(|p| p.score).collect();
        let skilled: Vec<f64> = ps.iter().filter(|p| p.skilled).map(|p| p.score).collect();
        let random: Vec<f64> = ps
            .iter()
            .filter(|p| !p.genuine && !p.skilled)
            .map(|p| p.score)
            .collect();
        let (basis, forgeries) = if !skilled.is_empty() {
            (WriterEerBasis::Skilled, skilled)
        } else {
            (WriterEerBasis::Random, random)
        };
        if genuine.is_empty() || forgeries.is_empty() {
            continue;
        }
        let (scores, labels) = join(&genuine, &forgeries);
        let e = eer(&scores, &labels)?;
        out.push(WriterEer {
            writer: writer.to_string(),
            basis,
            eer: e.eer,
            genuine: genuine.len(),
            forgeries: forgeries.len(),
        });
    }
    Ok(out)
}

/// Concatenates genuine and forgery scores into one (scores, labels) pair of lists.
pub(crate) fn join(genuine: &[f64], forgeries: &[f64]) -> (Vec<f64>, Vec<bool>) {
    let mut scores = Vec::with_capacity(genuine.len() + forgeries.len());
    scores.extend_from_slice(genuine);
    scores.extend_from_slice(forgeries);
    let mut labels = vec![true; genuine.len()];
    labels.resize(scores.len(), false);
    (scores, labels)
}

/// At most `max` points of a curve, evenly spaced by index, always keeping the first and the last.
pub fn downsample<T: Clone>(points: &[T], max: usize) -> Vec<T> {
    if points.len() <= max {
        return points.to_vec();
    }
    match max {
        0 => Vec::new(),
        1 => points[..1].to_vec(),
        _ => {
            let last = points.len() - 1;
            let mut out = Vec::with_capacity(max);
            let mut prev = usize::MAX;
            for i in 0..max {
                // Integer arithmetic: exact, and index `last` is reached at i = max - 1.
                let idx = i * last / (max - 1);
                if idx != prev {
                    out.push(points[idx].clone());
                    prev = idx;
                }
            }
            out
        }
    }
}
