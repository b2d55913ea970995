//! Model file faults: every bad weights file or card is refused with its own `ModelError`, and the
//! holder of the active model (`ModelSlot`) keeps the model it had and keeps scoring with it.
//! `tests/model_load.rs` covers each refusal of `SignatureModel::load` on its own; this file adds
//! "the app keeps the previous model", weights that load but are useless (NaN), and mutated weights
//! files (bytes flipped, header rewritten, with the card's hash updated so the parser, not the
//! hash check, has to catch them).

use std::path::{Path, PathBuf};

use countersign::imaging::NormalisedSignature;
use countersign::imaging::normalise::NormaliseParams;
use countersign::model::{ModelError, ModelSlot, SignatureModel, card_path, sha256_hex};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use tch::{Device, Kind, Tensor};

fn probe_inputs(n: usize) -> Vec<NormalisedSignature> {
    let p = NormaliseParams::default();
    let (w, h) = (p.width as usize, p.height as usize);
    (0..n)
        .map(|i| {
            let mut pixels = vec![0f32; w * h];
            for x in 0..w {
                let y = ((h as f32) * (0.5 + 0.3 * ((x as f32) * 0.07 + i as f32).sin())) as usize;
                pixels[y.min(h - 1) * w + x] = 1.0;
            }
            NormalisedSignature {
                width: p.width,
                height: p.height,
                pixels,
            }
        })
        .collect()
}

/// Saves a freshly initialised model (seeded, so two seeds give two different models).
fn save_model(dir: &Path, stem: &str, seed: i64) -> PathBuf {
    tch::manual_seed(seed);
    let mut m = SignatureModel::new(NormaliseParams::default(), Device::Cpu);
    let path = dir.join(format!("{stem}.safetensors"));
    m.save(&path).expect("save model");
    path
}

fn edit_card(weights: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let file = card_path(weights);
    let mut card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read card")).expect("json");
    edit(&mut card);
    std::fs::write(&file, serde_json::to_string_pretty(&card).expect("ser")).expect("write card");
}

/// Makes the card vouch for whatever bytes the weights file now holds (a careless tool, or an
/// attacker who can write both files), so the other checks have to catch the fault.
fn rehash_card(weights: &Path) {
    let hash = sha256_hex(&std::fs::read(weights).expect("read weights"));
    edit_card(weights, |c| c["weights_sha256"] = hash.into());
}

fn copy_model(from: &Path, dir: &Path, stem: &str) -> PathBuf {
    let to = dir.join(format!("{stem}.safetensors"));
    std::fs::copy(from, &to).expect("copy weights");
    std::fs::copy(card_path(from), card_path(&to)).expect("copy card");
    to
}

