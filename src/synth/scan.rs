//! Scan effects: what a flatbed scanner or a cheque reader does to ink on paper.
//!
//! Resolution (the generator draws at 300 dpi), slight rotation, optical blur, paper tone and texture,
//! sensor noise and JPEG artefacts, in that order, so models trained on synthetic data see the same
//! nuisances as on real scans.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{FilterType, resize};
use image::{GrayImage, Luma};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// The resolution the signature generator draws at.
pub const SOURCE_DPI: f32 = 300.0;

/// One scan's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanEffects {
    /// Output resolution in dots per inch (150 to 300); the input is taken to be 300 dpi.
    pub dpi: f32,
    /// Gaussian blur sigma in output pixels (0 = none).
    pub blur_sigma: f32,
    /// Standard deviation of per-pixel sensor noise, in grey levels.
    pub noise_sigma: f32,
    /// Paper tone: the grey level of blank paper (255 = pure white).
    pub paper_level: f32,
    /// Amplitude of the smooth paper texture, in grey levels.
    pub paper_texture: f32,
    /// Rotation in degrees (positive is counter-clockwise).
    pub rotation_deg: f32,
    /// JPEG quality (1 to 100) when the scan is JPEG-compressed.
    pub jpeg_quality: Option<u8>,
}

impl ScanEffects {
    /// No effect at all: the output equals the input.
    pub fn none() -> ScanEffects {
        ScanEffects {
            dpi: SOURCE_DPI,
            blur_sigma: 0.0,
            noise_sigma: 0.0,
            paper_level: 255.0,
            paper_texture: 0.0,
            rotation_deg: 0.0,
            jpeg_quality: None,
        }
    }

    /// A plausible random scan.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> ScanEffects {
        let n: f32 = rng.sample(StandardNormal);
        ScanEffects {
            dpi: *[150.0_f32, 200.0, 240.0, 300.0]
                .get(rng.random_range(0..4))
                .unwrap_or(&SOURCE_DPI),
            blur_sigma: rng.random_range(0.0..0.9),
            noise_sigma: rng.random_range(0.0..6.0),
            paper_level: rng.random_range(228.0..255.0),
            paper_texture: rng.random_range(0.0..8.0),
            rotation_deg: (1.5 * n).clamp(-4.0, 4.0),
            jpeg_quality: if rng.random_bool(0.6) {
                Some(rng.random_range(55..95))
            } else {
                None
            },
        }
    }
}

/// Applies a scan's effects to a grayscale image (white paper, dark ink).
pub fn apply_scan<R: Rng + ?Sized>(img: &GrayImage, fx: &ScanEffects, rng: &mut R) -> GrayImage {
    if img.width() == 0 || img.height() == 0 {
        return img.clone();
    }
    let mut out = if fx.rotation_deg.abs() > 0.01 && fx.rotation_deg.is_finite() {
        rotate(img, fx.rotation_deg, 255)
    } else {
        img.clone()
    };
    let dpi = if fx.dpi.is_finite() {
        fx.dpi.clamp(50.0, 600.0)
    } else {
        SOURCE_DPI
    };
    if (dpi - SOURCE_DPI).abs() > 0.5 {
        let s = dpi / SOURCE_DPI;
        let w = ((out.width() as f32 * s).round() as u32).max(1);
        let h = ((out.height() as f32 * s).round() as u32).max(1);
        out = resize(&out, w, h, FilterType::Triangle);
    }
    photometric(&mut out, fx, rng);
    if let Some(q) = fx.jpeg_quality {
        out = jpeg_roundtrip(&out, q.clamp(1, 100));
    }
    out
}

/// Blur, paper tone and texture, and sensor noise, in place.
pub fn photometric<R: Rng + ?Sized>(img: &mut GrayImage, fx: &ScanEffects, rng: &mut R) {
    if fx.blur_sigma.is_finite() && fx.blur_sigma > 0.05 {
        *img = image::imageops::blur(img, fx.blur_sigma.min(5.0));
    }
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return;
    }
    // Paper texture: a coarse random grid (one cell per ~24 px) interpolated bilinearly, so it varies
    // smoothly like fibres and uneven lighting rather than like pixel noise.
    let cell = 24.0_f32;
    let gw = (w as f32 / cell).ceil() as usize + 2;
    let gh = (h as f32 / cell).ceil() as usize + 2;
    let grid: Vec<f32> = (0..gw * gh).map(|_| rng.random_range(-1.0..1.0)).collect();
    let paper = if fx.paper_level.is_finite() {
        fx.paper_level.clamp(150.0, 255.0)
    } else {
        255.0
    };
    let texture = if fx.paper_texture.is_finite() {
        fx.paper_texture.clamp(0.0, 40.0)
    } else {
        0.0
    };
    let noise = if fx.noise_sigma.is_finite() {
        fx.noise_sigma.clamp(0.0, 40.0)
    } else {
        0.0
    };
    let scale = paper / 255.0;
    for (x, y, p) in img.enumerate_pixels_mut() {
        let gx = x as f32 / cell;
        let gy = y as f32 / cell;
        let (ix, iy) = (gx as usize, gy as usize);
        let (fx_, fy) = (gx - ix as f32, gy - iy as f32);
        let g = |i: usize, j: usize| grid[(j.min(gh - 1)) * gw + i.min(gw - 1)];
        let t = g(ix, iy) * (1.0 - fx_) * (1.0 - fy)
            + g(ix + 1, iy) * fx_ * (1.0 - fy)
            + g(ix, iy + 1) * (1.0 - fx_) * fy
            + g(ix + 1, iy + 1) * fx_ * fy;
        let v = p.0[0] as f32;
        // Ink darkens the paper multiplicatively; texture shows through more on blank paper.
        let mut out = v * scale + texture * t * (v / 255.0);
        if noise > 0.0 {
            let n: f32 = rng.sample(StandardNormal);
            out += noise * n;
        }
        *p = Luma([out.round().clamp(0.0, 255.0) as u8]);
    }
}

