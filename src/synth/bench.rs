//! Speed figures for the generator, on the calling thread only (one core).

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::writer::SyntheticWriter;
use super::{ChequeOptions, render_cheque};

/// Measures signatures per minute (drawing only, and drawing plus PNG encoding) and cheques per
/// minute, on one core. `n` signatures of each kind; a tenth as many cheques (at least 2).
pub fn bench(n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let n = n.max(10);
    let writers: Vec<SyntheticWriter> = (0..32).map(SyntheticWriter::new).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(1);

    let start = Instant::now();
    let mut pixels = 0u64;
    for i in 0..n {
        let w = &writers[i % writers.len()];
        let img = if i % 3 == 2 {
            w.forgery(&mut rng, 0.6)
        } else {
            w.genuine(&mut rng)
        };
        pixels += u64::from(img.width()) * u64::from(img.height());
    }
    let draw = start.elapsed().as_secs_f64().max(1e-9);

    let start = Instant::now();
    let mut bytes = 0usize;
    for i in 0..n {
        let w = &writers[i % writers.len()];
        let img = w.genuine(&mut rng);
        let mut buf = std::io::Cursor::new(Vec::new());
        img.write_to(&mut buf, image::ImageFormat::Png)?;
        bytes += buf.get_ref().len();
    }
    let draw_png = start.elapsed().as_secs_f64().max(1e-9);

    let m = (n / 10).max(2);
    let start = Instant::now();
    for i in 0..m {
        let w = &writers[i % writers.len()];
        let sig = w.genuine(&mut rng);
        let opts = ChequeOptions {
            stamp_probability: 0.3,
            ..ChequeOptions::default()
        };
        let _ = render_cheque(&sig, &mut rng, &opts);
        let _: u32 = rng.random();
    }
    let cheques = start.elapsed().as_secs_f64().max(1e-9);

    Ok(vec![
        (
            "synth signatures/min, one core (draw only)".into(),
            format!("{:.0}", 60.0 * n as f64 / draw),
        ),
        (
            "synth signatures/min, one core (draw + PNG)".into(),
            format!("{:.0}", 60.0 * n as f64 / draw_png),
        ),
        (
            "synth mean signature size".into(),
            format!(
                "{:.0} px, {:.1} KB PNG",
                pixels as f64 / n as f64,
                bytes as f64 / n as f64 / 1024.0
            ),
        ),
        (
            "synth cheques/min, one core (render + scan effects)".into(),
            format!("{:.0}", 60.0 * m as f64 / cheques),
        ),
    ])
}
