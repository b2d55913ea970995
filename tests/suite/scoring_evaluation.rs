//! The evaluation protocol on synthetic embeddings: writers are random unit vectors, genuine
//! samples are the writer's vector plus noise, skilled forgeries are pushed a bit further away.

use countersign::scoring::{
    Aggregation, Calibration, EvalConfig, EvaluationReport, Forgeries, LabelledEmbedding,
    OperatingPoint, ScoringError, Thresholds, compare_aggregations, evaluate, evaluation_scores,
    labelled_scores,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

const DIM: usize = 32;

/// A random vector with N(0, 1/d) components, so its length is about 1.
fn gaussian(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let s = 1.0 / (DIM as f32).sqrt();
    (0..DIM)
        .map(|_| rng.sample::<f32, _>(StandardNormal) * s)
        .collect()
}

fn add(a: &[f32], b: &[f32], scale: f32) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + scale * y).collect()
}

struct Synth {
    writers: usize,
    genuine: usize,
    forgeries: usize,
    noise: f32,
    forgery_offset: f32,
    /// Ignore the writers entirely: every sample is a random vector.
    pure_noise: bool,
    seed: u64,
}

impl Synth {
    fn clustered() -> Synth {
        Synth {
            writers: 20,
            genuine: 12,
            forgeries: 6,
            noise: 0.35,
            forgery_offset: 0.9,
            pure_noise: false,
            seed: 7,
        }
    }

    fn build(&self) -> Vec<LabelledEmbedding> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut out = Vec::new();
        for w in 0..self.writers {
            let centre = gaussian(&mut rng);
            let writer = format!("w{w:02}");
            for g in 0..self.genuine {
                let embedding = if self.pure_noise {
                    gaussian(&mut rng)
                } else {
                    let n = gaussian(&mut rng);
                    add(&centre, &n, self.noise)
                };
                out.push(LabelledEmbedding {
                    writer: writer.clone(),
                    genuine: true,
                    sample_id: format!("{writer}_g{g}"),
                    embedding,
                });
            }
            for f in 0..self.forgeries {
                let embedding = if self.pure_noise {
                    gaussian(&mut rng)
                } else {
                    let away = gaussian(&mut rng);
                    let n = gaussian(&mut rng);
                    add(&add(&centre, &away, self.forgery_offset), &n, self.noise)
                };
                out.push(LabelledEmbedding {
                    writer: writer.clone(),
                    genuine: false,
                    sample_id: format!("{writer}_f{f}"),
                    embedding,
                });
            }
        }
        out
    }
}

#[test]
fn clustered_writers_are_separated() {
    let samples = Synth::clustered().build();
    let cfg = EvalConfig::default();
    let r = evaluate(&samples, &cfg).unwrap();
    let skilled = r.skilled.as_ref().unwrap();
    let random = r.random.as_ref().unwrap();
    assert!(skilled.eer < 0.1, "skilled EER {}", skilled.eer);
    assert!(skilled.auc > 0.95, "skilled AUC {}", skilled.auc);
    // Other writers' signatures are much further away than skilled forgeries.
    assert!(random.eer <= skilled.eer, "random EER {}", random.eer);
    // Counts follow the protocol exactly: K = 5 of 12 genuine are references.
    assert_eq!(r.counts.writers, 20);
    assert_eq!(r.counts.genuine, 20 * 7);
    assert_eq!(r.counts.skilled, 20 * 6);
    assert_eq!(r.counts.random, 20 * 10);
    assert_eq!(r.per_writer.len(), 20);
    assert!(r.mean_writer_eer.unwrap() < 0.1);
    // Curves are bounded and histograms hold every score.
    assert!(skilled.roc.len() <= 200 && random.roc.len() <= 200);
    assert!(random.det.len() <= 200);
    assert_eq!(r.histograms.genuine.counts.iter().sum::<usize>(), 140);
    assert_eq!(r.histograms.random.counts.iter().sum::<usize>(), 200);
    assert_eq!(r.histograms.genuine.counts.len(), cfg.histogram_bins);
}

#[test]
fn znorm_and_every_aggregation_also_separate() {
    let samples = Synth::clustered().build();
    let cfg = EvalConfig {
        znorm: true,
        ..EvalConfig::default()
    };
    let r = evaluate(&samples, &cfg).unwrap();
    assert!(r.skilled.as_ref().unwrap().eer < 0.1);
    let cands = [
        Aggregation::Max,
        Aggregation::Mean,
        Aggregation::TopKMean(3),
    ];
    let cmp = compare_aggregations(&samples, &EvalConfig::default(), &cands).unwrap();
    assert_eq!(cmp.len(), 3);
    for (c, agg) in cmp.iter().zip(cands) {
        assert_eq!(c.aggregation, agg);
        assert!(c.eer_skilled.unwrap() < 0.15, "{c:?}");
    }
}

