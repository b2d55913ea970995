//! Test-time augmentation (TTA): a signature is embedded as normalised and under a few small,
//! deterministic perturbations of the normalised input, and the L2-normalised embeddings are averaged
//! (and normalised again), so that the score depends less on how this one scan happened to fall.
//!
//! The perturbations are what a scanner and the crop leave after normalisation: the ink's bounding box
//! (hence the scale on the canvas) moves by a few per cent with a stroke tail or a speck, and a
//! skewed feed rotates the signature by a degree or two. A shift is not among them: normalisation
//! centres the ink, so a shifted scan reaches the network unshifted.
//!
//! This is a lever measured by `countersign evaluate --tta` (docs/ACCURACY.md); the decision path does
//! not use it. Should it ever ship, `verify`, `batch` and enrolment must all call [`embed`] (a
//! reference embedded one way and a cheque the other would not be comparable), and the model card
//! must record it.

use crate::imaging::NormalisedSignature;
use crate::scoring::Embedding;

use super::{ModelError, SignatureModel};

/// One perturbation of the normalised input: a uniform scale and a rotation about the canvas centre.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    /// Scale factor (1.0 = unchanged; 1.03 = 3 % larger).
    pub scale: f32,
    /// Rotation in degrees, counter-clockwise on the page.
    pub rotation_deg: f32,
}

/// The views embedded besides the unperturbed input: 3 % larger and smaller, 1.5 degrees either way.
pub const VIEWS: [View; 4] = [
    View {
        scale: 1.03,
        rotation_deg: 0.0,
    },
    View {
        scale: 0.97,
        rotation_deg: 0.0,
    },
    View {
        scale: 1.0,
        rotation_deg: 1.5,
    },
    View {
        scale: 1.0,
        rotation_deg: -1.5,
    },
];

/// Forward passes per signature with TTA: the input itself and each of [`VIEWS`].
pub const PASSES: usize = VIEWS.len() + 1;

/// `n` under `view`: each output pixel is sampled bilinearly from where the inverse transform puts
/// it; what falls outside the canvas is background (0, no ink).
pub fn perturb(n: &NormalisedSignature, view: View) -> NormalisedSignature {
    let (w, h) = (n.width as usize, n.height as usize);
    let mut pixels = vec![0f32; w * h];
    if w == 0
        || h == 0
        || n.pixels.len() != w * h
        || !view.scale.is_finite()
        || view.scale <= 0.0
        || !view.rotation_deg.is_finite()
    {
        return NormalisedSignature {
            width: n.width,
            height: n.height,
            pixels,
        };
    }
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    // Image rows grow downwards, so a counter-clockwise turn on the page is a clockwise one in (x, y).
    let (s, c) = (-view.rotation_deg).to_radians().sin_cos();
    let k = 1.0 / view.scale;
    let at = |x: i64, y: i64| -> f32 {
        if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
            0.0
        } else {
            n.pixels[y as usize * w + x as usize]
        }
    };
    for (y, row) in pixels.chunks_exact_mut(w).enumerate() {
        let dy = y as f32 + 0.5 - cy;
        for (x, dst) in row.iter_mut().enumerate() {
            let dx = x as f32 + 0.5 - cx;
            // Inverse map: undo the rotation, then the scale, in pixel-centre coordinates.
            let u = (c * dx + s * dy) * k + cx - 0.5;
            let v = (-s * dx + c * dy) * k + cy - 0.5;
            let (x0, y0) = (u.floor(), v.floor());
            let (fx, fy) = (u - x0, v - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
            let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
            *dst = (top * (1.0 - fy) + bottom * fy).clamp(0.0, 1.0);
        }
    }
    NormalisedSignature {
        width: n.width,
        height: n.height,
        pixels,
    }
}

/// Embeds each signature with TTA: the mean of the L2-normalised embeddings of the input and its
/// [`VIEWS`], normalised again. One embedding per input, in order; costs [`PASSES`] forward passes
/// per signature.
pub fn embed(
    model: &SignatureModel,
    batch: &[&NormalisedSignature],
) -> Result<Vec<Embedding>, ModelError> {
    // Views are built per chunk of inputs so that memory stays at a few forward batches.
    let per_chunk = (super::EMBED_CHUNK / PASSES).max(1);
    let mut out = Vec::with_capacity(batch.len());
    for (c, chunk) in batch.chunks(per_chunk).enumerate() {
        let views: Vec<NormalisedSignature> = chunk
            .iter()
            .flat_map(|n| VIEWS.iter().map(|&v| perturb(n, v)))
            .collect();
        let mut inputs: Vec<&NormalisedSignature> = Vec::with_capacity(chunk.len() * PASSES);
        for (i, n) in chunk.iter().enumerate() {
            inputs.push(n);
            inputs.extend(&views[i * VIEWS.len()..(i + 1) * VIEWS.len()]);
        }
        // An input's own pass comes before its views, so a bad input is reported at its own index.
        let at = |index: usize| index / PASSES + c * per_chunk;
        let embeddings = model
            .embed_refs(&inputs)
            .map_err(|e| e.at_batch_index(at))?;
        out.extend(embeddings.chunks(PASSES).map(mean_direction));
    }
    Ok(out)
}

