//! Bounded decoding of signature images and cheque scans into 8-bit grayscale.
//!
//! Every input is untrusted: the byte size is checked before reading, the header's dimensions are
//! checked before any pixel buffer is allocated, and the `image` crate's own allocation limits back that
//! up. Formats are recognised by content, never by the file name, so a PNG named `.jpg` still decodes.

use std::io::{Cursor, Read};
use std::path::Path;

use image::{GrayImage, ImageDecoder, ImageFormat, ImageReader};
use serde::{Deserialize, Serialize};

use super::ImagingError;

/// Limits applied to every decode. The defaults are generous for 600 dpi cheque scans and phone photos
/// while refusing decompression bombs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecodeLimits {
    /// Largest accepted encoded file, in bytes.
    pub max_bytes: u64,
    /// Largest accepted image, in pixels (width * height).
    pub max_pixels: u64,
    /// Largest accepted width or height, in pixels.
    pub max_side: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_bytes: 50 * 1024 * 1024,
            max_pixels: 40_000_000,
            max_side: 20_000,
        }
    }
}

/// Reads a file (refusing it before reading when it is too large) and decodes it.
pub fn decode_path(path: &Path, limits: &DecodeLimits) -> Result<GrayImage, ImagingError> {
    let name = path.display().to_string();
    let io_err = |source: std::io::Error| ImagingError::Io {
        name: name.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if len > limits.max_bytes {
        return Err(ImagingError::TooManyBytes {
            name,
            bytes: len,
            max_bytes: limits.max_bytes,
        });
    }
    // Read at most one byte past the limit, so a file that grows while we read cannot exhaust memory.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limits.max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    decode_bytes(&bytes, &name, limits)
}

/// Decodes an in-memory image to 8-bit grayscale. `name` is only used in error messages.
pub fn decode_bytes(
    bytes: &[u8],
    name: &str,
    limits: &DecodeLimits,
) -> Result<GrayImage, ImagingError> {
    let name_s = || name.to_string();
    if bytes.is_empty() {
        return Err(ImagingError::Empty { name: name_s() });
    }
    if bytes.len() as u64 > limits.max_bytes {
        return Err(ImagingError::TooManyBytes {
            name: name_s(),
            bytes: bytes.len() as u64,
            max_bytes: limits.max_bytes,
        });
    }
    // A PNG header can be read without any decoder; doing so gives 0x0 images their own clear error
    // (the png crate rejects them as a generic format error) and refuses huge ones without ceremony.
    if let Some((w, h)) = png_header_dimensions(bytes) {
        check_dimensions(name, w, h, limits)?;
    }

    // Bitonal G4 TIFFs (cheque images from X9 files) decode straight to gray; any other TIFF, or
    // one that path cannot finish, goes to the general decoder below.
    if let Some(img) = super::g4::decode(bytes, name, limits)? {
        return Ok(img);
    }

    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| ImagingError::Io {
            name: name_s(),
            source,
        })?;
    let format = match reader.format() {
        Some(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Tiff | ImageFormat::Bmp)) => {
            f
        }
        Some(other) => {
            return Err(ImagingError::UnsupportedFormat {
                name: name_s(),
                detail: format!("{other:?} images are not accepted (PNG, JPEG, TIFF or BMP only)"),
            });
        }
        None => {
            return Err(ImagingError::UnsupportedFormat {
                name: name_s(),
                detail: format!(
                    "content is not a PNG, JPEG, TIFF or BMP image ({} bytes of {})",
                    bytes.len(),
                    content_kind(bytes)
                ),
            });
        }
    };

    let mut reader = reader;
    // Width and height are checked by `check_dimensions` right after the header is read, which gives a
    // precise error with the numbers; the allocation cap here backs that up inside the decoders.
    let mut il = image::Limits::default();
    // Room for the decoded pixels at up to 16 bits x 4 channels plus the decoder's working buffers.
    il.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(il);

    let mut decoder = reader
        .into_decoder()
        .map_err(|e| map_image_error(name, format, e, limits))?;
    let (w, h) = decoder.dimensions();
    check_dimensions(name, w, h, limits)?;
    if format == ImageFormat::Jpeg && jpeg_is_truncated(bytes) {
        // The JPEG decoder fills a cut-off scan with gray and reports success; a cheque with its lower
        // half missing must not reach scoring, so a missing end-of-image marker is an error here.
        return Err(ImagingError::Truncated {
            name: name_s(),
            detail: "JPEG: no end-of-image marker after the last scan".into(),
        });
    }
    if format == ImageFormat::Jpeg
        && let Some((have, need)) = jpeg_scans_too_short(bytes)
    {
        // The JPEG decoder also fills a frame larger than its scans with gray and reports success,
        // so a 2 KB file claiming 20000x2000 pixels would become a 40-megapixel blank page.
        return Err(ImagingError::Truncated {
            name: name_s(),
            detail: format!(
                "JPEG: the {w}x{h} frame needs at least {need} bytes of scan data, the file has {have}"
            ),
        });
    }
    let orientation = if format == ImageFormat::Jpeg {
        // A missing or unreadable EXIF block is not an error: the image is shown as stored.
        decoder.orientation().ok()
    } else {
        None
    };
    let mut dynimg = image::DynamicImage::from_decoder(decoder)
        .map_err(|e| map_image_error(name, format, e, limits))?;
    if let Some(o) = orientation {
        dynimg.apply_orientation(o);
    }
    let gray = dynimg.into_luma8();
    if gray.width() == 0 || gray.height() == 0 {
        return Err(ImagingError::ZeroSize {
            name: name_s(),
            width: gray.width(),
            height: gray.height(),
        });
    }
    Ok(gray)
}

