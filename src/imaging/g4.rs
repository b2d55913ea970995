//! A direct path for bitonal CCITT Group 4 TIFFs, the form cheque images travel in (X9 files):
//! the G4 runs are written straight into the 8-bit gray buffer, with no 1-bit intermediate and no
//! colour conversion.
//!
//! Only the plain layout is taken (one sample of 1 bit, compression 4, photometric 0 or 1, fill
//! order 1 or 2, orientation 1, strips of whole rows); anything else, and any file this path cannot
//! decode completely, goes to the general decoder, which then gives the image or its own error.
//!
//! Fill order 2 (the least significant bit first, written by some scanners and fax software) is
//! the one case the general decoder refuses ("Decode Error"), so for it this path also decides
//! whether the file can be read at all. For every other file it only changes how fast it decodes.

use image::GrayImage;

use super::ImagingError;
use super::decode::DecodeLimits;

struct Tiff<'a> {
    b: &'a [u8],
    le: bool,
}

impl Tiff<'_> {
    fn u16_at(&self, p: usize) -> Option<u16> {
        let s = self.b.get(p..p + 2)?;
        Some(if self.le {
            u16::from_le_bytes([s[0], s[1]])
        } else {
            u16::from_be_bytes([s[0], s[1]])
        })
    }

    fn u32_at(&self, p: usize) -> Option<u32> {
        let s = self.b.get(p..p + 4)?;
        Some(if self.le {
            u32::from_le_bytes([s[0], s[1], s[2], s[3]])
        } else {
            u32::from_be_bytes([s[0], s[1], s[2], s[3]])
        })
    }

    /// The values of a SHORT or LONG entry at `entry` (at most `max` of them).
    fn values(&self, entry: usize, max: usize) -> Option<Vec<u32>> {
        let typ = self.u16_at(entry + 2)?;
        let count = usize::try_from(self.u32_at(entry + 4)?).ok()?;
        if count == 0 || count > max {
            return None;
        }
        let size = match typ {
            3 => 2,
            4 => 4,
            _ => return None,
        };
        let start = if count * size <= 4 {
            entry + 8
        } else {
            usize::try_from(self.u32_at(entry + 8)?).ok()?
        };
        (0..count)
            .map(|i| {
                let p = start.checked_add(i * size)?;
                if size == 2 {
                    self.u16_at(p).map(u32::from)
                } else {
                    self.u32_at(p)
                }
            })
            .collect()
    }
}