/// One bad model file of each kind, with a check that the refusal is the right one.
type Fault = (&'static str, PathBuf, fn(&ModelError) -> bool);

fn faults(good: &Path, dir: &Path) -> Vec<Fault> {
    let mut out: Vec<Fault> = Vec::new();

    let p = copy_model(good, dir, "truncated");
    let bytes = std::fs::read(&p).expect("read");
    std::fs::write(&p, &bytes[..bytes.len() * 2 / 3]).expect("write");
    out.push(("truncated weights", p, |e| {
        matches!(e, ModelError::Truncated { .. })
    }));

    let p = copy_model(good, dir, "truncated-rehashed");
    let bytes = std::fs::read(&p).expect("read");
    std::fs::write(&p, &bytes[..bytes.len() - 7]).expect("write");
    rehash_card(&p);
    out.push(("truncated weights, card rehashed", p, |e| {
        matches!(e, ModelError::Truncated { .. })
    }));

    let p = copy_model(good, dir, "flipped");
    let mut bytes = std::fs::read(&p).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&p, &bytes).expect("write");
    out.push(("one weight changed (hash mismatch)", p, |e| {
        matches!(e, ModelError::HashMismatch { .. })
    }));

    let p = copy_model(good, dir, "other-card");
    let other = save_model(dir, "other-source", 99);
    std::fs::copy(card_path(&other), card_path(&p)).expect("copy card");
    out.push(("the card of other weights", p, |e| {
        matches!(e, ModelError::HashMismatch { .. })
    }));

    let p = copy_model(good, dir, "arch");
    edit_card(&p, |c| c["architecture"] = "signet-f".into());
    out.push(("card for another architecture", p, |e| {
        matches!(e, ModelError::ArchitectureMismatch { .. })
    }));

    let p = copy_model(good, dir, "prep");
    edit_card(&p, |c| c["preprocessing"]["version"] = 77.into());
    out.push(("card for another preprocessing", p, |e| {
        matches!(e, ModelError::PreprocessingMismatch { found: 77, .. })
    }));

    let p = copy_model(good, dir, "params");
    edit_card(&p, |c| c["preprocessing"]["params"]["margin"] = 0.9.into());
    out.push(("card with impossible preprocessing parameters", p, |e| {
        matches!(e, ModelError::BadCard { .. })
    }));

    let p = copy_model(good, dir, "shape");
    let mut ts = Tensor::read_safetensors(&p).expect("read tensors");
    for (name, t) in ts.iter_mut() {
        if name == "fc.weight" {
            *t = Tensor::zeros([32, 256], (Kind::Float, Device::Cpu));
        }
    }
    Tensor::write_safetensors(&ts, &p).expect("write tensors");
    rehash_card(&p);
    out.push(("wrong tensor shape, card rehashed", p, |e| {
        matches!(e, ModelError::ShapeMismatch { .. })
    }));

    let p = copy_model(good, dir, "nan");
    let mut ts = Tensor::read_safetensors(&p).expect("read tensors");
    for (name, t) in ts.iter_mut() {
        if name == "fc.weight" {
            *t = Tensor::full(t.size(), f64::NAN, (Kind::Float, Device::Cpu));
        }
    }
    Tensor::write_safetensors(&ts, &p).expect("write tensors");
    rehash_card(&p);
    out.push((
        "NaN weights with a valid card",
        p,
        |e| matches!(e, ModelError::Corrupt { detail, .. } if detail.contains("non-finite")),
    ));

    let p = copy_model(good, dir, "no-card");
    std::fs::remove_file(card_path(&p)).expect("rm card");
    out.push(("missing card", p, |e| {
        matches!(e, ModelError::MissingCard { .. })
    }));

    let p = copy_model(good, dir, "bad-json");
    std::fs::write(card_path(&p), "{\"architecture\": ").expect("write");
    out.push(("card that is not JSON", p, |e| {
        matches!(e, ModelError::BadCard { .. })
    }));

    out.push(("no such file", dir.join("absent.safetensors"), |e| {
        matches!(e, ModelError::NotFound(_))
    }));
    out
}

#[test]
fn a_failed_activation_keeps_the_previous_model_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good_a = save_model(dir.path(), "a", 1);
    let good_b = save_model(dir.path(), "b", 2);
    let inputs = probe_inputs(4);

    let mut slot = ModelSlot::load(&good_a, Device::Cpu).expect("load A");
    let id_a = slot.id();
    let emb_a = slot.active().embed(&inputs).expect("embed with A");
    // A verification in flight holds the model across the swaps below.
    let in_flight = slot.active();

    let faults = faults(&good_a, dir.path());
    for (what, path, expected) in &faults {
        let err = slot
            .swap_from_path(path)
            .expect_err(&format!("{what}: a bad model was activated"));
        assert!(expected(&err), "{what}: wrong refusal {err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(path.file_stem().and_then(|s| s.to_str()).unwrap_or("?")),
            "{what}: the message names the file: {msg}"
        );
        // The slot still holds A and scores exactly as before.
        assert_eq!(slot.id(), id_a, "{what}: the active model changed");
        assert_eq!(slot.path(), Some(good_a.as_path()), "{what}");
        assert_eq!(
            slot.active().embed(&inputs).expect("embed after refusal"),
            emb_a,
            "{what}: the active model's scores changed"
        );
    }
    println!("{} faulty model files refused, model kept", faults.len());

    // A good model does replace it; the holder of the old one keeps working with it.
    let old = slot.swap_from_path(&good_b).expect("activate B");
    assert_eq!(old.id(), id_a);
    assert_ne!(slot.id(), id_a);
    let emb_b = slot.active().embed(&inputs).expect("embed with B");
    assert_ne!(emb_b, emb_a, "two differently seeded models differ");
    assert_eq!(in_flight.embed(&inputs).expect("old holder"), emb_a);
}

