//! The accuracy protocol and the levers it measures (issue 13): binary ink and the input size are
//! normalisation parameters a card records and loading checks; `evaluate` with several collections
//! prints each one and the pool; the per-account stage (score normalisation) is the model card's, and
//! the one decision path applies it for every front end.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use countersign::imaging::normalise::{InkMode, NormaliseParams, normalise};
use countersign::model::{ModelError, SignatureModel};
use countersign::scoring::{
    Aggregation, Calibration, Decision, DecisionPolicy, Embedding, ReferenceStats,
    ScoreNormalisation, Thresholds, normalise_score, score_against_references,
};
use countersign::verify::{Policy, PolicySource};

use crate::train_shapes as shapes;

const BIN: &str = env!("CARGO_BIN_EXE_countersign");

fn cs(args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["--device", "cpu"]).args(args);
    for var in [
        "COUNTERSIGN_OPERATOR",
        "COUNTERSIGN_PIN",
        "COUNTERSIGN_DB",
        "COUNTERSIGN_MODEL",
    ] {
        cmd.env_remove(var);
    }
    cmd.output().expect("run countersign")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A grey scan: a thick stroke whose ink tone varies along it, on slightly noisy paper.
fn grey_scan() -> image::GrayImage {
    let mut img = image::GrayImage::from_fn(360, 160, |x, y| {
        image::Luma([228 + ((x * 7 + y * 13) % 9) as u8])
    });
    for t in 0..600u32 {
        let x = 30 + t / 2;
        let y = 40 + ((t as f32 / 40.0).sin() * 30.0 + 30.0) as u32;
        for d in 0..5 {
            img.put_pixel(x, y + d, image::Luma([30 + (t % 90) as u8]));
        }
    }
    img
}

#[test]
fn binary_ink_makes_a_grey_scan_and_its_bitonal_copy_one_input() {
    let grey = grey_scan();
    // The same scan thresholded, as a bitonal scanner (or BHSig260's collectors) would store it.
    let bitonal = image::GrayImage::from_fn(grey.width(), grey.height(), |x, y| {
        image::Luma([if grey.get_pixel(x, y).0[0] < 150 {
            0
        } else {
            255
        }])
    });
    let mad = |a: &[f32], b: &[f32]| {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
    };
    let grey_params = NormaliseParams::default();
    let binary_params = NormaliseParams {
        ink: InkMode::Binary,
        ..NormaliseParams::default()
    };
    let g1 = normalise(&grey, &grey_params).unwrap();
    let g2 = normalise(&bitonal, &grey_params).unwrap();
    let b1 = normalise(&grey, &binary_params).unwrap();
    let b2 = normalise(&bitonal, &binary_params).unwrap();
    let grey_gap = mad(&g1.pixels, &g2.pixels);
    let binary_gap = mad(&b1.pixels, &b2.pixels);
    assert!(
        binary_gap < 0.002,
        "binary ink: grey and bitonal scans differ by {binary_gap}"
    );
    assert!(
        grey_gap > 5.0 * binary_gap.max(1e-4),
        "grey ink keeps the tone, so the two scans differ ({grey_gap} vs {binary_gap})"
    );
    // The stroke is at full intensity in binary mode, and the paper stays 0.
    assert_eq!(b1.pixels.iter().cloned().fold(0.0, f32::max), 1.0);
    assert_eq!(b1.pixels[0], 0.0);
    // The version follows the parameters: grey keeps version 1 (old cards), binary needs 2.
    assert_eq!(grey_params.version(), 1);
    assert_eq!(binary_params.version(), 2);
    assert_eq!(NormaliseParams::parse_size("220x150").unwrap(), (220, 150));
    assert!(NormaliseParams::parse_size("220*150").is_err());
}

/// A seeded model with these parameters, saved under `dir`.
fn saved_model(dir: &Path, params: NormaliseParams, seed: u64) -> PathBuf {
    let weights = dir.join(format!("m{seed}.safetensors"));
    let mut m = SignatureModel::new_seeded(params, tch::Device::Cpu, seed).unwrap();
    m.save(&weights).unwrap();
    weights
}