/// Decodes `bytes` when it is a plain G4 TIFF. `Ok(None)`: not one this path takes (or it did not
/// decode completely); the caller uses the general decoder. `Err`: the image is larger than the
/// limits (the same error the general decoder gives).
pub fn decode(
    bytes: &[u8],
    name: &str,
    limits: &DecodeLimits,
) -> Result<Option<GrayImage>, ImagingError> {
    let le = match bytes.get(..4) {
        Some([b'I', b'I', 42, 0]) => true,
        Some([b'M', b'M', 0, 42]) => false,
        _ => return Ok(None),
    };
    let t = Tiff { b: bytes, le };
    let Some(ifd) = t.u32_at(4).and_then(|o| usize::try_from(o).ok()) else {
        return Ok(None);
    };
    let Some(n) = t.u16_at(ifd) else {
        return Ok(None);
    };
    let (mut width, mut height) = (None, None);
    let (mut bits, mut spp, mut compression, mut photometric) = (1, 1, 0, None);
    let (mut fill, mut orientation, mut t6) = (1, 1, 0);
    let (mut offsets, mut counts, mut rows_per_strip) = (None, None, None);
    for i in 0..usize::from(n) {
        let e = ifd + 2 + 12 * i;
        let Some(tag) = t.u16_at(e) else {
            return Ok(None);
        };
        let one = || t.values(e, 1).and_then(|v| v.first().copied());
        match tag {
            256 => width = one(),
            257 => height = one(),
            258 => bits = one().unwrap_or(0),
            259 => compression = one().unwrap_or(0),
            262 => photometric = one(),
            266 => fill = one().unwrap_or(0),
            273 => offsets = t.values(e, 1 << 16),
            274 => orientation = one().unwrap_or(0),
            277 => spp = one().unwrap_or(0),
            278 => rows_per_strip = one(),
            279 => counts = t.values(e, 1 << 16),
            293 => t6 = one().unwrap_or(1),
            _ => {}
        }
    }
    let (Some(w), Some(h), Some(offsets), Some(counts)) = (width, height, offsets, counts) else {
        return Ok(None);
    };
    if compression != 4
        || bits != 1
        || spp != 1
        || !matches!(fill, 1 | 2)
        || orientation != 1
        || t6 != 0
    {
        return Ok(None);
    }
    let white = match photometric {
        Some(0) => 255u8,
        Some(1) => 0u8,
        _ => return Ok(None),
    };
    if w == 0 || h == 0 || w > u32::from(u16::MAX) || offsets.len() != counts.len() {
        return Ok(None);
    }
    // The same size check as every other format, before the pixel buffer exists.
    super::decode::check_dimensions(name, w, h, limits)?;
    let rps = rows_per_strip.unwrap_or(h).clamp(1, h) as usize;
    let (wu, hu) = (w as usize, h as usize);
    if offsets.len() != hu.div_ceil(rps) {
        return Ok(None);
    }
    let black = 255 - white;
    let mut px = vec![white; wu * hu];
    let mut row = 0usize;
    for (&off, &cnt) in offsets.iter().zip(&counts) {
        let (off, cnt) = (off as usize, cnt as usize);
        let Some(data) = off.checked_add(cnt).and_then(|end| bytes.get(off..end)) else {
            return Ok(None);
        };
        let rows = rps.min(hu - row);
        // Fill order 2 stores each byte's bits in reverse; the decoder reads the most significant
        // bit first.
        let lsb_first = fill == 2;
        let reader = data
            .iter()
            .map(move |&b| if lsb_first { b.reverse_bits() } else { b })
            .map(Ok::<u8, std::convert::Infallible>);
        // Reading from a slice cannot fail: the error type is `Infallible`.
        let Ok(mut dec) = fax::decoder::Group4Decoder::new(reader, w as u16);
        for _ in 0..rows {
            match dec.advance() {
                Ok(fax::decoder::DecodeStatus::Incomplete) => {}
                _ => return Ok(None),
            }
            let line = &mut px[row * wu..(row + 1) * wu];
            // Transitions start with white; runs alternate, and past the last one the colour
            // continues (as `fax::decoder::pels` pads).
            let mut last = 0usize;
            let mut colour = white;
            for &p in dec.transition() {
                let p = usize::from(p).min(wu);
                if p > last {
                    line[last..p].fill(colour);
                }
                last = last.max(p);
                colour = if colour == white { black } else { white };
            }
            if last < wu {
                line[last..].fill(colour);
            }
            row += 1;
        }
    }
    if row != hu {
        return Ok(None);
    }
    Ok(GrayImage::from_raw(w, h, px))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (GrayImage, Vec<u8>) {
        let img = GrayImage::from_fn(301, 57, |x, y| {
            image::Luma([if (x / 3 + y * 7 + x * y / 11) % 13 < 5 {
                0
            } else {
                255
            }])
        });
        let tiff = crate::x9::synth::g4_tiff(&img).unwrap();
        (img, tiff)
    }

    /// The general decoder's answer (the `image` crate's TIFF decoder), for comparison.
    fn general(bytes: &[u8]) -> GrayImage {
        image::load_from_memory_with_format(bytes, image::ImageFormat::Tiff)
            .unwrap()
            .into_luma8()
    }

    #[test]
    fn same_pixels_as_the_general_decoder_for_both_photometric_interpretations() {
        let (img, tiff) = sample();
        let fast = decode(&tiff, "t", &DecodeLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(fast, img);
        assert_eq!(fast, general(&tiff));
        // BlackIsZero: patch tag 262 (PhotometricInterpretation) from 0 to 1.
        let mut bz = tiff.clone();
        let n = usize::from(u16::from_le_bytes([bz[8], bz[9]]));
        let e = (0..n)
            .map(|i| 10 + 12 * i)
            .find(|&e| bz[e] == 0x06 && bz[e + 1] == 0x01)
            .unwrap();
        bz[e + 8] = 1;
        let fast = decode(&bz, "t", &DecodeLimits::default()).unwrap().unwrap();
        assert_eq!(fast, general(&bz));
        assert!(
            fast.pixels()
                .zip(img.pixels())
                .all(|(a, b)| a.0[0] == 255 - b.0[0])
        );
    }

    #[test]
    fn fill_order_two_decodes_to_the_same_pixels() {
        let (img, tiff) = sample();
        // Rewrite the file as a scanner with FillOrder = 2 would: every byte of the strip
        // bit-reversed, and tag 266 = 2 (in place of the Orientation entry, which defaults to 1).
        let mut lsb = tiff.clone();
        let n = usize::from(u16::from_le_bytes([lsb[8], lsb[9]]));
        let entry = |b: &[u8], tag: u16| {
            (0..n)
                .map(|i| 10 + 12 * i)
                .find(|&e| u16::from_le_bytes([b[e], b[e + 1]]) == tag)
                .unwrap()
        };
        let value =
            |b: &[u8], e: usize| u32::from_le_bytes([b[e + 8], b[e + 9], b[e + 10], b[e + 11]]);
        let offset = value(&lsb, entry(&lsb, 273)) as usize;
        let count = value(&lsb, entry(&lsb, 279)) as usize;
        for b in &mut lsb[offset..offset + count] {
            *b = b.reverse_bits();
        }
        let e = entry(&lsb, 274);
        lsb[e..e + 2].copy_from_slice(&266u16.to_le_bytes());
        lsb[e + 8..e + 12].copy_from_slice(&2u32.to_le_bytes());
        let fast = decode(&lsb, "t", &DecodeLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(fast, img);
        // Through the public entry point too, which every command and the GUI use.
        let decoded =
            crate::imaging::decode::decode_bytes(&lsb, "t", &DecodeLimits::default()).unwrap();
        assert_eq!(decoded, img);
    }

    #[test]
    fn a_short_or_odd_file_is_left_to_the_general_decoder() {
        let (_, tiff) = sample();
        assert!(
            decode(&tiff[..tiff.len() * 2 / 3], "t", &DecodeLimits::default())
                .unwrap()
                .is_none()
        );
        let small = DecodeLimits {
            max_pixels: 1000,
            ..DecodeLimits::default()
        };
        assert!(matches!(
            decode(&tiff, "t", &small),
            Err(ImagingError::TooManyPixels { .. })
        ));
        assert!(
            decode(b"\x89PNG....", "t", &DecodeLimits::default())
                .unwrap()
                .is_none()
        );
    }
}
