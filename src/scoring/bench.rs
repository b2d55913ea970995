//! Speed figures for the scoring layer (wired into `countersign bench` by the CLI). Synthetic data
//! only, so the figures need no dataset or model.

use std::hint::black_box;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::{
    Aggregation, EvalConfig, LabelledEmbedding, eer, evaluate, fit_platt, score_against_references,
};

const DIM: usize = 128;

fn unit(rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..DIM)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// Measures: one questioned signature against 5 references (128-d), a full evaluation of a
/// SigComp-sized set (64 writers, 24 genuine + 12 forgeries each), a Platt fit and an EER on
/// 100 000 scores. Returns (name, figure) pairs.
pub fn bench() -> anyhow::Result<Vec<(String, String)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(2011);
    let mut out = Vec::new();

    let refs: Vec<Vec<f32>> = (0..5).map(|_| unit(&mut rng)).collect();
    let q = unit(&mut rng);
    let n = 50_000u32;
    let t = Instant::now();
    for _ in 0..n {
        black_box(score_against_references(
            black_box(&q),
            &refs,
            Aggregation::default(),
        )?);
    }
    out.push((
        "scoring: score vs 5 references (128-d)".to_string(),
        format!("{:.0} ns", t.elapsed().as_nanos() as f64 / f64::from(n)),
    ));

    let mut samples = Vec::new();
    for w in 0..64 {
        let centre = unit(&mut rng);
        for i in 0..36 {
            let noise = unit(&mut rng);
            samples.push(LabelledEmbedding {
                writer: format!("{w:03}"),
                genuine: i < 24,
                sample_id: format!("{i:02}"),
                embedding: centre
                    .iter()
                    .zip(&noise)
                    .map(|(c, e)| c + 0.5 * e)
                    .collect(),
            });
        }
    }
    let t = Instant::now();
    let report = evaluate(&samples, &EvalConfig::default())?;
    out.push((
        format!(
            "scoring: evaluate 64 writers ({} comparisons)",
            report.counts.genuine + report.counts.skilled + report.counts.random
        ),
        format!("{:.1} ms", t.elapsed().as_secs_f64() * 1e3),
    ));

    let scores: Vec<f64> = (0..100_000).map(|_| rng.random_range(0.0..1.0)).collect();
    let labels: Vec<bool> = scores.iter().map(|&s| rng.random_bool(s)).collect();
    let t = Instant::now();
    black_box(fit_platt(&scores[..10_000], &labels[..10_000])?);
    out.push((
        "scoring: Platt fit on 10 000 pairs".to_string(),
        format!("{:.2} ms", t.elapsed().as_secs_f64() * 1e3),
    ));
    let t = Instant::now();
    black_box(eer(&scores, &labels)?);
    out.push((
        "scoring: EER on 100 000 scores".to_string(),
        format!("{:.1} ms", t.elapsed().as_secs_f64() * 1e3),
    ));
    Ok(out)
}
