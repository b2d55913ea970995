//! Synthetic writers, forgeries, cheques and the `synth` command, end to end.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use clap::Parser;
use countersign::cli::{Cli, run};
use countersign::synth::dataset::{DatasetOptions, generate_dataset};
use countersign::synth::{ChequeOptions, ChequeTruth, SyntheticWriter, render_cheque};
use image::imageops::{FilterType, resize};
use image::{GrayImage, Luma};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A simple shape descriptor: the ink cropped to its bounding box, resized to 64 x 24, as a zero-mean,
/// unit-norm vector of darkness. Two signatures' correlation is the dot product of their descriptors.
fn descriptor(img: &GrayImage) -> Vec<f32> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if p.0[0] < 128 {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    assert!(x0 != u32::MAX, "a signature without ink");
    let crop = image::imageops::crop_imm(img, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
    // Blur a little so the measure compares shapes, not exact pixel positions.
    let small = image::imageops::blur(&resize(&crop, 64, 24, FilterType::Triangle), 1.0);
    let mut v: Vec<f32> = small
        .pixels()
        .map(|p| (255.0 - p.0[0] as f32) / 255.0)
        .collect();
    let mean = v.iter().sum::<f32>() / v.len() as f32;
    v.iter_mut().for_each(|x| *x -= mean);
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn corr(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn genuine_signatures_of_a_writer_are_closer_to_each_other_than_to_other_writers() {
    let writers = 8;
    let per = 4;
    let mut genuine: Vec<Vec<Vec<f32>>> = Vec::new();
    let mut forged: Vec<Vec<f32>> = Vec::new();
    for w in 0..writers {
        let writer = SyntheticWriter::new(1000 + w);
        let mut rng = ChaCha8Rng::seed_from_u64(w);
        genuine.push(
            (0..per)
                .map(|_| descriptor(&writer.genuine(&mut rng)))
                .collect(),
        );
        forged.push(descriptor(&writer.forgery(&mut rng, 0.8)));
    }
    let mut intra = Vec::new();
    let mut inter = Vec::new();
    let mut forgery_to_target = Vec::new();
    let mut writers_separated = 0;
    for w in 0..writers as usize {
        let mut own = Vec::new();
        for i in 0..per {
            for j in i + 1..per {
                own.push(corr(&genuine[w][i], &genuine[w][j]));
            }
        }
        let mut other = Vec::new();
        for v in 0..writers as usize {
            if v != w {
                for i in 0..per {
                    other.push(corr(&genuine[w][0], &genuine[v][i]));
                }
            }
        }
        let own_mean = own.iter().sum::<f32>() / own.len() as f32;
        let other_mean = other.iter().sum::<f32>() / other.len() as f32;
        if own_mean > other_mean {
            writers_separated += 1;
        }
        intra.extend(own);
        inter.extend(other);
        forgery_to_target.extend(genuine[w].iter().map(|g| corr(g, &forged[w])));
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    let (intra_m, inter_m, forg_m) = (mean(&intra), mean(&inter), mean(&forgery_to_target));
    eprintln!("intra {intra_m:.3}, inter {inter_m:.3}, skilled forgery to target {forg_m:.3}");
    assert!(
        intra_m > inter_m + 0.2,
        "intra {intra_m} vs inter {inter_m}"
    );
    assert_eq!(
        writers_separated, writers,
        "every writer is closer to itself than to the others"
    );
    // A skilled forgery imitates the plan: closer to its target than other writers are, less close
    // than the writer's own signatures.
    assert!(
        forg_m > inter_m && forg_m < intra_m,
        "forgery {forg_m}, intra {intra_m}, inter {inter_m}"
    );
}

/// Renders a cheque for `signature` and for a blank signature of the same size with the same
/// generator state: the pixels that differ are exactly the signature's ink.
fn cheque_and_blank(
    seed: u64,
    signature: &GrayImage,
    opts: &ChequeOptions,
) -> (GrayImage, GrayImage, ChequeTruth) {
    let blank = GrayImage::from_pixel(signature.width(), signature.height(), Luma([255]));
    let (with, truth) = render_cheque(signature, &mut ChaCha8Rng::seed_from_u64(seed), opts);
    let (without, _) = render_cheque(&blank, &mut ChaCha8Rng::seed_from_u64(seed), opts);
    (with, without, truth)
}

#[test]
fn cheque_ground_truth_boxes_are_tight_around_the_signature_ink() {
    let mut stamps = 0;
    let mut skewed = 0;
    for seed in 0..8u64 {
        let writer = SyntheticWriter::new(500 + seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sig = if seed % 2 == 0 {
            writer.genuine(&mut rng)
        } else {
            writer.forgery(&mut rng, 0.5)
        };
        let opts = ChequeOptions {
            stamp_probability: 0.5,
            scan: seed != 3,
            ..ChequeOptions::default()
        };
        let (with, without, truth) = cheque_and_blank(seed, &sig, &opts);
        assert_eq!(with.dimensions(), (truth.width, truth.height));
        assert!((1600..1900).contains(&truth.width) && (700..900).contains(&truth.height));
        stamps += usize::from(truth.stamp);
        skewed += usize::from(truth.skew_deg.abs() > 0.1);
        let b = truth.signature_box;
        assert!(b.width > 50 && b.height > 20, "seed {seed}: box {b:?}");
        // The box lies in the signature zone (allowing for the skew) and in the lower right.
        let z = truth.signature_zone;
        assert!(
            b.x + 30 >= z.x && b.x + b.width <= z.x + z.width + 30,
            "seed {seed}: {b:?} vs zone {z:?}"
        );
        assert!(b.y + b.height > truth.height / 2, "seed {seed}: {b:?}");
        // Ink: pixels clearly darker with the signature than without it.
        let (mut ix0, mut iy0, mut ix1, mut iy1) = (u32::MAX, u32::MAX, 0, 0);
        let mut outside = 0;
        let mut ink = 0;
        for (x, y, p) in with.enumerate_pixels() {
            let d = without.get_pixel(x, y).0[0] as i32 - p.0[0] as i32;
            if d > 60 {
                ink += 1;
                ix0 = ix0.min(x);
                iy0 = iy0.min(y);
                ix1 = ix1.max(x);
                iy1 = iy1.max(y);
                let inside = x + 2 >= b.x
                    && x <= b.x + b.width + 1
                    && y + 2 >= b.y
                    && y <= b.y + b.height + 1;
                if !inside {
                    outside += 1;
                }
            }
        }
        assert!(ink > 200, "seed {seed}: only {ink} ink pixels");
        assert!(
            outside <= 3,
            "seed {seed}: {outside} ink pixels outside the box {b:?}"
        );
        // Not much bigger than the ink: every side within 4 pixels of the visible ink's extent.
        let slack = [
            ix0 as i64 - b.x as i64,
            iy0 as i64 - b.y as i64,
            (b.x + b.width - 1) as i64 - ix1 as i64,
            (b.y + b.height - 1) as i64 - iy1 as i64,
        ];
        assert!(
            slack.iter().all(|s| (-2..=4).contains(s)),
            "seed {seed}: slack {slack:?}, box {b:?}"
        );
    }
    assert!(stamps > 0, "no stamp in eight cheques at probability 0.5");
    assert!(skewed > 0);
}

#[test]
fn a_degenerate_signature_image_still_gives_a_cheque() {
    for sig in [
        GrayImage::new(0, 0),
        GrayImage::from_pixel(1, 1, Luma([0])),
        GrayImage::from_pixel(5000, 10, Luma([0])),
    ] {
        let (img, truth) = render_cheque(
            &sig,
            &mut ChaCha8Rng::seed_from_u64(9),
            &ChequeOptions::default(),
        );
        assert_eq!(img.dimensions(), (truth.width, truth.height));
    }
}

fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, fs::read(&path).expect("read"));
            }
        }
    }
    out
}

