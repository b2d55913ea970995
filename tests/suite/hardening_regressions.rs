//! Replays every file in `tests/regressions/` through the imaging pipeline.
//!
//! The folder keeps inputs that once crashed, hung or over-allocated (found by the property tests in
//! `hardening_imaging` or the cargo-fuzz target in `fuzz/`), and hand-made hostile headers. Each must
//! now give a normalised signature or a typed error. A panic in one file is caught and reported by
//! name, so one run lists every file that regressed.

use crate::hardening_common as common;

use std::path::PathBuf;

use common::{Outcome, run_pipeline};
use countersign::imaging::decode::DecodeLimits;

fn corpus() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_none_or(|x| x != "md"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_regression_input_gives_a_result_or_a_typed_error() {
    let files = corpus();
    assert!(
        files.len() >= 10,
        "the regression corpus should hold the hand-made hostile headers at least ({} files)",
        files.len()
    );
    let limits = DecodeLimits::default();
    let mut failures = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).expect("read corpus file");
        match std::panic::catch_unwind(|| run_pipeline(&bytes, &limits)) {
            Ok(outcome) => {
                println!("{}: {outcome:?}", f.display());
                // Files named `refuse-*` are hostile by construction and must be refused.
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if name.starts_with("refuse-") && outcome == Outcome::Normalised {
                    failures.push(format!("{name}: decoded, but it must be refused"));
                }
            }
            Err(_) => failures.push(format!("{}: panicked", f.display())),
        }
    }
    assert!(failures.is_empty(), "regressions: {failures:#?}");
}

/// Writes the hand-made hostile headers into the corpus. Run once by hand (the files are committed):
/// `cargo test --release --test hardening_regressions -- --ignored write_seed_corpus`.
#[test]
#[ignore = "writes the seed corpus into the source tree; run by hand"]
fn write_seed_corpus() {
    use common::{
        bmp_claiming, encode, jpeg_claiming, png_claiming, signature_picture, tiff_claiming,
    };
    use image::ImageFormat;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/regressions");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let jpeg = encode(&signature_picture(64, 32, 9), ImageFormat::Jpeg, false);
    let png = encode(&signature_picture(64, 32, 9), ImageFormat::Png, false);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("refuse-empty.bin", Vec::new()),
        (
            "refuse-png-100000x100000.png",
            png_claiming(100_000, 100_000),
        ),
        ("refuse-png-0x0.png", png_claiming(0, 0)),
        ("refuse-png-u32max.png", png_claiming(u32::MAX, u32::MAX)),
        ("refuse-jpeg-65535x65535.jpg", jpeg_claiming(65_535, 65_535)),
        ("refuse-jpeg-0x0.jpg", jpeg_claiming(0, 0)),
        (
            "refuse-jpeg-frame-larger-than-scans.jpg",
            jpeg_claiming(4000, 4000),
        ),
        (
            "refuse-jpeg-truncated-half.jpg",
            jpeg[..jpeg.len() / 2].to_vec(),
        ),
        (
            "refuse-png-truncated-half.png",
            png[..png.len() / 2].to_vec(),
        ),
        (
            "refuse-bmp-100000x100000.bmp",
            bmp_claiming(100_000, 100_000),
        ),
        ("refuse-bmp-negative.bmp", bmp_claiming(-20_000, -20_000)),
        ("refuse-bmp-i32min-height.bmp", bmp_claiming(64, i32::MIN)),
        (
            "refuse-tiff-1e6x1e6.tif",
            tiff_claiming(1_000_000, 1_000_000, 16, &[0; 16]),
        ),
        ("refuse-tiff-0x0.tif", tiff_claiming(0, 0, 16, &[0; 16])),
        (
            "refuse-tiff-huge-strip.tif",
            tiff_claiming(64, 64, u32::MAX, &[0; 16]),
        ),
        (
            "refuse-gif.gif",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
        ),
        (
            "refuse-text.txt.png",
            b"not an image at all, only text named .png".to_vec(),
        ),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("write corpus file");
    }
}
