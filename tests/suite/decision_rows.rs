//! What a decision row holds, the same from the GUI, `countersign verify` and `countersign batch`:
//! real NULLs (never NaN or a stand-in 0) for what was not scored, the image kind the operator chose
//! and what it was taken as, and a hand-drawn box cropped by the one decision path (`verify --crop`).
//! Real SQLite, real libtorch, PNG files, the real binary.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use countersign::device::DeviceChoice;
use countersign::gui::Slot;
use countersign::gui::backend::{Backend, BackendConfig, FinalAction, PixelBox};
use countersign::store::{ImageKind, Source, Store};
use countersign::verify::InputKind;

use crate::gui_app::Fixture;

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", crate::gui_app::output_text(o));
}

fn backend(f: &Fixture) -> Backend {
    let mut b = Backend::new(BackendConfig {
        db_path: f.db.clone(),
        model_path: Some(f.model.clone()),
        device: DeviceChoice::Cpu,
    });
    b.sign_in("sam", "sam-pin-1").unwrap();
    b
}

/// A bare signature of 580x400 pixels (taken as a bare signature by `auto`).
fn bare(f: &Fixture) -> PathBuf {
    let sig = countersign::synth::dataset::genuine_sample(2026, 4, 1);
    let bare = image::imageops::resize(&sig, 580, 400, image::imageops::FilterType::Triangle);
    let path = f.path("bare-signature.png");
    bare.save(&path).unwrap();
    path
}

/// A blank cheque-sized scan: no signature to find.
fn blank_cheque(f: &Fixture) -> PathBuf {
    let path = f.path("blank-cheque.png");
    image::GrayImage::from_pixel(1600, 700, image::Luma([250u8]))
        .save(&path)
        .unwrap();
    path
}

fn rows(f: &Fixture) -> Vec<countersign::store::DecisionRow> {
    Store::open_read_only(&f.db)
        .unwrap()
        .query_decisions(&Default::default(), 0, 1000)
        .unwrap()
}

fn latest(f: &Fixture) -> countersign::store::DecisionRow {
    rows(f).into_iter().max_by_key(|r| r.id).unwrap()
}

/// The raw score of `countersign verify --json --dry-run` with `args`.
fn cli_score(f: &Fixture, args: &[&str]) -> Option<f64> {
    crate::controls_kind::cli_verify(f, args).1
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_verification_that_cannot_score_gives_none_never_nan() {
    let f = Fixture::new();
    let mut b = backend(&f);
    b.load_image(Slot::Reference(0), &f.signature(2, 0))
        .unwrap();

    // No box found on the cheque: no score, no probability.
    b.load_image(Slot::Cheque, &blank_cheque(&f)).unwrap();
    let o = b.verify(None, None, None).unwrap();
    assert!(!o.signature_found);
    assert_eq!((o.score, o.probability), (None, None));
    let row = b.record(&o, &FinalAction::Confirm).unwrap();
    assert_eq!((row.record.raw_score, row.record.probability), (None, None));

    // Scored, but the fixture's fresh network has no calibration: a score and no probability.
    b.load_image(Slot::Cheque, &f.signature(2, 1)).unwrap();
    let o = b.verify(None, None, None).unwrap();
    assert!(o.score.is_some_and(f64::is_finite), "{:?}", o.score);
    assert_eq!(o.probability, None);
    let row = b.record(&o, &FinalAction::Confirm).unwrap();
    assert_eq!(
        (row.record.raw_score, row.record.probability),
        (o.score, None)
    );
}

#[test]
fn the_kind_the_operator_chose_is_in_the_row_from_the_gui_the_cli_and_a_batch() {
    let f = Fixture::new();
    let reference = f.signature(4, 0);
    let q = bare(&f);
    let mut b = backend(&f);
    b.load_image(Slot::Reference(0), &reference).unwrap();
    b.load_image(Slot::Cheque, &q).unwrap();

    // The GUI: left to the image (auto), then chosen as a cheque.
    let o = b.verify(None, None, None).unwrap();
    let gui_auto = b.record(&o, &FinalAction::Abandoned).unwrap().id;
    b.set_cheque_kind(InputKind::Cheque).unwrap();
    let o = b.verify(None, None, None).unwrap();
    let gui_cheque = b.record(&o, &FinalAction::Confirm).unwrap().id;

    // The CLI: auto, and `--kind signature`.
    ok(&f.cli(&[
        "verify",
        "--reference",
        s(&reference),
        "--image",
        s(&q),
        "--cheque-id",
        "cli-auto",
    ]));
    let cli_auto = latest(&f).id;
    ok(&f.cli(&[
        "verify",
        "--reference",
        s(&reference),
        "--image",
        s(&q),
        "--kind",
        "signature",
        "--cheque-id",
        "cli-signature",
    ]));
    let cli_signature = latest(&f).id;

    // A batch whose manifest says `cheque`.
    let manifest = f.path("kinds.csv");
    std::fs::write(
        &manifest,
        format!(
            "cheque_id,cheque_path,reference_paths,kind\nbatch-cheque,{},{},cheque\n",
            s(&q),
            s(&reference)
        ),
    )
    .unwrap();
    let results = f.path("kinds-results.csv");
    let _ = f.cli(&["batch", "--manifest", s(&manifest), "--out", s(&results)]);
    let all = rows(&f);
    let batch_row = all
        .iter()
        .find(|r| r.record.cheque_id.as_deref() == Some("batch-cheque"))
        .expect("the batch row");
    assert_eq!(batch_row.record.source, Source::Batch);

    let want = [
        (gui_auto, ImageKind::new("auto", "signature")),
        (gui_cheque, ImageKind::new("cheque", "cheque")),
        (cli_auto, ImageKind::new("auto", "signature")),
        (cli_signature, ImageKind::new("signature", "signature")),
        (batch_row.id, ImageKind::new("cheque", "cheque")),
    ];
    for (id, kind) in &want {
        let row = all.iter().find(|r| r.id == *id).unwrap();
        assert_eq!(
            row.record.image_kind.as_ref(),
            Some(kind),
            "row {id} ({})",
            row.record.source.as_str()
        );
    }

    // The Audit screen's detail says it.
    let detail = b.decision_detail(gui_auto).unwrap();
    let image = detail
        .fields
        .iter()
        .find(|(k, _)| k == "Image")
        .map(|(_, v)| v.clone())
        .expect("an Image field");
    assert!(image.contains("a bare signature"), "{image}");
    let detail = b.decision_detail(gui_cheque).unwrap();
    assert!(
        detail
            .fields
            .iter()
            .any(|(k, v)| k == "Image" && v.contains("a cheque, as the operator chose")),
        "{:?}",
        detail.fields
    );

    // The export carries both columns.
    let out = f.path("export.csv");
    ok(&f.cli(&["audit", "export", "--out", s(&out)]));
    let mut r = csv::Reader::from_path(&out).unwrap();
    let headers = r.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (id, chosen, resolved) = (col("id"), col("kind_chosen"), col("kind_resolved"));
    let exported: Vec<(i64, String, String)> = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            (
                rec[id].parse().unwrap(),
                rec[chosen].to_string(),
                rec[resolved].to_string(),
            )
        })
        .collect();
    for (id, kind) in &want {
        assert!(
            exported.contains(&(*id, kind.chosen.clone(), kind.resolved.clone())),
            "row {id} {kind:?} in {exported:?}"
        );
    }
}

