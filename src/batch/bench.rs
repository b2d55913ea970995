//! Benchmarks of the verification pipeline: single-verification latency, batch throughput, peak memory.
//! They print figures and assert nothing about time.

pub mod fixture;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;

use self::fixture::{Fixture, RefMode};
use super::{BatchOptions, BatchSummary};
use crate::imaging::cheque::ChequeLayout;
use crate::model::SignatureModel;
use crate::scoring::{Calibration, Thresholds};
use crate::store::Store;
use crate::verify::{ImageSource, Questioned, References, Verifier, VerifyRequest};

/// What the benchmarks run on.
#[derive(Clone, Debug)]
pub struct BenchSetup {
    pub dir: PathBuf,
    /// The weights file used (the bundled model, `--model`, or a randomly initialised one saved in `dir`).
    pub model_path: PathBuf,
    /// A note for the table when the weights are random.
    pub model_note: String,
    pub fixture: Fixture,
    pub quick: bool,
}

/// Builds the fixture and finds (or makes) a model. `model` is `--model` or the bundled default; when
/// there is none, a randomly initialised network is saved in `dir` (speed does not depend on weights).
pub fn setup(dir: &Path, model: Option<PathBuf>, quick: bool) -> anyhow::Result<BenchSetup> {
    let fixture = fixture::build(&dir.join("fixture"), 4, 3, 8, 2026)?;
    let (model_path, model_note) = match model.or_else(crate::paths::default_model) {
        Some(p) => (p, String::new()),
        None => (
            random_model(dir)?,
            " (random weights: no trained model found)".to_string(),
        ),
    };
    Ok(BenchSetup {
        dir: dir.to_path_buf(),
        model_path,
        model_note,
        fixture,
        quick,
    })
}

/// Saves a randomly initialised model with a plausible calibration and thresholds in `dir`; returns
/// its weights path. Used when no trained model exists (tests, early benchmarks).
pub fn random_model(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("random-model.safetensors");
    tch::manual_seed(7);
    let mut m = SignatureModel::new(Default::default(), tch::Device::Cpu);
    m.card_mut().calibration = Some(Calibration { a: 12.0, b: -9.0 });
    m.card_mut().thresholds = Some(Thresholds {
        accept: 0.9,
        reject: 0.3,
    });
    m.save(&path)?;
    Ok(path)
}

fn verifier(s: &BenchSetup, device: tch::Device, store: &Store) -> anyhow::Result<Verifier> {
    let model = SignatureModel::load(&s.model_path, device)
        .with_context(|| format!("loading {}", s.model_path.display()))?;
    Ok(Verifier::from_store(
        crate::verify::shared_model(model),
        ChequeLayout::default(),
        Some(store),
    )?)
}

/// Single verification, file to decision, with the account's reference embeddings cached: p50/p99.
pub fn latency(s: &BenchSetup, device: tch::Device) -> anyhow::Result<Vec<(String, String)>> {
    let mut store = Store::open(&s.fixture.db)?;
    let v = verifier(s, device, &store)?;
    // As `countersign verify` runs it: one libtorch thread for a single cheque.
    let _threads = super::TorchThreads::set(1);
    v.warm_up()?;
    let fw = &s.fixture.writers[0];
    // The first call computes and caches the references' embeddings; every later one reads the cache.
    let refs: Arc<[_]> = crate::verify::account_references(&mut store, &v, &fw.account)?.into();
    let n = if s.quick { 60 } else { 400 };
    let mut in_memory = Vec::with_capacity(n);
    let mut from_store = Vec::with_capacity(n);
    for i in 0..(n + 10) {
        let cheque = &fw.cheques[i % fw.cheques.len()];
        let req = |references| VerifyRequest {
            references,
            questioned: Questioned {
                kind: crate::verify::InputKind::Cheque,
                image: ImageSource::Path(cheque.clone()),
            },
            manual_crop: None,
            account: Some(fw.account.clone()),
            amount_cents: Some(12_345),
            cheque_id: Some(format!("lat-{i}")),
        };
        let t0 = Instant::now();
        v.verify(&req(References::Embeddings(Arc::clone(&refs))))?;
        let a = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = Instant::now();
        let cached = crate::verify::account_references(&mut store, &v, &fw.account)?;
        v.verify(&req(References::Embeddings(cached.into())))?;
        let b = t1.elapsed().as_secs_f64() * 1e3;
        // The first iterations warm caches and libtorch's allocator.
        if i >= 10 {
            in_memory.push(a);
            from_store.push(b);
        }
    }
    in_memory.sort_by(f64::total_cmp);
    from_store.sort_by(f64::total_cmp);
    let dev = crate::device::describe(device);
    Ok(vec![
        (
            format!("verify latency, references in memory, {dev}"),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms ({n} cheques){}",
                crate::math::percentile(&in_memory, 0.5),
                crate::math::percentile(&in_memory, 0.99),
                s.model_note
            ),
        ),
        (
            format!("verify latency, references from the store's cache, {dev}"),
            format!(
                "p50 {:.2} ms, p99 {:.2} ms",
                crate::math::percentile(&from_store, 0.5),
                crate::math::percentile(&from_store, 0.99)
            ),
        ),
    ])
}

