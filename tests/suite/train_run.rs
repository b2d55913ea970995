//! A tiny real training run on generated writers: the loss falls, validation beats chance, the output
//! loads with a card that records the run, and stop / resume work.

use crate::train_shapes as shapes;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use countersign::model::SignatureModel;
use countersign::train::{Holdout, Layout, SourceSpec, TrainConfig, TrainEvent, run};
use tch::Device;

fn config(data: &std::path::Path, out: &std::path::Path) -> TrainConfig {
    TrainConfig {
        sources: vec![SourceSpec::Data {
            name: "shapes".into(),
            path: data.to_path_buf(),
            layout: Layout::Auto,
            weight: 1.0,
            licence: "generated for tests".into(),
        }],
        holdout: Holdout::List(vec!["w00".into(), "w01".into(), "w02".into(), "w03".into()]),
        out: out.to_path_buf(),
        epochs: 4,
        steps_per_epoch: 12,
        writers_per_batch: 6,
        genuine_per_writer: 3,
        forgeries_per_writer: 1,
        warmup_steps: 4,
        lr: 3e-3,
        seed: 11,
        command_line: "countersign train (test)".into(),
        ..TrainConfig::default()
    }
}

#[test]
fn tiny_training_lowers_the_loss_and_beats_chance() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    shapes::write_folders(&data, 14, 7, 3);
    let out = dir.path().join("out").join("tiny.safetensors");
    let cfg = config(&data, &out);
    let mut events: Vec<TrainEvent> = Vec::new();
    let outcome = run(
        &cfg,
        |e| events.push(e.clone()),
        Arc::new(AtomicBool::new(false)),
    )
    .expect("train");

    assert!(!outcome.stopped);
    assert_eq!(outcome.epochs_completed, 4);
    let (first, last) = (
        outcome.first_epoch_loss.expect("first"),
        outcome.last_epoch_loss.expect("last"),
    );
    assert!(
        last < first,
        "loss should fall: first epoch {first}, last {last}"
    );
    let v = outcome.validation.clone().expect("validation figures");
    let eer = v.eer_skilled_5ref.expect("skilled EER");
    assert!(
        eer < 0.35,
        "validation EER {eer} should beat chance (0.5) clearly"
    );
    assert_eq!(v.writers, 4);
    assert_eq!(outcome.val_eer_per_epoch.len(), 4);

    // Events: one per step with a finite loss, and an end-of-epoch event with the validation EER.
    assert!(events.iter().filter(|e| e.message.is_none()).count() >= 40);
    assert!(
        events
            .iter()
            .filter(|e| e.message.is_none())
            .all(|e| e.loss.is_finite() && e.lr > 0.0)
    );
    assert_eq!(events.iter().filter(|e| e.val_eer.is_some()).count(), 4);

    // The output loads, and its card says how it was made.
    let model = SignatureModel::load(&out, Device::Cpu).expect("load trained model");
    let t = model.card().training.as_ref().expect("training info");
    assert_eq!(t.seed, 11);
    assert_eq!(t.command_line, "countersign train (test)");
    assert_eq!(
        t.validation_writers,
        vec!["shapes:w00", "shapes:w01", "shapes:w02", "shapes:w03"]
    );
    assert_eq!(t.training_writer_count, 10);
    assert_eq!(t.sources[0].licence, "generated for tests");
    // (serde_json may round the last bit of a float, so the card is compared through its figures.)
    let carded = model.card().validation.clone().expect("card validation");
    let near =
        |a: Option<f64>, b: Option<f64>| a.zip(b).is_some_and(|(a, b)| (a - b).abs() < 1e-12);
    assert!(near(carded.eer_skilled_5ref, v.eer_skilled_5ref));
    assert!(near(carded.eer_skilled_1ref, v.eer_skilled_1ref));
    assert_eq!(carded.writers, v.writers);
    assert!(outcome.best.as_ref().is_some_and(|b| b.is_file()));
    assert!(outcome.checkpoint.is_file());

    // The writer bootstrap gives a spread around the figure.
    let sd = v.eer_skilled_5ref_bootstrap_std.expect("bootstrap sd");
    let (lo, hi) = v
        .eer_skilled_5ref_bootstrap_ci95
        .expect("bootstrap interval");
    assert!(
        sd >= 0.0 && lo <= eer + 1e-9 && eer <= hi + 1e-9,
        "{lo} <= {eer} <= {hi}, sd {sd}"
    );

    // Measuring the saved model again on the same split reproduces the card's figures (up to float
    // rounding: libtorch may pick other kernels for the loaded, gradient-free weights).
    let again = countersign::train::evaluate_holdout(&cfg, &model)
        .expect("evaluate")
        .expect("figures");
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-6,
        (None, None) => true,
        _ => false,
    };
    assert!(
        close(again.eer_skilled_5ref, v.eer_skilled_5ref),
        "{again:?} vs {v:?}"
    );
    assert!(
        close(again.eer_skilled_1ref, v.eer_skilled_1ref),
        "{again:?} vs {v:?}"
    );
    assert!(
        close(again.eer_random_5ref, v.eer_random_5ref),
        "{again:?} vs {v:?}"
    );
    assert!(
        close(again.frr_at_far_1pct_5ref, v.frr_at_far_1pct_5ref),
        "{again:?} vs {v:?}"
    );
    assert_eq!(
        (again.writers, again.genuine, again.forgeries),
        (v.writers, v.genuine, v.forgeries)
    );
}

