//! Helpers shared by the hardening tests: small valid images in every accepted format, hand-made
//! headers that claim huge sizes, byte mutations, and the full imaging pipeline under test.
#![allow(dead_code)]

use std::io::Cursor;

use countersign::imaging::cheque::{ChequeLayout, find_signature, prepare_questioned};
use countersign::imaging::decode::{DecodeLimits, decode_bytes};
use countersign::imaging::normalise::{NormaliseParams, normalise};
use countersign::imaging::{ImagingError, NormalisedSignature};
use image::{DynamicImage, GrayImage, ImageFormat, Luma};

/// The four formats the decoder accepts.
pub const FORMATS: [ImageFormat; 4] = [
    ImageFormat::Png,
    ImageFormat::Jpeg,
    ImageFormat::Tiff,
    ImageFormat::Bmp,
];

/// A small signature-like picture: light paper, a dark wavy stroke and a few dots, varied by `seed`.
pub fn signature_picture(w: u32, h: u32, seed: u64) -> GrayImage {
    let phase = (seed % 97) as f32 * 0.13;
    let amp = 0.2 + (seed % 7) as f32 * 0.04;
    GrayImage::from_fn(w, h, |x, y| {
        let fx = x as f32 / w.max(1) as f32;
        let centre = h as f32 * (0.5 + amp * (fx * 9.0 + phase).sin());
        let d = (y as f32 - centre).abs();
        if d < 1.8 {
            Luma([20 + (seed % 40) as u8])
        } else if (x * 7 + y * 13 + seed as u32).is_multiple_of(211) {
            Luma([90])
        } else {
            Luma([235 - (x % 5) as u8])
        }
    })
}

/// Encodes a picture in one format; `colour` picks RGB instead of 8-bit gray.
pub fn encode(img: &GrayImage, fmt: ImageFormat, colour: bool) -> Vec<u8> {
    let dynimg = if colour {
        DynamicImage::ImageRgb8(DynamicImage::ImageLuma8(img.clone()).to_rgb8())
    } else {
        DynamicImage::ImageLuma8(img.clone())
    };
    let mut out = Cursor::new(Vec::new());
    dynimg.write_to(&mut out, fmt).expect("encode test image");
    out.into_inner()
}

/// CRC-32 (IEEE) as PNG uses it, so mutated chunks can be made valid again and reach the decoder's
/// deeper code instead of stopping at the checksum.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

/// Recomputes the CRC of every whole chunk of a PNG in place (chunks cut off by the end are left).
pub fn fix_png_crcs(bytes: &mut [u8]) {
    let mut pos = 8usize;
    while pos + 12 <= bytes.len() {
        let len = u32::from_be_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let Some(end) = pos.checked_add(8).and_then(|p| p.checked_add(len)) else {
            return;
        };
        if end + 4 > bytes.len() {
            return;
        }
        let crc = crc32(&bytes[pos + 4..end]);
        bytes[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        pos = end + 4;
    }
}

/// A valid PNG whose IHDR claims `w x h` (the CRC is fixed, so only the size is a lie).
pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = encode(&signature_picture(32, 16, 1), ImageFormat::Png, false);
    bytes[16..20].copy_from_slice(&w.to_be_bytes());
    bytes[20..24].copy_from_slice(&h.to_be_bytes());
    fix_png_crcs(&mut bytes);
    bytes
}