#[test]
fn a_kind_that_contradicts_what_it_was_taken_as_is_refused_by_the_store() {
    let f = Fixture::new();
    let mut store = Store::open(&f.db).unwrap();
    let op = store.authenticate("sam", "sam-pin-1").unwrap();
    let mut d = crate::store_common::decision(&op, 1);
    d.image_kind = Some(ImageKind::new("signature", "cheque"));
    assert!(store.insert_decisions(&op, &[d.clone()]).is_err());
    d.image_kind = Some(ImageKind::new("photo", "cheque"));
    assert!(store.insert_decisions(&op, &[d.clone()]).is_err());
    d.image_kind = Some(ImageKind::new("auto", "cheque"));
    let id = store.insert_decisions(&op, &[d]).unwrap()[0];
    assert_eq!(
        store.decision(id).unwrap().unwrap().record.image_kind,
        Some(ImageKind::new("auto", "cheque"))
    );
}

#[test]
fn a_hand_drawn_box_scores_the_same_in_the_gui_and_verify_crop() {
    let f = Fixture::new();
    let (reference, cheque) = f.demo_pair();
    let q = bare(&f);
    let mut b = backend(&f);
    b.load_image(Slot::Reference(0), &reference).unwrap();

    // A cheque, with a box drawn around its signature zone; and a bare signature, with a box inside it.
    let (w, h) = image::image_dimensions(&cheque).unwrap();
    let cheque_box = PixelBox {
        x: w / 2,
        y: h / 2,
        width: w / 2 - 10,
        height: h / 2 - 10,
    };
    let bare_box = PixelBox {
        x: 30,
        y: 40,
        width: 500,
        height: 320,
    };
    for (image, bx, kind) in [(&cheque, cheque_box, "cheque"), (&q, bare_box, "auto")] {
        b.load_image(Slot::Cheque, image).unwrap();
        let o = b.verify(Some(bx), None, None).unwrap();
        assert!(o.hand_drawn);
        let gui = o.score.expect("the GUI scored the box");
        let crop = format!("{},{},{},{}", bx.x, bx.y, bx.width, bx.height);
        let cli = cli_score(
            &f,
            &[
                "--reference",
                s(&reference),
                "--image",
                s(image),
                "--kind",
                kind,
                "--crop",
                &crop,
            ],
        )
        .expect("verify --crop scored the box");
        assert!(
            (gui - cli).abs() < 1e-5,
            "{kind}: GUI {gui} vs verify --crop {cli}"
        );
    }
}