fn synth_cli(out: &Path, seed: u64, extra: &[&str]) -> anyhow::Result<()> {
    let seed = seed.to_string();
    let mut argv = vec![
        "countersign",
        "synth",
        "--writers",
        "3",
        "--genuine",
        "3",
        "--forgeries",
        "2",
        "--seed",
        &seed,
    ];
    argv.extend_from_slice(&["--out", out.to_str().expect("utf-8 path")]);
    argv.extend_from_slice(extra);
    run(Cli::try_parse_from(argv)?)
}

#[test]
fn synth_command_writes_the_layout_manifest_and_cheques_deterministically() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let c = tmp.path().join("c");
    let sheet = tmp.path().join("sheet.png");
    synth_cli(
        &a,
        42,
        &[
            "--cheques",
            "2",
            "--contact-sheet",
            sheet.to_str().expect("utf-8"),
        ],
    )
    .expect("synth a");
    synth_cli(&b, 42, &["--cheques", "2"]).expect("synth b");
    synth_cli(&c, 43, &["--cheques", "2"]).expect("synth c");

    let ta = read_tree(&a);
    let tb = read_tree(&b);
    assert_eq!(ta, tb, "same seed, same bytes");
    let tc = read_tree(&c);
    assert_eq!(ta.keys().collect::<Vec<_>>(), tc.keys().collect::<Vec<_>>());
    assert_ne!(
        ta.get("w0001/01.png"),
        tc.get("w0001/01.png"),
        "a different seed gives different writers"
    );

    // Layout.
    for w in ["w0001", "w0002", "w0003"] {
        for i in ["01", "02", "03"] {
            let img = image::open(a.join(w).join(format!("{i}.png")))
                .expect("genuine png")
                .to_luma8();
            assert!(img.width() >= 150 && img.height() >= 60);
        }
        for i in ["01", "02"] {
            assert!(
                a.join(format!("{w}_forg"))
                    .join(format!("{i}.png"))
                    .is_file()
            );
        }
    }
    // Manifest: header, one row per signature, paths relative to the folder and existing.
    let manifest = fs::read_to_string(a.join("manifest.csv")).expect("manifest");
    let mut lines = manifest.lines();
    assert_eq!(lines.next(), Some("path,writer,label"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3 * (3 + 2));
    for r in &rows {
        assert_eq!(r.len(), 3);
        assert!(a.join(r[0]).is_file(), "{} missing", r[0]);
        assert!(r[0].starts_with(r[1]));
        assert_eq!(
            r[2],
            if r[0].contains("_forg/") {
                "forgery"
            } else {
                "genuine"
            }
        );
    }
    assert_eq!(rows.iter().filter(|r| r[2] == "forgery").count(), 6);
    // Cheques: a PNG and a JSON each, genuine and forged, boxes inside the image.
    let mut labels = Vec::new();
    for w in ["w0001", "w0002", "w0003"] {
        for i in ["01", "02"] {
            let id = format!("{w}_c{i}");
            let json = fs::read(a.join("cheques").join(format!("{id}.json"))).expect("cheque json");
            let truth: ChequeTruth = serde_json::from_slice(&json).expect("valid ChequeTruth");
            assert_eq!(truth.cheque_id, id);
            assert_eq!(truth.writer, w);
            let img = image::open(a.join("cheques").join(format!("{id}.png")))
                .expect("cheque png")
                .to_luma8();
            assert_eq!(img.dimensions(), (truth.width, truth.height));
            let b = truth.signature_box;
            assert!(b.x + b.width <= truth.width && b.y + b.height <= truth.height && b.width > 0);
            labels.push(truth.genuine);
        }
    }
    assert!(
        labels.contains(&true) && labels.contains(&false),
        "genuine and forged cheques"
    );
    let sheet = image::open(&sheet).expect("contact sheet").to_luma8();
    assert!(sheet.width() > 600 && sheet.height() > 300);
}

