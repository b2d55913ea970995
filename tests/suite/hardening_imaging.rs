//! Hostile images: property tests with a fixed seed and a fixed budget (run in `make test`).
//!
//! Every input goes through bounded decode and normalisation (see `hardening_common::run_pipeline`):
//! the result must be a normalised signature that meets the network's contract or a typed
//! `ImagingError`, never a panic. Three families of input:
//! - arbitrary bytes, with and without the magic bytes of an accepted format in front, so the
//!   decoders themselves are reached and not only the format sniffing;
//! - valid small PNG, JPEG, TIFF and BMP files (gray and colour) with one to six mutations: bit flips,
//!   byte writes, 16/32-bit header words set to edge values (0, 1, 0x7fff..., 0xffff...), insertions,
//!   removals, duplicated ranges and truncation; PNG checksums are optionally recomputed so a mutation
//!   reaches the PNG decoder's deeper code instead of stopping at the CRC;
//! - the same valid files, unmutated, which must all normalise (the generator draws real ink).
//!
//! A failing input is shrunk, written to `CARGO_TARGET_TMPDIR`, and the failure message says to copy it
//! into `tests/regressions/`, where `hardening_regressions` replays every file on each run. The case
//! count defaults to a budget that keeps this file to a few seconds in release; set
//! `COUNTERSIGN_FUZZ_CASES` to run more (the figures in docs/HARDENING.md say what was run).

use crate::hardening_common as common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{FORMATS, Outcome, encode, fix_png_crcs, run_pipeline, signature_picture};
use countersign::imaging::decode::DecodeLimits;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestError, TestRunner};

/// Cases for the arbitrary-bytes property unless `COUNTERSIGN_FUZZ_CASES` says otherwise; the
/// magic-prefixed property runs twice as many and the mutation property three times as many.
const DEFAULT_CASES: u32 = 2000;

fn cases() -> u32 {
    std::env::var("COUNTERSIGN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

fn config(seed: u64, cases: u32) -> Config {
    Config {
        cases,
        // A fixed seed makes every CI run try the same inputs, so a failure is reproducible; no
        // persistence file is written into the source tree.
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 4096,
        ..Config::default()
    }
}

/// Edge values for header words: zero, one, sign boundaries, all ones, just past the decode limits.
const EDGE_WORDS: [u32; 10] = [
    0,
    1,
    0x7f,
    0xff,
    0x7fff,
    0xffff,
    20_001,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    /// A 16- or 32-bit word, big- or little-endian, among the first 64 bytes (where headers are).
    HeaderWord {
        pos: usize,
        value: u32,
        wide: bool,
        big_endian: bool,
    },
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    Duplicate(Index, usize),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::SetByte(i, v)),
        3 => (0usize..64, prop::sample::select(EDGE_WORDS.to_vec()), any::<bool>(), any::<bool>())
            .prop_map(|(pos, value, wide, big_endian)| Mutation::HeaderWord { pos, value, wide, big_endian }),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Remove(i, n)),
        1 => (any::<Index>(), 1usize..256).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        Mutation::FlipBit(i, bit) => {
            let p = i.index(bytes.len());
            bytes[p] ^= 1 << bit;
        }
        Mutation::SetByte(i, v) => {
            let p = i.index(bytes.len());
            bytes[p] = *v;
        }
        Mutation::HeaderWord {
            pos,
            value,
            wide,
            big_endian,
        } => {
            let word: Vec<u8> = match (wide, big_endian) {
                (true, true) => value.to_be_bytes().to_vec(),
                (true, false) => value.to_le_bytes().to_vec(),
                (false, true) => (*value as u16).to_be_bytes().to_vec(),
                (false, false) => (*value as u16).to_le_bytes().to_vec(),
            };
            for (k, b) in word.iter().enumerate() {
                if let Some(dst) = bytes.get_mut(pos + k) {
                    *dst = *b;
                }
            }
        }
        Mutation::Insert(i, v) => {
            let p = i.index(bytes.len() + 1);
            bytes.splice(p..p, v.iter().copied());
        }
        Mutation::Remove(i, n) => {
            let p = i.index(bytes.len());
            let end = (p + n).min(bytes.len());
            bytes.drain(p..end);
        }
        Mutation::Duplicate(i, n) => {
            let p = i.index(bytes.len());
            let end = (p + n).min(bytes.len());
            let copy = bytes[p..end].to_vec();
            bytes.splice(end..end, copy);
        }
        Mutation::Truncate(i) => {
            let p = i.index(bytes.len());
            bytes.truncate(p);
        }
    }
}

