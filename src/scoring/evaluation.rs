//! The evaluation protocol: how a set of labelled signature embeddings becomes EER, AUC, ROC, DET,
//! histograms and FAR/FRR figures. The protocol is fixed so that the numbers in a model card can be
//! reproduced exactly by `countersign evaluate`.
//!
//! # Protocol
//!
//! 1. Samples are grouped by writer (writers in byte order of their names). Within a writer, genuine
//!    samples and skilled forgeries are each sorted by `sample_id` in natural order (digit runs
//!    compare as numbers, so `s2 < s10`); two samples of one writer with the same id are an error.
//! 2. The first `K = EvalConfig::references` genuine samples of each writer are its references.
//!    A writer with fewer than K genuine samples is skipped (and listed in the report).
//! 3. Questioned against those references: the writer's remaining genuine samples (label genuine),
//!    all of the writer's skilled forgeries (label skilled forgery), and
//!    `EvalConfig::random_forgeries_per_writer` random forgeries: genuine samples of *other* writers
//!    (skipped writers included), drawn without replacement from the pool of all genuine samples
//!    sorted by (writer, sample id), by one ChaCha8 generator seeded with `EvalConfig::seed` and
//!    used for the writers in order. The draw is therefore the same on every machine and every run.
//! 4. Each questioned sample is scored with [`score_against_references`] using
//!    `EvalConfig::aggregation`, then z-normalised against the writer's references
//!    ([`normalise_score`]) when `EvalConfig::znorm` is set. With `EvalConfig::cohort` the raw score
//!    is cohort-normalised instead ([`super::cohort`]; with `znorm` too, the mean of the two). The
//!    writer's cohort is the other writers of its collection (`EvalConfig::collections`) that are not
//!    skipped, each with its K references only; the writer itself is never in it, and neither is the
//!    questioned sample's own writer (for a random forgery), so no questioned image and nothing of the
//!    account enters the cohort. Other writers' questioned genuine signatures and all skilled
//!    forgeries never enter any cohort.
//! 5. Metrics use one global threshold for all writers: EER and AUC of genuine vs skilled forgeries
//!    and of genuine vs random forgeries (conventions in [`super::metrics`]); per-writer EERs with
//!    a threshold per writer; and, when `EvalConfig::operating` gives a calibration and thresholds,
//!    the FAR, FRR and REFER rates that deployment would see.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::cohort::CohortNormalisation;
use super::metrics::{
    DetPoint, Histogram, RocPoint, WriterEer, auc, det_from_roc, downsample, eer_from_roc,
    histogram, join, per_writer_eer, roc_points,
};
use super::similarity::{ReferenceStats, l2_normalise, normalise_score, score_against_references};
use super::{Aggregation, Calibration, Decision, Embedding, ScoringError, Thresholds};

/// ROC and DET curves in a report are down-sampled to at most this many points.
pub const MAX_CURVE_POINTS: usize = 200;

/// One labelled signature of an evaluation set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelledEmbedding {
    /// The writer (account holder) the sample belongs to; for a skilled forgery, the writer whose
    /// signature was forged.
    pub writer: String,
    /// True for a genuine signature, false for a skilled forgery.
    pub genuine: bool,
    /// Identifies the sample within its writer (e.g. the file name); fixes the reference order.
    pub sample_id: String,
    pub embedding: Embedding,
}

/// Headline figures of one collection (or of all pooled) under the evaluation protocol, with 1 and
/// with 5 references, so that collections can be compared side by side: transfer to a collection the
/// model never saw is what limits accuracy, and a pooled figure hides it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionFigures {
    /// The collection's name, or `pooled`.
    pub collection: String,
    pub writers: usize,
    /// Skilled-forgery EER with 1 reference (`None` with z-norm, which needs 2, or without forgeries).
    pub eer_skilled_1ref: Option<f64>,
    pub eer_skilled_5ref: Option<f64>,
    pub eer_random_5ref: Option<f64>,
    pub auc_skilled_5ref: Option<f64>,
    /// Skilled forgeries ACCEPTED at the operating point in force (5 references), when there is one.
    pub far_skilled_at_operating_point: Option<f64>,
    /// Genuine signatures not ACCEPTED at the operating point in force (5 references).
    pub frr_at_operating_point: Option<f64>,
}

/// A calibration and the thresholds to evaluate deployment rates at.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub calibration: Calibration,
    pub thresholds: Thresholds,
    /// The calibration was fitted on z-normalised scores (the model's per-account stage). Deployment
    /// rates are reported only when the evaluation scores the same way.
    #[serde(default)]
    pub znorm: bool,
}

