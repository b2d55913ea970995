//! `countersign bench --only formats`: batch throughput per input format (PNG, JPEG, CCITT G4 TIFF,
//! and G4 fronts inside an X9 file), side by side in one run with PyTorch SigNet embeddings per second
//! (the network alone) on the same cores. Figures are printed, never asserted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use crate::batch::bench::BenchSetup;
use crate::batch::bench::fixture;
use crate::batch::{BatchOptions, BatchSummary};
use crate::imaging::cheque::ChequeLayout;
use crate::model::SignatureModel;
use crate::store::{SettingsChange, Store};
use crate::verify::Verifier;

/// The SigNet benchmark script (PyTorch), written next to the bench's files and run with Python.
const SIGNET_PY: &str = include_str!("../../scripts/signet_bench.py");

/// The account rule the bench's X9 file needs (the fixture's accounts are `ACC-000`, ...).
const BENCH_RULE: &str = r"^(?P<account>ACC-[0-9]+)/";

/// Python interpreters to try for SigNet, in order.
fn pythons() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os("COUNTERSIGN_PYTHON") {
        v.push(PathBuf::from(p));
    }
    if let Some(venv) = std::env::var_os("COUNTERSIGN_VENV") {
        v.push(PathBuf::from(venv).join("bin/python"));
    }
    v.push(PathBuf::from(".venv/bin/python"));
    v.push(PathBuf::from("python3"));
    v
}

/// SigNet embeddings per second with `threads` threads, or why it could not be measured.
pub fn signet_rate(dir: &Path, threads: usize, seconds: f64) -> Result<f64, String> {
    let script = dir.join("signet_bench.py");
    std::fs::write(&script, SIGNET_PY).map_err(|e| format!("cannot write the script: {e}"))?;
    let mut last = String::from("no Python interpreter found");
    for py in pythons() {
        let out = std::process::Command::new(&py)
            .arg(&script)
            .arg(threads.to_string())
            .arg(format!("{seconds}"))
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                last = format!("{}: {e}", py.display());
                continue;
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().unwrap_or_default();
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) => {
                last = format!("{}: exit {}", py.display(), out.status);
                continue;
            }
        };
        if let Some(r) = v
            .get("embeddings_per_s")
            .and_then(serde_json::Value::as_f64)
        {
            return Ok(r);
        }
        last = format!(
            "{}: {}",
            py.display(),
            v.get("error")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no figure")
        );
    }
    Err(last)
}

/// The fixture's cheques in one format: PNG as they are, JPEG (quality 90), G4 TIFF (bitonal).
fn convert(s: &BenchSetup, format: &str) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let dir = s.dir.join("formats").join(format);
    std::fs::create_dir_all(&dir)?;
    let mut out = Vec::new();
    for fw in &s.fixture.writers {
        for (i, c) in fw.cheques.iter().enumerate() {
            let path = match format {
                "png" => c.clone(),
                "jpeg" => {
                    let p = dir.join(format!("{}-{i}.jpg", fw.account));
                    let img = image::open(c)?.into_luma8();
                    let mut f = std::io::BufWriter::new(std::fs::File::create(&p)?);
                    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut f, 90)
                        .encode_image(&img)?;
                    f.flush()?;
                    p
                }
                _ => {
                    let p = dir.join(format!("{}-{i}.tif", fw.account));
                    let img = image::open(c)?.into_luma8();
                    let bit = super::synth::bitonal(&img, super::synth::BITONAL_THRESHOLD);
                    std::fs::write(&p, super::synth::g4_tiff(&bit)?)?;
                    p
                }
            };
            out.push((fw.account.clone(), path));
        }
    }
    Ok(out)
}

fn run_batch(
    s: &BenchSetup,
    store: &mut Store,
    opts: &BatchOptions,
) -> anyhow::Result<BatchSummary> {
    let operator = store.authenticate(fixture::OPERATOR, fixture::PIN)?;
    let model = SignatureModel::load(&s.model_path, tch::Device::Cpu)
        .with_context(|| format!("loading {}", s.model_path.display()))?;
    let v = Verifier::from_store(
        crate::verify::shared_model(model),
        ChequeLayout::default(),
        Some(store),
    )?;
    for fw in &s.fixture.writers {
        crate::verify::account_references(store, &v, &fw.account)?;
    }
    Ok(crate::batch::run(
        &v,
        store,
        &operator,
        opts,
        &AtomicBool::new(false),
        &|_| {},
    )?)
}

