//! Similarity of a questioned signature to an account's reference signatures.
//!
//! The score of one comparison is the cosine similarity of the two embeddings, in [-1, 1] (1 = same
//! direction). Cosine is used rather than a Euclidean distance because the embeddings are
//! L2-normalised, where the two are equivalent (`|a - b|^2 = 2 - 2 cos`), and a higher-is-more-genuine
//! score keeps every threshold in the layer on the same side ("score >= t accepts").
//!
//! An account usually holds several references; [`score_against_references`] aggregates the
//! similarities to each of them ([`Aggregation`]). Optionally the aggregated score is z-normalised
//! against the references' own spread ([`ReferenceStats`], [`normalise_score`]): a writer whose
//! references are very alike is held to a tighter standard than one whose signature varies a lot.

use serde::{Deserialize, Serialize};

use super::{Embedding, ScoringError};

/// How the similarities to several references are combined into one score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// The best match: robust when one reference is poor, but also the most forgiving to forgers.
    Max,
    /// The mean over all references: uses every reference equally.
    Mean,
    /// The mean of the `k` highest similarities (all of them when there are fewer than `k`): a
    /// compromise that ignores the worst references. This is the default, with `k = 3`, until the
    /// lead's measurement on held-out writers (see [`super::compare_aggregations`]) says otherwise.
    TopKMean(usize),
}

impl Default for Aggregation {
    fn default() -> Self {
        Aggregation::TopKMean(3)
    }
}

impl Aggregation {
    /// A short stable name for reports: `max`, `mean`, `top3_mean`.
    pub fn label(self) -> String {
        match self {
            Aggregation::Max => "max".to_string(),
            Aggregation::Mean => "mean".to_string(),
            Aggregation::TopKMean(k) => format!("top{k}_mean"),
        }
    }
}

impl std::fmt::Display for Aggregation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

impl std::str::FromStr for Aggregation {
    type Err = ScoringError;

    /// Parses `max`, `mean`, `topK_mean` or `topK` (e.g. `top3_mean`, `top3`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "max" => return Ok(Aggregation::Max),
            "mean" => return Ok(Aggregation::Mean),
            _ => {}
        }
        let digits = lower
            .strip_prefix("top")
            .map(|rest| rest.strip_suffix("_mean").unwrap_or(rest));
        match digits.and_then(|d| d.parse::<usize>().ok()) {
            Some(k) if k > 0 => Ok(Aggregation::TopKMean(k)),
            _ => Err(ScoringError::InvalidParameter(format!(
                "unknown aggregation '{s}' (expected max, mean or topK_mean with K >= 1)"
            ))),
        }
    }
}

/// Returns `v / |v|`. Errors on an empty, zero or non-finite vector.
pub fn l2_normalise(v: &[f32]) -> Result<Embedding, ScoringError> {
    let norm = checked_norm(v)?;
    Ok(v.iter().map(|&x| (f64::from(x) / norm) as f32).collect())
}

/// The Euclidean norm in f64, after checking that the vector is non-empty, finite and non-zero.
fn checked_norm(v: &[f32]) -> Result<f64, ScoringError> {
    if v.is_empty() {
        return Err(ScoringError::Empty { what: "embedding" });
    }
    if let Some(index) = v.iter().position(|x| !x.is_finite()) {
        return Err(ScoringError::NonFinite {
            what: "embedding component",
            index,
            value: f64::from(v[index]),
        });
    }
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(ScoringError::ZeroEmbedding);
    }
    Ok(norm)
}

/// Cosine similarity of two embeddings, in [-1, 1]. Both are normalised here (in f64), so callers
/// may pass raw network outputs too. Errors on different dimensions, empty, zero or non-finite input.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> Result<f64, ScoringError> {
    if a.len() != b.len() {
        return Err(ScoringError::DimensionMismatch {
            expected: a.len(),
            found: b.len(),
        });
    }
    let na = checked_norm(a)?;
    let nb = checked_norm(b)?;
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    // Rounding can push |cos| a hair above 1; clamp so downstream code can rely on the range.
    Ok((dot / (na * nb)).clamp(-1.0, 1.0))
}