/// True when the last start-of-scan marker (FFDA) is not followed by an end-of-image marker (FFD9).
/// Entropy-coded data stuffs every FF byte with 00, so neither marker can occur inside a scan.
fn jpeg_is_truncated(bytes: &[u8]) -> bool {
    let last = |m: u8| bytes.windows(2).rposition(|w| w[0] == 0xff && w[1] == m);
    match (last(0xda), last(0xd9)) {
        (Some(sos), Some(eoi)) => eoi < sos,
        (_, None) => true,
        (None, Some(_)) => false,
    }
}

/// For a Huffman-coded JPEG whose scans are too short for its frame: `(scan bytes, least needed)`.
///
/// Every 8x8 block of every component costs at least one bit of entropy-coded data (its DC
/// difference code), so a frame of `n` blocks needs at least `n / 8` bytes of scan data in all. Segments
/// are walked by their lengths, so an EXIF thumbnail inside APP1 is skipped rather than parsed.
/// Anything this walk does not understand (arithmetic coding, a height defined later by DNL, a
/// malformed segment) gives `None` and is left to the decoder.
fn jpeg_scans_too_short(bytes: &[u8]) -> Option<(u64, u64)> {
    let mut blocks: Option<u64> = None;
    let mut scan_bytes = 0u64;
    let mut pos = 2usize; // after SOI
    while pos + 4 <= bytes.len() {
        if bytes[pos] != 0xff {
            return None;
        }
        let marker = bytes[pos + 1];
        match marker {
            0xff => {
                pos += 1; // fill byte
                continue;
            }
            0xd9 => break, // EOI
            0x01 | 0xd0..=0xd7 => {
                pos += 2;
                continue;
            }
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
        let body = bytes.get(pos + 4..pos + 2 + len)?;
        match marker {
            // Huffman-coded frames: baseline, extended, progressive.
            0xc0..=0xc2 => {
                let h = u64::from(u16::from_be_bytes([*body.get(1)?, *body.get(2)?]));
                let w = u64::from(u16::from_be_bytes([*body.get(3)?, *body.get(4)?]));
                let n = usize::from(*body.get(5)?);
                let sampling: Vec<(u64, u64)> = (0..n)
                    .map(|i| {
                        body.get(6 + 3 * i + 1)
                            .map(|s| (u64::from(s >> 4), u64::from(s & 15)))
                    })
                    .collect::<Option<_>>()?;
                let hmax = sampling.iter().map(|s| s.0).max()?.max(1);
                let vmax = sampling.iter().map(|s| s.1).max()?.max(1);
                blocks = Some(
                    sampling
                        .iter()
                        .map(|&(hi, vi)| {
                            (w * hi).div_ceil(hmax).div_ceil(8)
                                * (h * vi).div_ceil(vmax).div_ceil(8)
                        })
                        .sum(),
                );
            }
            // Arithmetic-coded or lossless frames: no simple bound.
            0xc3 | 0xc5..=0xc7 | 0xc9..=0xcb | 0xcd..=0xcf => return None,
            _ => {}
        }
        pos += 2 + len;
        if marker == 0xda {
            // Entropy-coded data runs to the next marker other than a stuffed 00 or a restart.
            let start = pos;
            while pos + 1 < bytes.len()
                && (bytes[pos] != 0xff || matches!(bytes[pos + 1], 0x00 | 0xd0..=0xd7))
            {
                pos += 1;
            }
            scan_bytes += (pos - start) as u64;
        }
    }
    let need = blocks? / 8;
    (scan_bytes < need).then_some((scan_bytes, need))
}

/// Width and height from a PNG IHDR chunk, when `bytes` starts like a PNG.
fn png_header_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIG: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    if bytes.len() < 24 || bytes[..8] != SIG || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    Some((w, h))
}