#[test]
fn pure_noise_is_at_chance() {
    let samples = Synth {
        pure_noise: true,
        writers: 30,
        ..Synth::clustered()
    }
    .build();
    let r = evaluate(&samples, &EvalConfig::default()).unwrap();
    let s = r.skilled.as_ref().unwrap();
    assert!((s.eer - 0.5).abs() < 0.12, "EER {}", s.eer);
    assert!((s.auc - 0.5).abs() < 0.12, "AUC {}", s.auc);
}

#[test]
fn protocol_is_deterministic_and_seeded() {
    let samples = Synth::clustered().build();
    let cfg = EvalConfig::default();
    let a = evaluation_scores(&samples, &cfg).unwrap();
    let b = evaluation_scores(&samples, &cfg).unwrap();
    assert_eq!(a, b);
    // Shuffling the input does not change anything: order comes from writer and sample id.
    let mut shuffled = samples.clone();
    shuffled.reverse();
    assert_eq!(evaluation_scores(&shuffled, &cfg).unwrap(), a);
    // Another seed draws other random forgeries but the same genuine and skilled pairs.
    let other = evaluation_scores(
        &samples,
        &EvalConfig {
            seed: 99,
            ..cfg.clone()
        },
    )
    .unwrap();
    let ids = |v: &[countersign::scoring::ScoredPair], random: bool| -> Vec<String> {
        v.iter()
            .filter(|p| p.is_random() == random)
            .map(|p| format!("{}>{}", p.writer, p.sample_id))
            .collect()
    };
    assert_eq!(ids(&a, false), ids(&other, false));
    assert_ne!(ids(&a, true), ids(&other, true));
    // Random forgeries always come from another writer.
    assert!(
        a.iter()
            .filter(|p| p.is_random())
            .all(|p| p.questioned_writer != p.writer)
    );
}

#[test]
fn references_are_the_first_k_in_natural_order() {
    // One writer, ids s1..s12 given out of order; s2 < s10 in natural order.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let centre = gaussian(&mut rng);
    let mut samples = Vec::new();
    for i in [10, 3, 12, 1, 7, 2, 11, 5, 9, 4, 8, 6] {
        let n = gaussian(&mut rng);
        samples.push(LabelledEmbedding {
            writer: "solo".into(),
            genuine: true,
            sample_id: format!("s{i}"),
            embedding: add(&centre, &n, 0.3),
        });
    }
    samples.push(LabelledEmbedding {
        writer: "solo".into(),
        genuine: false,
        sample_id: "f1".into(),
        embedding: gaussian(&mut rng),
    });
    let pairs = evaluation_scores(&samples, &EvalConfig::default()).unwrap();
    let genuine: Vec<&str> = pairs
        .iter()
        .filter(|p| p.genuine)
        .map(|p| p.sample_id.as_str())
        .collect();
    assert_eq!(genuine, vec!["s6", "s7", "s8", "s9", "s10", "s11", "s12"]);
    // No other writer: no random forgeries, so only the skilled metrics exist.
    let r = evaluate(&samples, &EvalConfig::default()).unwrap();
    assert!(r.random.is_none() && r.skilled.is_some());
}

#[test]
fn writers_with_too_few_genuine_are_skipped_and_reported() {
    let mut samples = Synth::clustered().build();
    samples.retain(|s| !(s.writer == "w03" && s.genuine && !s.sample_id.ends_with("g0")));
    let r = evaluate(&samples, &EvalConfig::default()).unwrap();
    assert_eq!(r.counts.writers, 19);
    assert_eq!(r.counts.writers_skipped, 1);
    assert_eq!(r.skipped_writers[0].writer, "w03");
    assert!(r.summary().contains("skipped      w03"));
}

#[test]
fn bad_evaluation_input_gives_typed_errors() {
    let samples = Synth::clustered().build();
    let cfg = EvalConfig::default();
    assert!(matches!(
        evaluate(&[], &cfg),
        Err(ScoringError::Empty { .. })
    ));
    let mut dup = samples.clone();
    dup.push(samples[0].clone());
    assert!(matches!(
        evaluate(&dup, &cfg),
        Err(ScoringError::InvalidParameter(_))
    ));
    let mut bad = samples.clone();
    bad[5].embedding.pop();
    let err = evaluate(&bad, &cfg).unwrap_err();
    assert!(err.to_string().contains(&bad[5].sample_id), "{err}");
    let mut zero = samples.clone();
    zero[3].embedding = vec![0.0; DIM];
    assert!(matches!(
        evaluate(&zero, &cfg),
        Err(ScoringError::Sample { .. })
    ));
    let mut nan = samples.clone();
    nan[4].embedding[0] = f32::NAN;
    assert!(evaluate(&nan, &cfg).is_err());
    let k1_znorm = EvalConfig {
        references: 1,
        znorm: true,
        ..cfg.clone()
    };
    assert!(evaluate(&samples, &k1_znorm).is_err());
    let k0 = EvalConfig {
        references: 0,
        ..cfg.clone()
    };
    assert!(evaluate(&samples, &k0).is_err());
    // Every writer's genuine samples are all references: nothing genuine left to question.
    let all_refs = EvalConfig {
        references: 12,
        ..cfg.clone()
    };
    assert!(matches!(
        evaluate(&samples, &all_refs),
        Err(ScoringError::NotEnoughData(_))
    ));
}