/// Batch throughput per format and SigNet side by side; `rows` cheques per format.
pub fn formats(s: &BenchSetup, rows: u64) -> anyhow::Result<Vec<(String, String)>> {
    let mut store = Store::open(&s.fixture.db)?;
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let tag = std::process::id();
    let mut results: Vec<(String, BatchSummary)> = Vec::new();
    for format in ["png", "jpeg", "g4"] {
        let cheques = convert(s, format)?;
        let manifest = s.dir.join(format!("formats-{format}-{tag}.csv"));
        let mut w = std::io::BufWriter::new(std::fs::File::create(&manifest)?);
        writeln!(w, "cheque_id,cheque_path,account_id,amount")?;
        for n in 0..rows {
            let (account, path) = &cheques[(n % cheques.len() as u64) as usize];
            writeln!(
                w,
                "fmt-{format}-{tag}-{n},{},{account},{}.{:02}",
                path.display(),
                10 + n % 900,
                n % 100
            )?;
        }
        w.flush()?;
        drop(w);
        let opts = BatchOptions::new(&manifest, &s.dir.join(format!("formats-{format}-out.csv")));
        results.push((
            match format {
                "png" => "PNG (grey, 1700x800)".to_string(),
                "jpeg" => "JPEG (grey, quality 90)".to_string(),
                _ => "TIFF CCITT G4 (bitonal)".to_string(),
            },
            run_batch(s, &mut store, &opts)?,
        ));
    }

    /// The second supervisor that approves the benchmark's account rule.
    const BENCH_APPROVER: &str = "bench-approver";
    // The same G4 fronts inside an X9 file: the reader, the file's checks and hash included.
    let operator = store.authenticate(fixture::OPERATOR, fixture::PIN)?;
    if store.current_settings()?.x9_account_rule.as_deref() != Some(BENCH_RULE) {
        // Four eyes: the fixture's supervisor asks, a second bench supervisor approves.
        let request = store.request_settings_change(
            &operator,
            &SettingsChange::X9AccountRule {
                pattern: Some(BENCH_RULE.into()),
            },
            "benchmark fixture: accounts ACC-nnn",
        )?;
        let second = match store.authenticate(BENCH_APPROVER, fixture::PIN) {
            Ok(op) => op,
            Err(_) => store.add_operator(
                Some(&operator),
                BENCH_APPROVER,
                crate::store::Role::Supervisor,
                fixture::PIN,
            )?,
        };
        store.approve_settings_change(&second, request.id, "benchmark fixture")?;
    }
    let fronts: Vec<(String, Vec<u8>)> = convert(s, "g4")?
        .into_iter()
        .map(|(a, p)| Ok((a, std::fs::read(p)?)))
        .collect::<anyhow::Result<_>>()?;
    let back = super::synth::g4_tiff(&image::GrayImage::from_pixel(1700, 800, image::Luma([255])))?;
    let x9 = s.dir.join(format!("formats-{tag}.x937"));
    let mut w = super::writer::X9Writer::new(
        std::io::BufWriter::new(std::fs::File::create(&x9)?),
        super::writer::WriterOptions::default(),
    )?;
    for n in 0..rows {
        let (account, front) = &fronts[(n % fronts.len() as u64) as usize];
        let on_us = format!("{account}/{:04}", n % 10_000);
        w.item(&super::writer::ItemOut {
            // Unique per run, so a rerun in the same folder is not skipped as resumed.
            sequence: u64::from(tag) * 10_000_000 + n,
            routing: super::synth::ROUTING,
            on_us: &on_us,
            amount_cents: 1000 + n % 90_000,
            front,
            front_format: ("00", "00"),
            back: &back,
        })?;
    }
    w.finish()?;
    let opts = BatchOptions::x9(&x9, &s.dir.join("formats-x9-out.csv"));
    results.push((
        "X9 file, G4 fronts".to_string(),
        run_batch(s, &mut store, &opts)?,
    ));

    let signet = signet_rate(&s.dir, cpus, if s.quick { 2.0 } else { 6.0 });
    let mut rows_out = Vec::new();
    match &signet {
        Ok(r) => rows_out.push((
            format!("PyTorch SigNet (15.8 M parameters), {cpus} threads, network only"),
            format!("{r:.0} embeddings/s (batch 64, 150x220)"),
        )),
        Err(e) => rows_out.push((
            "PyTorch SigNet, network only".to_string(),
            format!("not measured: {e} (set COUNTERSIGN_PYTHON to a Python with torch)"),
        )),
    }
    for (name, sum) in &results {
        let n = (sum.decided() + sum.errors).max(1) as f64;
        let ratio = match &signet {
            Ok(r) if *r > 0.0 => format!(", {:.1}x SigNet", sum.per_second / r),
            _ => String::new(),
        };
        rows_out.push((
            format!("batch end to end, {name}, {} workers", sum.workers),
            format!(
                "{:.0} cheques/s{ratio} (decode {:.2} + find/normalise {:.2} ms CPU per cheque; embed {:.2} ms; {} errors)",
                sum.per_second,
                sum.timings.decode_cpu_ms / n,
                sum.timings.find_normalise_cpu_ms / n,
                sum.timings.embed_ms / n,
                sum.errors
            ),
        ));
    }
    Ok(rows_out)
}
