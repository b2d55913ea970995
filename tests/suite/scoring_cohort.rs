//! Cohort score normalisation in the evaluation protocol: who is in a writer's cohort (never the
//! writer, never a questioned image, only other writers' references, only its own collection), and
//! `countersign evaluate --cohort` end to end on synthetic data with a real network.

use std::collections::BTreeMap;

use countersign::scoring::{
    Aggregation, Calibration, CohortNormalisation, EvalConfig, LabelledEmbedding, OperatingPoint,
    ReferenceStats, Thresholds, evaluate, evaluation_scores, l2_normalise, normalise_score,
    score_against_references,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::assess_cli::{cs, evaluate as evaluate_cli, fixture, text};

const DIM: usize = 16;
const K: usize = 2;

fn gaussian(rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..DIM)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// The protocol normalises every embedding first; the same function here gives the same inputs.
fn l2(v: &[f32]) -> Vec<f32> {
    l2_normalise(v).expect("a random vector is not zero")
}

/// Two collections `a` and `b` of 5 writers (4 genuine, 2 skilled forgeries each, all random
/// vectors so that every score differs), plus a writer of `a` with a single genuine signature (skipped
/// with K = 2, so no account and never in a cohort).
fn samples() -> Vec<LabelledEmbedding> {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut out = Vec::new();
    for c in ["a", "b"] {
        for w in 0..5 {
            let writer = format!("{c}:w{w}");
            for g in 0..4 {
                out.push(LabelledEmbedding {
                    writer: writer.clone(),
                    genuine: true,
                    sample_id: format!("g{g}"),
                    embedding: gaussian(&mut rng),
                });
            }
            for f in 0..2 {
                out.push(LabelledEmbedding {
                    writer: writer.clone(),
                    genuine: false,
                    sample_id: format!("f{f}"),
                    embedding: gaussian(&mut rng),
                });
            }
        }
    }
    out.push(LabelledEmbedding {
        writer: "a:short".into(),
        genuine: true,
        sample_id: "g0".into(),
        embedding: gaussian(&mut rng),
    });
    out
}

fn config(method: CohortNormalisation, znorm: bool) -> EvalConfig {
    EvalConfig {
        references: K,
        aggregation: Aggregation::Mean,
        znorm,
        // Every other genuine sample as a random forgery, so that other writers' *references* are
        // questioned too: exactly the images that must not sit in the cohort at the same time.
        random_forgeries_per_writer: 100,
        cohort: Some(method),
        collections: vec!["a".into(), "b".into()],
        ..EvalConfig::default()
    }
}

/// The scores the protocol's rule gives, computed here from the definition: the cohort of writer `w`
/// for a questioned sample of writer `v` is every writer of `w`'s collection with K genuine samples,
/// except `w` and `v`, each with its first K genuine samples (sample ids sort as g0 < g1 < ...).
fn expected(
    samples: &[LabelledEmbedding],
    method: CohortNormalisation,
    znorm: bool,
    include: &dyn Fn(&str, &str, &str) -> bool,
) -> BTreeMap<(String, String, String), f64> {
    let mut refs: BTreeMap<&str, Vec<Vec<f32>>> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.genuine) {
        refs.entry(&s.writer).or_default().push(l2(&s.embedding));
    }
    let accounts: BTreeMap<&str, Vec<Vec<f32>>> = refs
        .into_iter()
        .filter(|(_, r)| r.len() >= K)
        .map(|(w, r)| (w, r[..K].to_vec()))
        .collect();
    let cfg = config(method, znorm);
    let mut out = BTreeMap::new();
    for p in evaluation_scores(samples, &cfg).expect("protocol scores") {
        let q = samples
            .iter()
            .find(|s| s.writer == p.questioned_writer && s.sample_id == p.sample_id)
            .expect("every questioned sample is one of the samples");
        let own = &accounts[p.writer.as_str()];
        let cohort: Vec<Vec<Vec<f32>>> = accounts
            .iter()
            .filter(|(m, _)| include(&p.writer, &p.questioned_writer, m))
            .map(|(_, r)| r.clone())
            .collect();
        let qn = l2(&q.embedding);
        let c = method
            .apply(&qn, own, &cohort, Aggregation::Mean)
            .expect("the rule's cohort is large enough");
        let score = if znorm {
            let raw = score_against_references(&qn, own, Aggregation::Mean).expect("raw score");
            0.5 * (normalise_score(
                raw,
                &ReferenceStats::from_refs(own).expect("K = 2 references"),
            ) + c)
        } else {
            c
        };
        out.insert((p.writer, p.questioned_writer, p.sample_id), score);
    }
    out
}

