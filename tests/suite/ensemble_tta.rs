//! The ensemble and test-time augmentation levers of `countersign evaluate` (`--ensemble-with`,
//! `--tta`; docs/ACCURACY.md): real libtorch networks, a synthetic labelled dataset written by
//! `countersign synth`, the real binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use countersign::assess::{embed_dataset, embed_dataset_with};
use countersign::imaging::normalise::{InkMode, NormaliseParams};
use countersign::model::SignatureModel;
use countersign::scoring::{LabelledEmbedding, cosine_similarity};
use countersign::train::dataset::{Layout, scan};

use super::assess_cli::{cs, evaluate, fixture, text};

/// A second network, unlike the fixture's in weights *and* preprocessing (input size, ink), so that
/// each model must preprocess with its own card.
fn second_model(dir: &Path, params: NormaliseParams) -> PathBuf {
    let weights = dir.join("second").join("m2.safetensors");
    let mut model = SignatureModel::new_seeded(params, tch::Device::Cpu, 11).expect("model");
    model.save(&weights).expect("save");
    weights
}

fn binary_220x150() -> NormaliseParams {
    NormaliseParams {
        width: 220,
        height: 150,
        ink: InkMode::Binary,
        ..NormaliseParams::default()
    }
}

fn no_progress() -> impl FnMut(usize, usize) -> std::ops::ControlFlow<()> {
    |_, _| std::ops::ControlFlow::Continue(())
}

fn by_id(samples: &[LabelledEmbedding]) -> HashMap<(String, String), &LabelledEmbedding> {
    samples
        .iter()
        .map(|s| ((s.writer.clone(), s.sample_id.clone()), s))
        .collect()
}

#[test]
fn an_ensemble_of_a_model_with_itself_gives_the_models_own_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (data, weights) = fixture(dir.path());
    let db = dir.path().join("audit.sqlite3");
    let w = weights.to_str().unwrap();
    for znorm in [&[][..], &["--znorm"][..]] {
        let alone = evaluate(&db, &weights, &data, &dir.path().join("alone.json"), znorm);
        let mut extra = vec!["--ensemble-with", w];
        extra.extend_from_slice(znorm);
        let twice = evaluate(&db, &weights, &data, &dir.path().join("twice.json"), &extra);
        for class in ["skilled", "random"] {
            let (a, b) = (&alone[class], &twice[class]);
            assert_eq!(a["eer"], b["eer"], "{class} EER, {znorm:?}");
            let (ta, tb) = (
                a["eer_threshold"].as_f64().unwrap(),
                b["eer_threshold"].as_f64().unwrap(),
            );
            // The same scores up to float rounding of the scaled halves.
            assert!((ta - tb).abs() < 1e-5, "{class} threshold {ta} vs {tb}");
            assert_eq!(a["auc"], b["auc"], "{class} AUC, {znorm:?}");
        }
        assert_eq!(alone["counts"], twice["counts"]);
        let id = twice["model_id"].as_str().unwrap();
        assert!(id.starts_with("ensemble["), "{id}");
        assert!(alone["spread"][0]["skilled"]["sd"].as_f64().unwrap() >= 0.0);
        // Judged against the model alone on the same pairs, the change is nil.
        let change = &twice["change_against_model_alone"];
        assert_eq!(change["baseline"]["value"], alone["skilled"]["eer"]);
        assert!(
            change["difference"]["value"].as_f64().unwrap().abs() < 1e-12,
            "{change}"
        );
        assert!(alone.get("change_against_model_alone").is_none());
    }
}