#[test]
fn bad_requests_are_errors_not_panics() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = DatasetOptions {
        writers: 0,
        genuine: 1,
        forgeries: 0,
        cheques: 0,
        seed: 1,
        scan: false,
    };
    assert!(generate_dataset(tmp.path(), &opts).is_err());
    // The output path is a file, not a folder.
    let file = tmp.path().join("file");
    fs::write(&file, b"x").expect("write");
    let opts = DatasetOptions {
        writers: 1,
        genuine: 1,
        forgeries: 0,
        cheques: 0,
        seed: 1,
        scan: true,
    };
    assert!(generate_dataset(&file, &opts).is_err());
}

#[test]
fn scan_flag_gives_scanned_looking_signatures() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let clean = tmp.path().join("clean");
    let scanned = tmp.path().join("scanned");
    synth_cli(&clean, 5, &[]).expect("clean");
    synth_cli(&scanned, 5, &["--scan"]).expect("scanned");
    let mut grey_paper = 0;
    for w in ["w0001", "w0002", "w0003"] {
        let a = image::open(clean.join(w).join("01.png"))
            .expect("png")
            .to_luma8();
        let b = image::open(scanned.join(w).join("01.png"))
            .expect("png")
            .to_luma8();
        assert_ne!(a, b);
        // Clean output is white paper at the border; scanned output mostly is not pure white.
        assert!((0..a.width()).all(|x| a.get_pixel(x, 0).0[0] == 255));
        let border_mean = (0..b.width())
            .map(|x| b.get_pixel(x, 0).0[0] as f32)
            .sum::<f32>()
            / b.width() as f32;
        if border_mean < 254.0 {
            grey_paper += 1;
        }
        // The ink is still there.
        assert!(b.pixels().filter(|p| p.0[0] < 150).count() > 100);
    }
    assert!(
        grey_paper >= 2,
        "scan effects should usually tint the paper"
    );
}

/// Speed figures (not a check): `cargo test --release --test synth -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_generator_speed() {
    for (name, figure) in countersign::synth::bench::bench(600).expect("bench") {
        println!("{name}: {figure}");
    }
}
