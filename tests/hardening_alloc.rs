//! Decompression bombs: headers that claim huge images must be refused before the pixels are
//! allocated, and a claim within the limits must not make the decoder allocate beyond them.
//!
//! This test binary installs a counting global allocator (its own: it does not affect any other test
//! binary) that records the peak of live heap bytes. Each case resets the peak, decodes, and reads
//! how far above the starting level the heap went. The binary holds a single test so no other thread
//! allocates while a case is measured.
#![allow(unsafe_code)]

#[path = "suite/hardening_common.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{bmp_claiming, jpeg_claiming, png_claiming, tiff_claiming, variant};
use countersign::imaging::decode::{DecodeLimits, decode_bytes};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to the system allocator unchanged and only updates two counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let grow = new_size - layout.size();
                let now = LIVE.fetch_add(grow, Ordering::Relaxed) + grow;
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The decoded size, or the error variant's name.
type Decoded = Result<(u32, u32), &'static str>;

/// Decodes and returns the outcome with the peak heap growth during the call, in bytes.
fn measured(bytes: &[u8], limits: &DecodeLimits) -> (Decoded, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = decode_bytes(bytes, "bomb", limits)
        .map(|img| img.dimensions())
        .map_err(|e| variant(&e));
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    (out, peak)
}

/// The most a decode may allocate under `limits`: the decoded pixels at up to 16 bits x 4 channels
/// plus 64 MiB of decoder working space (the cap `decode_bytes` hands the `image` crate).
fn cap(limits: &DecodeLimits) -> usize {
    (limits.max_pixels * 8 + (64 << 20)) as usize
}

/// Headers past the limits: refused with a typed error while the heap stays small.
const REFUSED_SMALL: usize = 2 << 20;

#[test]
fn headers_claiming_huge_images_are_refused_before_allocating() {
    let limits = DecodeLimits::default();
    let mut rows: Vec<(String, Decoded, usize)> = Vec::new();

    // Beyond the limits in every format, both by side and by area: refused before any pixel buffer.
    let over: Vec<(String, Vec<u8>)> = vec![
        ("png 100000x100000".into(), png_claiming(100_000, 100_000)),
        ("png 20001x1".into(), png_claiming(20_001, 1)),
        ("png 19999x19999".into(), png_claiming(19_999, 19_999)),
        ("png u32::MAX^2".into(), png_claiming(u32::MAX, u32::MAX)),
        ("jpeg 65535x65535".into(), jpeg_claiming(65_535, 65_535)),
        ("jpeg 20001x8".into(), jpeg_claiming(20_001, 8)),
        ("jpeg 19000x19000".into(), jpeg_claiming(19_000, 19_000)),
        ("bmp 100000x100000".into(), bmp_claiming(100_000, 100_000)),
        ("bmp -20000x-20000".into(), bmp_claiming(-20_000, -20_000)),
        ("bmp i32::MAX x 1".into(), bmp_claiming(i32::MAX, 1)),
        ("bmp 19000x19000".into(), bmp_claiming(19_000, 19_000)),
        (
            "tiff 1000000x1000000".into(),
            tiff_claiming(1_000_000, 1_000_000, 16, &[0; 16]),
        ),
        (
            "tiff 19000x19000".into(),
            tiff_claiming(19_000, 19_000, 16, &[0; 16]),
        ),
        (
            "tiff 64x64, strip of 4 GiB".into(),
            tiff_claiming(64, 64, u32::MAX, &[0; 16]),
        ),
    ];
    for (name, bytes) in &over {
        let (out, peak) = measured(bytes, &limits);
        println!("{name:32} -> {out:?}, peak heap +{peak} bytes");
        // A strip byte count larger than the image is refused or ignored; all the others are past
        // the limits and must be refused.
        if !name.contains("strip") {
            assert!(out.is_err(), "{name}: a claim past the limits was decoded");
        }
        assert!(
            peak < REFUSED_SMALL,
            "{name}: the heap grew by {peak} bytes before the refusal"
        );
        rows.push((name.clone(), out, peak));
    }

    // Within smaller limits but without the pixel data: the decoder may allocate the claimed image
    // (that is what the limits allow), never more than the cap.
    let small = DecodeLimits {
        max_bytes: 1 << 20,
        max_pixels: 4_000_000,
        max_side: 4_000,
    };
    let within: Vec<(String, Vec<u8>)> = vec![
        ("png 2000x2000, no data".into(), png_claiming(2000, 2000)),
        ("jpeg 2000x2000, no data".into(), jpeg_claiming(2000, 2000)),
        ("bmp 2000x2000, no data".into(), bmp_claiming(2000, 2000)),
        (
            "tiff 2000x2000, no data".into(),
            tiff_claiming(2000, 2000, 2000 * 2000, &[0; 64]),
        ),
        ("png 4001x10 (side)".into(), png_claiming(4001, 10)),
        ("png 2001x2000 (area)".into(), png_claiming(2001, 2000)),
    ];
    for (name, bytes) in &within {
        let (out, peak) = measured(bytes, &small);
        println!(
            "{name:32} -> {out:?}, peak heap +{peak} bytes (cap {})",
            cap(&small)
        );
        assert!(out.is_err(), "{name}: a file without pixel data decoded");
        assert!(
            peak <= cap(&small),
            "{name}: the heap grew by {peak} bytes, past the cap {}",
            cap(&small)
        );
        if name.contains("side") || name.contains("area") {
            assert!(peak < REFUSED_SMALL, "{name}: {peak} bytes before refusal");
        }
        rows.push((name.clone(), out, peak));
    }
    // The worst image for normalisation's connected-component labelling: a checkerboard, one run per
    // ink pixel, all in one 8-connected component. It compresses to a few kilobytes as PNG.
    let side = 6000u32;
    let board = image::GrayImage::from_fn(side, side, |x, y| {
        image::Luma([if (x + y) % 2 == 0 { 0 } else { 255 }])
    });
    let png = common::encode(&board, image::ImageFormat::Png, false);
    drop(board);
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let img = decode_bytes(&png, "checkerboard", &limits).expect("decodes");
    let out = countersign::imaging::normalise::normalise(
        &img,
        &countersign::imaging::normalise::NormaliseParams::default(),
    );
    drop(img);
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    let pixels = u64::from(side) * u64::from(side);
    println!(
        "checkerboard {side}x{side} ({} byte PNG): normalise -> {:?}, peak heap +{peak} bytes ({:.1} bytes per pixel)",
        png.len(),
        out.as_ref().map(|_| ()).map_err(common::variant),
        peak as f64 / pixels as f64
    );
    // Labelling keeps one 16-byte run and two 4-byte indices per run at most: bounded per pixel.
    assert!(
        peak as u64 <= 32 * pixels,
        "normalising used {peak} bytes for {pixels} pixels"
    );
    println!(
        "{} crafted headers, largest peak {} bytes",
        rows.len(),
        rows.iter().map(|r| r.2).max().unwrap_or(0)
    );
}
