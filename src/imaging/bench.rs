//! Timing of the imaging path on one core: decode + find + normalise for a generated 1700x800 cheque
//! scan held as PNG bytes in memory, and decode + normalise for a bare signature image.

use std::io::Cursor;
use std::time::{Duration, Instant};

use anyhow::Context;
use image::{DynamicImage, GrayImage, ImageFormat};

use super::cheque::{ChequeLayout, crop, find_signature};
use super::decode::{DecodeLimits, decode_bytes};
use super::normalise::{NormaliseParams, normalise};
use super::sample::{sample_cheque, sample_signature};

/// Distinct inputs cycled through, so caches do not flatter the figures.
const INPUTS: u64 = 8;
const ROUNDS: usize = 25;

fn png(img: &GrayImage) -> anyhow::Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageLuma8(img.clone())
        .write_to(&mut out, ImageFormat::Png)
        .context("encoding a benchmark PNG")?;
    Ok(out.into_inner())
}

fn summary(mut times: Vec<Duration>) -> String {
    times.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = times[times.len() / 2];
    let p99 = times[((times.len() as f64 * 0.99).ceil() as usize).clamp(1, times.len()) - 1];
    format!(
        "median {:.3} ms, p99 {:.3} ms (n={})",
        ms(median),
        ms(p99),
        times.len()
    )
}

/// CPU time this thread has run, from Linux's schedstat (nanoseconds); `None` elsewhere. Wall-clock
/// medians on a busy machine include time spent waiting for a core; this does not.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn cpu_per_item(start: Option<Duration>, items: usize) -> String {
    match (start, thread_cpu()) {
        (Some(a), Some(b)) if items > 0 => format!(
            "{:.3} ms CPU per item (mean over {items})",
            (b - a).as_secs_f64() * 1000.0 / items as f64
        ),
        _ => "thread CPU time not available on this platform".into(),
    }
}

/// Runs the imaging benchmark on the calling thread and returns (item, figure) rows.
pub fn bench() -> anyhow::Result<Vec<(String, String)>> {
    bench_rounds(ROUNDS)
}

/// The benchmark with `rounds` timed passes over the inputs (after one warm-up pass).
fn bench_rounds(rounds: usize) -> anyhow::Result<Vec<(String, String)>> {
    let limits = DecodeLimits::default();
    let layout = ChequeLayout::default();
    let params = NormaliseParams::default();

    let cheques: Vec<Vec<u8>> = (0..INPUTS)
        .map(|seed| png(&sample_cheque(seed, 1700, 800, true).image))
        .collect::<anyhow::Result<_>>()?;
    let signatures: Vec<Vec<u8>> = (0..INPUTS)
        .map(|seed| png(&sample_signature(seed, 600, 300)))
        .collect::<anyhow::Result<_>>()?;

    let (mut dec, mut find, mut norm, mut total) = (vec![], vec![], vec![], vec![]);
    let mut found = 0usize;
    let mut cpu_start = None;
    for round in 0..=rounds {
        if round == 1 {
            cpu_start = thread_cpu();
        }
        for bytes in &cheques {
            let t0 = Instant::now();
            let img = decode_bytes(bytes, "bench-cheque.png", &limits)?;
            let t1 = Instant::now();
            let f = find_signature(&img, &layout)?;
            let t2 = Instant::now();
            let n = normalise(&crop(&img, f.bbox)?, &params)?;
            let t3 = Instant::now();
            std::hint::black_box(n);
            // The first round warms caches and the allocator and is not counted.
            if round > 0 {
                found += usize::from(f.found);
                dec.push(t1 - t0);
                find.push(t2 - t1);
                norm.push(t3 - t2);
                total.push(t3 - t0);
            }
        }
    }
    let cheque_cpu = cpu_per_item(cpu_start, total.len());
    let (mut sdec, mut snorm, mut stotal) = (vec![], vec![], vec![]);
    let mut cpu_start = None;
    for round in 0..=rounds {
        if round == 1 {
            cpu_start = thread_cpu();
        }
        for bytes in &signatures {
            let t0 = Instant::now();
            let img = decode_bytes(bytes, "bench-signature.png", &limits)?;
            let t1 = Instant::now();
            let n = normalise(&img, &params)?;
            let t2 = Instant::now();
            std::hint::black_box(n);
            if round > 0 {
                sdec.push(t1 - t0);
                snorm.push(t2 - t1);
                stotal.push(t2 - t0);
            }
        }
    }
    let signature_cpu = cpu_per_item(cpu_start, stotal.len());
    let cheque_kb = cheques.iter().map(Vec::len).sum::<usize>() / cheques.len() / 1024;
    Ok(vec![
        (
            format!("imaging: cheque 1700x800 PNG ({cheque_kb} KiB) decode"),
            summary(dec),
        ),
        ("imaging: cheque find_signature".into(), summary(find)),
        ("imaging: cheque crop + normalise".into(), summary(norm)),
        (
            "imaging: cheque decode + find + normalise (one core)".into(),
            summary(total),
        ),
        (
            "imaging: cheque decode + find + normalise CPU".into(),
            cheque_cpu,
        ),
        (
            "imaging: cheque signatures found".into(),
            format!("{found} of {}", rounds * cheques.len()),
        ),
        (
            "imaging: signature 600x300 PNG decode".into(),
            summary(sdec),
        ),
        ("imaging: signature normalise".into(), summary(snorm)),
        (
            "imaging: signature decode + normalise (one core)".into(),
            summary(stotal),
        ),
        (
            "imaging: signature decode + normalise CPU".into(),
            signature_cpu,
        ),
    ])
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_reports_every_item() {
        let rows = super::bench_rounds(1).expect("bench");
        assert_eq!(rows.len(), 10);
        for (name, figure) in &rows {
            assert!(name.starts_with("imaging: "), "{name}");
            assert!(!figure.is_empty());
        }
    }
}
