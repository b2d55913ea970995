//! How much an EER would move with other writers: the writer bootstrap. The writers of an evaluation
//! are resampled with replacement (each keeps all of its genuine and skilled-forgery pairs) and the
//! skilled-forgery EER is recomputed; its spread over the resamples says how far a figure can be
//! trusted. Two scorings of the same pairs (a lever on and off) are compared on the *same* resamples
//! ([`paired_writer_bootstrap`]): the spread of their difference is much smaller than the spread of
//! either, because the hard and easy writers are shared, and it is the one that says whether a lever
//! helped. [`spread_rows`] and [`spread_table`] are what `countersign evaluate` prints: each
//! collection's and the pooled spread, and with a cohort stage the paired comparison against
//! reference z-norm.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{EvalConfig, LabelledEmbedding, ScoredPair, ScoringError, eer};

/// The spread of an EER (or of an EER difference) over writer resamples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EerSpread {
    /// The figure on all the writers (not a bootstrap mean).
    pub value: f64,
    /// Standard deviation over the resamples.
    pub sd: f64,
    /// 2.5 % and 97.5 % quantiles over the resamples.
    pub ci95: (f64, f64),
    /// Resamples that had both classes (the others have no EER and are left out).
    pub rounds: usize,
}

/// A lever against a baseline on the same pairs: each one's spread and the spread of the difference
/// (`lever - baseline`, negative when the lever lowers the EER).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedEerSpread {
    pub lever: EerSpread,
    pub baseline: EerSpread,
    pub difference: EerSpread,
}

/// Skilled-forgery EER of `pairs`, with its writer-bootstrap spread (`rounds` resamples, seeded).
/// `None` without skilled forgeries, with fewer than 2 writers, or when fewer than 2 resamples had
/// both classes.
pub fn writer_bootstrap(
    pairs: &[ScoredPair],
    rounds: usize,
    seed: u64,
) -> Result<Option<EerSpread>, ScoringError> {
    Ok(bootstrap(&[pairs], rounds, seed)?.map(|mut v| v.remove(0).spread))
}

/// The skilled-forgery EERs of `lever` and `baseline`, two scorings of the same protocol pairs (same
/// writers and samples in the same order), and the difference, on the same writer resamples.
pub fn paired_writer_bootstrap(
    lever: &[ScoredPair],
    baseline: &[ScoredPair],
    rounds: usize,
    seed: u64,
) -> Result<Option<PairedEerSpread>, ScoringError> {
    if lever.len() != baseline.len()
        || lever.iter().zip(baseline).any(|(a, b)| {
            a.writer != b.writer
                || a.sample_id != b.sample_id
                || a.questioned_writer != b.questioned_writer
                || a.genuine != b.genuine
                || a.skilled != b.skilled
        })
    {
        return Err(ScoringError::InvalidParameter(
            "a paired comparison needs two scorings of the same pairs".to_string(),
        ));
    }
    let Some(mut runs) = bootstrap(&[lever, baseline], rounds, seed)? else {
        return Ok(None);
    };
    let (baseline, lever) = (runs.remove(1), runs.remove(0));
    let diffs: Vec<f64> = lever
        .samples
        .iter()
        .zip(&baseline.samples)
        .map(|(a, b)| a - b)
        .collect();
    Ok(Some(PairedEerSpread {
        difference: summarise(lever.spread.value - baseline.spread.value, diffs),
        lever: lever.spread,
        baseline: baseline.spread,
    }))
}

struct Run {
    spread: EerSpread,
    samples: Vec<f64>,
}