/// The parameters of the evaluation protocol (see the module documentation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// K, the number of genuine references per writer. Default 5: a bank rarely holds more than a
    /// handful of specimen signatures per account, and 5 is a common setting in the literature.
    pub references: usize,
    /// How similarities to the K references are combined. Default: [`Aggregation::default`].
    pub aggregation: Aggregation,
    /// Z-normalise each score against the writer's references (needs K >= 2). Default false.
    pub znorm: bool,
    /// Random forgeries drawn per writer from other writers' genuine samples. Default 10.
    pub random_forgeries_per_writer: usize,
    /// Seed of the random-forgery draw. Default 2011.
    pub seed: u64,
    /// Histogram bins over the observed score range. Default 40.
    pub histogram_bins: usize,
    /// Calibration and thresholds for FAR/FRR/REFER rates at deployment; `None` to skip them.
    pub operating: Option<OperatingPoint>,
    /// Cohort-normalise each score against the other writers of the writer's collection (module
    /// documentation, step 4). An evaluation-only measurement: no decision path applies it, so no
    /// calibration fits its scores and deployment rates are not reported with it. Default none.
    #[serde(default)]
    pub cohort: Option<CohortNormalisation>,
    /// The collections of pooled samples, whose writers are named `COLLECTION:WRITER`; a writer's
    /// cohort is drawn from its own collection. Empty: all writers form one collection.
    #[serde(default)]
    pub collections: Vec<String>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            references: 5,
            aggregation: Aggregation::default(),
            znorm: false,
            random_forgeries_per_writer: 10,
            seed: 2011,
            histogram_bins: 40,
            operating: None,
            cohort: None,
            collections: Vec::new(),
        }
    }
}

impl EvalConfig {
    /// Checks the parameters: K >= 1 (>= 2 with z-normalisation), top-k >= 1, bins >= 1, and valid
    /// operating thresholds and finite calibration when given.
    pub fn validate(&self) -> Result<(), ScoringError> {
        if self.references == 0 {
            return Err(ScoringError::InvalidParameter(
                "the evaluation needs at least 1 reference per writer".to_string(),
            ));
        }
        if self.znorm && self.references < 2 {
            return Err(ScoringError::InvalidParameter(
                "z-normalisation needs at least 2 references per writer".to_string(),
            ));
        }
        if self.aggregation == Aggregation::TopKMean(0) {
            return Err(ScoringError::InvalidParameter(
                "top-k aggregation needs k >= 1".to_string(),
            ));
        }
        if self.histogram_bins == 0 {
            return Err(ScoringError::InvalidParameter(
                "histograms need at least 1 bin".to_string(),
            ));
        }
        if let Some(op) = &self.operating {
            op.thresholds.validate()?;
            if !(op.calibration.a.is_finite() && op.calibration.b.is_finite()) {
                return Err(ScoringError::InvalidParameter(
                    "calibration parameters must be finite".to_string(),
                ));
            }
        }
        Ok(())
    }
}

/// One questioned comparison of the protocol and its score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredPair {
    /// The writer whose references the sample was compared against.
    pub writer: String,
    /// The writer who produced the questioned sample (differs from `writer` for random forgeries).
    pub questioned_writer: String,
    /// The questioned sample's id.
    pub sample_id: String,
    /// The (aggregated, possibly z-normalised) score.
    pub score: f64,
    /// True when the questioned sample is a genuine signature of `writer`.
    pub genuine: bool,
    /// True for a skilled forgery of `writer`. A pair that is neither genuine nor skilled is a
    /// random forgery.
    pub skilled: bool,
}

impl ScoredPair {
    /// True for a random forgery (another writer's genuine signature).
    pub fn is_random(&self) -> bool {
        !self.genuine && !self.skilled
    }
}

/// Which forgeries to take as negatives when turning [`ScoredPair`]s into labelled scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Forgeries {
    Skilled,
    Random,
    All,
}

/// Scores and labels (true = genuine) from scored pairs: every genuine pair plus the chosen kind of
/// forgeries. This is what [`super::fit_platt`] and [`super::choose_thresholds`] take.
pub fn labelled_scores(pairs: &[ScoredPair], forgeries: Forgeries) -> (Vec<f64>, Vec<bool>) {
    pairs
        .iter()
        .filter(|p| {
            p.genuine
                || match forgeries {
                    Forgeries::Skilled => p.skilled,
                    Forgeries::Random => p.is_random(),
                    Forgeries::All => true,
                }
        })
        .map(|p| (p.score, p.genuine))
        .unzip()
}

/// A writer left out of the evaluation and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SkippedWriter {
    pub writer: String,
    pub reason: String,
}

