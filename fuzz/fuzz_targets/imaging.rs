//! Fuzz target: untrusted bytes through everything the imaging layer does with a cheque or a
//! reference signature: bounded decode, signature finding and questioned-signature preparation on
//! the image as a cheque, and normalisation of the image as a signature. Any panic, hang, or
//! allocation past libFuzzer's `-rss_limit_mb` is a bug; save the input into `tests/regressions/` so
//! `cargo test --test hardening_regressions` replays it forever.
//!
//! The limits are smaller than the application's defaults so that each run stays fast; the
//! allocation test in `tests/hardening_alloc.rs` covers the defaults.
#![no_main]

use countersign::imaging::cheque::{ChequeLayout, find_signature, prepare_questioned};
use countersign::imaging::decode::{DecodeLimits, decode_bytes};
use countersign::imaging::normalise::{NormaliseParams, normalise};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits {
        max_bytes: 4 << 20,
        max_pixels: 4_000_000,
        max_side: 8_000,
    };
    let Ok(img) = decode_bytes(data, "fuzz", &limits) else {
        return;
    };
    let (w, h) = img.dimensions();
    assert!(w > 0 && h > 0 && u64::from(w) * u64::from(h) <= limits.max_pixels);
    let params = NormaliseParams::default();
    let layout = ChequeLayout::default();
    if let Ok(f) = find_signature(&img, &layout) {
        let b = f.bbox;
        assert!(u64::from(b.x) + u64::from(b.width) <= u64::from(w));
        assert!(u64::from(b.y) + u64::from(b.height) <= u64::from(h));
    }
    if let Ok(p) = prepare_questioned(&img, &layout, None, &params) {
        assert!(p.normalised.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    if let Ok(n) = normalise(&img, &params) {
        assert!(n.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    }
});
