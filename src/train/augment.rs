//! Training augmentation, applied to the grayscale image *before* [`crate::imaging::normalise`], so
//! training and inference share exactly the same normalisation code.
//!
//! Two families:
//! - **How a person writes**: small rotation, shear (slant), anisotropic scale (a wider or taller
//!   signature; uniform scale is undone by normalisation), a smooth elastic distortion, and stroke
//!   width (a thicker or thinner pen, by grayscale dilation or erosion blended with the original).
//! - **How it was captured**: ink darkness and paper brightness (another pen, another paper, scanner
//!   exposure), a lower resolution (150-300 dpi scanners), blur (focus, a soft pen), sensor noise, and
//!   JPEG compression.
//!
//! Each step runs with its own probability, and everything is driven by the caller's random generator,
//! so a seed fixes the result.

use image::GrayImage;
use rand::Rng;
use rand_distr::{Distribution, Normal};

/// Strengths of the augmentation; [`Default`] is what training uses.
#[derive(Clone, Debug, PartialEq)]
pub struct AugmentParams {
    /// Largest rotation either way, degrees.
    pub max_rotation_deg: f32,
    /// Largest horizontal shear (x += shear * y), either way.
    pub max_shear: f32,
    /// Largest log aspect change (x scale / y scale = exp(+-this)).
    pub max_log_aspect: f32,
    /// Largest elastic displacement, as a fraction of the image height.
    pub max_elastic: f32,
}

impl Default for AugmentParams {
    fn default() -> Self {
        Self {
            max_rotation_deg: 6.0,
            max_shear: 0.18,
            max_log_aspect: 0.15,
            max_elastic: 0.025,
        }
    }
}

/// Gray level of the paper: the 80th percentile, since ink covers well under a fifth of a signature
/// image.
pub fn paper_level(img: &GrayImage) -> u8 {
    let hist = crate::imaging::normalise::histogram(img);
    let total: u64 = hist.iter().map(|&c| u64::from(c)).sum();
    let target = total * 8 / 10;
    let mut acc = 0u64;
    for (level, &c) in hist.iter().enumerate() {
        acc += u64::from(c);
        if acc > target {
            return level as u8;
        }
    }
    255
}

/// Applies a random selection of every augmentation (module documentation).
pub fn augment<R: Rng + ?Sized>(img: &GrayImage, params: &AugmentParams, rng: &mut R) -> GrayImage {
    let paper = paper_level(img);
    let mut out = if rng.random_bool(0.9) {
        warp(img, paper, params, rng)
    } else {
        img.clone()
    };
    if rng.random_bool(0.4) {
        out = stroke_width(&out, rng);
    }
    if rng.random_bool(0.7) {
        out = ink_and_paper(&out, paper, rng);
    }
    if rng.random_bool(0.35) {
        let f = rng.random_range(0.45f32..0.9);
        let (w, h) = out.dimensions();
        let nw = ((w as f32 * f).round() as u32).max(8);
        let nh = ((h as f32 * f).round() as u32).max(8);
        out = image::imageops::resize(&out, nw, nh, image::imageops::FilterType::Triangle);
    }
    if rng.random_bool(0.3) {
        out = image::imageops::blur(&out, rng.random_range(0.4f32..1.1));
    }
    if rng.random_bool(0.35) {
        add_noise(&mut out, rng.random_range(2.0f32..9.0), rng);
    }
    if rng.random_bool(0.3) {
        out = crate::synth::scan::jpeg_roundtrip(&out, rng.random_range(25u8..85));
    }
    out
}

/// Rotation, shear, aspect change and a smooth elastic field, sampled bilinearly; outside the source
/// is paper.
fn warp<R: Rng + ?Sized>(img: &GrayImage, paper: u8, p: &AugmentParams, rng: &mut R) -> GrayImage {
    let (w, h) = img.dimensions();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let theta = rng
        .random_range(-p.max_rotation_deg..=p.max_rotation_deg)
        .to_radians();
    let shear = rng.random_range(-p.max_shear..=p.max_shear);
    let log_aspect = rng.random_range(-p.max_log_aspect..=p.max_log_aspect);
    let (sx, sy) = ((log_aspect / 2.0).exp(), (-log_aspect / 2.0).exp());
    // Forward map: scale, then shear, then rotate. Invert it to find each output pixel's source.
    let (c, s) = (theta.cos(), theta.sin());
    // M = R * Sh * S, with Sh = [[1, shear], [0, 1]].
    let m = [
        [c * sx, (c * shear - s) * sy],
        [s * sx, (s * shear + c) * sy],
    ];
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    let inv = [
        [m[1][1] / det, -m[0][1] / det],
        [-m[1][0] / det, m[0][0] / det],
    ];
    // Elastic field: two sinusoids per axis with random wavelength and phase.
    let amp = rng.random_range(0.0..=p.max_elastic) * h as f32;
    let waves: Vec<(f32, f32, f32, f32)> = (0..4)
        .map(|_| {
            (
                std::f32::consts::TAU / rng.random_range(0.3f32..1.0) / w as f32,
                std::f32::consts::TAU / rng.random_range(0.3f32..1.0) / h as f32,
                rng.random_range(0.0f32..std::f32::consts::TAU),
                rng.random_range(0.0f32..std::f32::consts::TAU),
            )
        })
        .collect();
    // The field is separable (a sum of a term in x and a term in y), so each axis is tabulated once.
    let col = |a: (f32, f32, f32, f32)| -> Vec<f32> {
        (0..w)
            .map(|x| amp * 0.5 * (a.0 * x as f32 + a.2).sin())
            .collect()
    };
    let row = |b: (f32, f32, f32, f32)| -> Vec<f32> {
        (0..h)
            .map(|y| amp * 0.5 * (b.1 * y as f32 + b.3).sin())
            .collect()
    };
    let (du_x, du_y, dv_x, dv_y) = (col(waves[0]), row(waves[1]), col(waves[2]), row(waves[3]));
    let src = img.as_raw();
    let mut out = GrayImage::new(w, h);
    for (y, out_row) in out.as_mut().chunks_exact_mut(w as usize).enumerate() {
        let yf = y as f32 - cy;
        for (x, dst) in out_row.iter_mut().enumerate() {
            let xf = x as f32 - cx;
            let u = inv[0][0] * xf + inv[0][1] * yf + cx + du_x[x] + du_y[y];
            let v = inv[1][0] * xf + inv[1][1] * yf + cy + dv_x[x] + dv_y[y];
            *dst = bilinear(src, w, h, u, v, paper);
        }
    }
    out
}