/// Compares sample ids in natural order: runs of ASCII digits compare by value, everything else by
/// character, so `001_2 < 001_10`.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut ai, mut bi) = (a.char_indices().peekable(), b.char_indices().peekable());
    loop {
        match (ai.peek().copied(), bi.peek().copied()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((ia, ca)), Some((ib, cb))) => {
                if ca.is_ascii_digit() && cb.is_ascii_digit() {
                    let ea = a[ia..]
                        .find(|c: char| !c.is_ascii_digit())
                        .map_or(a.len(), |e| ia + e);
                    let eb = b[ib..]
                        .find(|c: char| !c.is_ascii_digit())
                        .map_or(b.len(), |e| ib + e);
                    let (da, db) = (
                        a[ia..ea].trim_start_matches('0'),
                        b[ib..eb].trim_start_matches('0'),
                    );
                    let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                    if ord != Ordering::Equal {
                        return ord;
                    }
                    while ai.peek().is_some_and(|&(i, _)| i < ea) {
                        ai.next();
                    }
                    while bi.peek().is_some_and(|&(i, _)| i < eb) {
                        bi.next();
                    }
                } else {
                    if ca != cb {
                        return ca.cmp(&cb);
                    }
                    ai.next();
                    bi.next();
                }
            }
        }
    }
}

/// The collection a writer belongs to: the `COLLECTION` of `COLLECTION:WRITER` among `collections`, or
/// the one unnamed collection when none are listed.
fn collection_of<'a>(writer: &str, collections: &'a [String]) -> Result<&'a str, ScoringError> {
    if collections.is_empty() {
        return Ok("");
    }
    collections
        .iter()
        .find(|c| {
            writer
                .strip_prefix(c.as_str())
                .is_some_and(|rest| rest.starts_with(':'))
        })
        .map(String::as_str)
        .ok_or_else(|| {
            ScoringError::InvalidParameter(format!(
                "writer '{writer}' belongs to none of the collections {collections:?} (expected COLLECTION:WRITER)"
            ))
        })
}

/// One account's cohort in the protocol: the other accounts of its collection, and the z-side scores
/// (each of their references questioned against the account) computed once per account.
struct AccountCohort<'a> {
    method: CohortNormalisation,
    /// (writer, references) of each cohort account.
    members: Vec<(&'a str, &'a [Embedding])>,
    /// `z[i]`: member `i`'s references scored against the account (empty when the method has no
    /// z-side).
    z: Vec<Vec<f64>>,
}

