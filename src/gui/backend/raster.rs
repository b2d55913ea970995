//! Rasterising images for the screen: downscaled previews, normalised signatures as ink on paper, and
//! the questioned-over-reference overlay.

use super::view::{Gray, Rgba};

/// A display copy of a decoded image no larger than `max_w` x `max_h`, and its scale (preview pixels
/// per original pixel). Small images are kept at full size.
pub fn preview(img: &image::GrayImage, max_w: u32, max_h: u32) -> (Gray, f32) {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return (
            Gray {
                width: 0,
                height: 0,
                pixels: Vec::new(),
            },
            1.0,
        );
    }
    let scale = (max_w as f32 / w as f32)
        .min(max_h as f32 / h as f32)
        .min(1.0);
    let (pw, ph) = (
        ((w as f32 * scale).round() as u32).max(1),
        ((h as f32 * scale).round() as u32).max(1),
    );
    let small = if (pw, ph) == (w, h) {
        img.clone()
    } else {
        image::imageops::resize(img, pw, ph, image::imageops::FilterType::Triangle)
    };
    let scale = pw as f32 / w as f32;
    (
        Gray {
            width: pw as usize,
            height: ph as usize,
            pixels: small.into_raw(),
        },
        scale,
    )
}

/// A normalised signature (ink bright) as dark ink on white paper, the way people read it.
pub fn normalised_gray(n: &crate::imaging::NormalisedSignature) -> Gray {
    Gray {
        width: n.width as usize,
        height: n.height as usize,
        pixels: n.to_gray_pixels(),
    }
}

/// The questioned signature in red over the reference in blue on white; where both have ink the
/// result is dark, so matching strokes read as black and differences stand out in colour. The two
/// must have the same size (both are the network's input); otherwise the questioned one is shown alone.
pub fn overlay(
    questioned: &crate::imaging::NormalisedSignature,
    reference: &crate::imaging::NormalisedSignature,
) -> Rgba {
    let (w, h) = (questioned.width as usize, questioned.height as usize);
    let same = reference.width == questioned.width && reference.height == questioned.height;
    let mut pixels = Vec::with_capacity(w * h * 4);
    for i in 0..w * h {
        let q = questioned
            .pixels
            .get(i)
            .copied()
            .unwrap_or(0.0)
            .clamp(0.0, 1.0);
        let r = if same {
            reference
                .pixels
                .get(i)
                .copied()
                .unwrap_or(0.0)
                .clamp(0.0, 1.0)
        } else {
            0.0
        };
        let red = 255.0 * (1.0 - r);
        let green = 255.0 * (1.0 - q.max(r));
        let blue = 255.0 * (1.0 - q);
        pixels.extend_from_slice(&[
            red.round() as u8,
            green.round() as u8,
            blue.round() as u8,
            255,
        ]);
    }
    Rgba {
        width: w,
        height: h,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::NormalisedSignature;

    fn sig(w: u32, h: u32, ink: &[usize]) -> NormalisedSignature {
        let mut pixels = vec![0.0; (w * h) as usize];
        for &i in ink {
            pixels[i] = 1.0;
        }
        NormalisedSignature {
            width: w,
            height: h,
            pixels,
        }
    }

    #[test]
    fn overlay_colours_questioned_red_reference_blue_both_black() {
        let q = sig(3, 1, &[0, 2]);
        let r = sig(3, 1, &[1, 2]);
        let o = overlay(&q, &r);
        assert_eq!(&o.pixels[0..4], &[255, 0, 0, 255], "questioned only: red");
        assert_eq!(&o.pixels[4..8], &[0, 0, 255, 255], "reference only: blue");
        assert_eq!(&o.pixels[8..12], &[0, 0, 0, 255], "both: black");
    }

    #[test]
    fn preview_keeps_aspect_and_reports_scale() {
        let img = image::GrayImage::from_pixel(1700, 800, image::Luma([200]));
        let (p, scale) = preview(&img, 850, 850);
        assert_eq!((p.width, p.height), (850, 400));
        assert!((scale - 0.5).abs() < 1e-6);
        assert_eq!(p.pixels.len(), 850 * 400);
        let small = image::GrayImage::from_pixel(100, 50, image::Luma([7]));
        let (p, scale) = preview(&small, 850, 850);
        assert_eq!((p.width, p.height, scale), (100, 50, 1.0));
    }

    #[test]
    fn normalised_gray_shows_ink_dark() {
        let g = normalised_gray(&sig(2, 1, &[1]));
        assert_eq!(g.pixels, vec![255, 0]);
    }
}