/// Rotates about the centre with bilinear interpolation, keeping the size; uncovered corners get `fill`.
pub fn rotate(img: &GrayImage, deg: f32, fill: u8) -> GrayImage {
    let (w, h) = img.dimensions();
    let mut out = GrayImage::from_pixel(w, h, Luma([fill]));
    if w == 0 || h == 0 {
        return out;
    }
    let (s, c) = deg.to_radians().sin_cos();
    let cx = (w as f32 - 1.0) / 2.0;
    let cy = (h as f32 - 1.0) / 2.0;
    let src = img.as_raw();
    let wi = w as usize;
    for (x, y, p) in out.enumerate_pixels_mut() {
        // Inverse mapping: where in the source does this output pixel come from?
        let dx = x as f32 - cx;
        let dy = y as f32 - cy;
        let sx = c * dx - s * dy + cx;
        let sy = s * dx + c * dy + cy;
        if sx < 0.0 || sy < 0.0 || sx > w as f32 - 1.0 || sy > h as f32 - 1.0 {
            continue;
        }
        let x0 = sx.floor() as usize;
        let y0 = sy.floor() as usize;
        let x1 = (x0 + 1).min(wi - 1);
        let y1 = (y0 + 1).min(h as usize - 1);
        let fx = sx - x0 as f32;
        let fy = sy - y0 as f32;
        let v = |xx: usize, yy: usize| src[yy * wi + xx] as f32;
        let val = v(x0, y0) * (1.0 - fx) * (1.0 - fy)
            + v(x1, y0) * fx * (1.0 - fy)
            + v(x0, y1) * (1.0 - fx) * fy
            + v(x1, y1) * fx * fy;
        *p = Luma([val.round().clamp(0.0, 255.0) as u8]);
    }
    out
}

/// Encodes as JPEG and decodes again; if either step fails the image is returned unchanged, since
/// the artefacts are a nicety and never worth failing a sample for.
pub fn jpeg_roundtrip(img: &GrayImage, quality: u8) -> GrayImage {
    let mut buf = Vec::new();
    let encoded = JpegEncoder::new_with_quality(Cursor::new(&mut buf), quality).encode_image(img);
    if encoded.is_err() {
        return img.clone();
    }
    match image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg) {
        Ok(decoded) => decoded.to_luma8(),
        Err(_) => img.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn test_image() -> GrayImage {
        let mut img = GrayImage::from_pixel(300, 120, Luma([255]));
        for x in 40..260 {
            for y in 55..65 {
                img.put_pixel(x, y, Luma([20]));
            }
        }
        img
    }

    #[test]
    fn no_effects_is_the_identity() {
        let img = test_image();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(apply_scan(&img, &ScanEffects::none(), &mut rng), img);
    }

    #[test]
    fn resolution_scales_the_size_and_ink_survives_every_effect() {
        let img = test_image();
        let fx = ScanEffects {
            dpi: 150.0,
            blur_sigma: 0.8,
            noise_sigma: 5.0,
            paper_level: 235.0,
            paper_texture: 6.0,
            rotation_deg: 3.0,
            jpeg_quality: Some(60),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let out = apply_scan(&img, &fx, &mut rng);
        assert_eq!(out.dimensions(), (150, 60));
        // The bar is still dark in the middle, the paper is light but no longer pure white.
        assert!(
            out.get_pixel(75, 30).0[0] < 100,
            "{}",
            out.get_pixel(75, 30).0[0]
        );
        let corner_mean: f32 = (0..10)
            .map(|x| out.get_pixel(x + 5, 5).0[0] as f32)
            .sum::<f32>()
            / 10.0;
        assert!((200.0..250.0).contains(&corner_mean), "{corner_mean}");
        // Same generator state, same bytes.
        let again = apply_scan(&img, &fx, &mut ChaCha8Rng::seed_from_u64(2));
        assert_eq!(out, again);
    }

    #[test]
    fn rotation_moves_ink_about_the_centre() {
        let mut img = GrayImage::from_pixel(101, 101, Luma([255]));
        img.put_pixel(90, 50, Luma([0]));
        let out = rotate(&img, 90.0, 255);
        // Counter-clockwise by 90 degrees in image coordinates (y down) sends (90, 50) to (50, 10).
        assert!(out.get_pixel(50, 10).0[0] < 50);
        assert_eq!(out.get_pixel(90, 50).0[0], 255);
    }

    #[test]
    fn hostile_settings_do_not_panic() {
        let img = test_image();
        let fx = ScanEffects {
            dpi: f32::NAN,
            blur_sigma: f32::INFINITY,
            noise_sigma: -3.0,
            paper_level: 1e9,
            paper_texture: f32::NAN,
            rotation_deg: f32::NAN,
            jpeg_quality: Some(0),
        };
        let out = apply_scan(&img, &fx, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(out.dimensions(), img.dimensions());
        let empty = GrayImage::new(0, 0);
        let out = apply_scan(
            &empty,
            &ScanEffects::random(&mut ChaCha8Rng::seed_from_u64(4)),
            &mut ChaCha8Rng::seed_from_u64(5),
        );
        assert!(out.width() <= 1);
    }
}
