//! Saving and loading models: the round trip is exact, and every kind of bad weights file or card is
//! refused with its own error variant naming the file.

use std::path::{Path, PathBuf};

use countersign::imaging::NormalisedSignature;
use countersign::imaging::normalise::NormaliseParams;
use countersign::model::{ModelError, SignatureModel, card_path, sha256_hex};
use tch::{Device, Tensor};

/// Deterministic, varied inputs: a few bright strokes at different places on a black canvas.
fn signatures(n: usize, params: &NormaliseParams) -> Vec<NormalisedSignature> {
    let (w, h) = (params.width as usize, params.height as usize);
    (0..n)
        .map(|i| {
            let mut pixels = vec![0f32; w * h];
            for t in 0..w {
                let y = (h as f32 * (0.5 + 0.3 * ((t as f32 * 0.05 + i as f32).sin()))) as usize;
                let y = y.min(h - 1);
                pixels[y * w + t] = 0.4 + 0.6 * ((i * 7 + t) % 5) as f32 / 4.0;
                if (t + i * 13) % 17 < 4 {
                    pixels[((y + 3) % h) * w + t] = 1.0;
                }
            }
            NormalisedSignature {
                width: params.width,
                height: params.height,
                pixels,
            }
        })
        .collect()
}

fn saved_model(dir: &Path) -> (PathBuf, SignatureModel) {
    tch::manual_seed(7);
    let mut model = SignatureModel::new(NormaliseParams::default(), Device::Cpu);
    let path = dir.join("m.safetensors");
    model.save(&path).expect("save");
    (path, model)
}

#[test]
fn round_trip_gives_identical_embeddings_and_card() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, model) = saved_model(dir.path());
    let inputs = signatures(5, model.normalise_params());
    let before = model.embed(&inputs).expect("embed");
    let loaded = SignatureModel::load(&path, Device::Cpu).expect("load");
    let after = loaded.embed(&inputs).expect("embed");
    assert_eq!(
        before, after,
        "loaded weights must give bit-identical embeddings"
    );
    assert_eq!(loaded.card(), model.card());
    assert_eq!(loaded.id(), model.id());
    let hash = sha256_hex(&std::fs::read(&path).expect("read"));
    assert_eq!(
        loaded.id(),
        format!("{}-{}", countersign::model::ARCH_NAME, &hash[..12])
    );
    // Different inputs give different, unit-length embeddings.
    assert_eq!(after.len(), 5);
    assert_ne!(after[0], after[1]);
    for e in &after {
        assert_eq!(e.len(), 128);
        let norm: f32 = e.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
}

#[test]
fn batching_does_not_change_embeddings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, model) = saved_model(dir.path());
    // 70 inputs cross the 64-image chunk boundary.
    let inputs = signatures(70, model.normalise_params());
    let all = model.embed(&inputs).expect("embed");
    assert_eq!(all.len(), 70);
    for i in [0, 63, 64, 69] {
        let one = model.embed(&inputs[i..=i]).expect("embed one");
        for (a, b) in one[0].iter().zip(&all[i]) {
            assert!((a - b).abs() < 1e-5, "input {i}: {a} vs {b}");
        }
    }
    assert!(model.embed(&[]).expect("empty batch").is_empty());
}

#[test]
fn bad_inputs_are_refused_by_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, model) = saved_model(dir.path());
    let mut inputs = signatures(3, model.normalise_params());
    inputs[2].pixels.pop();
    match model.embed(&inputs) {
        Err(ModelError::InputShape { index: 2, .. }) => {}
        other => panic!("expected InputShape for index 2, got {other:?}"),
    }
    let mut inputs = signatures(66, model.normalise_params());
    inputs[65].pixels[10] = f32::NAN;
    match model.embed(&inputs) {
        Err(ModelError::InputNotFinite { index: 65 }) => {}
        other => panic!("expected InputNotFinite for index 65, got {other:?}"),
    }
}

#[test]
fn missing_weights_or_card_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nothing.safetensors");
    assert!(
        matches!(SignatureModel::load(&missing, Device::Cpu), Err(ModelError::NotFound(p)) if p.contains("nothing"))
    );
    let (path, _) = saved_model(dir.path());
    std::fs::remove_file(card_path(&path)).expect("rm card");
    match SignatureModel::load(&path, Device::Cpu) {
        Err(e @ ModelError::MissingCard { .. }) => assert!(e.to_string().contains("m.json"), "{e}"),
        other => panic!("expected MissingCard, got {other:?}"),
    }
}

#[test]
fn truncated_weights_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = saved_model(dir.path());
    let bytes = std::fs::read(&path).expect("read");
    for cut in [bytes.len() - 1, bytes.len() / 2, 100, 4] {
        std::fs::write(&path, &bytes[..cut]).expect("write");
        match SignatureModel::load(&path, Device::Cpu) {
            Err(e @ ModelError::Truncated { .. }) => {
                assert!(e.to_string().contains("m.safetensors"), "{e}")
            }
            other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
        }
    }
}

#[test]
fn changed_weights_fail_the_hash_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = saved_model(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    match SignatureModel::load(&path, Device::Cpu) {
        Err(ModelError::HashMismatch {
            expected, actual, ..
        }) => assert_ne!(expected, actual),
        other => panic!("expected HashMismatch, got {other:?}"),
    }
}

fn edit_card(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let card_file = card_path(path);
    let mut card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&card_file).expect("read card"))
            .expect("json");
    edit(&mut card);
    std::fs::write(&card_file, serde_json::to_string(&card).expect("ser")).expect("write card");
}

