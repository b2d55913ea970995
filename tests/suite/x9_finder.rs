//! The signature finder on bitonal cheques as they travel in X9 files: the generator's G4 fronts and
//! G4 renders of the synthetic cheques with scanner noise; and a box that covers only part of the ink
//! is referred with "signature box uncertain" by the shared decision path.

#![allow(clippy::unwrap_used)]

use countersign::imaging::cheque::{ChequeLayout, CropBox, Zone, find_signature};
use countersign::x9::synth::{X9SynthOptions, bitonal, g4_tiff, render_item};

fn decode(tiff: &[u8]) -> image::GrayImage {
    countersign::imaging::decode::decode_bytes(tiff, "front.tif", &Default::default()).unwrap()
}

/// Finds the signature on `n` bitonal G4 cheques; returns (found with IoU >= 0.8, uncertain).
fn measure(n: u64, scan: bool) -> (u32, u32) {
    let opts = X9SynthOptions {
        writers: 5,
        seed: 99,
        scan,
        ..X9SynthOptions::default()
    };
    let layout = ChequeLayout::default();
    let (mut good, mut uncertain) = (0, 0);
    for i in 0..n {
        let (front, t) = render_item(&opts, i);
        let img = decode(&g4_tiff(&front).unwrap());
        let truth = CropBox {
            x: t.sig_x,
            y: t.sig_y,
            width: t.sig_w,
            height: t.sig_h,
        };
        let f = find_signature(&img, &layout).unwrap();
        if f.found && f.bbox.iou(&truth) >= 0.8 {
            good += 1;
        }
        if f.box_uncertain {
            uncertain += 1;
        }
    }
    (good, uncertain)
}

#[test]
fn the_finder_picks_the_signature_on_bitonal_g4_cheques() {
    let n = 24;
    let (clean_good, clean_uncertain) = measure(n, false);
    let (noisy_good, noisy_uncertain) = measure(n, true);
    eprintln!(
        "finder on bitonal G4 cheques: clean {clean_good}/{n} found (IoU >= 0.8), {clean_uncertain} uncertain; \
         with scanner noise {noisy_good}/{n}, {noisy_uncertain} uncertain"
    );
    assert!(clean_good as f64 >= 0.9 * n as f64, "{clean_good}/{n}");
    assert!(noisy_good as f64 >= 0.85 * n as f64, "{noisy_good}/{n}");
    assert!(clean_uncertain + noisy_uncertain <= 2);
}

#[test]
fn a_box_covering_part_of_the_ink_is_referred_as_uncertain() {
    let opts = X9SynthOptions {
        writers: 2,
        seed: 5,
        scan: false,
        ..X9SynthOptions::default()
    };
    let (front, t) = render_item(&opts, 0);
    let img = bitonal(&front, 128);
    let w = img.width();
    // A zone whose left edge runs through the middle of the signature.
    let cut = (t.sig_x + t.sig_w / 2) as f32 / w as f32;
    let layout = ChequeLayout {
        signature_zone: Zone {
            left: cut,
            top: 0.42,
            right: 1.0,
            bottom: 0.89,
        },
        ..ChequeLayout::default()
    };
    let f = find_signature(&img, &layout).unwrap();
    assert!(
        f.box_uncertain,
        "{f:?} (signature at x {} w {})",
        t.sig_x, t.sig_w
    );
    assert!(!f.found);
    // The default zone holds the whole signature: not uncertain.
    let whole = find_signature(&img, &ChequeLayout::default()).unwrap();
    assert!(whole.found && !whole.box_uncertain, "{whole:?}");

    // Through the shared decision path: REFER with the reason, no score taken from the part.
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("cheque.png");
    img.save(&png).unwrap();
    let model = countersign::paths::default_model().unwrap_or_else(|| {
        countersign::batch::bench::random_model(&dir.path().join("model")).unwrap()
    });
    let m = countersign::model::SignatureModel::load(&model, tch::Device::Cpu).unwrap();
    let policy = countersign::verify::Policy::from_model(&m)
        .unwrap_or_else(countersign::verify::Policy::built_in_default);
    let v =
        countersign::verify::Verifier::new(countersign::verify::shared_model(m), layout, policy);
    let reference = dir.path().join("ref.png");
    countersign::synth::dataset::genuine_sample(5, 0, 0)
        .save(&reference)
        .unwrap();
    let r = v
        .verify(&countersign::verify::VerifyRequest {
            references: countersign::verify::References::Images(vec![
                countersign::verify::ImageSource::Path(reference),
            ]),
            questioned: countersign::verify::Questioned {
                kind: countersign::verify::InputKind::Cheque,
                image: countersign::verify::ImageSource::Path(png),
            },
            manual_crop: None,
            account: None,
            amount_cents: None,
            cheque_id: None,
        })
        .unwrap();
    assert_eq!(r.decision(), countersign::scoring::Decision::Refer);
    assert!(
        r.outcome
            .reason
            .starts_with(countersign::verify::BOX_UNCERTAIN),
        "{}",
        r.outcome.reason
    );
    assert_eq!(r.raw_score, None);
}