fn bilinear(src: &[u8], w: u32, h: u32, u: f32, v: f32, fill: u8) -> u8 {
    let (x0, y0) = (u.floor(), v.floor());
    let (fx, fy) = (u - x0, v - y0);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let at = |x: i64, y: i64| -> f32 {
        if x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
            f32::from(fill)
        } else {
            f32::from(src[y as usize * w as usize + x as usize])
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
    let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
    (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
}

/// Thicker (3x3 minimum: dark ink spreads) or thinner (3x3 maximum) strokes, blended with the
/// original so thin strokes thin out rather than vanish.
fn stroke_width<R: Rng + ?Sized>(img: &GrayImage, rng: &mut R) -> GrayImage {
    let thicker = rng.random_bool(0.55);
    let t = rng.random_range(0.3f32..1.0);
    let (w, h) = (img.width() as usize, img.height() as usize);
    let pick = |a: u8, b: u8| if thicker { a.min(b) } else { a.max(b) };
    let src = img.as_raw();
    // A 3x3 minimum (maximum) is a 3x1 pass followed by a 1x3 pass.
    let mut horiz = vec![0u8; w * h];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for x in 0..w {
            let mut m = row[x];
            if x > 0 {
                m = pick(m, row[x - 1]);
            }
            if x + 1 < w {
                m = pick(m, row[x + 1]);
            }
            horiz[y * w + x] = m;
        }
    }
    let mut out = img.clone();
    let dst = out.as_mut();
    for y in 0..h {
        for x in 0..w {
            let mut m = horiz[y * w + x];
            if y > 0 {
                m = pick(m, horiz[(y - 1) * w + x]);
            }
            if y + 1 < h {
                m = pick(m, horiz[(y + 1) * w + x]);
            }
            let o = f32::from(src[y * w + x]);
            dst[y * w + x] = (o + t * (f32::from(m) - o)).round() as u8;
        }
    }
    out
}

/// Ink darker or fainter relative to the paper, and the paper itself brighter or darker.
fn ink_and_paper<R: Rng + ?Sized>(img: &GrayImage, paper: u8, rng: &mut R) -> GrayImage {
    let k = rng.random_range(0.55f32..1.25);
    let gamma = rng.random_range(0.7f32..1.4);
    let new_paper = (f32::from(paper) + rng.random_range(-30.0f32..12.0)).clamp(150.0, 255.0);
    let p = f32::from(paper).max(1.0);
    let mut out = img.clone();
    for v in out.as_mut() {
        // Darkness in [0, 1] relative to the paper: 0 paper, 1 black.
        let d = ((p - f32::from(*v)) / p).clamp(0.0, 1.0);
        let d = (d.powf(gamma) * k).clamp(0.0, 1.0);
        *v = (new_paper * (1.0 - d)).round().clamp(0.0, 255.0) as u8;
    }
    out
}

fn add_noise<R: Rng + ?Sized>(img: &mut GrayImage, sigma: f32, rng: &mut R) {
    let Ok(normal) = Normal::new(0.0f32, sigma) else {
        return;
    };
    for v in img.as_mut() {
        *v = (f32::from(*v) + normal.sample(rng))
            .round()
            .clamp(0.0, 255.0) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;
    use rand::SeedableRng;

    fn stroke_image() -> GrayImage {
        let mut img = GrayImage::from_pixel(200, 100, Luma([235]));
        for x in 20..180 {
            let y = 50 + ((x as f32 / 15.0).sin() * 20.0) as u32;
            for dy in 0..3 {
                img.put_pixel(x, y + dy, Luma([40]));
            }
        }
        img
    }

    #[test]
    fn augmentation_is_deterministic_per_seed_and_varies_across_seeds() {
        let img = stroke_image();
        let p = AugmentParams::default();
        let a = augment(&img, &p, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
        let b = augment(&img, &p, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
        let c = augment(&img, &p, &mut rand_chacha::ChaCha8Rng::seed_from_u64(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn augmented_images_still_normalise_to_a_signature() {
        let img = stroke_image();
        let p = AugmentParams::default();
        let params = crate::imaging::normalise::NormaliseParams::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // A faint pen after blur and downscaling can fall below the normaliser's contrast gate (training
        // then uses the un-augmented image); that must stay rare.
        let mut ok = 0;
        for _ in 0..40 {
            let out = augment(&img, &p, &mut rng);
            if let Ok(n) = crate::imaging::normalise::normalise(&out, &params) {
                let ink: f32 = n.pixels.iter().sum();
                assert!(ink > 10.0, "ink mass {ink}");
                ok += 1;
            }
        }
        assert!(ok >= 36, "only {ok} of 40 augmented images normalised");
    }

    #[test]
    fn paper_level_ignores_ink() {
        assert_eq!(paper_level(&stroke_image()), 235);
    }
}