#[test]
fn operating_rates_match_a_direct_count() {
    let samples = Synth::clustered().build();
    let calibration = Calibration { a: 20.0, b: -15.0 };
    let thresholds = Thresholds::new(0.9, 0.2).unwrap();
    let cfg = EvalConfig {
        operating: Some(OperatingPoint {
            calibration,
            thresholds,
            znorm: false,
        }),
        ..EvalConfig::default()
    };
    let r = evaluate(&samples, &cfg).unwrap();
    // With z-norm the scores are on another scale than a raw calibration: no deployment rates; a
    // calibration fitted on z-scores gives them, and a z-score calibration says nothing of raw scores.
    let z = EvalConfig {
        znorm: true,
        ..cfg.clone()
    };
    assert!(evaluate(&samples, &z).unwrap().operating.is_none());
    let z_fitted = EvalConfig {
        operating: cfg.operating.map(|op| OperatingPoint { znorm: true, ..op }),
        ..z.clone()
    };
    assert!(evaluate(&samples, &z_fitted).unwrap().operating.is_some());
    let raw_with_z_cal = EvalConfig {
        znorm: false,
        ..z_fitted.clone()
    };
    assert!(
        evaluate(&samples, &raw_with_z_cal)
            .unwrap()
            .operating
            .is_none()
    );
    let op = r.operating.as_ref().unwrap();
    let pairs = evaluation_scores(&samples, &cfg).unwrap();
    let rate = |f: &dyn Fn(&countersign::scoring::ScoredPair) -> bool,
                hit: &dyn Fn(f64) -> bool| {
        let class: Vec<_> = pairs.iter().filter(|p| f(p)).collect();
        class
            .iter()
            .filter(|p| hit(calibration.probability(p.score)))
            .count() as f64
            / class.len() as f64
    };
    let eq = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(eq(
        op.far_skilled.unwrap(),
        rate(&|p| p.skilled, &|q| q >= 0.9)
    ));
    assert!(eq(
        op.far_random.unwrap(),
        rate(&|p| p.is_random(), &|q| q >= 0.9)
    ));
    assert!(eq(op.frr, rate(&|p| p.genuine, &|q| q < 0.9)));
    assert!(eq(op.genuine_rejected, rate(&|p| p.genuine, &|q| q < 0.2)));
    assert!(eq(
        op.refer_rate,
        rate(&|_| true, &|q| (0.2..0.9).contains(&q))
    ));
    let text = r.summary();
    assert!(
        text.contains("FAR skilled") && text.contains("accept >= 0.9000"),
        "{text}"
    );
}

#[test]
fn report_serialises_and_summarises() {
    let samples = Synth::clustered().build();
    let mut r = evaluate(&samples, &EvalConfig::default()).unwrap();
    r.model_id = Some("signet-test".into());
    let json = serde_json::to_string_pretty(&r).unwrap();
    let back: EvaluationReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back.counts, r.counts);
    assert_eq!(back.per_writer.len(), r.per_writer.len());
    let text = r.summary();
    let eer_line = format!("{:6.2} %", 100.0 * r.skilled.as_ref().unwrap().eer);
    assert!(text.contains("of model signet-test"), "{text}");
    assert!(text.contains(&eer_line), "{text}");
    assert!(
        text.contains("140 genuine, 120 skilled forgeries, 200 random forgeries"),
        "{text}"
    );
}

#[test]
fn labelled_scores_select_forgery_kinds() {
    let samples = Synth::clustered().build();
    let pairs = evaluation_scores(&samples, &EvalConfig::default()).unwrap();
    let count = |f| {
        let (s, l) = labelled_scores(&pairs, f);
        assert_eq!(s.len(), l.len());
        (
            l.iter().filter(|&&x| x).count(),
            l.iter().filter(|&&x| !x).count(),
        )
    };
    assert_eq!(count(Forgeries::Skilled), (140, 120));
    assert_eq!(count(Forgeries::Random), (140, 200));
    assert_eq!(count(Forgeries::All), (140, 320));
}

#[test]
fn bench_reports_every_figure() {
    let figures = countersign::scoring::bench::bench().unwrap();
    assert_eq!(figures.len(), 4);
    for (name, value) in &figures {
        assert!(
            name.starts_with("scoring: ") && !value.is_empty(),
            "{name}: {value}"
        );
        println!("{name}: {value}");
    }
}