/// The skilled EER of each run on all writers and on each resample; only resamples where every run
/// has an EER are kept, so that the runs stay paired.
fn bootstrap(
    runs: &[&[ScoredPair]],
    rounds: usize,
    seed: u64,
) -> Result<Option<Vec<Run>>, ScoringError> {
    let Some(first) = runs.first() else {
        return Ok(None);
    };
    // Pair indices by writer, from the first run (the others hold the same pairs in the same order).
    let mut by_writer: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in first.iter().enumerate() {
        if p.genuine || p.skilled {
            by_writer.entry(p.writer.as_str()).or_default().push(i);
        }
    }
    let writers: Vec<&Vec<usize>> = by_writer.values().collect();
    if writers.len() < 2 || !first.iter().any(|p| p.skilled) {
        return Ok(None);
    }
    let skilled_eer = |run: &[ScoredPair], picked: &mut dyn Iterator<Item = usize>| {
        let (scores, labels): (Vec<f64>, Vec<bool>) =
            picked.map(|i| (run[i].score, run[i].genuine)).unzip();
        eer(&scores, &labels).ok().map(|e| e.eer)
    };
    let mut full = Vec::with_capacity(runs.len());
    for run in runs {
        let mut all = writers.iter().flat_map(|w| w.iter().copied());
        match skilled_eer(run, &mut all) {
            Some(e) => full.push(e),
            None => return Ok(None),
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); runs.len()];
    for _ in 0..rounds {
        let picked: Vec<usize> = (0..writers.len())
            .map(|_| rng.random_range(0..writers.len()))
            .collect();
        let eers: Option<Vec<f64>> = runs
            .iter()
            .map(|run| {
                let mut it = picked.iter().flat_map(|&w| writers[w].iter().copied());
                skilled_eer(run, &mut it)
            })
            .collect();
        if let Some(eers) = eers {
            for (s, e) in samples.iter_mut().zip(eers) {
                s.push(e);
            }
        }
    }
    if samples[0].len() < 2 {
        return Ok(None);
    }
    Ok(Some(
        full.into_iter()
            .zip(samples)
            .map(|(value, s)| Run {
                spread: summarise(value, s.clone()),
                samples: s,
            })
            .collect(),
    ))
}

fn summarise(value: f64, mut samples: Vec<f64>) -> EerSpread {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    let mean = samples.iter().sum::<f64>() / n as f64;
    let var = samples.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
    let q = |f: f64| samples[((n - 1) as f64 * f).round() as usize];
    EerSpread {
        value,
        sd: var.sqrt(),
        ci95: (q(0.025), q(0.975)),
        rounds: n,
    }
}

/// Writer resamples of `evaluate`'s spread, and their seed (the numbers `train` uses for the card).
pub const BOOTSTRAP_ROUNDS: usize = 1000;
pub const BOOTSTRAP_SEED: u64 = 2011;

/// The writer-bootstrap spread of one collection's (or the pooled) skilled EER and, with a cohort
/// stage, the same against reference z-norm on the same embeddings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpreadRow {
    pub collection: String,
    /// The run's skilled EER and spread (`None` without skilled forgeries or with one writer).
    pub skilled: Option<EerSpread>,
    pub random_eer: Option<f64>,
    /// With a cohort stage: the run against the baseline, paired on the same writer resamples.
    pub against_baseline: Option<PairedEerSpread>,
    /// The baseline's name (`reference z-norm`, or `raw` with one reference).
    pub baseline: Option<String>,
    pub baseline_random_eer: Option<f64>,
}

fn random_eer(pairs: &[ScoredPair]) -> Option<f64> {
    let (s, l) = super::labelled_scores(pairs, super::Forgeries::Random);
    eer(&s, &l).ok().map(|e| e.eer)
}

