//! Cohort score normalisation: a questioned signature's score against an account is normalised by how
//! scores of the same kind fall against *other* writers, the cohort. A bank has a natural cohort: its
//! other accounts' enrolled references. The variants follow speaker verification (Auckenthaler et al.
//! 2000 for t-norm; Matějka et al. 2017 for adaptive s-norm):
//!
//! - **t-norm** ([`CohortNormalisation::TNorm`]): the questioned signature is scored against every cohort account; the
//!   account's score is standardised by the mean and standard deviation of those cohort scores. It
//!   asks "is this signature closer to the account than to other people?", which removes how
//!   "typical" the questioned signature itself is.
//! - **s-norm** ([`CohortNormalisation::SNorm`]): the mean of the t-norm term and a z-norm term, where the z-norm term
//!   standardises the score by the cohort's signatures scored *against the account*: the account's
//!   own impostor distribution, which removes how forgiving the account's references are.
//! - **Cohort z-norm** ([`CohortNormalisation::CohortZNorm`]): the z-norm term alone, the account's impostor distribution
//!   estimated from other writers' signatures (reference z-norm, [`super::normalise_score`], estimates
//!   the account's *genuine* spread from its own references instead).
//! - **Adaptive** variants (`AdaptiveTNorm`, `AdaptiveSNorm`, `AdaptiveCohortZNorm`): each
//!   side's statistics over its `top` highest cohort scores only, the most confusable other writers.
//!
//! Every score here is one kind: [`score_against_references`] of one questioned embedding against one
//! set of references with the same [`Aggregation`], so the cohort scores are distributed like the
//! score they normalise. t-side scores: the questioned embedding against each cohort account's
//! references (one per cohort account). z-side scores: each cohort account's reference signature,
//! questioned against the account's references (one per cohort signature).
//!
//! What enters a cohort is the caller's responsibility and the evaluation protocol's rule
//! ([`super::evaluation`]): other writers' references only, never the account itself, never the
//! questioned signature's own writer.

use serde::{Deserialize, Serialize};

use super::similarity::{MIN_REFERENCE_STD, score_against_references};
use super::{Aggregation, Embedding, ScoringError};

/// The number of cohort scores an adaptive variant keeps when none is given (`asnorm` = `asnorm:20`).
/// Speaker verification keeps a few hundred of thousands; a bank's cohort in the evaluation is its
/// collection's other writers (15 to 119 here), so 20 keeps the most similar third to sixth of them.
pub const DEFAULT_COHORT_TOP: usize = 20;

/// The least number of cohort accounts a normalisation needs: a mean and a spread of one score say
/// nothing about other writers.
pub const MIN_COHORT_ACCOUNTS: usize = 2;

/// Which cohort normalisation to apply. Written and parsed as `tnorm`, `atnorm:N`, `snorm`,
/// `asnorm:N`, `cznorm`, `acznorm:N` (the adaptive names alone take [`DEFAULT_COHORT_TOP`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum CohortNormalisation {
    /// t-norm over the whole cohort: `(s - mean_t) / max(std_t, floor)`, with `s` the questioned
    /// signature's score against the account and `mean_t`, `std_t` over its scores against each cohort
    /// account.
    TNorm,
    /// t-norm over the `top` highest cohort scores.
    AdaptiveTNorm { top: usize },
    /// Symmetric normalisation over the whole cohort: `((s - mean_z) / std_z + (s - mean_t) / std_t) / 2`,
    /// the z-side over every cohort signature scored against the account, the t-side as in t-norm
    /// (both divisors floored).
    SNorm,
    /// Symmetric normalisation, each side over its `top` highest cohort scores.
    AdaptiveSNorm { top: usize },
    /// The z-side alone over the whole cohort: `(s - mean_z) / max(std_z, floor)`.
    CohortZNorm,
    /// The z-side alone over its `top` highest cohort scores.
    AdaptiveCohortZNorm { top: usize },
}