impl<'a> AccountCohort<'a> {
    fn new(
        method: CohortNormalisation,
        writer: &str,
        refs: &[Embedding],
        accounts: &'a [(&'a str, &'a str, Vec<Embedding>)],
        collections: &[String],
        agg: Aggregation,
    ) -> Result<AccountCohort<'a>, ScoringError> {
        let mine = collection_of(writer, collections)?;
        let members: Vec<(&str, &[Embedding])> = accounts
            .iter()
            .filter(|(w, c, _)| *c == mine && *w != writer)
            .map(|(w, _, r)| (*w, r.as_slice()))
            .collect();
        let z = if method.uses_z() {
            members
                .iter()
                .map(|(_, m)| {
                    m.iter()
                        .map(|c| score_against_references(c, refs, agg))
                        .collect::<Result<Vec<f64>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        Ok(AccountCohort { method, members, z })
    }

    /// The cohort-normalised score of `questioned` (written by `questioned_writer`), whose raw score
    /// against the account is `raw`. The questioned writer's own account is left out of the cohort.
    fn normalise(
        &self,
        raw: f64,
        questioned: &Embedding,
        questioned_writer: &str,
        agg: Aggregation,
    ) -> Result<f64, ScoringError> {
        let mut t = Vec::with_capacity(self.members.len());
        let mut z = Vec::new();
        for (i, (member, member_refs)) in self.members.iter().enumerate() {
            if *member == questioned_writer {
                continue;
            }
            if self.method.uses_t() {
                t.push(score_against_references(questioned, member_refs, agg)?);
            }
            if let Some(zi) = self.z.get(i) {
                z.extend_from_slice(zi);
            }
        }
        self.method.normalise(raw, &t, &z)
    }
}

/// Normalised samples of one writer, in protocol order.
struct WriterSamples<'a> {
    genuine: Vec<(&'a LabelledEmbedding, Embedding)>,
    skilled: Vec<(&'a LabelledEmbedding, Embedding)>,
}

/// Runs steps 1-4 of the protocol; returns the scored pairs and the skipped writers.
fn score_protocol(
    samples: &[LabelledEmbedding],
    cfg: &EvalConfig,
) -> Result<(Vec<ScoredPair>, Vec<SkippedWriter>), ScoringError> {
    cfg.validate()?;
    if samples.is_empty() {
        return Err(ScoringError::Empty {
            what: "evaluation set",
        });
    }
    let dim = samples[0].embedding.len();
    let mut writers: BTreeMap<&str, WriterSamples<'_>> = BTreeMap::new();
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for s in samples {
        let wrap = |e: ScoringError| ScoringError::Sample {
            writer: s.writer.clone(),
            sample_id: s.sample_id.clone(),
            source: Box::new(e),
        };
        if s.embedding.len() != dim {
            return Err(wrap(ScoringError::DimensionMismatch {
                expected: dim,
                found: s.embedding.len(),
            }));
        }
        let e = l2_normalise(&s.embedding).map_err(wrap)?;
        if !seen.insert((s.writer.as_str(), s.sample_id.as_str())) {
            return Err(ScoringError::InvalidParameter(format!(
                "writer '{}' has two samples with id '{}'",
                s.writer, s.sample_id
            )));
        }
        let w = writers.entry(s.writer.as_str()).or_insert(WriterSamples {
            genuine: Vec::new(),
            skilled: Vec::new(),
        });
        if s.genuine {
            w.genuine.push((s, e));
        } else {
            w.skilled.push((s, e));
        }
    }
    for w in writers.values_mut() {
        w.genuine
            .sort_by(|x, y| natural_cmp(&x.0.sample_id, &y.0.sample_id));
        w.skilled
            .sort_by(|x, y| natural_cmp(&x.0.sample_id, &y.0.sample_id));
    }
    // The random-forgery pool: every genuine sample, by (writer, sample id).
    let pool: Vec<(&LabelledEmbedding, &Embedding)> = writers
        .values()
        .flat_map(|w| w.genuine.iter().map(|(s, e)| (*s, e)))
        .collect();

    let k = cfg.references;
    // The accounts a cohort is drawn from: every writer with K references, with its collection. Only
    // the first K genuine samples (the references) are taken.
    let accounts: Vec<(&str, &str, Vec<Embedding>)> = if cfg.cohort.is_some() {
        writers
            .iter()
            .filter(|(_, w)| w.genuine.len() >= k)
            .map(|(&name, w)| {
                Ok((
                    name,
                    collection_of(name, &cfg.collections)?,
                    w.genuine[..k].iter().map(|(_, e)| e.clone()).collect(),
                ))
            })
            .collect::<Result<_, ScoringError>>()?
    } else {
        Vec::new()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut pairs = Vec::new();
    let mut skipped = Vec::new();
    // Each writer's genuine samples form one contiguous run of the pool, starting here.
    let mut pool_start = 0usize;
    for (&writer, w) in &writers {
        let own_start = pool_start;
        let own_len = w.genuine.len();
        pool_start += own_len;
        if w.genuine.len() < k {
            skipped.push(SkippedWriter {
                writer: writer.to_string(),
                reason: format!(
                    "{} genuine samples, fewer than the {k} references the protocol needs",
                    w.genuine.len()
                ),
            });
            continue;
        }
        let refs: Vec<Embedding> = w.genuine[..k].iter().map(|(_, e)| e.clone()).collect();
        let stats = if cfg.znorm {
            Some(ReferenceStats::from_refs(&refs)?)
        } else {
            None
        };
        let cohort = match cfg.cohort {
            Some(method) => Some(
                AccountCohort::new(
                    method,
                    writer,
                    &refs,
                    &accounts,
                    &cfg.collections,
                    cfg.aggregation,
                )
                .map_err(|e| cohort_error(writer, e))?,
            ),
            None => None,
        };
        let score = |q: &Embedding, questioned_writer: &str| -> Result<f64, ScoringError> {
            let raw = score_against_references(q, &refs, cfg.aggregation)?;
            let znormed = stats.as_ref().map(|st| normalise_score(raw, st));
            let Some(cohort) = &cohort else {
                return Ok(znormed.unwrap_or(raw));
            };
            let c = cohort
                .normalise(raw, q, questioned_writer, cfg.aggregation)
                .map_err(|e| cohort_error(writer, e))?;
            // Both stages: the mean of the two standardised scores.
            Ok(znormed.map_or(c, |z| 0.5 * (z + c)))
        };
        for (s, e) in &w.genuine[k..] {
            pairs.push(ScoredPair {
                writer: writer.to_string(),
                questioned_writer: writer.to_string(),
                sample_id: s.sample_id.clone(),
                score: score(e, writer)?,
                genuine: true,
                skilled: false,
            });
        }
        for (s, e) in &w.skilled {
            pairs.push(ScoredPair {
                writer: writer.to_string(),
                questioned_writer: writer.to_string(),
                sample_id: s.sample_id.clone(),
                score: score(e, writer)?,
                genuine: false,
                skilled: true,
            });
        }
        // Draw among the other writers' samples by skipping this writer's run of the pool, which
        // costs O(draws) per writer instead of O(pool).
        let others = pool.len() - own_len;
        let amount = cfg.random_forgeries_per_writer.min(others);
        if amount > 0 {
            let mut picked = rand::seq::index::sample(&mut rng, others, amount).into_vec();
            // Report the draw in pool order, independent of the sampler's internal order.
            picked.sort_unstable();
            for idx in picked {
                let pool_idx = if idx < own_start { idx } else { idx + own_len };
                let (s, e) = pool[pool_idx];
                pairs.push(ScoredPair {
                    writer: writer.to_string(),
                    questioned_writer: s.writer.clone(),
                    sample_id: s.sample_id.clone(),
                    score: score(e, &s.writer)?,
                    genuine: false,
                    skilled: false,
                });
            }
        }
    }
    Ok((pairs, skipped))
}

/// Names the account whose cohort could not be used (e.g. a collection of two writers).
fn cohort_error(writer: &str, e: ScoringError) -> ScoringError {
    ScoringError::InvalidParameter(format!(
        "cohort normalisation of writer '{writer}' (its cohort is the other writers of its collection \
         with enough references): {e}"
    ))
}

/// Scores every questioned comparison of the protocol (module documentation, steps 1-4). This is the
/// labelled data `calibrate` fits on: see [`labelled_scores`].
pub fn evaluation_scores(
    samples: &[LabelledEmbedding],
    cfg: &EvalConfig,
) -> Result<Vec<ScoredPair>, ScoringError> {
    score_protocol(samples, cfg).map(|(pairs, _)| pairs)
}

/// Metrics of genuine signatures against one kind of forgery, with one global threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Equal error rate (interpolated; see [`super::metrics`]).
    pub eer: f64,
    /// A real score threshold next to the EER crossing, and the FAR and FRR it gives.
    pub eer_threshold: f64,
    pub far_at_eer_threshold: f64,
    pub frr_at_eer_threshold: f64,
    /// Area under the ROC (Mann-Whitney, ties 1/2).
    pub auc: f64,
    /// ROC points, down-sampled to at most [`MAX_CURVE_POINTS`].
    pub roc: Vec<RocPoint>,
    /// DET points, down-sampled to at most [`MAX_CURVE_POINTS`].
    pub det: Vec<DetPoint>,
}

impl ClassMetrics {
    fn compute(genuine: &[f64], forgeries: &[f64]) -> Result<ClassMetrics, ScoringError> {
        let (scores, labels) = join(genuine, forgeries);
        let roc = roc_points(&scores, &labels)?;
        let e = eer_from_roc(&roc);
        let det = det_from_roc(&roc, genuine.len(), forgeries.len());
        Ok(ClassMetrics {
            eer: e.eer,
            eer_threshold: e.threshold,
            far_at_eer_threshold: e.far,
            frr_at_eer_threshold: e.frr,
            auc: auc(&scores, &labels)?,
            roc: downsample(&roc, MAX_CURVE_POINTS),
            det: downsample(&det, MAX_CURVE_POINTS),
        })
    }
}

/// How many comparisons the evaluation made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluationCounts {
    /// Writers evaluated (not skipped).
    pub writers: usize,
    pub writers_skipped: usize,
    /// References per writer (K).
    pub references_per_writer: usize,
    /// Questioned genuine signatures.
    pub genuine: usize,
    /// Questioned skilled forgeries.
    pub skilled: usize,
    /// Questioned random forgeries.
    pub random: usize,
}

/// Histograms of the three score populations over the same bins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreHistograms {
    pub genuine: Histogram,
    pub skilled: Histogram,
    pub random: Histogram,
}

/// Deployment rates at a calibration and thresholds (decisions as [`super::decide`] takes them with
/// global thresholds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatingRates {
    pub calibration: Calibration,
    pub thresholds: Thresholds,
    /// Skilled forgeries ACCEPTED / skilled forgeries (`None` without skilled forgeries).
    pub far_skilled: Option<f64>,
    /// Random forgeries ACCEPTED / random forgeries (`None` without random forgeries).
    pub far_random: Option<f64>,
    /// Genuine signatures not ACCEPTED (REFER or REJECT) / genuine: the FRR of the accept threshold.
    pub frr: f64,
    /// Genuine signatures REJECTED / genuine.
    pub genuine_rejected: f64,
    /// Questioned signatures of every kind that were REFERRED / all questioned.
    pub refer_rate: f64,
}