#[test]
fn an_ensembles_pair_score_is_the_mean_of_its_models_cosines() {
    let dir = tempfile::tempdir().unwrap();
    let (data, weights) = fixture(dir.path());
    let other = second_model(dir.path(), binary_220x150());
    let a = SignatureModel::load(&weights, tch::Device::Cpu).unwrap();
    let b = SignatureModel::load(&other, tch::Device::Cpu).unwrap();
    let ds = scan(&data, Layout::Auto).unwrap();
    let set_a = embed_dataset(&a, &ds, &mut no_progress()).unwrap();
    let set_b = embed_dataset(&b, &ds, &mut no_progress()).unwrap();
    let both = embed_dataset_with(&[&a, &b], false, &ds, &mut no_progress()).unwrap();
    assert!(both.failures.is_empty(), "{:?}", both.failures);
    assert_eq!(both.samples.len(), ds.samples.len());
    let (ia, ib) = (by_id(&set_a.samples), by_id(&set_b.samples));
    let mut checked = 0;
    let mut differs_from_a = false;
    for (i, x) in both.samples.iter().enumerate() {
        for y in both.samples.iter().skip(i + 1).step_by(3) {
            let key = |s: &LabelledEmbedding| (s.writer.clone(), s.sample_id.clone());
            let ca = cosine_similarity(&ia[&key(x)].embedding, &ia[&key(y)].embedding).unwrap();
            let cb = cosine_similarity(&ib[&key(x)].embedding, &ib[&key(y)].embedding).unwrap();
            let got = cosine_similarity(&x.embedding, &y.embedding).unwrap();
            assert!(
                (got - (ca + cb) / 2.0).abs() < 1e-5,
                "{:?} vs {:?}: ensemble {got}, models {ca} and {cb}",
                key(x),
                key(y)
            );
            differs_from_a |= (got - ca).abs() > 1e-3;
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} pairs");
    assert!(differs_from_a, "the second model changed no score");

    // The CLI scores with the same embeddings: its figures differ from either model alone.
    let db = dir.path().join("audit.sqlite3");
    let alone = evaluate(&db, &weights, &data, &dir.path().join("a.json"), &[]);
    let ens = evaluate(
        &db,
        &weights,
        &data,
        &dir.path().join("ab.json"),
        &["--ensemble-with", other.to_str().unwrap()],
    );
    assert_ne!(
        alone["skilled"]["eer_threshold"],
        ens["skilled"]["eer_threshold"]
    );
    let id = ens["model_id"].as_str().unwrap();
    assert!(id.contains(&a.id()) && id.contains(&b.id()), "{id}");
}

#[test]
fn an_image_one_model_cannot_use_is_dropped_for_every_model_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let (data, weights) = fixture(dir.path());
    // A small mark: enough ink for the fixture's model (30 pixels), too little for a model that needs
    // 400.
    let mut img = image::GrayImage::from_pixel(120, 60, image::Luma([235]));
    for x in 40..80 {
        for y in 28..31 {
            img.put_pixel(x, y, image::Luma([30]));
        }
    }
    img.save(data.join("w0001").join("zz-small.png")).unwrap();
    let manifest = data.join("manifest.csv");
    let mut rows = std::fs::read_to_string(&manifest).unwrap();
    rows.push_str("w0001/zz-small.png,w0001,genuine\n");
    std::fs::write(&manifest, rows).unwrap();
    let strict = second_model(
        dir.path(),
        NormaliseParams {
            min_ink_pixels: 400,
            ..binary_220x150()
        },
    );
    let a = SignatureModel::load(&weights, tch::Device::Cpu).unwrap();
    let b = SignatureModel::load(&strict, tch::Device::Cpu).unwrap();
    let ds = scan(&data, Layout::Auto).unwrap();
    let alone = embed_dataset(&a, &ds, &mut no_progress()).unwrap();
    assert!(alone.failures.is_empty(), "{:?}", alone.failures);
    assert!(
        alone
            .samples
            .iter()
            .any(|s| s.sample_id.contains("zz-small"))
    );
    let both = embed_dataset_with(&[&a, &b], false, &ds, &mut no_progress()).unwrap();
    assert_eq!(both.failures.len(), 1, "{:?}", both.failures);
    let (path, why) = &both.failures[0];
    assert!(path.ends_with("w0001/zz-small.png"), "{}", path.display());
    assert!(why.contains(&b.id()) && why.contains("ink pixels"), "{why}");
    assert_eq!(both.samples.len(), alone.samples.len() - 1);
    assert!(
        !both
            .samples
            .iter()
            .any(|s| s.sample_id.contains("zz-small"))
    );

    // The CLI reports it and evaluates the rest.
    let db = dir.path().join("audit.sqlite3");
    let o = cs(
        &db,
        &weights,
        &[
            "evaluate",
            "--data",
            data.to_str().unwrap(),
            "--ensemble-with",
            strict.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("zz-small.png") && out.contains("1 images could not be used"),
        "{out}"
    );
}

#[test]
fn test_time_augmentation_is_deterministic_and_changes_the_scores() {
    let dir = tempfile::tempdir().unwrap();
    let (data, weights) = fixture(dir.path());
    let db = dir.path().join("audit.sqlite3");
    let plain = evaluate(&db, &weights, &data, &dir.path().join("plain.json"), &[]);
    let first = evaluate(
        &db,
        &weights,
        &data,
        &dir.path().join("t1.json"),
        &["--tta"],
    );
    let second = evaluate(
        &db,
        &weights,
        &data,
        &dir.path().join("t2.json"),
        &["--tta"],
    );
    for key in [
        "skilled",
        "random",
        "per_writer",
        "histograms",
        "collections",
    ] {
        assert_eq!(
            first[key], second[key],
            "{key} differs between two TTA runs"
        );
    }
    assert_eq!(first["counts"], plain["counts"]);
    assert_ne!(
        first["skilled"]["eer_threshold"],
        plain["skilled"]["eer_threshold"]
    );
    assert_ne!(first["histograms"], plain["histograms"]);
    let change = &first["change_against_model_alone"];
    assert_eq!(change["baseline"]["value"], plain["skilled"]["eer"]);
    assert_eq!(change["lever"]["value"], first["skilled"]["eer"]);
    assert!(
        first["model_id"].as_str().unwrap().ends_with("with TTA x5"),
        "{}",
        first["model_id"]
    );
}

#[test]
fn test_time_augmentation_embeds_unit_vectors_in_order_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (data, weights) = fixture(dir.path());
    let model = SignatureModel::load(&weights, tch::Device::Cpu).unwrap();
    let ds = scan(&data, Layout::Auto).unwrap();
    let params = model.normalise_params().clone();
    let inputs: Vec<_> = ds.samples[..20]
        .iter()
        .map(|s| {
            let img = image::open(&s.path).unwrap().to_luma8();
            countersign::imaging::normalise::normalise(&img, &params).unwrap()
        })
        .collect();
    let refs: Vec<_> = inputs.iter().collect();
    let tta = countersign::model::tta::embed(&model, &refs).unwrap();
    let plain = model.embed(&inputs).unwrap();
    assert_eq!(tta.len(), inputs.len());
    // Embedding one at a time gives the same vectors as in a batch (order kept across chunks).
    for (i, n) in inputs.iter().enumerate() {
        let one = countersign::model::tta::embed(&model, &[n]).unwrap();
        let c = cosine_similarity(&one[0], &tta[i]).unwrap();
        assert!(c > 0.99999, "sample {i}: {c}");
        let norm: f32 = tta[i].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "sample {i}: norm {norm}");
        assert_ne!(tta[i], plain[i], "sample {i}: TTA changed nothing");
    }
    // A wrong-sized input is named by its own index, not by one of its views'.
    let mut bad = inputs[..3].to_vec();
    bad[2].pixels.pop();
    let refs: Vec<_> = bad.iter().collect();
    let err = countersign::model::tta::embed(&model, &refs).unwrap_err();
    assert!(err.to_string().starts_with("signature 2 "), "{err}");
}

#[test]
fn ensemble_and_tta_figures_never_reach_the_model_card_and_a_missing_model_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (data, weights) = fixture(dir.path());
    let db = dir.path().join("audit.sqlite3");
    let card = countersign::model::card_path(&weights);
    let before = std::fs::read(&card).unwrap();
    let d = data.to_str().unwrap();
    let w = weights.to_str().unwrap();
    for lever in [&["--ensemble-with", w][..], &["--tta"][..]] {
        let mut args = vec!["evaluate", "--data", d, "--write-card"];
        args.extend_from_slice(lever);
        let o = cs(&db, &weights, &args, &[]);
        assert!(!o.status.success(), "{lever:?}");
        assert!(text(&o).contains("--write-card"), "{}", text(&o));
    }
    assert_eq!(std::fs::read(&card).unwrap(), before, "the card changed");
    let missing = dir.path().join("nowhere.safetensors");
    let o = cs(
        &db,
        &weights,
        &[
            "evaluate",
            "--data",
            d,
            "--ensemble-with",
            missing.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!o.status.success());
    let out = text(&o);
    assert!(
        out.contains("--ensemble-with") && out.contains("nowhere.safetensors"),
        "{out}"
    );
}