fn same_collection(w: &str, m: &str) -> bool {
    w.split(':').next() == m.split(':').next()
}

#[test]
fn a_writer_and_the_questioned_images_never_enter_a_cohort() {
    let samples = samples();
    let rule = |w: &str, v: &str, m: &str| same_collection(w, m) && m != w && m != v;
    let with_writer = |w: &str, v: &str, m: &str| same_collection(w, m) && m != v;
    let with_questioned = |w: &str, _v: &str, m: &str| same_collection(w, m) && m != w;
    let across = |w: &str, v: &str, m: &str| m != w && m != v;
    for method in [
        CohortNormalisation::TNorm,
        CohortNormalisation::SNorm,
        CohortNormalisation::AdaptiveSNorm { top: 2 },
        CohortNormalisation::CohortZNorm,
    ] {
        for znorm in [false, true] {
            let got = evaluation_scores(&samples, &config(method, znorm)).unwrap();
            let want = expected(&samples, method, znorm, &rule);
            assert_eq!(got.len(), want.len());
            // Random forgeries include other writers' references of the same collection.
            assert!(got.iter().any(|p| p.is_random()
                && same_collection(&p.writer, &p.questioned_writer)
                && ["g0", "g1"].contains(&p.sample_id.as_str())));
            for p in &got {
                let w = want[&(
                    p.writer.clone(),
                    p.questioned_writer.clone(),
                    p.sample_id.clone(),
                )];
                assert!(
                    (p.score - w).abs() < 1e-9 * w.abs().max(1.0),
                    "{method} {p:?}: expected {w} from the rule"
                );
            }
            // The check can tell: a cohort holding the writer itself, the questioned sample's writer
            // (whose references include the questioned image), or the other collection's writers
            // would give other scores.
            for (name, leaky) in [
                (
                    "the writer itself",
                    &with_writer as &dyn Fn(&str, &str, &str) -> bool,
                ),
                ("the questioned writer", &with_questioned),
                ("the other collection", &across),
            ] {
                let bad = expected(&samples, method, znorm, leaky);
                let differs = got.iter().filter(|p| {
                    let b = bad[&(
                        p.writer.clone(),
                        p.questioned_writer.clone(),
                        p.sample_id.clone(),
                    )];
                    (p.score - b).abs() > 1e-3
                });
                assert!(
                    differs.count() > 0,
                    "{method}: a cohort with {name} is indistinguishable"
                );
            }
        }
    }
}

#[test]
fn a_cohort_too_small_is_a_clear_error_and_no_operating_rates_are_reported() {
    // Collection `b` reduced to two writers: for a random forgery of the one by the other, the cohort
    // is empty.
    let samples: Vec<LabelledEmbedding> = samples()
        .into_iter()
        .filter(|s| !s.writer.starts_with("b:") || s.writer == "b:w0" || s.writer == "b:w1")
        .collect();
    let err = evaluate(&samples, &config(CohortNormalisation::TNorm, false)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("cohort") && msg.contains("b:w"), "{msg}");

    // Collection `a` alone, with an operating point: the cohort scores are measured, but no
    // calibration was fitted on them, so there are no deployment rates.
    let a: Vec<LabelledEmbedding> = samples
        .into_iter()
        .filter(|s| s.writer.starts_with("a:"))
        .collect();
    let op = OperatingPoint {
        calibration: Calibration { a: 1.0, b: 0.0 },
        thresholds: Thresholds {
            accept: 0.9,
            reject: 0.1,
        },
        znorm: false,
    };
    let cfg = EvalConfig {
        operating: Some(op),
        ..config(CohortNormalisation::TNorm, false)
    };
    let r = evaluate(&a, &cfg).unwrap();
    assert!(r.operating.is_none());
    assert!(
        r.summary().contains("cohort       tnorm"),
        "{}",
        r.summary()
    );
    let plain = evaluate(
        &a,
        &EvalConfig {
            cohort: None,
            ..cfg
        },
    )
    .unwrap();
    assert!(plain.operating.is_some());

    // A writer of no listed collection is refused, not silently put in a cohort.
    let cfg = EvalConfig {
        collections: vec!["b".into()],
        ..config(CohortNormalisation::TNorm, false)
    };
    assert!(evaluate(&a, &cfg).is_err());
}

