//! Metric-learning losses over one batch of L2-normalised embeddings.
//!
//! A batch holds P writers x K genuine samples, plus skilled forgeries of some of those writers. A
//! forgery is never an anchor or a positive (who forged it is not a label we trust); it is a negative
//! for every genuine sample, and the hardest kind of negative for its own writer. Pairs of two
//! forgeries are left out: two forgeries of one writer may come from the same forger.
//!
//! - **Triplet** (Schroff et al. 2015, FaceNet) with online semi-hard mining: every (anchor, positive)
//!   pair of a writer takes the closest negative that is still farther than the positive but within
//!   the margin; when there is none, the farthest negative (so the triplet contributes nothing harmful).
//! - **Contrastive** (Hadsell et al. 2006, as in SigNet): every pair; positives pulled together,
//!   negatives pushed beyond a margin; positive and negative terms averaged separately so the many
//!   negatives do not drown the few positives.
//!
//! Distances are Euclidean between unit vectors, in [0, 2] (`d^2 = 2 - 2 cos`).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Which loss to train with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    Triplet,
    Contrastive,
}

impl LossKind {
    /// A sensible margin for each loss on unit-length embeddings.
    pub fn default_margin(self) -> f64 {
        match self {
            LossKind::Triplet => 0.3,
            LossKind::Contrastive => 1.0,
        }
    }
}

/// What one sample of the batch is: its writer (index) and whether it is a genuine signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLabel {
    pub writer: usize,
    pub genuine: bool,
}

fn is_negative(a: BatchLabel, b: BatchLabel) -> bool {
    // Two forgeries are never paired (module documentation).
    (a.genuine || b.genuine) && (a.writer != b.writer || a.genuine != b.genuine)
}

fn is_positive(a: BatchLabel, b: BatchLabel) -> bool {
    a.genuine && b.genuine && a.writer == b.writer
}

/// Pairwise Euclidean distances `[n, n]` of unit-length rows.
pub fn pairwise_distances(emb: &Tensor) -> Result<Tensor, tch::TchError> {
    let gram = emb.f_matmul(&emb.f_transpose(0, 1)?)?;
    // 2 - 2 cos, floored above zero so the square root keeps a finite gradient.
    let sq = (gram.f_mul_scalar(-2.0)?.f_add_scalar(2.0)?).f_clamp_min(1e-9)?;
    sq.f_sqrt()
}

/// The loss of one batch, or `None` when the batch holds no usable pair (e.g. one writer only).
pub fn batch_loss(
    kind: LossKind,
    emb: &Tensor,
    labels: &[BatchLabel],
    margin: f64,
) -> Result<Option<Tensor>, tch::TchError> {
    match kind {
        LossKind::Triplet => triplet_semi_hard(emb, labels, margin),
        LossKind::Contrastive => contrastive(emb, labels, margin),
    }
}

/// Triplet loss with online semi-hard negative mining (module documentation).
pub fn triplet_semi_hard(
    emb: &Tensor,
    labels: &[BatchLabel],
    margin: f64,
) -> Result<Option<Tensor>, tch::TchError> {
    let n = labels.len();
    let dist = pairwise_distances(emb)?;
    let d: Vec<f32> = dist
        .f_detach()?
        .f_to_device(tch::Device::Cpu)?
        .f_view([-1i64])?
        .try_into()?;
    let margin_f = margin as f32;
    let (mut ap, mut an) = (Vec::new(), Vec::new());
    for a in 0..n {
        for p in 0..n {
            if a == p || !is_positive(labels[a], labels[p]) {
                continue;
            }
            let dap = d[a * n + p];
            let mut semi_hard: Option<(usize, f32)> = None;
            let mut farthest: Option<(usize, f32)> = None;
            for (k, &lk) in labels.iter().enumerate() {
                if !is_negative(labels[a], lk) {
                    continue;
                }
                let dan = d[a * n + k];
                if dan > dap && dan < dap + margin_f && semi_hard.is_none_or(|(_, best)| dan < best)
                {
                    semi_hard = Some((k, dan));
                }
                if farthest.is_none_or(|(_, best)| dan > best) {
                    farthest = Some((k, dan));
                }
            }
            if let Some((k, _)) = semi_hard.or(farthest) {
                ap.push((a * n + p) as i64);
                an.push((a * n + k) as i64);
            }
        }
    }
    if ap.is_empty() {
        return Ok(None);
    }
    let flat = dist.f_view([-1i64])?;
    let device = emb.device();
    let dap = flat.f_index_select(0, &Tensor::f_from_slice(&ap)?.f_to_device(device)?)?;
    let dan = flat.f_index_select(0, &Tensor::f_from_slice(&an)?.f_to_device(device)?)?;
    let loss = dap
        .f_sub(&dan)?
        .f_add_scalar(margin)?
        .f_relu()?
        .f_mean(Kind::Float)?;
    Ok(Some(loss))
}

