//! Fuzz target: untrusted bytes through everything the imaging layer does with a cheque or a
//! reference signature: bounded decode, normalisation, and (for cheque-sized images) signature
//! finding. Any panic, hang, or allocation past libFuzzer's `-rss_limit_mb` is a bug; save the input
//! into `tests/regressions/` so `cargo test --test hardening_regressions` replays it forever.
//!
//! The limits are smaller than the application's defaults so that each run stays fast; the
//! allocation test in `tests/hardening_alloc.rs` covers the defaults.
#![no_main]

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
    if let Ok(n) = normalise(&img, &NormaliseParams::default()) {
        assert!(n.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    }
});