#[test]
fn card_for_another_architecture_or_preprocessing_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = saved_model(dir.path());
    edit_card(&path, |c| c["architecture"] = "signet".into());
    assert!(matches!(
        SignatureModel::load(&path, Device::Cpu),
        Err(ModelError::ArchitectureMismatch { found, .. }) if found.contains("signet")
    ));
    let (path, _) = saved_model(dir.path());
    edit_card(&path, |c| c["preprocessing"]["version"] = 999.into());
    assert!(matches!(
        SignatureModel::load(&path, Device::Cpu),
        Err(ModelError::PreprocessingMismatch { found: 999, .. })
    ));
    let (path, _) = saved_model(dir.path());
    edit_card(&path, |c| c["input_width"] = 100.into());
    assert!(matches!(
        SignatureModel::load(&path, Device::Cpu),
        Err(ModelError::BadCard { .. })
    ));
    std::fs::write(card_path(&path), "{ not json").expect("write");
    assert!(matches!(
        SignatureModel::load(&path, Device::Cpu),
        Err(ModelError::BadCard { .. })
    ));
}

/// Rewrites the weights file with other tensors and updates the card's hash, so that only the shape
/// check can catch the difference.
fn replace_tensors(path: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    let mut tensors = Tensor::read_safetensors(path).expect("read tensors");
    edit(&mut tensors);
    Tensor::write_safetensors(&tensors, path).expect("write tensors");
    let hash = sha256_hex(&std::fs::read(path).expect("read"));
    edit_card(path, |c| c["weights_sha256"] = hash.into());
}

#[test]
fn tensors_of_another_shape_or_name_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = saved_model(dir.path());
    replace_tensors(&path, |ts| {
        for (name, t) in ts.iter_mut() {
            if name == "fc.weight" {
                *t = Tensor::zeros([64, 256], (tch::Kind::Float, Device::Cpu));
            }
        }
    });
    match SignatureModel::load(&path, Device::Cpu) {
        Err(ModelError::ShapeMismatch {
            name,
            found,
            expected,
            ..
        }) => {
            assert_eq!(name, "fc.weight");
            assert_eq!(found, vec![64, 256]);
            assert_eq!(expected, vec![128, 256]);
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }

    let (path, _) = saved_model(dir.path());
    replace_tensors(&path, |ts| {
        ts.push((
            "conv6.weight".into(),
            Tensor::zeros([3], (tch::Kind::Float, Device::Cpu)),
        ))
    });
    assert!(matches!(
        SignatureModel::load(&path, Device::Cpu),
        Err(ModelError::UnexpectedTensor { name, .. }) if name == "conv6.weight"
    ));

    let (path, _) = saved_model(dir.path());
    replace_tensors(&path, |ts| ts.retain(|(n, _)| n != "bn3.running_var"));
    assert!(matches!(
        SignatureModel::load(&path, Device::Cpu),
        Err(ModelError::MissingTensor { name, .. }) if name == "bn3.running_var"
    ));
}

#[test]
fn card_records_architecture_and_cost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, model) = saved_model(dir.path());
    let card = model.card();
    assert_eq!((card.input_width, card.input_height), (192, 96));
    assert_eq!(card.embedding_dim, 128);
    // The parameter count is the sum of the saved trainable tensors' sizes.
    let saved: i64 = Tensor::read_safetensors(&path)
        .expect("read")
        .iter()
        .filter(|(n, _)| !n.contains("running"))
        .map(|(_, t)| t.numel() as i64)
        .sum();
    assert_eq!(card.parameters as i64, saved);
    assert!(card.flops > 10_000_000, "flops {}", card.flops);
    assert_eq!(card.weights_sha256.len(), 64);
}

#[test]
fn update_card_rewrites_only_a_matching_card() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, model) = saved_model(dir.path());
    let mut card = model.card().clone();
    card.calibration = Some(countersign::scoring::Calibration { a: 9.0, b: -4.0 });
    SignatureModel::update_card(&path, &card).expect("update");
    let loaded = SignatureModel::load(&path, Device::Cpu).expect("load");
    assert_eq!(loaded.card().calibration, card.calibration);
    // A card whose hash names other weights is refused and the card on disk is kept.
    card.weights_sha256 = "0".repeat(64);
    assert!(matches!(
        SignatureModel::update_card(&path, &card),
        Err(ModelError::HashMismatch { .. })
    ));
    SignatureModel::load(&path, Device::Cpu).expect("still loads");
}

#[test]
fn saving_touches_no_other_file_beside_the_weights() {
    // Files that an older save's hand-made temporary names (`m.tmp.safetensors`, `m.tmp.json`) would
    // have overwritten and then renamed away.
    let dir = tempfile::tempdir().expect("tempdir");
    let neighbours = [
        dir.path().join("m.tmp.safetensors"),
        dir.path().join("m.tmp.json"),
    ];
    for (i, n) in neighbours.iter().enumerate() {
        std::fs::write(n, format!("someone else's file {i}")).expect("write");
    }
    let (path, model) = saved_model(dir.path());
    let mut card = model.card().clone();
    card.calibration = Some(countersign::scoring::Calibration { a: 2.0, b: -1.0 });
    SignatureModel::update_card(&path, &card).expect("update");
    for (i, n) in neighbours.iter().enumerate() {
        assert_eq!(
            std::fs::read_to_string(n).expect("neighbour kept"),
            format!("someone else's file {i}")
        );
    }
    // Only the weights, their card and the two neighbours: no temporary file is left behind.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["m.json", "m.safetensors", "m.tmp.json", "m.tmp.safetensors"]
    );
    let loaded = SignatureModel::load(&path, Device::Cpu).expect("load");
    assert_eq!(loaded.card().calibration, card.calibration);
}