/// Contrastive loss over all pairs (module documentation).
pub fn contrastive(
    emb: &Tensor,
    labels: &[BatchLabel],
    margin: f64,
) -> Result<Option<Tensor>, tch::TchError> {
    let n = labels.len();
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for i in 0..n {
        for j in (i + 1)..n {
            if is_positive(labels[i], labels[j]) {
                pos.push((i * n + j) as i64);
            } else if is_negative(labels[i], labels[j]) {
                neg.push((i * n + j) as i64);
            }
        }
    }
    if pos.is_empty() || neg.is_empty() {
        return Ok(None);
    }
    let device = emb.device();
    let flat = pairwise_distances(emb)?.f_view([-1i64])?;
    let dp = flat.f_index_select(0, &Tensor::f_from_slice(&pos)?.f_to_device(device)?)?;
    let dn = flat.f_index_select(0, &Tensor::f_from_slice(&neg)?.f_to_device(device)?)?;
    let pos_term = dp.f_square()?.f_mean(Kind::Float)?;
    let neg_term = dn
        .f_neg()?
        .f_add_scalar(margin)?
        .f_relu()?
        .f_square()?
        .f_mean(Kind::Float)?;
    Ok(Some(pos_term.f_add(&neg_term)?.f_mul_scalar(0.5)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(rows: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        let t = Tensor::from_slice(&flat).view([rows.len() as i64, 2]);
        crate::model::net::l2_normalise(&t).expect("normalise")
    }

    fn labels() -> Vec<BatchLabel> {
        vec![
            BatchLabel {
                writer: 0,
                genuine: true,
            },
            BatchLabel {
                writer: 0,
                genuine: true,
            },
            BatchLabel {
                writer: 1,
                genuine: true,
            },
            BatchLabel {
                writer: 1,
                genuine: true,
            },
            BatchLabel {
                writer: 0,
                genuine: false,
            },
        ]
    }

    #[test]
    fn separated_writers_cost_less_than_mixed_ones() {
        // Writer 0 near (1, 0), writer 1 near (0, 1), the forgery of writer 0 near writer 1.
        let good = unit(&[
            [1.0, 0.0],
            [1.0, 0.05],
            [0.0, 1.0],
            [0.05, 1.0],
            [-1.0, 0.2],
        ]);
        let bad = unit(&[
            [1.0, 0.0],
            [0.0, 1.0],
            [1.0, 0.05],
            [0.05, 1.0],
            [1.0, 0.02],
        ]);
        for kind in [LossKind::Triplet, LossKind::Contrastive] {
            let m = kind.default_margin();
            let lg = batch_loss(kind, &good, &labels(), m)
                .expect("loss")
                .expect("pairs")
                .double_value(&[]);
            let lb = batch_loss(kind, &bad, &labels(), m)
                .expect("loss")
                .expect("pairs")
                .double_value(&[]);
            assert!(lg < lb, "{kind:?}: good {lg} should be below bad {lb}");
            assert!(lg >= 0.0);
        }
    }

    #[test]
    fn a_batch_without_positives_has_no_loss() {
        let e = unit(&[[1.0, 0.0], [0.0, 1.0]]);
        let l = vec![
            BatchLabel {
                writer: 0,
                genuine: true,
            },
            BatchLabel {
                writer: 1,
                genuine: true,
            },
        ];
        assert!(
            batch_loss(LossKind::Triplet, &e, &l, 0.3)
                .expect("loss")
                .is_none()
        );
        assert!(
            batch_loss(LossKind::Contrastive, &e, &l, 1.0)
                .expect("loss")
                .is_none()
        );
    }

    #[test]
    fn forgery_pairs_are_negatives_and_forgery_forgery_pairs_are_skipped() {
        let g0 = BatchLabel {
            writer: 0,
            genuine: true,
        };
        let f0 = BatchLabel {
            writer: 0,
            genuine: false,
        };
        let f1 = BatchLabel {
            writer: 1,
            genuine: false,
        };
        assert!(is_negative(g0, f0));
        assert!(!is_positive(g0, f0));
        assert!(!is_negative(f0, f1));
        assert!(!is_negative(f0, f0));
    }
}