fn decision_at(p: f64, t: &Thresholds) -> Decision {
    if p >= t.accept {
        Decision::Accept
    } else if p < t.reject {
        Decision::Reject
    } else {
        Decision::Refer
    }
}

impl OperatingRates {
    fn compute(pairs: &[ScoredPair], op: &OperatingPoint) -> OperatingRates {
        let rate = |pred: &dyn Fn(&ScoredPair) -> bool, d: Decision| -> Option<f64> {
            let class: Vec<&ScoredPair> = pairs.iter().filter(|p| pred(p)).collect();
            if class.is_empty() {
                return None;
            }
            let hits = class
                .iter()
                .filter(|p| decision_at(op.calibration.probability(p.score), &op.thresholds) == d)
                .count();
            Some(hits as f64 / class.len() as f64)
        };
        let accepted_genuine = rate(&|p| p.genuine, Decision::Accept).unwrap_or(0.0);
        OperatingRates {
            calibration: op.calibration,
            thresholds: op.thresholds,
            far_skilled: rate(&|p| p.skilled, Decision::Accept),
            far_random: rate(&|p| p.is_random(), Decision::Accept),
            frr: 1.0 - accepted_genuine,
            genuine_rejected: rate(&|p| p.genuine, Decision::Reject).unwrap_or(0.0),
            refer_rate: rate(&|_| true, Decision::Refer).unwrap_or(0.0),
        }
    }
}