/// A valid small image: format, colour or gray, size and drawing seed.
fn valid_image() -> impl Strategy<Value = (usize, bool, u32, u32, u64)> {
    (
        0..FORMATS.len(),
        any::<bool>(),
        8u32..96,
        8u32..64,
        any::<u64>(),
    )
}

fn build(spec: &(usize, bool, u32, u32, u64)) -> Vec<u8> {
    let (f, colour, w, h, seed) = *spec;
    encode(&signature_picture(w, h, seed), FORMATS[f], colour)
}

/// Tally of outcomes and the slowest case, printed as the figures this test reports.
#[derive(Default)]
struct Tally {
    outcomes: BTreeMap<String, u64>,
    total: u64,
    slowest: Duration,
    bytes: u64,
}

impl Tally {
    fn record(&mut self, o: Outcome, took: Duration, len: usize) {
        let key = match o {
            Outcome::Normalised => "normalised".to_string(),
            Outcome::Refused(v) => v.to_string(),
        };
        *self.outcomes.entry(key).or_default() += 1;
        self.total += 1;
        self.slowest = self.slowest.max(took);
        self.bytes += len as u64;
    }

    fn print(&self, what: &str) {
        println!(
            "{what}: {} inputs ({} bytes in all), slowest {:?}; outcomes {:?}",
            self.total, self.bytes, self.slowest, self.outcomes
        );
    }
}

/// Runs a property over inputs; on failure, saves the shrunk input for the regression corpus.
fn check<S>(name: &str, seed: u64, cases: u32, strategy: S, to_bytes: impl Fn(&S::Value) -> Vec<u8>)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
{
    let limits = DecodeLimits::default();
    let tally = RefCell::new(Tally::default());
    let mut runner = TestRunner::new(config(seed, cases));
    let result = runner.run(&strategy, |value| {
        let bytes = to_bytes(&value);
        let t0 = Instant::now();
        let outcome = run_pipeline(&bytes, &limits);
        tally
            .borrow_mut()
            .record(outcome, t0.elapsed(), bytes.len());
        Ok(())
    });
    tally.borrow().print(name);
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, value)) => {
            let bytes = to_bytes(&value);
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
            let file = dir.join(format!(
                "crash-{name}-{}.bin",
                &countersign::model::sha256_hex(&bytes)[..16]
            ));
            let saved = std::fs::write(&file, &bytes).is_ok();
            panic!(
                "{name}: input {value:?} ({} bytes) failed: {reason}. Saved: {saved} at {}; copy it into \
                 tests/regressions/ so it is replayed on every run",
                bytes.len(),
                file.display()
            );
        }
        Err(e) => panic!("{name}: {e}"),
    }
}

#[test]
fn arbitrary_bytes_give_a_result_or_a_typed_error() {
    check(
        "arbitrary",
        0x0c0f_fee1,
        cases(),
        prop::collection::vec(any::<u8>(), 0..4096),
        Clone::clone,
    );
}