/// A valid baseline JPEG whose SOF0 frame header claims `w x h`.
pub fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut bytes = encode(&signature_picture(32, 16, 2), ImageFormat::Jpeg, false);
    let sof = bytes
        .windows(2)
        .position(|m| m[0] == 0xff && m[1] == 0xc0)
        .expect("baseline JPEG has an SOF0 marker");
    // FFC0, length (2), precision (1), height (2), width (2).
    bytes[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    bytes[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    bytes
}

/// A BMP whose info header claims `w x h` (signed 32-bit fields at offsets 18 and 22).
pub fn bmp_claiming(w: i32, h: i32) -> Vec<u8> {
    let mut bytes = encode(&signature_picture(32, 16, 3), ImageFormat::Bmp, true);
    bytes[18..22].copy_from_slice(&w.to_le_bytes());
    bytes[22..26].copy_from_slice(&h.to_le_bytes());
    bytes
}

/// A hand-made little-endian, uncompressed 8-bit gray TIFF of one strip. `w`, `h` and the strip
/// byte count are what the header claims; `data` is what actually follows.
pub fn tiff_claiming(w: u32, h: u32, strip_bytes: u32, data: &[u8]) -> Vec<u8> {
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    let entries: [(u16, u16, u32); 9] = [
        (256, LONG, w),           // ImageWidth
        (257, LONG, h),           // ImageLength
        (258, SHORT, 8),          // BitsPerSample
        (259, SHORT, 1),          // Compression: none
        (262, SHORT, 1),          // Photometric: black is zero
        (273, LONG, 0),           // StripOffsets (patched below)
        (277, SHORT, 1),          // SamplesPerPixel
        (278, LONG, h),           // RowsPerStrip
        (279, LONG, strip_bytes), // StripByteCounts
    ];
    let ifd_len = 2 + entries.len() * 12 + 4;
    let data_offset = (8 + ifd_len) as u32;
    let mut out = Vec::with_capacity(data_offset as usize + data.len());
    out.extend_from_slice(b"II*\0");
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, ty, value) in entries {
        let value = if tag == 273 { data_offset } else { value };
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        if ty == SHORT {
            out.extend_from_slice(&(value as u16).to_le_bytes());
            out.extend_from_slice(&[0, 0]);
        } else {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// The contract the network relies on.
fn check_normalised(n: &NormalisedSignature, params: &NormaliseParams) {
    assert_eq!((n.width, n.height), (params.width, params.height));
    assert_eq!(n.pixels.len(), (n.width * n.height) as usize);
    assert!(
        n.pixels
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v)),
        "normalised values must lie in [0, 1]"
    );
}

/// What the pipeline made of one input, for counting.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
pub enum Outcome {
    /// Decoded and normalised.
    Normalised,
    /// A typed error at some step (the variant's name, for the tally).
    Refused(&'static str),
}

pub fn variant(e: &ImagingError) -> &'static str {
    match e {
        ImagingError::NoSignature(_) => "NoSignature",
        ImagingError::Empty { .. } => "Empty",
        ImagingError::UnsupportedFormat { .. } => "UnsupportedFormat",
        ImagingError::Truncated { .. } => "Truncated",
        ImagingError::Corrupt { .. } => "Corrupt",
        ImagingError::TooManyBytes { .. } => "TooManyBytes",
        ImagingError::TooManyPixels { .. } => "TooManyPixels",
        ImagingError::TooLarge { .. } => "TooLarge",
        ImagingError::ZeroSize { .. } => "ZeroSize",
        ImagingError::Io { .. } => "Io",
        ImagingError::InvalidParams(_) => "InvalidParams",
        ImagingError::InvalidCrop(_) => "InvalidCrop",
        ImagingError::InvalidLayout(_) => "InvalidLayout",
    }
}

/// Untrusted bytes through every imaging step a cheque or reference goes through: bounded decode,
/// signature finding and questioned-signature preparation (as a cheque), then normalisation (as a
/// signature). A panic anywhere fails the calling test; everything else must be `Ok` or a
/// typed error. A successful result is checked for the contract the network relies on.
pub fn run_pipeline(bytes: &[u8], limits: &DecodeLimits) -> Outcome {
    let img = match decode_bytes(bytes, "untrusted", limits) {
        Ok(img) => img,
        Err(e) => return Outcome::Refused(variant(&e)),
    };
    let (w, h) = img.dimensions();
    assert!(w > 0 && h > 0, "decode returned an empty image");
    assert!(
        w <= limits.max_side
            && h <= limits.max_side
            && u64::from(w) * u64::from(h) <= limits.max_pixels,
        "decode returned {w}x{h}, beyond the limits {limits:?}"
    );
    let params = NormaliseParams::default();
    // The same image as a cheque scan: the finder and the questioned-signature preparation.
    let layout = ChequeLayout::default();
    if let Ok(find) = find_signature(&img, &layout) {
        let b = find.bbox;
        assert!(
            find.confidence.is_finite() && (0.0..=1.0).contains(&find.confidence),
            "confidence {} outside [0, 1]",
            find.confidence
        );
        assert!(
            u64::from(b.x) + u64::from(b.width) <= u64::from(w)
                && u64::from(b.y) + u64::from(b.height) <= u64::from(h),
            "the found box {b:?} leaves the {w}x{h} image"
        );
    }
    if let Ok(p) = prepare_questioned(&img, &layout, None, &params) {
        check_normalised(&p.normalised, &params);
    }
    match normalise(&img, &params) {
        Ok(n) => {
            check_normalised(&n, &params);
            Outcome::Normalised
        }
        Err(e) => Outcome::Refused(variant(&e)),
    }
}