impl CohortNormalisation {
    /// The stable name: `tnorm`, `atnorm:N`, `snorm`, `asnorm:N`.
    pub fn label(self) -> String {
        match self {
            CohortNormalisation::TNorm => "tnorm".to_string(),
            CohortNormalisation::AdaptiveTNorm { top } => format!("atnorm:{top}"),
            CohortNormalisation::SNorm => "snorm".to_string(),
            CohortNormalisation::AdaptiveSNorm { top } => format!("asnorm:{top}"),
            CohortNormalisation::CohortZNorm => "cznorm".to_string(),
            CohortNormalisation::AdaptiveCohortZNorm { top } => format!("acznorm:{top}"),
        }
    }

    /// The number of highest cohort scores each side keeps (`None`: all of them).
    pub fn top(self) -> Option<usize> {
        match self {
            CohortNormalisation::TNorm
            | CohortNormalisation::SNorm
            | CohortNormalisation::CohortZNorm => None,
            CohortNormalisation::AdaptiveTNorm { top }
            | CohortNormalisation::AdaptiveSNorm { top }
            | CohortNormalisation::AdaptiveCohortZNorm { top } => Some(top),
        }
    }

    /// True when the variant needs the t-side (the questioned signature against the cohort).
    pub fn uses_t(self) -> bool {
        !matches!(
            self,
            CohortNormalisation::CohortZNorm | CohortNormalisation::AdaptiveCohortZNorm { .. }
        )
    }

    /// True when the variant needs the z-side (the cohort's signatures against the account).
    pub fn uses_z(self) -> bool {
        !matches!(
            self,
            CohortNormalisation::TNorm | CohortNormalisation::AdaptiveTNorm { .. }
        )
    }

    /// Applies the variant to a questioned embedding, the account's references and the cohort
    /// accounts' references (one entry per cohort account).
    pub fn apply(
        self,
        questioned: &Embedding,
        refs: &[Embedding],
        cohort: &[Vec<Embedding>],
        agg: Aggregation,
    ) -> Result<f64, ScoringError> {
        let raw = score_against_references(questioned, refs, agg)?;
        let t = if self.uses_t() {
            questioned_cohort_scores(questioned, cohort, agg)?
        } else {
            Vec::new()
        };
        let z = if self.uses_z() {
            account_cohort_scores(refs, cohort, agg)?
        } else {
            Vec::new()
        };
        self.normalise(raw, &t, &z)
    }

    /// The normalisation from scores already computed: `raw` (the questioned signature against the
    /// account), `t` ([`questioned_cohort_scores`], read when [`Self::uses_t`]) and `z`
    /// ([`account_cohort_scores`], read when [`Self::uses_z`]). The evaluation protocol calls this
    /// with scores it computed once per account, so that the formulas exist only here.
    pub fn normalise(self, raw: f64, t: &[f64], z: &[f64]) -> Result<f64, ScoringError> {
        let top = self.top();
        let term = |scores: &[f64]| CohortStats::of(scores, top).map(|st| st.normalise(raw));
        match (self.uses_t(), self.uses_z()) {
            (true, true) => Ok(0.5 * (term(z)? + term(t)?)),
            (true, false) => term(t),
            _ => term(z),
        }
    }
}

impl std::fmt::Display for CohortNormalisation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl From<CohortNormalisation> for String {
    fn from(c: CohortNormalisation) -> String {
        c.label()
    }
}