/// The spread of the skilled EER of each collection (when there are several) and of all of them,
/// under `cfg`'s protocol; with a cohort stage, paired against reference z-norm (raw with K = 1) on the
/// same embeddings. What `countersign evaluate` prints.
pub fn spread_rows(
    samples: &[LabelledEmbedding],
    cfg: &EvalConfig,
    names: &[String],
) -> Result<Vec<SpreadRow>, ScoringError> {
    let mut scopes: Vec<(String, Vec<LabelledEmbedding>)> = Vec::new();
    if names.len() > 1 {
        for name in names {
            scopes.push((name.clone(), super::collection_samples(samples, name)));
        }
    }
    let all = if names.len() > 1 {
        "pooled"
    } else {
        names.first().map_or("data", String::as_str)
    };
    scopes.push((all.to_string(), samples.to_vec()));
    // The shipped per-account stage (reference z-norm) is the baseline a cohort stage must beat.
    let baseline = cfg.cohort.map(|_| EvalConfig {
        cohort: None,
        znorm: cfg.references >= 2,
        operating: None,
        ..cfg.clone()
    });
    let mut rows = Vec::new();
    for (collection, scope) in scopes {
        let pairs = super::evaluation_scores(&scope, cfg)?;
        let mut row = SpreadRow {
            collection,
            skilled: None,
            random_eer: random_eer(&pairs),
            against_baseline: None,
            baseline: None,
            baseline_random_eer: None,
        };
        match &baseline {
            Some(b) => {
                let base_pairs = super::evaluation_scores(&scope, b)?;
                row.against_baseline =
                    paired_writer_bootstrap(&pairs, &base_pairs, BOOTSTRAP_ROUNDS, BOOTSTRAP_SEED)?;
                row.skilled = row.against_baseline.map(|p| p.lever);
                row.baseline = Some(if b.znorm { "reference z-norm" } else { "raw" }.to_string());
                row.baseline_random_eer = random_eer(&base_pairs);
            }
            None => {
                row.skilled = writer_bootstrap(&pairs, BOOTSTRAP_ROUNDS, BOOTSTRAP_SEED)?;
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The rows of [`spread_rows`] as text.
pub fn spread_table(rows: &[SpreadRow], cfg: &EvalConfig) -> String {
    use std::fmt::Write as _;
    let pct = |v: f64| format!("{:.2}%", 100.0 * v);
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), pct);
    let spread = |s: &EerSpread| {
        format!(
            "{} (sd {:.2}, 95% {:.2}..{:.2})",
            pct(s.value),
            100.0 * s.sd,
            100.0 * s.ci95.0,
            100.0 * s.ci95.1
        )
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "spread: skilled EER K={} over {BOOTSTRAP_ROUNDS} writer resamples (seed {BOOTSTRAP_SEED}); sd and interval in points",
        cfg.references
    );
    for r in rows {
        let _ = write!(
            out,
            "  {:<20} {}  random {}",
            r.collection,
            r.skilled.as_ref().map_or_else(|| "-".to_string(), spread),
            opt(r.random_eer)
        );
        if let (Some(p), Some(name)) = (&r.against_baseline, &r.baseline) {
            let _ = write!(
                out,
                "\n  {:<20} {name} on the same embeddings: {}  random {}\n  {:<20} difference {:+.2} points (paired sd {:.2}, 95% {:+.2}..{:+.2})",
                "",
                spread(&p.baseline),
                opt(r.baseline_random_eer),
                "",
                100.0 * p.difference.value,
                100.0 * p.difference.sd,
                100.0 * p.difference.ci95.0,
                100.0 * p.difference.ci95.1
            );
        }
        let _ = writeln!(out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four writers, each with two genuine and two skilled pairs; scores chosen so that the classes
    /// overlap (the EER is neither 0 nor 1).
    fn pairs(shift: f64) -> Vec<ScoredPair> {
        let mut out = Vec::new();
        for w in 0..4 {
            for (i, (score, genuine)) in [(0.9, true), (0.5, true), (0.6, false), (0.2, false)]
                .into_iter()
                .enumerate()
            {
                out.push(ScoredPair {
                    writer: format!("w{w}"),
                    questioned_writer: format!("w{w}"),
                    sample_id: format!("s{i}"),
                    score: score + shift * f64::from(w) * if genuine { 1.0 } else { -1.0 },
                    genuine,
                    skilled: !genuine,
                });
            }
        }
        out
    }

    #[test]
    fn the_value_is_the_eer_on_all_writers_and_a_scoring_against_itself_differs_by_nothing() {
        let p = pairs(0.0);
        let (s, l) = crate::scoring::labelled_scores(&p, crate::scoring::Forgeries::Skilled);
        let all = eer(&s, &l).unwrap().eer;
        let single = writer_bootstrap(&p, 200, 1).unwrap().unwrap();
        assert_eq!(single.value, all);
        let paired = paired_writer_bootstrap(&p, &p, 200, 1).unwrap().unwrap();
        assert_eq!(paired.lever, paired.baseline);
        assert_eq!(paired.lever, single);
        assert_eq!(paired.difference.value, 0.0);
        assert_eq!(paired.difference.sd, 0.0);
    }

    #[test]
    fn a_better_scoring_differs_by_its_eer_gap_and_other_pairs_are_refused() {
        // Writers 1-3 separate their classes better in the lever: its EER is lower.
        let (lever, base) = (pairs(0.1), pairs(0.0));
        let c = paired_writer_bootstrap(&lever, &base, 200, 1)
            .unwrap()
            .unwrap();
        assert!(c.lever.value < c.baseline.value, "{c:?}");
        assert_eq!(c.difference.value, c.lever.value - c.baseline.value);
        assert!(c.difference.ci95.1 <= 0.0, "{c:?}");
        let mut other = base.clone();
        other.swap(0, 1);
        assert!(paired_writer_bootstrap(&lever, &other, 200, 1).is_err());
        assert!(paired_writer_bootstrap(&lever, &base[1..], 200, 1).is_err());
    }
}