#[test]
fn training_is_reproducible_with_a_seed() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    shapes::write_folders(&data, 8, 4, 1);
    let mut losses = Vec::new();
    for run_no in 0..2 {
        let mut cfg = config(&data, &dir.path().join(format!("r{run_no}.safetensors")));
        cfg.holdout = Holdout::Count(2);
        cfg.epochs = 1;
        cfg.steps_per_epoch = 4;
        let mut l = Vec::new();
        run(
            &cfg,
            |e| {
                if e.message.is_none() {
                    l.push(e.loss)
                }
            },
            Arc::new(AtomicBool::new(false)),
        )
        .expect("train");
        losses.push(l);
    }
    assert_eq!(losses[0], losses[1]);
    assert_eq!(losses[0].len(), 4);
}

#[test]
fn stop_writes_a_checkpoint_and_resume_finishes() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    shapes::write_folders(&data, 8, 4, 1);
    let out = dir.path().join("m.safetensors");
    let mut cfg = config(&data, &out);
    cfg.holdout = Holdout::Count(2);
    cfg.epochs = 2;
    cfg.steps_per_epoch = 3;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // Stop during the second epoch.
    let outcome = run(
        &cfg,
        |e| {
            if e.step == 4 {
                flag.store(true, Ordering::SeqCst);
            }
        },
        stop,
    )
    .expect("train");
    assert!(outcome.stopped);
    assert_eq!(outcome.epochs_completed, 1);
    assert!(outcome.weights.is_none() && !out.exists());
    assert!(outcome.checkpoint.is_file());
    SignatureModel::load(&outcome.checkpoint, Device::Cpu).expect("checkpoint loads");

    cfg.resume = true;
    let mut steps = Vec::new();
    let outcome = run(
        &cfg,
        |e| {
            if e.message.is_none() {
                steps.push(e.step)
            }
        },
        Arc::new(AtomicBool::new(false)),
    )
    .expect("resume");
    assert!(!outcome.stopped);
    assert_eq!(outcome.epochs_completed, 2);
    assert_eq!(
        steps,
        vec![4, 5, 6],
        "resume continues with the second epoch"
    );
    assert!(out.is_file());
}

#[test]
fn bad_configurations_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    shapes::write_folders(&data, 3, 3, 0);
    let never = Arc::new(AtomicBool::new(false));
    let mut cfg = config(&data, &dir.path().join("x.safetensors"));
    cfg.sources.clear();
    assert!(run(&cfg, |_| {}, never.clone()).is_err());
    let mut cfg = config(&data, &dir.path().join("x.bin"));
    cfg.holdout = Holdout::None;
    assert!(matches!(
        run(&cfg, |_| {}, never.clone()),
        Err(countersign::train::TrainError::Config(_))
    ));
    // Holding out every writer leaves nothing to train on.
    let mut cfg = config(&data, &dir.path().join("x.safetensors"));
    cfg.holdout = Holdout::Count(3);
    assert!(matches!(
        run(&cfg, |_| {}, never),
        Err(countersign::train::TrainError::NoData(_))
    ));
}

/// `countersign synth` writes `w0001/01.png` and `w0001_forg/01.png`: the same file name for a
/// genuine signature and a forgery of one writer. Training on that layout must keep them apart (it
/// once stopped at validation with "two samples with id '01.png'").
#[test]
fn training_on_synth_output_with_shared_file_names_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("synth");
    let opts = countersign::synth::dataset::DatasetOptions {
        writers: 6,
        genuine: 4,
        forgeries: 2,
        cheques: 0,
        seed: 9,
        scan: false,
    };
    countersign::synth::dataset::generate_dataset(&data, &opts).expect("synth");
    assert!(data.join("w0001/01.png").exists() && data.join("w0001_forg/01.png").exists());
    let out = dir.path().join("synth.safetensors");
    let mut cfg = config(&data, &out);
    cfg.holdout = Holdout::List(vec!["w0001".into(), "w0002".into()]);
    cfg.epochs = 1;
    cfg.steps_per_epoch = 2;
    cfg.writers_per_batch = 4;
    let outcome = run(&cfg, |_| {}, Arc::new(AtomicBool::new(false))).expect("train");
    assert_eq!(outcome.epochs_completed, 1);
    SignatureModel::load(&out, Device::Cpu).expect("the model loads");
}