impl TryFrom<String> for CohortNormalisation {
    type Error = ScoringError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl std::str::FromStr for CohortNormalisation {
    type Err = ScoringError;

    /// Parses `tnorm`, `snorm`, `cznorm`, `atnorm[:N]`, `asnorm[:N]`, `acznorm[:N]` with N >= 2.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let (name, top) = match lower.split_once(':') {
            Some((name, n)) => match n.trim().parse::<usize>() {
                Ok(n) if n >= MIN_COHORT_ACCOUNTS => (name.trim(), Some(n)),
                _ => {
                    return Err(ScoringError::InvalidParameter(format!(
                        "cohort normalisation '{s}': N must be a whole number >= {MIN_COHORT_ACCOUNTS}"
                    )));
                }
            },
            None => (lower.as_str(), None),
        };
        let top_or_default = top.unwrap_or(DEFAULT_COHORT_TOP);
        match (name, top) {
            ("tnorm", None) => Ok(CohortNormalisation::TNorm),
            ("snorm", None) => Ok(CohortNormalisation::SNorm),
            ("cznorm", None) => Ok(CohortNormalisation::CohortZNorm),
            ("acznorm", _) => Ok(CohortNormalisation::AdaptiveCohortZNorm {
                top: top_or_default,
            }),
            ("atnorm", _) => Ok(CohortNormalisation::AdaptiveTNorm {
                top: top_or_default,
            }),
            ("asnorm", _) => Ok(CohortNormalisation::AdaptiveSNorm {
                top: top_or_default,
            }),
            _ => Err(ScoringError::InvalidParameter(format!(
                "unknown cohort normalisation '{s}' (expected tnorm, snorm, cznorm, atnorm[:N], asnorm[:N] or acznorm[:N])"
            ))),
        }
    }
}

/// The mean and spread of a list of cohort scores (all of them, or the `top` highest).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CohortStats {
    pub mean: f64,
    /// Population standard deviation of the scores used.
    pub std: f64,
    /// How many scores the statistics come from.
    pub scores: usize,
}

impl CohortStats {
    /// The statistics of `scores`, or of its `top` highest when given (all of them when there are
    /// fewer). Errors with fewer than [`MIN_COHORT_ACCOUNTS`] scores or on a non-finite score.
    pub fn of(scores: &[f64], top: Option<usize>) -> Result<CohortStats, ScoringError> {
        if scores.len() < MIN_COHORT_ACCOUNTS {
            return Err(ScoringError::NotEnoughData(format!(
                "cohort normalisation needs at least {MIN_COHORT_ACCOUNTS} cohort scores, found {}",
                scores.len()
            )));
        }
        super::error::check_finite(scores, "cohort score")?;
        let used: Vec<f64> = match top {
            Some(n) if n < scores.len() => {
                let mut sorted = scores.to_vec();
                sorted.sort_by(|a, b| b.total_cmp(a));
                sorted.truncate(n.max(1));
                sorted
            }
            _ => scores.to_vec(),
        };
        let n = used.len() as f64;
        let mean = used.iter().sum::<f64>() / n;
        let var = used.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / n;
        Ok(CohortStats {
            mean,
            std: var.sqrt(),
            scores: used.len(),
        })
    }

    /// The divisor: `max(std, MIN_REFERENCE_STD)`, the same floor as reference z-norm, so that a
    /// cohort that happens to agree closely cannot blow a score up.
    pub fn effective_std(&self) -> f64 {
        self.std.max(MIN_REFERENCE_STD)
    }

    /// `(raw - mean) / effective_std`.
    pub fn normalise(&self, raw: f64) -> f64 {
        (raw - self.mean) / self.effective_std()
    }
}

/// The t-side: the questioned signature's score against each cohort account's references, in cohort
/// order. Errors on an empty cohort account or bad embeddings.
pub fn questioned_cohort_scores(
    questioned: &Embedding,
    cohort: &[Vec<Embedding>],
    agg: Aggregation,
) -> Result<Vec<f64>, ScoringError> {
    cohort
        .iter()
        .map(|account| score_against_references(questioned, account, agg))
        .collect()
}