/// Batch throughput on a generated manifest (account references, cached), in this process.
pub fn throughput(
    s: &BenchSetup,
    device: tch::Device,
    rows: u64,
) -> anyhow::Result<(Vec<(String, String)>, BatchSummary)> {
    let mut store = Store::open(&s.fixture.db)?;
    let operator = store.authenticate(fixture::OPERATOR, fixture::PIN)?;
    let v = verifier(s, device, &store)?;
    let tag = format!(
        "tp-{}-{}",
        crate::device::describe(device).replace([' ', ':', '(', ')'], ""),
        rows
    );
    let manifest = s.dir.join(format!("{tag}.csv"));
    // Unique ids per run: a rerun of the benchmark in the same folder must not be skipped as resumed.
    let prefix = format!("{tag}-{}-", std::process::id());
    fixture::write_manifest(&s.fixture, &manifest, rows, &prefix, RefMode::Account)?;
    // Warm the reference cache so the figure is the steady state the issue asks for.
    for fw in &s.fixture.writers {
        crate::verify::account_references(&mut store, &v, &fw.account)?;
    }
    let opts = BatchOptions::new(&manifest, &s.dir.join(format!("{tag}-results.csv")));
    let stop = AtomicBool::new(false);
    let summary = super::run(&v, &mut store, &operator, &opts, &stop, &|_| {})?;
    let t = &summary.timings;
    let n = (summary.decided() + summary.errors).max(1) as f64;
    let dev = crate::device::describe(device);
    let figures = vec![
        (
            format!("batch throughput, {dev}, {} workers", summary.workers),
            format!(
                "{:.0} cheques/s ({} cheques in {:.2} s, {} errors){}",
                summary.per_second,
                summary.decided() + summary.errors,
                summary.elapsed_s,
                summary.errors,
                s.model_note
            ),
        ),
        (
            format!("batch time per cheque, {dev}"),
            format!(
                "decode {:.3} + find/normalise {:.3} ms CPU (parallel); model thread: wait {:.3}, embed {:.3}, score {:.3}, audit {:.3}, csv {:.3} ms",
                t.decode_cpu_ms / n,
                t.find_normalise_cpu_ms / n,
                t.wait_ms / n,
                t.embed_ms / n,
                t.score_ms / n,
                t.store_ms / n,
                t.csv_ms / n
            ),
        ),
    ];
    Ok((figures, summary))
}

/// Peak memory of a `countersign batch` child process on a manifest of `rows` rows.
pub fn peak_memory(s: &BenchSetup, exe: &Path, rows: u64) -> anyhow::Result<Vec<(String, String)>> {
    let manifest = s.dir.join(format!("mem-{rows}.csv"));
    let prefix = format!("mem-{}-", std::process::id());
    fixture::write_manifest(&s.fixture, &manifest, rows, &prefix, RefMode::Account)?;
    let summary_path = s.dir.join(format!("mem-{rows}-summary.json"));
    let out = std::process::Command::new(exe)
        .arg("--db")
        .arg(&s.fixture.db)
        .arg("--model")
        .arg(&s.model_path)
        .args([
            "--operator",
            fixture::OPERATOR,
            "--pin",
            fixture::PIN,
            "--device",
            "cpu",
            "batch",
            "--manifest",
        ])
        .arg(&manifest)
        .arg("--out")
        .arg(s.dir.join(format!("mem-{rows}-results.csv")))
        .arg("--summary-json")
        .arg(&summary_path)
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "the batch child failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path)?)?;
    let peak = summary
        .get("peak_rss_mb")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(f64::NAN);
    let rate = summary
        .get("per_second")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(f64::NAN);
    Ok(vec![(
        format!("peak memory, batch of {rows} cheques (CPU, separate process)"),
        format!("{peak:.0} MiB (VmHWM), {rate:.0} cheques/s"),
    )])
}