pub(crate) fn check_dimensions(
    name: &str,
    w: u32,
    h: u32,
    limits: &DecodeLimits,
) -> Result<(), ImagingError> {
    if w == 0 || h == 0 {
        return Err(ImagingError::ZeroSize {
            name: name.to_string(),
            width: w,
            height: h,
        });
    }
    if w > limits.max_side || h > limits.max_side || u64::from(w) * u64::from(h) > limits.max_pixels
    {
        return Err(ImagingError::TooManyPixels {
            name: name.to_string(),
            width: w,
            height: h,
            max_side: limits.max_side,
            max_pixels: limits.max_pixels,
        });
    }
    Ok(())
}

fn map_image_error(
    name: &str,
    format: ImageFormat,
    e: image::ImageError,
    limits: &DecodeLimits,
) -> ImagingError {
    use image::ImageError as E;
    let name = name.to_string();
    match e {
        E::Limits(l) => ImagingError::TooLarge {
            name,
            detail: format!(
                "{l} (limits: {} pixels, {} per side)",
                limits.max_pixels, limits.max_side
            ),
        },
        E::Unsupported(u) => ImagingError::UnsupportedFormat {
            name,
            detail: format!("{format:?}: {u}"),
        },
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImagingError::Truncated {
                name,
                detail: format!("{format:?}: {io}"),
            }
        }
        E::IoError(io) => ImagingError::Corrupt {
            name,
            detail: format!("{format:?}: {io}"),
        },
        other => {
            let detail = format!("{format:?}: {other}");
            if looks_truncated(&detail) {
                ImagingError::Truncated { name, detail }
            } else {
                ImagingError::Corrupt { name, detail }
            }
        }
    }
}

/// Decoders report a short file in their own words; these are the phrasings the bundled ones use.
fn looks_truncated(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    [
        "eof",
        "end of file",
        "unexpected end",
        "truncated",
        "no more data",
        "not enough data",
        "premature end",
        "failed to fill whole buffer",
        "incomplete",
    ]
    .iter()
    .any(|p| d.contains(p))
}

/// What a file that is not an accepted image seems to hold, in words. Only the kind is ever named,
/// never the content: the file may be anything the clerk pointed at (`/etc/shadow`), and its bytes do
/// not belong in an error message, a log or a screen.
pub fn content_kind(bytes: &[u8]) -> &'static str {
    let head = &bytes[..bytes.len().min(512)];
    let starts = |sig: &[u8]| head.starts_with(sig);
    if bytes.is_empty() {
        "nothing (an empty file)"
    } else if starts(b"%PDF") {
        "a PDF document"
    } else if starts(b"GIF8") {
        "a GIF image"
    } else if starts(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        "a WebP image"
    } else if starts(b"PK\x03\x04") {
        "a ZIP archive (or an office document)"
    } else if starts(b"\x1f\x8b") {
        "gzip-compressed data"
    } else if starts(b"\x7fELF") {
        "a program (ELF)"
    } else if starts(b"SQLite format 3\0") {
        "an SQLite database"
    } else if std::str::from_utf8(head).is_ok_and(|t| {
        t.chars()
            .all(|c| !c.is_control() || c == '\n' || c == '\r' || c == '\t')
    }) {
        "text"
    } else {
        "data of an unknown kind"
    }
}