fn edit_card(weights: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let card = countersign::model::card_path(weights);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&card).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&card, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn train_records_the_input_size_and_ink_and_the_model_embeds_at_that_size() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shapes");
    shapes::write_folders(&data, 8, 6, 2);
    let out = dir.path().join("m.safetensors");
    let o = cs(&[
        "--threads",
        "1",
        "train",
        "--data",
        data.to_str().unwrap(),
        "--holdout-count",
        "2",
        "--epochs",
        "1",
        "--steps",
        "3",
        "--writers",
        "4",
        "--samples",
        "2",
        "--warmup",
        "1",
        "--input",
        "128x80",
        "--ink",
        "binary",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let model = SignatureModel::load(&out, tch::Device::Cpu).unwrap();
    let card = model.card();
    assert_eq!((card.input_width, card.input_height), (128, 80));
    assert_eq!(card.preprocessing.params.ink, InkMode::Binary);
    assert_eq!(card.preprocessing.version, 2);
    let n = normalise(&shapes::sample(1, 1, true), model.normalise_params()).unwrap();
    assert_eq!((n.width, n.height), (128, 80));
    assert_eq!(model.embed(&[n]).unwrap()[0].len(), 128);

    // `bench` measures the speed of the model named with --model, at its own input size.
    let o = cs(&[
        "--model",
        out.to_str().unwrap(),
        "bench",
        "--only",
        "model",
        "--quick",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let input = String::from_utf8_lossy(&o.stdout)
        .lines()
        .find(|l| l.trim_start().starts_with("model.input"))
        .map(|l| l.split_whitespace().last().unwrap_or_default().to_string());
    assert_eq!(input.as_deref(), Some("128x80"), "{}", text(&o));

    // A fine-tune keeps the model's own normalisation, and a size given with --init is refused.
    let o = cs(&[
        "train",
        "--data",
        data.to_str().unwrap(),
        "--init",
        out.to_str().unwrap(),
        "--input",
        "192x96",
        "--out",
        dir.path().join("ft.safetensors").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--input"), "{}", text(&o));
}

#[test]
fn cards_that_understate_their_preprocessing_or_format_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let binary = NormaliseParams {
        ink: InkMode::Binary,
        ..NormaliseParams::default()
    };
    let w = saved_model(dir.path(), binary, 5);
    SignatureModel::load(&w, tch::Device::Cpu).unwrap();
    // A binary-ink card claiming version 1 would be read as grey ink by a binary that predates it.
    edit_card(&w, |v| v["preprocessing"]["version"] = 1.into());
    assert!(matches!(
        SignatureModel::load(&w, tch::Device::Cpu),
        Err(ModelError::PreprocessingMismatch { found: 1, .. })
    ));

    // A grey card from before the `ink` field loads as grey, version 1.
    let g = saved_model(dir.path(), NormaliseParams::default(), 6);
    edit_card(&g, |v| {
        v["preprocessing"]["params"]
            .as_object_mut()
            .unwrap()
            .remove("ink");
    });
    let m = SignatureModel::load(&g, tch::Device::Cpu).unwrap();
    assert_eq!(m.normalise_params().ink, InkMode::Grey);

    // A per-account stage needs card format 2; a format from the future is refused.
    edit_card(&g, |v| v["score_normalisation"] = "reference_znorm".into());
    assert!(matches!(
        SignatureModel::load(&g, tch::Device::Cpu),
        Err(ModelError::BadCard { .. })
    ));
    edit_card(&g, |v| v["card_version"] = 2.into());
    let m = SignatureModel::load(&g, tch::Device::Cpu).unwrap();
    assert_eq!(
        m.card().score_normalisation,
        ScoreNormalisation::ReferenceZnorm
    );
    edit_card(&g, |v| v["card_version"] = 99.into());
    assert!(matches!(
        SignatureModel::load(&g, tch::Device::Cpu),
        Err(ModelError::BadCard { .. })
    ));
}

fn synth(out: &Path, writers: &str, seed: &str) {
    let o = cs(&[
        "synth",
        "--writers",
        writers,
        "--genuine",
        "7",
        "--forgeries",
        "3",
        "--seed",
        seed,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn evaluate_prints_every_collection_and_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let alpha = dir.path().join("alpha");
    let beta = dir.path().join("beta");
    synth(&alpha, "4", "21");
    synth(&beta, "3", "22");
    let model = saved_model(dir.path(), NormaliseParams::default(), 9);
    let db = dir.path().join("db.sqlite3");
    let run = |extra: &[&str], json: &Path| {
        let mut args = vec![
            "--db",
            db.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "evaluate",
        ];
        args.extend_from_slice(extra);
        args.extend(["--json", json.to_str().unwrap()]);
        let o = cs(&args);
        let report: Option<serde_json::Value> = o
            .status
            .success()
            .then(|| serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap());
        (o, report)
    };
    let (a, b) = (alpha.to_str().unwrap(), beta.to_str().unwrap());
    let (o, both) = run(&["--data", a, "--data", b], &dir.path().join("both.json"));
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    for row in ["alpha", "beta", "pooled"] {
        assert!(
            out.lines().any(|l| l.starts_with(row)),
            "no {row} row in\n{out}"
        );
    }
    let both = both.unwrap();
    let rows = both["collections"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["writers"], 4);
    assert_eq!(rows[1]["writers"], 3);
    assert_eq!(rows[2]["writers"], 7);
    // A collection's row is what evaluating that collection alone gives.
    let (o, alone) = run(&["--data", a], &dir.path().join("alpha.json"));
    assert!(o.status.success(), "{}", text(&o));
    let alone = alone.unwrap();
    let only = &alone["collections"][0];
    for field in ["eer_skilled_1ref", "eer_skilled_5ref", "eer_random_5ref"] {
        assert_eq!(rows[0][field], only[field], "{field}");
        assert!(rows[0][field].as_f64().is_some(), "{field} missing");
    }

    // Writer lists name COLLECTION:WRITER; a collection the list leaves out is refused, as is a
    // plain name that could belong to either.
    let (o, _) = run(
        &[
            "--data",
            a,
            "--data",
            b,
            "--writers",
            "alpha:w0001,alpha:w0002,beta:w0001,beta:w0003",
        ],
        &dir.path().join("some.json"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let (o, _) = run(
        &[
            "--data",
            a,
            "--data",
            b,
            "--writers",
            "alpha:w0001,alpha:w0002",
        ],
        &dir.path().join("x.json"),
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("names no writer of beta"), "{}", text(&o));
    let (o, _) = run(
        &["--data", a, "--data", b, "--writers", "w0001"],
        &dir.path().join("y.json"),
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("w0001"), "{}", text(&o));
}

fn emb(v: &[f32]) -> Embedding {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn policy(normalisation: ScoreNormalisation) -> Policy {
    Policy {
        decision: DecisionPolicy::new(Thresholds {
            accept: 0.8,
            reject: 0.2,
        })
        .unwrap(),
        normalisation,
        calibration: Some(Calibration { a: 1.5, b: 0.5 }),
        aggregation: Aggregation::default(),
        source: PolicySource::ModelCard,
    }
}

#[test]
fn the_per_account_stage_feeds_z_scores_to_the_calibration_and_refers_without_enough_references() {
    let refs = [
        emb(&[1.0, 0.1, 0.0, 0.2]),
        emb(&[0.9, 0.2, 0.1, 0.1]),
        emb(&[1.0, 0.0, 0.2, 0.1]),
    ];
    let q = emb(&[0.7, 0.5, 0.2, 0.3]);
    let r: Vec<&Embedding> = refs.iter().collect();
    let raw = score_against_references(&q, &refs, Aggregation::default()).unwrap();
    let z = normalise_score(raw, &ReferenceStats::from_refs(&refs).unwrap());
    assert!((z - raw).abs() > 0.1, "the stage must change the score");

    let plain = policy(ScoreNormalisation::None)
        .decide(Some(&q), None, &r, Some("1001"), None)
        .unwrap();
    let staged = policy(ScoreNormalisation::ReferenceZnorm)
        .decide(Some(&q), None, &r, Some("1001"), None)
        .unwrap();
    let cal = Calibration { a: 1.5, b: 0.5 };
    assert_eq!(plain.normalised_score, Some(raw));
    assert_eq!(plain.probability, Some(cal.probability(raw)));
    assert_eq!(staged.raw_score, Some(raw));
    assert_eq!(staged.normalised_score, Some(z));
    assert_eq!(staged.probability, Some(cal.probability(z)));

    // One reference gives no spread to normalise by: no probability, REFER, and the reason says why.
    let one = policy(ScoreNormalisation::ReferenceZnorm)
        .decide(Some(&q), None, &r[..1], Some("1001"), None)
        .unwrap();
    assert_eq!(one.probability, None);
    assert_eq!(one.outcome.decision, Decision::Refer);
    assert!(
        one.outcome.reason.contains("at least 2 references"),
        "{}",
        one.outcome.reason
    );
    // The plain model decides on one reference as before.
    let plain_one = policy(ScoreNormalisation::None)
        .decide(Some(&q), None, &r[..1], Some("1001"), None)
        .unwrap();
    assert!(plain_one.probability.is_some());
}

#[test]
fn calibrate_records_the_stage_in_the_card_and_the_gui_and_library_decide_with_it() {
    use countersign::gui::backend::{Backend, BackendConfig};

    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = crate::pipeline_fixture::setup(dir.path());
    let data = dir.path().join("labelled");
    synth(&data, "5", "31");
    let model = saved_model(dir.path(), NormaliseParams::default(), 4);
    let db = fx.db.clone();
    let op = [
        "--db",
        db.to_str().unwrap(),
        "--operator",
        countersign::batch::bench::fixture::OPERATOR,
        "--pin",
        countersign::batch::bench::fixture::PIN,
        "--model",
        model.to_str().unwrap(),
    ];
    let d = data.to_str().unwrap();

    // Saving a z-norm calibration in the store for a model whose decisions do not normalise is refused.
    let mut args = op.to_vec();
    args.extend([
        "calibrate",
        "--data",
        d,
        "--znorm",
        "--save",
        "--reason",
        "r",
    ]);
    let o = cs(&args);
    assert!(!o.status.success());
    assert!(text(&o).contains("--write-card"), "{}", text(&o));

    // Recorded in the card together with its calibration.
    let mut args = op.to_vec();
    args.extend([
        "calibrate",
        "--data",
        d,
        "--znorm",
        "--target-far",
        "0.2",
        "--write-card",
        "--reason",
        "per-account stage",
    ]);
    let o = cs(&args);
    assert!(o.status.success(), "{}", text(&o));
    let m = SignatureModel::load(&model, tch::Device::Cpu).unwrap();
    assert_eq!(
        m.card().score_normalisation,
        ScoreNormalisation::ReferenceZnorm
    );
    assert_eq!(m.card().card_version, 2);
    let cal = m.card().calibration.unwrap();

    // The library's verifier and the GUI both score through it: the same z-score and probability.
    let w = &fx.writers[0];
    let verifier = countersign::verify::Verifier::from_store(
        countersign::verify::shared_model(m),
        countersign::imaging::cheque::ChequeLayout::default(),
        None,
    )
    .unwrap();
    assert_eq!(
        verifier.policy().normalisation,
        ScoreNormalisation::ReferenceZnorm
    );
    let lib = verifier
        .verify(&countersign::verify::VerifyRequest {
            references: countersign::verify::References::Images(
                w.references
                    .iter()
                    .map(|p| countersign::verify::ImageSource::Path(p.clone()))
                    .collect(),
            ),
            questioned: countersign::verify::Questioned {
                kind: countersign::verify::InputKind::Cheque,
                image: countersign::verify::ImageSource::Path(w.cheques[0].clone()),
            },
            manual_crop: None,
            account: None,
            amount_cents: None,
            cheque_id: None,
        })
        .unwrap();
    let lib_p = lib.probability.unwrap();

    let mut gui = Backend::new(BackendConfig {
        db_path: fx.db.clone(),
        model_path: Some(model.clone()),
        device: countersign::device::DeviceChoice::Cpu,
    });
    gui.sign_in(
        countersign::batch::bench::fixture::OPERATOR,
        countersign::batch::bench::fixture::PIN,
    )
    .unwrap();
    for (i, r) in w.references.iter().enumerate() {
        gui.load_image(countersign::gui::Slot::Reference(i), r)
            .unwrap();
    }
    gui.load_image(countersign::gui::Slot::Cheque, &w.cheques[0])
        .unwrap();
    let outcome = gui.verify(None, None, None).unwrap();
    assert!(
        outcome
            .probability
            .is_some_and(|p| (p - lib_p).abs() < 1e-6),
        "GUI {:?} vs library {lib_p}",
        outcome.probability
    );
    // And that probability is the calibration of the z-score, not of the raw similarity.
    let raw = lib.raw_score.unwrap();
    assert!((cal.probability(raw) - lib_p).abs() > 1e-6);

    // With one reference the stage cannot score: the GUI refers and says why (not "no calibration").
    for i in 1..w.references.len() {
        gui.clear_slot(countersign::gui::Slot::Reference(i));
    }
    let one = gui.verify(None, None, None).unwrap();
    // No probability: None, never NaN or a stand-in 0; the score, if any, is a real number.
    assert_eq!(one.probability, None);
    assert!(one.score.is_none_or(f64::is_finite), "{:?}", one.score);
    assert_eq!(one.decision, Decision::Refer);
    assert!(
        one.reason.contains("at least 2 references"),
        "{}",
        one.reason
    );
    assert!(!one.reason.contains("No calibration"), "{}", one.reason);
}

/// Embeddings of a labelled collection: each writer a random direction, genuine samples close to it,
/// skilled forgeries at `forgery_noise` from it (small = hard to tell apart).
fn collection(
    name: &str,
    writers: usize,
    forgery_noise: f32,
    seed: u64,
) -> Vec<countersign::scoring::LabelledEmbedding> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let gauss = |scale: f32, rng: &mut rand_chacha::ChaCha8Rng| -> Vec<f32> {
        (0..16)
            .map(|_| rng.random_range(-1.0f32..1.0) * scale)
            .collect()
    };
    let mut out = Vec::new();
    for w in 0..writers {
        let centre = gauss(1.0, &mut rng);
        let mut add = |genuine: bool, i: usize, noise: f32, rng: &mut rand_chacha::ChaCha8Rng| {
            let n = gauss(noise, rng);
            let v: Vec<f32> = centre.iter().zip(&n).map(|(c, d)| c + d).collect();
            out.push(countersign::scoring::LabelledEmbedding {
                writer: format!("{name}:w{w:02}"),
                genuine,
                sample_id: format!("{}{i:02}", if genuine { "g" } else { "f" }),
                embedding: emb(&v),
            });
        };
        for i in 0..8 {
            add(true, i, 0.25, &mut rng);
        }
        for i in 0..4 {
            add(false, i, forgery_noise, &mut rng);
        }
    }
    out
}

#[test]
fn thresholds_chosen_across_collections_hold_on_each_collection() {
    let mut samples = collection("easy", 24, 1.2, 1);
    samples.extend(collection("hard", 6, 0.45, 2));
    let names = vec!["easy".to_string(), "hard".to_string()];
    let cfg = countersign::scoring::EvalConfig::default();
    let target = 0.02;
    let (across, _) =
        countersign::assess::calibrate_collections(&samples, &names, &cfg, target, 0.05).unwrap();
    let t = across.choice.thresholds;
    for name in &names {
        let pairs = countersign::scoring::evaluation_scores(
            &countersign::scoring::collection_samples(&samples, name),
            &cfg,
        )
        .unwrap();
        let probs: Vec<(f64, bool)> = pairs
            .iter()
            .map(|p| (across.calibration.probability(p.score), p.genuine))
            .collect();
        let forged = probs.iter().filter(|(_, g)| !g).count() as f64;
        let genuine = probs.iter().filter(|(_, g)| *g).count() as f64;
        let far = probs.iter().filter(|(p, g)| !g && *p >= t.accept).count() as f64 / forged;
        let rejected = probs.iter().filter(|(p, g)| *g && *p < t.reject).count() as f64 / genuine;
        assert!(far <= target + 1e-12, "{name}: FAR {far} above {target}");
        assert!(
            rejected <= 0.05 + 1e-12,
            "{name}: genuine rejected {rejected}"
        );
    }
    // A threshold chosen on the pool alone lets the hard collection's forgeries through: the easy
    // collection's many forgeries dilute them.
    let (pooled, _) = countersign::assess::calibrate(&samples, &cfg, target, 0.05).unwrap();
    let hard = countersign::scoring::evaluation_scores(
        &countersign::scoring::collection_samples(&samples, "hard"),
        &cfg,
    )
    .unwrap();
    let forged: Vec<f64> = hard
        .iter()
        .filter(|p| !p.genuine)
        .map(|p| pooled.calibration.probability(p.score))
        .collect();
    let far = forged
        .iter()
        .filter(|p| **p >= pooled.choice.thresholds.accept)
        .count() as f64
        / forged.len() as f64;
    assert!(far > target, "pooled thresholds: hard-collection FAR {far}");
}