/// Aggregates a list of similarities (already computed) as `agg` says.
pub(crate) fn aggregate(mut sims: Vec<f64>, agg: Aggregation) -> Result<f64, ScoringError> {
    if sims.is_empty() {
        return Err(ScoringError::Empty {
            what: "reference list",
        });
    }
    match agg {
        Aggregation::Max => Ok(sims.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        Aggregation::Mean => Ok(sims.iter().sum::<f64>() / sims.len() as f64),
        Aggregation::TopKMean(0) => Err(ScoringError::InvalidParameter(
            "top-k aggregation needs k >= 1".to_string(),
        )),
        Aggregation::TopKMean(k) => {
            sims.sort_by(|x, y| y.total_cmp(x));
            let k = k.min(sims.len());
            Ok(sims[..k].iter().sum::<f64>() / k as f64)
        }
    }
}

/// The score of a questioned signature against an account's references: the cosine similarity to
/// each reference, combined by `agg`. Higher means more likely genuine. Errors when `refs` is empty,
/// when dimensions differ, or on zero/non-finite embeddings.
pub fn score_against_references(
    questioned: &Embedding,
    refs: &[Embedding],
    agg: Aggregation,
) -> Result<f64, ScoringError> {
    // The questioned norm is computed once; each reference costs one pass for its dot product and
    // norm together (this runs for every cheque in a nightly batch).
    let nq = checked_norm(questioned)?;
    let sims = refs
        .iter()
        .map(|r| {
            if r.len() != questioned.len() {
                return Err(ScoringError::DimensionMismatch {
                    expected: questioned.len(),
                    found: r.len(),
                });
            }
            let (mut dot, mut rr) = (0.0f64, 0.0f64);
            for (&x, &y) in questioned.iter().zip(r) {
                let (x, y) = (f64::from(x), f64::from(y));
                dot += x * y;
                rr += y * y;
            }
            if !rr.is_finite() || !dot.is_finite() {
                return checked_norm(r).and(Err(ScoringError::ZeroEmbedding));
            }
            if rr == 0.0 {
                return Err(ScoringError::ZeroEmbedding);
            }
            Ok((dot / (nq * rr.sqrt())).clamp(-1.0, 1.0))
        })
        .collect::<Result<Vec<_>, _>>()?;
    aggregate(sims, agg)
}

/// The per-account stage between the raw similarity and the calibration. A model card names the one
/// its calibration was fitted on, and every front end (verify, batch, GUI) applies it through the one
/// decision path, so a calibration is never fed scores of another kind.
///
/// It is computed from the account's enrolled reference embeddings at decision time, not stored: it can
/// therefore never be stale after a re-enrolment or a model change, and there is nothing beside the
/// references that could be edited to move a decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ScoreNormalisation {
    /// The raw aggregated cosine similarity goes to the calibration.
    #[default]
    None,
    /// Z-normalised against the account's own references ([`normalise_score`]); needs 2 references.
    ReferenceZnorm,
}

impl ScoreNormalisation {
    /// The least number of references an account needs for this stage.
    pub fn min_references(self) -> usize {
        match self {
            ScoreNormalisation::None => 1,
            ScoreNormalisation::ReferenceZnorm => 2,
        }
    }

    /// Applies the stage to a raw score of a questioned signature against `refs`.
    pub fn apply(self, raw: f64, refs: &[Embedding]) -> Result<f64, ScoringError> {
        match self {
            ScoreNormalisation::None => Ok(raw),
            ScoreNormalisation::ReferenceZnorm => {
                Ok(normalise_score(raw, &ReferenceStats::from_refs(refs)?))
            }
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ScoreNormalisation::None => "none",
            ScoreNormalisation::ReferenceZnorm => "z-norm against the account's references",
        }
    }
}

/// The smallest standard deviation [`normalise_score`] divides by. With two references there is one
/// pairwise similarity and the sample std is 0; with very consistent writers it is tiny. Without a
/// floor the z-score would explode. 0.05 in cosine units is about the spread of genuine-genuine
/// similarities of a consistent writer, so it never makes a writer look more consistent than that.
pub const MIN_REFERENCE_STD: f64 = 0.05;

/// How alike an account's references are to each other: the mean and the standard deviation of
/// their pairwise cosine similarities. Computed once when references are enrolled.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceStats {
    /// Mean pairwise cosine similarity of the references.
    pub mean: f64,
    /// Population standard deviation of the pairwise similarities (0 with two references).
    pub std: f64,
    /// Number of references the statistics come from.
    pub references: usize,
}

impl ReferenceStats {
    /// Computes the statistics over all `n (n - 1) / 2` pairs of references. Needs at least two
    /// references: with one there is no pair, and an account with a single reference must be scored
    /// without z-normalisation (and with a calibration fitted without it).
    pub fn from_refs(refs: &[Embedding]) -> Result<ReferenceStats, ScoringError> {
        if refs.len() < 2 {
            return Err(ScoringError::NotEnoughData(format!(
                "score normalisation needs at least 2 references, found {}",
                refs.len()
            )));
        }
        let mut sims = Vec::with_capacity(refs.len() * (refs.len() - 1) / 2);
        for i in 0..refs.len() {
            for j in (i + 1)..refs.len() {
                sims.push(cosine_similarity(&refs[i], &refs[j])?);
            }
        }
        let n = sims.len() as f64;
        let mean = sims.iter().sum::<f64>() / n;
        let var = sims.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / n;
        Ok(ReferenceStats {
            mean,
            std: var.sqrt(),
            references: refs.len(),
        })
    }

    /// The divisor used by [`normalise_score`]: `max(std, MIN_REFERENCE_STD)`.
    pub fn effective_std(&self) -> f64 {
        self.std.max(MIN_REFERENCE_STD)
    }
}

/// Z-normalises a raw score against the account's own references:
/// `(raw - stats.mean) / max(stats.std, MIN_REFERENCE_STD)`.
///
/// A genuine signature is about as similar to the references as they are to each other, so it lands
/// near 0; forgeries land below. The result is unbounded, so a calibration must be fitted on scores
/// normalised the same way (`EvalConfig::znorm`).
pub fn normalise_score(raw: f64, stats: &ReferenceStats) -> f64 {
    (raw - stats.mean) / stats.effective_std()
}