/// Everything `countersign evaluate` reports, ready for JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluationReport {
    /// The model that produced the embeddings; set by the caller (the scoring layer does not know).
    pub model_id: Option<String>,
    pub config: EvalConfig,
    pub counts: EvaluationCounts,
    pub skipped_writers: Vec<SkippedWriter>,
    /// Genuine vs skilled forgeries (`None` when the data has no skilled forgeries).
    pub skilled: Option<ClassMetrics>,
    /// Genuine vs random forgeries (`None` when no random forgeries were drawn).
    pub random: Option<ClassMetrics>,
    /// Deployment rates when `config.operating` was given.
    pub operating: Option<OperatingRates>,
    pub histograms: ScoreHistograms,
    /// EER per writer with a threshold per writer.
    pub per_writer: Vec<WriterEer>,
    /// Mean of `per_writer` EERs (`None` when no writer had both classes).
    pub mean_writer_eer: Option<f64>,
}

/// Runs the whole protocol (module documentation) and computes the report.
pub fn evaluate(
    samples: &[LabelledEmbedding],
    cfg: &EvalConfig,
) -> Result<EvaluationReport, ScoringError> {
    let (pairs, skipped) = score_protocol(samples, cfg)?;
    EvaluationReport::from_scores(&pairs, skipped, cfg)
}