/// The z-side: every cohort signature (each cohort account's references in turn), questioned against
/// the account's references: the account's own impostor scores.
pub fn account_cohort_scores(
    refs: &[Embedding],
    cohort: &[Vec<Embedding>],
    agg: Aggregation,
) -> Result<Vec<f64>, ScoringError> {
    cohort
        .iter()
        .flatten()
        .map(|c| score_against_references(c, refs, agg))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unit vectors in the plane, at `deg` degrees: their cosine is the cosine of the angle between.
    fn at(deg: f64) -> Embedding {
        let r = deg.to_radians();
        vec![r.cos() as f32, r.sin() as f32]
    }

    /// Equal up to the f32 rounding of the embeddings (the formulas run in f64 on f32 inputs).
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * b.abs().max(1.0)
    }

    fn cos(deg: f64) -> f64 {
        deg.to_radians().cos()
    }

    // Account references at 0 and 20 degrees, the questioned signature at 10 degrees: with `Mean`
    // aggregation its score is cos 10. Cohort account A at 90 and 100 degrees, B at 180 and 190.
    fn setup() -> (Embedding, Vec<Embedding>, Vec<Vec<Embedding>>) {
        (
            at(10.0),
            vec![at(0.0), at(20.0)],
            vec![vec![at(90.0), at(100.0)], vec![at(180.0), at(190.0)]],
        )
    }

    #[test]
    fn tnorm_standardises_by_the_questioned_scores_against_the_cohort() {
        let (q, refs, cohort) = setup();
        let s = cos(10.0);
        // Against A: angles 80 and 90; against B: 170 and 180.
        let ta = (cos(80.0) + cos(90.0)) / 2.0;
        let tb = (cos(170.0) + cos(180.0)) / 2.0;
        let mean = (ta + tb) / 2.0;
        let std = ((ta - mean).abs()).max(MIN_REFERENCE_STD); // population std of two values
        let got = CohortNormalisation::TNorm
            .apply(&q, &refs, &cohort, Aggregation::Mean)
            .unwrap();
        assert!(close(got, (s - mean) / std), "{got}");
    }

    #[test]
    fn snorm_averages_the_cohort_z_term_and_the_t_term() {
        let (q, refs, cohort) = setup();
        let s = cos(10.0);
        let ta = (cos(80.0) + cos(90.0)) / 2.0;
        let tb = (cos(170.0) + cos(180.0)) / 2.0;
        let t_mean = (ta + tb) / 2.0;
        let t_std = (ta - t_mean).abs();
        // z-side: each cohort signature against the references at 0 and 20 degrees.
        let z: Vec<f64> = [90.0, 100.0, 180.0, 190.0]
            .iter()
            .map(|&c: &f64| (cos(c) + cos(c - 20.0)) / 2.0)
            .collect();
        let z_mean = z.iter().sum::<f64>() / 4.0;
        let z_std = (z.iter().map(|v| (v - z_mean).powi(2)).sum::<f64>() / 4.0).sqrt();
        let want = 0.5 * ((s - z_mean) / z_std + (s - t_mean) / t_std);
        let got = CohortNormalisation::SNorm
            .apply(&q, &refs, &cohort, Aggregation::Mean)
            .unwrap();
        assert!(close(got, want), "{got} vs {want}");
        // Cohort z-norm is the z term alone.
        let got = CohortNormalisation::CohortZNorm
            .apply(&q, &refs, &cohort, Aggregation::Mean)
            .unwrap();
        assert!(close(got, (s - z_mean) / z_std), "{got}");
    }

    #[test]
    fn adaptive_variants_keep_only_the_most_similar_cohort_scores() {
        let (q, refs, mut cohort) = setup();
        // A third cohort account C at 30 and 40 degrees: the most similar to everything here.
        cohort.push(vec![at(30.0), at(40.0)]);
        let s = cos(10.0);
        let ta = (cos(80.0) + cos(90.0)) / 2.0;
        let tc = (cos(20.0) + cos(30.0)) / 2.0;
        // top 2 of the t-side: C and A (B is far below both).
        let t_mean = (ta + tc) / 2.0;
        let t_std = (tc - t_mean).abs();
        let got = CohortNormalisation::AdaptiveTNorm { top: 2 }
            .apply(&q, &refs, &cohort, Aggregation::Mean)
            .unwrap();
        assert!(close(got, (s - t_mean) / t_std), "{got}");

        // z-side, top 2 of six cohort signatures: C's signatures at 30 and 40 degrees.
        let zc = |c: f64| (cos(c) + cos(c - 20.0)) / 2.0;
        let (z1, z2) = (zc(30.0), zc(40.0));
        let z_mean = (z1 + z2) / 2.0;
        let z_std = ((z1 - z_mean).abs()).max(MIN_REFERENCE_STD);
        let want = 0.5 * ((s - z_mean) / z_std + (s - t_mean) / t_std);
        let got = CohortNormalisation::AdaptiveSNorm { top: 2 }
            .apply(&q, &refs, &cohort, Aggregation::Mean)
            .unwrap();
        assert!(close(got, want), "{got} vs {want}");
        let got = CohortNormalisation::AdaptiveCohortZNorm { top: 2 }
            .apply(&q, &refs, &cohort, Aggregation::Mean)
            .unwrap();
        assert!(close(got, (s - z_mean) / z_std), "{got}");

        // With N at least the cohort's size the adaptive variants are the plain ones.
        assert!(close(
            CohortNormalisation::AdaptiveSNorm { top: 50 }
                .apply(&q, &refs, &cohort, Aggregation::Mean)
                .unwrap(),
            CohortNormalisation::SNorm
                .apply(&q, &refs, &cohort, Aggregation::Mean)
                .unwrap()
        ));
    }

    #[test]
    fn the_cohort_scores_use_the_accounts_aggregation() {
        // With top-1 (max) aggregation each cohort score is the best of the account's references.
        let (q, refs, cohort) = setup();
        let t = questioned_cohort_scores(&q, &cohort, Aggregation::Max).unwrap();
        assert!(close(t[0], cos(80.0)) && close(t[1], cos(170.0)), "{t:?}");
        let z = account_cohort_scores(&refs, &cohort, Aggregation::Max).unwrap();
        let want = [cos(70.0), cos(80.0), cos(160.0), cos(170.0)];
        assert!(z.iter().zip(want).all(|(a, b)| close(*a, b)), "{z:?}");
    }

    #[test]
    fn a_cohort_of_one_account_is_refused_and_the_floor_holds() {
        let (q, refs, cohort) = setup();
        let err = CohortNormalisation::TNorm
            .apply(&q, &refs, &cohort[..1], Aggregation::Mean)
            .unwrap_err();
        assert!(matches!(err, ScoringError::NotEnoughData(_)), "{err}");
        // Two identical cohort accounts: std 0, so the floor divides.
        let same = vec![vec![at(90.0)], vec![at(90.0)]];
        let got = CohortNormalisation::TNorm
            .apply(&q, &refs, &same, Aggregation::Mean)
            .unwrap();
        assert!(close(got, (cos(10.0) - cos(80.0)) / MIN_REFERENCE_STD));
    }

    #[test]
    fn names_parse_and_print_back() {
        for (text, want) in [
            ("tnorm", CohortNormalisation::TNorm),
            ("snorm", CohortNormalisation::SNorm),
            ("asnorm", CohortNormalisation::AdaptiveSNorm { top: 20 }),
            ("ASNORM:50", CohortNormalisation::AdaptiveSNorm { top: 50 }),
            ("atnorm:30", CohortNormalisation::AdaptiveTNorm { top: 30 }),
            ("cznorm", CohortNormalisation::CohortZNorm),
            (
                "acznorm",
                CohortNormalisation::AdaptiveCohortZNorm { top: 20 },
            ),
        ] {
            let got: CohortNormalisation = text.parse().unwrap();
            assert_eq!(got, want);
            assert_eq!(got.label().parse::<CohortNormalisation>().unwrap(), got);
        }
        for bad in ["znorm", "asnorm:1", "asnorm:x", "tnorm:5", ""] {
            assert!(bad.parse::<CohortNormalisation>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&CohortNormalisation::AdaptiveSNorm { top: 20 }).unwrap();
        assert_eq!(json, "\"asnorm:20\"");
    }
}
