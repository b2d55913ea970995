//! GUI figures: how long a verification takes on the worker once the images are loaded (the clerk's
//! wait after dropping the second file), how long loading a cheque takes, and how long the Verify and
//! Audit screens take to lay out one frame headless. Figures only; nothing here asserts a time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::backend::{Backend, BackendConfig, PixelBox, Slot};
use crate::device::DeviceChoice;

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A model to measure with: the bundled one, else a freshly initialised network of the same shape
/// saved under `dir` (its speed is the same; its scores are not meaningful).
fn bench_model(dir: &Path) -> anyhow::Result<(PathBuf, &'static str)> {
    if let Some(p) = crate::paths::default_model() {
        return Ok((p, "bundled model"));
    }
    let p = dir.join("untrained.safetensors");
    let mut m = crate::model::SignatureModel::new(
        crate::imaging::normalise::NormaliseParams::default(),
        tch::Device::Cpu,
    );
    m.save(&p)?;
    Ok((p, "untrained network (no bundled model found)"))
}

/// Runs the GUI benchmarks in a temporary folder with synthetic demo data.
pub fn bench(device: DeviceChoice) -> anyhow::Result<Vec<(String, String)>> {
    let dir = std::env::temp_dir().join(format!("countersign-gui-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir, device);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(dir: &Path, device: DeviceChoice) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let (model, which) = bench_model(dir)?;
    let demo = dir.join("demo");
    let opts = crate::synth::dataset::DatasetOptions {
        writers: 2,
        genuine: 3,
        forgeries: 0,
        cheques: 1,
        seed: 2026,
        scan: false,
    };
    crate::synth::dataset::generate_dataset(&demo, &opts)?;
    let (reference, cheque) = super::demo_pair(&demo)
        .ok_or_else(|| anyhow::anyhow!("the synthetic demo data has no cheque"))?;

    let config = BackendConfig {
        db_path: dir.join("audit.sqlite3"),
        model_path: Some(model),
        device,
    };
    let mut b = Backend::new(config.clone());
    // The app asks for its status at start, which opens the database; do the same before timing.
    b.status();
    let t = Instant::now();
    b.warmup();
    out.push((
        format!("GUI worker: model load + first forward pass ({which})"),
        format!("{:.0} ms", ms(t.elapsed())),
    ));

    let err = |e: super::backend::UserError| anyhow::anyhow!("{e}");
    b.load_image(Slot::Reference(0), &reference).map_err(err)?;
    let mut loads = Vec::new();
    let mut detected = None;
    for _ in 0..10 {
        let t = Instant::now();
        let img = b.load_image(Slot::Cheque, &cheque).map_err(err)?;
        loads.push(ms(t.elapsed()));
        detected = img.detected.map(|(bx, _)| bx);
    }
    loads.sort_by(f64::total_cmp);
    out.push((
        format!(
            "GUI: load a {} cheque (read, decode, find signature, preview), p50",
            image_size(&cheque)
        ),
        format!("{:.1} ms", crate::math::percentile(&loads, 0.5)),
    ));

    // The first verification embeds the reference as well; later ones reuse its cached embedding.
    let t = Instant::now();
    b.verify(None, None, None).map_err(err)?;
    out.push((
        "GUI: first verification after loading (reference + cheque embedded)".into(),
        format!("{:.1} ms", ms(t.elapsed())),
    ));
    let mut times = Vec::new();
    for i in 0..30u32 {
        // A slightly different box each time, as when the clerk drags it: the cheque is cropped,
        // normalised and embedded again.
        let crop = detected.map(|bx| PixelBox {
            x: bx.x.saturating_sub(i % 3),
            ..bx
        });
        let t = Instant::now();
        b.verify(crop, None, None).map_err(err)?;
        times.push(ms(t.elapsed()));
    }
    times.sort_by(f64::total_cmp);
    out.push((
        "GUI: verification after the box moves (crop, normalise, embed, score, decide), p50 / p90"
            .into(),
        format!(
            "{:.1} / {:.1} ms",
            crate::math::percentile(&times, 0.5),
            crate::math::percentile(&times, 0.9)
        ),
    ));

    out.extend(frame_times(&config, &reference, &cheque)?);
    Ok(out)
}

fn image_size(p: &Path) -> String {
    image::image_dimensions(p)
        .map(|(w, h)| format!("{w}x{h}"))
        .unwrap_or_else(|_| "?".into())
}

/// Lays out frames headless (no window, no GPU) with results on screen and reports the mean time.
fn frame_times(
    config: &BackendConfig,
    reference: &Path,
    cheque: &Path,
) -> anyhow::Result<Vec<(String, String)>> {
    let ctx = egui::Context::default();
    let mut app = super::CountersignApp::new(
        config.db_path.clone(),
        config.model_path.clone(),
        config.device,
    );
    let input = || egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1440.0, 900.0),
        )),
        ..Default::default()
    };
    // The Verify screen is shown directly: layout cost does not depend on who is signed in.
    app.screen = super::Screen::Verify;
    app.load_file(Slot::Reference(0), reference);
    app.load_file(Slot::Cheque, cheque);
    let start = Instant::now();
    while app.verify.outcome.is_none() && app.verify.verify_error.is_none() {
        let _ = ctx.run_ui(input(), |ui| app.show(ui));
        std::thread::sleep(std::time::Duration::from_millis(2));
        if start.elapsed().as_secs() > 60 {
            anyhow::bail!("no verification result within 60 s");
        }
    }
    let n = 100;
    let t = Instant::now();
    for _ in 0..n {
        let _ = ctx.run_ui(input(), |ui| app.show(ui));
    }
    Ok(vec![(
        "GUI: one Verify frame with a result on screen, headless layout".into(),
        format!("{:.2} ms", ms(t.elapsed()) / f64::from(n)),
    )])
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_reports_finite_figures() {
        let figures = super::bench(crate::device::DeviceChoice::Cpu).expect("bench runs");
        for (name, value) in &figures {
            crate::outln!("{name}: {value}");
            let number: String = value
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            assert!(
                number.parse::<f64>().is_ok_and(f64::is_finite),
                "{name}: {value}"
            );
        }
        assert!(figures.len() >= 5);
    }
}