#[test]
fn arbitrary_bytes_behind_format_magic_give_a_result_or_a_typed_error() {
    // Magic numbers of each accepted format, so the decoders themselves see the random bytes.
    let magics: Vec<Vec<u8>> = vec![
        vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a],
        vec![0xff, 0xd8, 0xff],
        b"II*\0".to_vec(),
        b"MM\0*".to_vec(),
        b"BM".to_vec(),
    ];
    check(
        "magic",
        0x0c0f_fee2,
        2 * cases(),
        (
            prop::sample::select(magics),
            prop::collection::vec(any::<u8>(), 0..2048),
        ),
        |(magic, rest)| {
            let mut v = magic.clone();
            v.extend_from_slice(rest);
            v
        },
    );
}

#[test]
fn mutated_valid_images_give_a_result_or_a_typed_error() {
    check(
        "mutated",
        0x0c0f_fee3,
        3 * cases(),
        (
            valid_image(),
            prop::collection::vec(mutation(), 1..6),
            any::<bool>(),
        ),
        |(spec, mutations, fix_crc)| {
            let mut bytes = build(spec);
            for m in mutations {
                apply(&mut bytes, m);
            }
            if *fix_crc && FORMATS[spec.0] == image::ImageFormat::Png {
                fix_png_crcs(&mut bytes);
            }
            bytes
        },
    );
}

#[test]
fn mutated_cheque_scans_give_a_result_or_a_typed_error() {
    // Cheque-sized scans (the project's own generator, signed and unsigned, some skewed or stamped),
    // so the signature finder works on real zones rather than returning early on a tiny image.
    let cheques: Vec<Vec<u8>> = (0..8u64)
        .flat_map(|seed| {
            let c = countersign::imaging::sample::sample_cheque(seed, 480, 216, seed % 4 != 3);
            [
                encode(&c.image, FORMATS[(seed % 4) as usize], false),
                encode(&c.image, image::ImageFormat::Png, seed % 2 == 0),
            ]
        })
        .collect();
    check(
        "cheques",
        0x0c0f_fee5,
        cases() / 4,
        (
            0..cheques.len(),
            prop::collection::vec(mutation(), 0..4),
            any::<bool>(),
        ),
        |(i, mutations, fix_crc)| {
            let mut bytes = cheques[*i].clone();
            for m in mutations {
                apply(&mut bytes, m);
            }
            if *fix_crc && bytes.starts_with(&[0x89, b'P', b'N', b'G']) {
                fix_png_crcs(&mut bytes);
            }
            bytes
        },
    );
}

#[test]
fn unmutated_generated_images_all_normalise() {
    // The control for the mutation test: without mutations every generated file is a real
    // signature, so the refusals counted above come from the mutations and not the generator.
    let limits = DecodeLimits::default();
    let mut runner = TestRunner::new(config(0x0c0f_fee4, 200));
    runner
        .run(
            &(
                0..FORMATS.len(),
                any::<bool>(),
                32u32..96,
                24u32..64,
                any::<u64>(),
            ),
            |spec| {
                let bytes = build(&spec);
                prop_assert_eq!(run_pipeline(&bytes, &limits), Outcome::Normalised);
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn a_jpeg_frame_larger_than_its_scans_is_refused() {
    use common::jpeg_claiming;
    use countersign::imaging::ImagingError;
    use countersign::imaging::decode::decode_bytes;
    let limits = DecodeLimits::default();
    // The honest frame (the picture is 32x16) decodes.
    let img = decode_bytes(&jpeg_claiming(32, 16), "honest.jpg", &limits).expect("honest frame");
    assert_eq!(img.dimensions(), (32, 16));
    // Frames far larger than the scans hold are refused as truncated, before any pixel is decoded.
    for (w, h) in [(2000u16, 2000u16), (20_000, 2_000), (4_000, 64)] {
        match decode_bytes(&jpeg_claiming(w, h), "claims.jpg", &limits) {
            Err(e @ ImagingError::Truncated { .. }) => {
                assert!(e.to_string().contains("scan data"), "{e}")
            }
            other => panic!("{w}x{h}: expected Truncated, got {other:?}"),
        }
    }
}