impl EvaluationReport {
    /// Computes the report from already scored pairs (for callers that scored once and want both
    /// the report and a calibration). Errors when there is no questioned genuine signature or no
    /// forgery of any kind, or on a non-finite score.
    pub fn from_scores(
        pairs: &[ScoredPair],
        skipped_writers: Vec<SkippedWriter>,
        cfg: &EvalConfig,
    ) -> Result<EvaluationReport, ScoringError> {
        cfg.validate()?;
        for (index, p) in pairs.iter().enumerate() {
            if !p.score.is_finite() {
                return Err(ScoringError::NonFinite {
                    what: "score",
                    index,
                    value: p.score,
                });
            }
        }
        let pick = |f: &dyn Fn(&ScoredPair) -> bool| -> Vec<f64> {
            pairs.iter().filter(|p| f(p)).map(|p| p.score).collect()
        };
        let genuine = pick(&|p| p.genuine);
        let skilled = pick(&|p| p.skilled);
        let random = pick(&|p| p.is_random());
        if genuine.is_empty() {
            return Err(ScoringError::NotEnoughData(format!(
                "no questioned genuine signatures: each writer needs more than {} genuine samples",
                cfg.references
            )));
        }
        if skilled.is_empty() && random.is_empty() {
            return Err(ScoringError::EmptyClass {
                class: "forgery",
                what: "evaluation",
            });
        }
        let skilled_metrics = if skilled.is_empty() {
            None
        } else {
            Some(ClassMetrics::compute(&genuine, &skilled)?)
        };
        let random_metrics = if random.is_empty() {
            None
        } else {
            Some(ClassMetrics::compute(&genuine, &random)?)
        };

        let (mut lo, mut hi) = pairs
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                (lo.min(p.score), hi.max(p.score))
            });
        if lo >= hi {
            lo -= 0.5;
            hi += 0.5;
        }
        let bins = cfg.histogram_bins;
        let histograms = ScoreHistograms {
            genuine: histogram(&genuine, lo, hi, bins)?,
            skilled: histogram(&skilled, lo, hi, bins)?,
            random: histogram(&random, lo, hi, bins)?,
        };
        let per_writer = per_writer_eer(pairs)?;
        let mean_writer_eer = if per_writer.is_empty() {
            None
        } else {
            Some(per_writer.iter().map(|w| w.eer).sum::<f64>() / per_writer.len() as f64)
        };
        let writers: HashSet<&str> = pairs.iter().map(|p| p.writer.as_str()).collect();
        Ok(EvaluationReport {
            model_id: None,
            config: cfg.clone(),
            counts: EvaluationCounts {
                writers: writers.len(),
                writers_skipped: skipped_writers.len(),
                references_per_writer: cfg.references,
                genuine: genuine.len(),
                skilled: skilled.len(),
                random: random.len(),
            },
            skipped_writers,
            skilled: skilled_metrics,
            random: random_metrics,
            // A calibration maps the scores it was fitted on; on scores of the other kind (raw vs
            // z-normalised, or cohort-normalised, which no calibration is fitted on) deployment rates
            // would be fiction.
            operating: cfg
                .operating
                .as_ref()
                .filter(|op| op.znorm == cfg.znorm && cfg.cohort.is_none())
                .map(|op| OperatingRates::compute(pairs, op)),
            histograms,
            per_writer,
            mean_writer_eer,
        })
    }

    /// A readable multi-line summary for the terminal.
    pub fn summary(&self) -> String {
        let pct = |v: f64| format!("{:6.2} %", 100.0 * v);
        let opt_pct = |v: Option<f64>| v.map_or_else(|| "     n/a".to_string(), pct);
        let c = &self.counts;
        let mut s = String::new();
        // Writing to a String cannot fail; the results are ignored deliberately.
        let _ = writeln!(
            s,
            "Evaluation{}",
            self.model_id
                .as_deref()
                .map_or(String::new(), |m| format!(" of model {m}"))
        );
        let _ = writeln!(
            s,
            "  protocol     K = {} references/writer, aggregation {}, z-norm {}, {} random forgeries/writer (seed {})",
            self.config.references,
            self.config.aggregation,
            if self.config.znorm { "on" } else { "off" },
            self.config.random_forgeries_per_writer,
            self.config.seed
        );
        if let Some(c) = self.config.cohort {
            let _ = writeln!(
                s,
                "  cohort       {c}{}: against the other writers of each collection, their {} references only",
                if self.config.znorm {
                    ", averaged with the reference z-norm"
                } else {
                    ""
                },
                self.config.references
            );
        }
        let _ = writeln!(
            s,
            "  counts       {} writers ({} skipped), {} genuine, {} skilled forgeries, {} random forgeries",
            c.writers, c.writers_skipped, c.genuine, c.skilled, c.random
        );
        let _ = writeln!(
            s,
            "  {:<12} {:>9} {:>8} {:>12}",
            "forgeries", "EER", "AUC", "threshold"
        );
        for (name, m) in [("skilled", &self.skilled), ("random", &self.random)] {
            match m {
                Some(m) => {
                    let _ = writeln!(
                        s,
                        "  {:<12} {:>9} {:>8.4} {:>12.4}",
                        name,
                        pct(m.eer),
                        m.auc,
                        m.eer_threshold
                    );
                }
                None => {
                    let _ = writeln!(s, "  {name:<12} {:>9}", "n/a");
                }
            }
        }
        if let Some(m) = self.mean_writer_eer {
            let _ = writeln!(
                s,
                "  per-writer   mean EER {} over {} writers",
                pct(m),
                self.per_writer.len()
            );
        }
        if let Some(op) = &self.operating {
            let _ = writeln!(
                s,
                "  operating    accept >= {:.4}, reject < {:.4} (p = sigmoid({:.4} s + {:.4}))",
                op.thresholds.accept, op.thresholds.reject, op.calibration.a, op.calibration.b
            );
            let _ = writeln!(
                s,
                "               FAR skilled {}  FAR random {}  FRR {}  genuine rejected {}  referred {}",
                opt_pct(op.far_skilled),
                opt_pct(op.far_random),
                pct(op.frr),
                pct(op.genuine_rejected),
                pct(op.refer_rate)
            );
        }
        for w in &self.skipped_writers {
            let _ = writeln!(s, "  skipped      {}: {}", w.writer, w.reason);
        }
        s
    }
}