/// The normalised mean of L2-normalised vectors (each is normalised first, so every view weighs the
/// same). A zero mean (vectors that cancel) stays zero.
pub fn mean_direction(vectors: &[Embedding]) -> Embedding {
    let dim = vectors.first().map_or(0, Vec::len);
    let mut sum = vec![0f64; dim];
    for v in vectors {
        let norm = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        if norm > 0.0 {
            for (s, &x) in sum.iter_mut().zip(v) {
                *s += f64::from(x) / norm;
            }
        }
    }
    let norm = sum.iter().map(|x| x * x).sum::<f64>().sqrt();
    sum.iter()
        .map(|&x| if norm > 0.0 { (x / norm) as f32 } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 40x20 canvas with one bright horizontal bar through the middle.
    fn bar() -> NormalisedSignature {
        let (w, h) = (40u32, 20u32);
        let mut pixels = vec![0f32; (w * h) as usize];
        for y in 9..11 {
            for x in 10..30 {
                pixels[y * w as usize + x] = 1.0;
            }
        }
        NormalisedSignature {
            width: w,
            height: h,
            pixels,
        }
    }

    fn mass(n: &NormalisedSignature) -> f32 {
        n.pixels.iter().sum()
    }

    #[test]
    fn the_identity_view_changes_nothing() {
        let n = bar();
        let same = perturb(
            &n,
            View {
                scale: 1.0,
                rotation_deg: 0.0,
            },
        );
        assert_eq!(same, n);
    }

    #[test]
    fn views_are_small_deterministic_and_each_differs_from_the_input() {
        let n = bar();
        for view in VIEWS {
            let a = perturb(&n, view);
            assert_eq!(a, perturb(&n, view), "{view:?} is not deterministic");
            assert_ne!(a, n, "{view:?} changed nothing");
            assert!(a.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
            // A few per cent of scale or a degree of rotation keeps the ink where it was.
            let ratio = mass(&a) / mass(&n);
            assert!((0.9..1.1).contains(&ratio), "{view:?}: ink mass x{ratio}");
        }
    }

    #[test]
    fn a_larger_scale_lengthens_the_bar_and_a_rotation_tilts_it() {
        let n = bar();
        let row = |n: &NormalisedSignature, y: usize| -> Vec<f32> {
            n.pixels[y * n.width as usize..(y + 1) * n.width as usize].to_vec()
        };
        let inked = |r: &[f32]| r.iter().filter(|&&v| v > 0.5).count();
        let big = perturb(
            &n,
            View {
                scale: 1.2,
                rotation_deg: 0.0,
            },
        );
        assert!(inked(&row(&big, 10)) > inked(&row(&n, 10)));
        // Turned counter-clockwise on the page, the bar's right end rises (smaller y) and its left end
        // falls.
        let turned = perturb(
            &n,
            View {
                scale: 1.0,
                rotation_deg: 10.0,
            },
        );
        let column_centre = |n: &NormalisedSignature, x: usize| -> f32 {
            let w = n.width as usize;
            let (mut m, mut my) = (0f32, 0f32);
            for y in 0..n.height as usize {
                m += n.pixels[y * w + x];
                my += n.pixels[y * w + x] * y as f32;
            }
            my / m
        };
        assert!(column_centre(&turned, 28) < column_centre(&turned, 12));
    }

    #[test]
    fn the_mean_direction_weighs_each_vector_the_same_and_is_unit_length() {
        let m = mean_direction(&[vec![2.0, 0.0], vec![0.0, 0.5]]);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((m[0] - h).abs() < 1e-6 && (m[1] - h).abs() < 1e-6, "{m:?}");
        assert_eq!(
            mean_direction(&[vec![1.0, 0.0], vec![-1.0, 0.0]]),
            vec![0.0, 0.0]
        );
    }
}