#[test]
fn evaluate_cohort_measures_against_reference_znorm_on_the_same_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let (data, weights) = fixture(dir.path());
    let db = dir.path().join("audit.sqlite3");
    let d = data.to_str().unwrap();
    let json = dir.path().join("cohort.json");
    let j = json.to_str().unwrap();
    let o = cs(
        &db,
        &weights,
        &["evaluate", "--data", d, "--cohort", "asnorm:3", "--json", j],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("cohort       asnorm:3"), "{out}");
    assert!(
        out.contains("reference z-norm on the same embeddings"),
        "{out}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["config"]["cohort"], "asnorm:3");
    let row = &report["spread"][0];
    let paired = &row["against_baseline"];
    let eer = report["skilled"]["eer"].as_f64().unwrap();
    assert_eq!(paired["lever"]["value"].as_f64(), Some(eer));
    let (lever, base) = (
        paired["lever"]["value"].as_f64().unwrap(),
        paired["baseline"]["value"].as_f64().unwrap(),
    );
    let diff = paired["difference"]["value"].as_f64().unwrap();
    assert!((diff - (lever - base)).abs() < 1e-12);

    // The baseline is exactly what `evaluate --znorm` reports for the same data and model.
    let zjson = dir.path().join("znorm.json");
    let o = cs(
        &db,
        &weights,
        &[
            "evaluate",
            "--data",
            d,
            "--znorm",
            "--json",
            zjson.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let z: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&zjson).unwrap()).unwrap();
    assert_eq!(z["skilled"]["eer"].as_f64(), Some(base));
    assert!(z["config"]["cohort"].is_null());
    // A plain run prints its spread too.
    assert!(z["spread"][0]["skilled"]["sd"].as_f64().is_some());

    // Cohort figures never go into a model card, and an unknown method is a clear error.
    let o = cs(
        &db,
        &weights,
        &["evaluate", "--data", d, "--cohort", "tnorm", "--write-card"],
        &[],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("--write-card"), "{}", text(&o));
    let o = cs(
        &db,
        &weights,
        &["evaluate", "--data", d, "--cohort", "snorm:5"],
        &[],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("asnorm[:N]"), "{}", text(&o));
}

#[test]
fn evaluate_cohort_draws_each_cohort_from_its_own_collection() {
    // Two collections named by their folders; each writer's cohort is its own collection's writers.
    let dir = tempfile::tempdir().unwrap();
    let (data, weights) = fixture(dir.path());
    let other = dir.path().join("second");
    std::fs::rename(&data, &other).unwrap();
    let (data, _) = fixture(dir.path());
    let db = dir.path().join("audit.sqlite3");
    let report = evaluate_cli(
        &db,
        &weights,
        &data,
        &dir.path().join("two.json"),
        &["--data", other.to_str().unwrap(), "--cohort", "tnorm"],
    );
    assert_eq!(report["config"]["collections"][0], "data");
    assert_eq!(report["config"]["collections"][1], "second");
    // One spread row per collection and the pooled one.
    let rows = report["spread"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2]["collection"], "pooled");
    // The two collections hold the same images. Had the cohorts been drawn across collections, each
    // writer's identical twin would sit in its cohort; drawn within, the first collection scores its
    // genuine signatures and skilled forgeries exactly as it does alone.
    let alone = evaluate_cli(
        &db,
        &weights,
        &data,
        &dir.path().join("alone.json"),
        &["--cohort", "tnorm"],
    );
    assert_eq!(
        rows[0]["skilled"]["value"].as_f64(),
        alone["skilled"]["eer"].as_f64()
    );
    assert_eq!(
        report["collections"][0]["eer_skilled_5ref"].as_f64(),
        alone["skilled"]["eer"].as_f64()
    );
}