/// EER and AUC of one aggregation, for choosing the default by measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregationComparison {
    pub aggregation: Aggregation,
    pub eer_skilled: Option<f64>,
    pub eer_random: Option<f64>,
    pub auc_skilled: Option<f64>,
    pub mean_writer_eer: Option<f64>,
}

/// Runs the protocol once per candidate aggregation (everything else from `cfg`) and returns the
/// figures side by side, so the default can be justified on held-out writers.
pub fn compare_aggregations(
    samples: &[LabelledEmbedding],
    cfg: &EvalConfig,
    candidates: &[Aggregation],
) -> Result<Vec<AggregationComparison>, ScoringError> {
    candidates
        .iter()
        .map(|&aggregation| {
            let c = EvalConfig {
                aggregation,
                ..cfg.clone()
            };
            let r = evaluate(samples, &c)?;
            Ok(AggregationComparison {
                aggregation,
                eer_skilled: r.skilled.as_ref().map(|m| m.eer),
                eer_random: r.random.as_ref().map(|m| m.eer),
                auc_skilled: r.skilled.as_ref().map(|m| m.auc),
                mean_writer_eer: r.mean_writer_eer,
            })
        })
        .collect()
}

/// The samples of collection `name` among pooled samples whose writers are named `name:WRITER`.
pub fn collection_samples(samples: &[LabelledEmbedding], name: &str) -> Vec<LabelledEmbedding> {
    let prefix = format!("{name}:");
    samples
        .iter()
        .filter(|s| s.writer.starts_with(&prefix))
        .cloned()
        .collect()
}

/// Computes [`CollectionFigures`] with `base`'s protocol (aggregation, z-norm, random forgeries, seed,
/// operating point), once with 1 and once with 5 references.
pub fn collection_figures(
    collection: &str,
    samples: &[LabelledEmbedding],
    base: &EvalConfig,
) -> Result<CollectionFigures, ScoringError> {
    let with_k = |k: usize| EvalConfig {
        references: k,
        ..base.clone()
    };
    let five = evaluate(samples, &with_k(5))?;
    let one = if base.znorm {
        None
    } else {
        Some(evaluate(samples, &with_k(1))?)
    };
    Ok(CollectionFigures {
        collection: collection.to_string(),
        writers: five.counts.writers,
        eer_skilled_1ref: one.and_then(|r| r.skilled.map(|m| m.eer)),
        eer_skilled_5ref: five.skilled.as_ref().map(|m| m.eer),
        eer_random_5ref: five.random.as_ref().map(|m| m.eer),
        auc_skilled_5ref: five.skilled.as_ref().map(|m| m.auc),
        far_skilled_at_operating_point: five.operating.as_ref().and_then(|o| o.far_skilled),
        frr_at_operating_point: five.operating.as_ref().map(|o| o.frr),
    })
}

/// The figures as an aligned text table, one row per collection.
pub fn figures_table(rows: &[CollectionFigures]) -> String {
    use std::fmt::Write as _;
    let pct = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{:.2}%", 100.0 * v));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>7} {:>12} {:>12} {:>12} {:>8} {:>14} {:>12}",
        "collection",
        "writers",
        "skilled K=1",
        "skilled K=5",
        "random K=5",
        "AUC K=5",
        "skilled FAR@op",
        "FRR@op"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<22} {:>7} {:>12} {:>12} {:>12} {:>8} {:>14} {:>12}",
            r.collection,
            r.writers,
            pct(r.eer_skilled_1ref),
            pct(r.eer_skilled_5ref),
            pct(r.eer_random_5ref),
            r.auc_skilled_5ref
                .map_or_else(|| "-".to_string(), |v| format!("{v:.3}")),
            pct(r.far_skilled_at_operating_point),
            pct(r.frr_at_operating_point),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::natural_cmp;
    use std::cmp::Ordering;

    #[test]
    fn natural_order_compares_digit_runs_by_value() {
        assert_eq!(natural_cmp("001_2", "001_10"), Ordering::Less);
        assert_eq!(natural_cmp("a10", "a9"), Ordering::Greater);
        assert_eq!(natural_cmp("a", "a1"), Ordering::Less);
        assert_eq!(natural_cmp("b1", "a2"), Ordering::Greater);
        // Equal values with different zero padding still get a total, deterministic order.
        assert_ne!(natural_cmp("x01", "x1"), Ordering::Equal);
        assert_eq!(natural_cmp("x1", "x1"), Ordering::Equal);
    }
}
