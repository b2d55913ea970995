//! Finding signatures on generated cheques with known signature boxes, and the cheque-level errors.

use countersign::imaging::ImagingError;
use countersign::imaging::cheque::{ChequeLayout, CropBox, find_signature, prepare_questioned};
use countersign::imaging::normalise::NormaliseParams;
use countersign::imaging::sample::sample_cheque;
use image::GrayImage;
use rayon::prelude::*;

/// Cheque sizes vary like scans at 200-240 dpi.
fn size_for(seed: u64) -> (u32, u32) {
    let w = 1500 + (seed * 37 % 300) as u32;
    let h = w * (44 + (seed * 13 % 8) as u32) / 100;
    (w, h)
}

#[test]
fn finds_the_signature_box_on_200_varied_cheques() {
    let layout = ChequeLayout::default();
    let results: Vec<(u64, f32, bool, f32, String)> = (0..200u64)
        .into_par_iter()
        .map(|seed| {
            let (w, h) = size_for(seed);
            let c = sample_cheque(seed, w, h, true);
            let truth = c.signature_box.expect("signed cheque has a box");
            let f = find_signature(&c.image, &layout).expect("find");
            let iou = f.bbox.iou(&truth);
            let info = format!(
                "seed {seed}: iou {iou:.3} conf {:.2} skew {:.1}/{:.1} stamp {} cross {} truth {truth:?} got {:?}",
                f.confidence, f.skew_degrees, c.skew_degrees, c.has_stamp, c.crosses_line, f.bbox
            );
            (seed, iou, f.found, f.confidence, info)
        })
        .collect();
    let good = results.iter().filter(|r| r.1 >= 0.8).count();
    let found = results.iter().filter(|r| r.2).count();
    let good_and_found = results.iter().filter(|r| r.1 >= 0.8 && r.2).count();
    for r in results.iter().filter(|r| r.1 < 0.8 || !r.2) {
        eprintln!("miss: {}", r.4);
    }
    eprintln!(
        "IoU >= 0.8 on {good}/200 cheques ({:.1}%); found on {found}/200; both on {good_and_found}/200",
        good as f32 / 2.0
    );
    assert!(good >= 190, "IoU >= 0.8 on only {good}/200 cheques");
    assert!(
        good_and_found >= 190,
        "found with IoU >= 0.8 on only {good_and_found}/200"
    );
    // Wherever the finder claims a find, it should be right; misses must be flagged instead.
    let wrong_but_found = results.iter().filter(|r| r.2 && r.1 < 0.5).count();
    assert!(
        wrong_but_found <= 2,
        "{wrong_but_found} confident finds were wrong"
    );
}

#[test]
fn unsigned_cheques_are_not_found() {
    let layout = ChequeLayout::default();
    let found: Vec<String> = (1000..1030u64)
        .into_par_iter()
        .filter_map(|seed| {
            let (w, h) = size_for(seed);
            let c = sample_cheque(seed, w, h, false);
            let f = find_signature(&c.image, &layout).expect("find");
            f.found.then(|| format!("seed {seed}: {f:?}"))
        })
        .collect();
    assert!(
        found.len() <= 1,
        "unsigned cheques reported as signed: {found:?}"
    );
}

#[test]
fn all_white_page_is_no_signature() {
    let white = GrayImage::from_pixel(1700, 800, image::Luma([255]));
    let f = find_signature(&white, &ChequeLayout::default()).expect("find");
    assert!(!f.found);
    assert_eq!(f.confidence, 0.0);
    let err = prepare_questioned(
        &white,
        &ChequeLayout::default(),
        None,
        &NormaliseParams::default(),
    )
    .expect_err("white page");
    assert!(matches!(err, ImagingError::NoSignature(_)), "{err:?}");
}

#[test]
fn manual_crop_overrides_the_finder() {
    let c = sample_cheque(7, 1700, 800, true);
    let truth = c.signature_box.expect("box");
    let p = prepare_questioned(
        &c.image,
        &ChequeLayout::default(),
        Some(truth),
        &NormaliseParams::default(),
    )
    .expect("prepared");
    assert_eq!(p.bbox, truth);
    assert!(p.found);
    assert_eq!(p.confidence, 1.0);
    let auto = prepare_questioned(
        &c.image,
        &ChequeLayout::default(),
        None,
        &NormaliseParams::default(),
    )
    .expect("prepared");
    assert!(auto.bbox.iou(&truth) > 0.8);
    // The automatic and manual crops normalise to nearly the same tensor.
    let mad: f32 = p
        .normalised
        .pixels
        .iter()
        .zip(&auto.normalised.pixels)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / p.normalised.pixels.len() as f32;
    assert!(mad < 0.06, "mean abs difference {mad}");
    let outside = CropBox {
        x: 5000,
        y: 0,
        width: 10,
        height: 10,
    };
    let err = prepare_questioned(
        &c.image,
        &ChequeLayout::default(),
        Some(outside),
        &NormaliseParams::default(),
    )
    .expect_err("outside");
    assert!(matches!(err, ImagingError::InvalidCrop(_)), "{err:?}");
}

#[test]
fn custom_layout_from_a_json_file_moves_the_search() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("layout.json");
    // A zone over the top left, where this cheque has only printed text: nothing convincing there.
    std::fs::write(
        &path,
        r#"{"name":"top left","signature_zone":{"left":0.0,"top":0.0,"right":0.4,"bottom":0.25}}"#,
    )
    .expect("write");
    let layout = ChequeLayout::load(&path).expect("layout");
    assert_eq!(layout.name, "top left");
    let c = sample_cheque(11, 1700, 800, true);
    let f = find_signature(&c.image, &layout).expect("find");
    assert!(!f.found, "{f:?}");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{ nope").expect("write");
    let err = ChequeLayout::load(&bad).expect_err("bad json");
    assert!(matches!(err, ImagingError::InvalidLayout(_)));
    assert!(err.to_string().contains("bad.json"));
}

#[test]
fn odd_sized_and_noisy_pages_never_panic() {
    let layout = ChequeLayout::default();
    for (w, h) in [
        (1u32, 1u32),
        (20, 10),
        (3000, 5),
        (5, 3000),
        (64, 64),
        (400, 180),
    ] {
        let noisy = GrayImage::from_fn(w, h, |x, y| {
            image::Luma([((x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) >> 7) as u8])
        });
        let f = find_signature(&noisy, &layout).expect("find");
        assert!((0.0..=1.0).contains(&f.confidence));
        assert!(
            f.bbox.x + f.bbox.width <= w && f.bbox.y + f.bbox.height <= h,
            "{f:?} in {w}x{h}"
        );
        // Either a prepared signature or a typed error, for every size.
        let _ = prepare_questioned(&noisy, &layout, None, &NormaliseParams::default());
    }
    let empty = GrayImage::new(0, 0);
    assert!(matches!(
        find_signature(&empty, &layout),
        Err(ImagingError::ZeroSize { .. })
    ));
}