#[derive(Clone, Debug)]
enum Damage {
    Flip(Index, u8),
    HeaderByte(usize, u8),
    Truncate(Index),
    Append(Vec<u8>),
    HeaderLen(u64),
}

#[test]
fn mutated_weights_files_are_refused_with_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = save_model(dir.path(), "good", 5);
    let original = std::fs::read(&good).expect("read");
    let card = std::fs::read(card_path(&good)).expect("read card");
    let header_len = u64::from_le_bytes(original[..8].try_into().expect("8 bytes")) as usize;
    let work = dir.path().join("work.safetensors");

    let damage = prop_oneof![
        3 => (any::<Index>(), 1u8..=255).prop_map(|(i, x)| Damage::Flip(i, x)),
        4 => (0..header_len + 8, any::<u8>()).prop_map(|(p, v)| Damage::HeaderByte(p, v)),
        2 => any::<Index>().prop_map(Damage::Truncate),
        1 => prop::collection::vec(any::<u8>(), 1..64).prop_map(Damage::Append),
        1 => prop::sample::select(vec![0u64, 1, 7, 1 << 20, (1 << 20) + 1, u64::MAX, header_len as u64 - 1])
            .prop_map(Damage::HeaderLen),
    ];
    let mut runner = TestRunner::new(Config {
        cases: 150,
        rng_seed: RngSeed::Fixed(0x5afe_7e45),
        failure_persistence: None,
        ..Config::default()
    });
    let tally = std::cell::RefCell::new(std::collections::BTreeMap::<String, u32>::new());
    runner
        .run(&(damage, any::<bool>()), |(d, rehash)| {
            let mut bytes = original.clone();
            match &d {
                Damage::Flip(i, x) => {
                    let p = i.index(bytes.len());
                    bytes[p] ^= x;
                }
                Damage::HeaderByte(p, v) => bytes[*p] = *v,
                Damage::Truncate(i) => bytes.truncate(i.index(bytes.len())),
                Damage::Append(extra) => bytes.extend_from_slice(extra),
                Damage::HeaderLen(n) => bytes[..8].copy_from_slice(&n.to_le_bytes()),
            }
            std::fs::write(&work, &bytes).expect("write weights");
            std::fs::write(card_path(&work), &card).expect("write card");
            if rehash {
                rehash_card(&work);
            }
            let key = match SignatureModel::load(&work, Device::Cpu) {
                Ok(_) => {
                    // Only a change the parser cannot see (inside a float) with a rehashed card
                    // loads: that is a different, well-formed model.
                    prop_assert!(
                        rehash,
                        "damaged weights loaded under the original card: {d:?}"
                    );
                    "loaded (float changed, card rehashed)".to_string()
                }
                Err(e) => format!("{e:?}")
                    .split([' ', '{', '('])
                    .next()
                    .unwrap_or("?")
                    .to_string(),
            };
            *tally.borrow_mut().entry(key).or_default() += 1;
            Ok(())
        })
        .expect("every damaged file gives a typed result");
    println!("150 damaged weights files: {:?}", tally.borrow());
}
