//! Signature normalisation: the exact steps between a signature image and the network's input.
//!
//! grayscale -> background removal (Otsu; ink keeps its gray levels) -> speck removal (small connected
//! components) -> crop to the ink -> centre on a canvas of the model's aspect ratio with a margin ->
//! resize -> invert so ink is bright, as f32 in [0, 1].
//!
//! Training and inference must share this code, and the model card records [`PREPROCESSING_VERSION`]
//! together with the [`NormaliseParams`]: bump the version whenever a step changes its output.
//! Everything here is integer arithmetic on histograms and runs plus one bilinear resize, so the result
//! is deterministic and takes well under a millisecond for a typical signature.

use image::GrayImage;
use serde::{Deserialize, Serialize};

use super::components::{self, Run};
use super::{ImagingError, NormalisedSignature};

/// Version of the normalisation steps; recorded in the model card and checked when weights load.
/// Version 2 added [`InkMode::Binary`]; a card whose parameters keep the version-1 behaviour
/// ([`InkMode::Grey`]) still records version 1, so models made before it load unchanged and a binary
/// that predates version 2 refuses a binary-ink model instead of feeding it grey ink.
pub const PREPROCESSING_VERSION: u32 = 2;

/// How kept ink pixels reach the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum InkMode {
    /// Ink keeps its grey level (inverted): pen pressure and scanner tone show (version 1).
    #[default]
    Grey,
    /// Every kept ink pixel is full intensity: a grey scan and a thresholded (bitonal) scan of the
    /// same stroke give the same input, which removes the scanner's tone from what the model sees.
    Binary,
}

/// Parameters of every normalisation step. Part of the model card: weights trained with one set of
/// parameters must be used with the same set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NormaliseParams {
    /// Model input width in pixels.
    pub width: u32,
    /// Model input height in pixels.
    pub height: u32,
    /// Empty border kept around the ink on each side, as a fraction of the output width / height.
    pub margin: f32,
    /// Connected ink components smaller than this many pixels are specks (dust, scanner noise) and go.
    pub min_speck_area: u32,
    /// Least difference between the mean paper and mean ink gray levels (0-255) for the image to count
    /// as having ink at all; below it the page is blank paper and noise.
    pub min_contrast: u8,
    /// Least number of ink pixels, after speck removal, for a signature.
    pub min_ink_pixels: u32,
    /// Grey or binary ink. Absent from version-1 cards, which therefore read as [`InkMode::Grey`].
    pub ink: InkMode,
}

impl Default for NormaliseParams {
    fn default() -> Self {
        Self {
            width: 192,
            height: 96,
            margin: 0.04,
            min_speck_area: 6,
            min_contrast: 40,
            min_ink_pixels: 30,
            ink: InkMode::Grey,
        }
    }
}

impl NormaliseParams {
    /// The preprocessing version these parameters need: 1 while they keep version 1's behaviour,
    /// [`PREPROCESSING_VERSION`] otherwise. The model card records it and loading checks it.
    pub fn version(&self) -> u32 {
        match self.ink {
            InkMode::Grey => 1,
            InkMode::Binary => PREPROCESSING_VERSION,
        }
    }

    /// Parses an input size written `WIDTHxHEIGHT` (e.g. `220x150`).
    pub fn parse_size(text: &str) -> Result<(u32, u32), ImagingError> {
        let bad =
            || ImagingError::InvalidParams(format!("input size {text:?} is not WIDTHxHEIGHT"));
        let (w, h) = text.trim().split_once(['x', 'X']).ok_or_else(bad)?;
        let w: u32 = w.trim().parse().map_err(|_| bad())?;
        let h: u32 = h.trim().parse().map_err(|_| bad())?;
        Ok((w, h))
    }

    /// Refuses parameter sets that would make the pipeline meaningless or unbounded.
    pub fn validate(&self) -> Result<(), ImagingError> {
        if !(8..=4096).contains(&self.width) || !(8..=4096).contains(&self.height) {
            return Err(ImagingError::InvalidParams(format!(
                "output size {}x{} must be between 8 and 4096 on each side",
                self.width, self.height
            )));
        }
        if !(self.margin.is_finite() && (0.0..0.45).contains(&self.margin)) {
            return Err(ImagingError::InvalidParams(format!(
                "margin {} must be in [0, 0.45)",
                self.margin
            )));
        }
        Ok(())
    }
}

/// Normalises a signature image into the network's input. An image without convincing ink is
/// [`ImagingError::NoSignature`], never a blank tensor.
pub fn normalise(
    img: &GrayImage,
    params: &NormaliseParams,
) -> Result<NormalisedSignature, ImagingError> {
    normalise_polarity(img, params, true)
}

fn normalise_polarity(
    img: &GrayImage,
    params: &NormaliseParams,
    may_invert: bool,
) -> Result<NormalisedSignature, ImagingError> {
    params.validate()?;
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err(ImagingError::ZeroSize {
            name: "signature image".into(),
            width: w,
            height: h,
        });
    }
    let hist = histogram(img);
    let otsu = otsu_threshold(&hist).ok_or_else(|| {
        ImagingError::NoSignature(format!("{w}x{h} image (a single gray level, no ink)"))
    })?;
    if otsu.contrast() < params.min_contrast {
        return Err(ImagingError::NoSignature(format!(
            "{w}x{h} image (ink/paper contrast {} below {})",
            otsu.contrast(),
            params.min_contrast
        )));
    }
    // A negative scan (light ink on a dark ground, as microfilm and some archive exports give) would
    // have its ground taken for ink and be scored as a black slab. Read it as the positive it shows.
    if may_invert && looks_negative(img, &hist, otsu.threshold) {
        let mut positive = img.clone();
        image::imageops::invert(&mut positive);
        return normalise_polarity(&positive, params, false);
    }
    let ink = InkMap::extract(img, otsu.threshold, params.min_speck_area);
    if ink.pixels < params.min_ink_pixels {
        return Err(ImagingError::NoSignature(format!(
            "{w}x{h} image ({} ink pixels after speck removal, at least {} needed)",
            ink.pixels, params.min_ink_pixels
        )));
    }
    let mut crop = ink.render_inverted(img);
    if params.ink == InkMode::Binary {
        // Kept ink is everything the renderer left above 0: set it to full intensity. The resize in
        // `fit_to_canvas` then anti-aliases edges the same way for grey and bitonal scans.
        for v in crop.as_mut() {
            if *v > 0 {
                *v = 255;
            }
        }
    }
    Ok(fit_to_canvas(&crop, params))
}

/// True when the dark class (below the Otsu `threshold`) covers most of the image *and* nearly all of
/// its border: the ground is dark, so the image is a negative. Both are required, so a dark scanner
/// frame around a positive signature, or a dense signature cropped tight, is not inverted.
fn looks_negative(img: &GrayImage, hist: &[u32; 256], threshold: u8) -> bool {
    let total: u64 = hist.iter().map(|&c| u64::from(c)).sum();
    let dark: u64 = hist[..usize::from(threshold)]
        .iter()
        .map(|&c| u64::from(c))
        .sum();
    if total == 0 || dark * 2 <= total {
        return false;
    }
    let (w, h) = img.dimensions();
    let border = (0..w)
        .flat_map(|x| [(x, 0), (x, h - 1)])
        .chain((0..h).flat_map(|y| [(0, y), (w - 1, y)]));
    let (mut n, mut dark_border) = (0u64, 0u64);
    for (x, y) in border {
        n += 1;
        if img.get_pixel(x, y).0[0] < threshold {
            dark_border += 1;
        }
    }
    dark_border * 10 >= n * 9
}

/// Renders a normalised signature as a grayscale picture a person reads naturally: dark ink on white.
pub fn to_gray_preview(n: &NormalisedSignature) -> GrayImage {
    let mut out = GrayImage::new(n.width, n.height);
    for (dst, &v) in out.as_mut().iter_mut().zip(&n.pixels) {
        *dst = 255 - (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    }
    out
}

/// Count of pixels at each gray level.
pub fn histogram(img: &GrayImage) -> [u32; 256] {
    let mut hist = [0u32; 256];
    for &v in img.as_raw() {
        hist[v as usize] += 1;
    }
    hist
}

/// Otsu's split of a histogram: pixels below `threshold` are ink.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Otsu {
    pub threshold: u8,
    /// Mean gray level of the ink class (below the threshold).
    pub ink_mean: f64,
    /// Mean gray level of the paper class (at or above the threshold).
    pub paper_mean: f64,
}

impl Otsu {
    /// Paper mean minus ink mean, in gray levels.
    pub fn contrast(&self) -> u8 {
        (self.paper_mean - self.ink_mean).clamp(0.0, 255.0) as u8
    }
}

/// Otsu's threshold (maximum between-class variance), or `None` when the histogram has fewer than two
/// occupied gray levels.
pub fn otsu_threshold(hist: &[u32; 256]) -> Option<Otsu> {
    let total: u64 = hist.iter().map(|&c| u64::from(c)).sum();
    let sum_all: u64 = hist
        .iter()
        .enumerate()
        .map(|(i, &c)| i as u64 * u64::from(c))
        .sum();
    let mut best: Option<(f64, usize, u64, u64)> = None;
    let (mut n_ink, mut sum_ink) = (0u64, 0u64);
    // Threshold t puts levels 0..t in the ink class.
    for t in 1..256 {
        n_ink += u64::from(hist[t - 1]);
        sum_ink += (t as u64 - 1) * u64::from(hist[t - 1]);
        let n_paper = total - n_ink;
        if n_ink == 0 || n_paper == 0 {
            continue;
        }
        let m_ink = sum_ink as f64 / n_ink as f64;
        let m_paper = (sum_all - sum_ink) as f64 / n_paper as f64;
        let between = n_ink as f64 * n_paper as f64 * (m_paper - m_ink) * (m_paper - m_ink);
        // Strictly greater keeps the lowest of equal thresholds, so a clean two-level image splits just
        // above its ink level rather than just below its paper level.
        if best.is_none_or(|b| between > b.0) {
            best = Some((between, t, n_ink, sum_ink));
        }
    }
    best.map(|(_, t, n_ink, sum_ink)| Otsu {
        threshold: t as u8,
        ink_mean: sum_ink as f64 / n_ink as f64,
        paper_mean: (sum_all - sum_ink) as f64 / (total - n_ink) as f64,
    })
}

/// The ink of an image after background removal and speck removal: its runs and bounding box.
#[derive(Clone, Debug)]
pub struct InkMap {
    /// Runs of kept ink, row-major.
    pub runs: Vec<Run>,
    /// Bounding box of the kept ink `(x0, y0, x1, y1)`, end exclusive; `None` when nothing is kept.
    pub bbox: Option<(u32, u32, u32, u32)>,
    /// Number of kept ink pixels.
    pub pixels: u32,
}

impl InkMap {
    /// Pixels darker than `threshold` are ink; 8-connected components smaller than `min_area` pixels
    /// are dropped as specks.
    pub fn extract(img: &GrayImage, threshold: u8, min_area: u32) -> Self {
        let (w, h) = img.dimensions();
        let labelled = components::label(img.as_raw(), w, h, |v| v < threshold);
        let keep: Vec<bool> = labelled
            .components
            .iter()
            .map(|c| c.area >= min_area)
            .collect();
        let mut runs = labelled.runs;
        runs.retain(|r| keep[r.label as usize]);
        let mut bbox: Option<(u32, u32, u32, u32)> = None;
        let mut pixels = 0u32;
        for c in labelled.components.iter().filter(|c| c.area >= min_area) {
            pixels += c.area;
            bbox = Some(match bbox {
                None => (c.x0, c.y0, c.x1, c.y1),
                Some((a, b, cc, d)) => (a.min(c.x0), b.min(c.y0), cc.max(c.x1), d.max(c.y1)),
            });
        }
        Self { runs, bbox, pixels }
    }

    /// Crops to the ink and inverts it: the result is the bounding box of the kept ink, with paper and
    /// removed specks at 0 and ink at `255 - gray`, so the ink keeps its gray levels.
    pub fn render_inverted(&self, img: &GrayImage) -> GrayImage {
        let Some((x0, y0, x1, y1)) = self.bbox else {
            return GrayImage::new(1, 1);
        };
        let (cw, ch) = (x1 - x0, y1 - y0);
        let mut out = GrayImage::new(cw, ch);
        let src = img.as_raw();
        let sw = img.width() as usize;
        let dst = out.as_mut();
        for r in &self.runs {
            let s = r.y as usize * sw;
            let d = (r.y - y0) as usize * cw as usize;
            for x in r.x0..r.x1 {
                dst[d + (x - x0) as usize] = 255 - src[s + x as usize];
            }
        }
        out
    }
}

/// Centres an ink-bright crop on a `params.width x params.height` canvas, scaled to fit inside the
/// margins while keeping its aspect ratio, and converts it to f32 in [0, 1].
pub fn fit_to_canvas(crop: &GrayImage, params: &NormaliseParams) -> NormalisedSignature {
    let (ow, oh) = (params.width, params.height);
    let (cw, ch) = crop.dimensions();
    let inner_w = (ow as f32 * (1.0 - 2.0 * params.margin)).max(1.0);
    let inner_h = (oh as f32 * (1.0 - 2.0 * params.margin)).max(1.0);
    let scale = (inner_w / cw.max(1) as f32).min(inner_h / ch.max(1) as f32);
    let dw = ((cw as f32 * scale).round() as u32).clamp(1, ow);
    let dh = ((ch as f32 * scale).round() as u32).clamp(1, oh);
    let resized = if (dw, dh) == (cw, ch) {
        crop.clone()
    } else {
        image::imageops::resize(crop, dw, dh, image::imageops::FilterType::Triangle)
    };
    let ox = ((ow - dw) / 2) as usize;
    let oy = ((oh - dh) / 2) as usize;
    let mut pixels = vec![0f32; ow as usize * oh as usize];
    for (y, row) in resized.as_raw().chunks_exact(dw as usize).enumerate() {
        let start = (oy + y) * ow as usize + ox;
        for (dst, &v) in pixels[start..start + dw as usize].iter_mut().zip(row) {
            *dst = f32::from(v) * (1.0 / 255.0);
        }
    }
    NormalisedSignature {
        width: ow,
        height: oh,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// White paper (level 235 +- a little) with a dark stroke, a few dust specks, and a box of known size.
    fn sample() -> GrayImage {
        let mut img = GrayImage::from_fn(300, 150, |x, y| {
            image::Luma([230 + ((x * 7 + y * 13) % 11) as u8])
        });
        // A thick diagonal-ish stroke with gray levels 40..70 from (50,40) to (250,110).
        for t in 0..400 {
            let x = 50 + t / 2;
            let y = 40 + (t * 70 / 400);
            for dy in 0..4 {
                img.put_pixel(x, y + dy, image::Luma([40 + (t % 30) as u8]));
            }
        }
        // Specks: single pixels far from the stroke.
        img.put_pixel(5, 5, image::Luma([0]));
        img.put_pixel(290, 140, image::Luma([0]));
        img.put_pixel(10, 140, image::Luma([10]));
        img
    }

    #[test]
    fn a_negative_scan_normalises_like_its_positive() {
        let positive = sample();
        let mut negative = positive.clone();
        image::imageops::invert(&mut negative);
        for ink in [InkMode::Grey, InkMode::Binary] {
            let params = NormaliseParams {
                ink,
                ..NormaliseParams::default()
            };
            let a = normalise(&positive, &params).unwrap();
            let b = normalise(&negative, &params).unwrap();
            assert_eq!((a.width, a.height), (b.width, b.height));
            // Inverting maps each ink level v to 255 - v, so grey ink differs slightly in level;
            // where the ink is and how much of it there is must not.
            let inked = |n: &NormalisedSignature| n.pixels.iter().filter(|&&v| v > 0.1).count();
            let (ia, ib) = (inked(&a), inked(&b));
            assert!(ia > 0 && ia.abs_diff(ib) * 20 <= ia, "{ia} vs {ib}");
            let mean =
                |n: &NormalisedSignature| n.pixels.iter().sum::<f32>() / n.pixels.len() as f32;
            assert!(
                mean(&b) < 0.5,
                "the ground must not come out as ink: {}",
                mean(&b)
            );
        }
    }

    #[test]
    fn a_dark_scanner_frame_around_a_positive_signature_is_not_a_negative() {
        let mut framed = sample();
        let (w, h) = framed.dimensions();
        for (x, y, p) in framed.enumerate_pixels_mut() {
            if x < 4 || y < 4 || x >= w - 4 || y >= h - 4 {
                *p = image::Luma([5]);
            }
        }
        let hist = histogram(&framed);
        let otsu = otsu_threshold(&hist).unwrap();
        assert!(!looks_negative(&framed, &hist, otsu.threshold));
        let mut negative = sample();
        image::imageops::invert(&mut negative);
        let hist = histogram(&negative);
        let otsu = otsu_threshold(&hist).unwrap();
        assert!(looks_negative(&negative, &hist, otsu.threshold));
    }

    #[test]
    fn otsu_splits_two_levels_between_them() {
        let mut hist = [0u32; 256];
        hist[30] = 100;
        hist[220] = 900;
        let o = otsu_threshold(&hist).expect("two levels");
        assert!(o.threshold > 30 && o.threshold <= 220, "{o:?}");
        assert_eq!(o.ink_mean, 30.0);
        assert_eq!(o.paper_mean, 220.0);
        assert_eq!(o.contrast(), 190);
        let mut flat = [0u32; 256];
        flat[200] = 5;
        assert!(otsu_threshold(&flat).is_none());
    }

    #[test]
    fn histogram_counts_every_pixel() {
        let img = sample();
        let h = histogram(&img);
        assert_eq!(h.iter().sum::<u32>(), 300 * 150);
        assert_eq!(h[0], 2);
    }

    #[test]
    fn speck_removal_drops_small_components_and_keeps_the_stroke() {
        let img = sample();
        let o = otsu_threshold(&histogram(&img)).expect("ink");
        let with_specks = InkMap::extract(&img, o.threshold, 1);
        let clean = InkMap::extract(&img, o.threshold, 6);
        assert_eq!(with_specks.pixels, clean.pixels + 3);
        assert_eq!(with_specks.bbox, Some((5, 5, 291, 141)));
        // The stroke's exact extent: x 50..250, y 40..(40 + 399*70/400 + 4).
        assert_eq!(clean.bbox, Some((50, 40, 250, 40 + 399 * 70 / 400 + 4)));
    }

    #[test]
    fn background_removal_crops_and_keeps_ink_levels_inverted() {
        let img = sample();
        let o = otsu_threshold(&histogram(&img)).expect("ink");
        let ink = InkMap::extract(&img, o.threshold, 6);
        let crop = ink.render_inverted(&img);
        assert_eq!(crop.dimensions(), (200, 70 * 399 / 400 + 4 + 1 - 1));
        // Paper is exactly 0; ink is the original gray level inverted.
        assert_eq!(crop.get_pixel(199, 0).0[0], 0);
        assert_eq!(crop.get_pixel(0, 0).0[0], 255 - img.get_pixel(50, 40).0[0]);
        let levels: std::collections::BTreeSet<u8> =
            crop.as_raw().iter().copied().filter(|&v| v > 0).collect();
        assert!(
            levels.len() > 10,
            "ink gray levels were flattened: {levels:?}"
        );
    }

    #[test]
    fn canvas_keeps_aspect_ratio_centres_and_respects_margin() {
        // A solid 100x10 bar: wide, so it fills the inner width and is vertically centred.
        let crop = GrayImage::from_pixel(100, 10, image::Luma([255]));
        let p = NormaliseParams {
            width: 200,
            height: 100,
            margin: 0.05,
            ..Default::default()
        };
        let n = fit_to_canvas(&crop, &p);
        assert_eq!((n.width, n.height, n.pixels.len()), (200, 100, 20_000));
        let lit: Vec<(usize, usize)> = (0..100)
            .flat_map(|y| (0..200).map(move |x| (x, y)))
            .filter(|&(x, y)| n.pixels[y * 200 + x] > 0.5)
            .collect();
        let (xmin, xmax) = (
            lit.iter().map(|p| p.0).min().unwrap(),
            lit.iter().map(|p| p.0).max().unwrap(),
        );
        let (ymin, ymax) = (
            lit.iter().map(|p| p.1).min().unwrap(),
            lit.iter().map(|p| p.1).max().unwrap(),
        );
        assert_eq!((xmin, xmax), (10, 189));
        assert_eq!((ymin, ymax), (41, 58));
        assert!(n.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn normalise_is_deterministic_ink_bright_and_scale_invariant() {
        let img = sample();
        let p = NormaliseParams::default();
        let a = normalise(&img, &p).expect("signature");
        let b = normalise(&img, &p).expect("signature");
        assert_eq!(a, b);
        assert_eq!(a.pixels.len(), (p.width * p.height) as usize);
        // Corners are paper (0), the middle holds bright ink.
        assert_eq!(a.pixels[0], 0.0);
        assert!(a.pixels.iter().cloned().fold(0.0, f32::max) > 0.6);
        // The same signature on a bigger sheet of paper normalises to nearly the same tensor.
        let mut big = GrayImage::from_pixel(600, 400, image::Luma([235]));
        image::imageops::replace(&mut big, &img, 100, 120);
        let c = normalise(&big, &p).expect("signature");
        let mad: f32 = a
            .pixels
            .iter()
            .zip(&c.pixels)
            .map(|(x, y)| (x - y).abs())
            .sum::<f32>()
            / a.pixels.len() as f32;
        assert!(mad < 0.01, "mean abs difference {mad}");
    }

    #[test]
    fn blank_and_speck_only_pages_are_no_signature() {
        let p = NormaliseParams::default();
        let white = GrayImage::from_pixel(400, 200, image::Luma([255]));
        assert!(matches!(
            normalise(&white, &p),
            Err(ImagingError::NoSignature(_))
        ));
        let noisy = GrayImage::from_fn(400, 200, |x, y| {
            image::Luma([240 + ((x * 31 + y * 17) % 9) as u8])
        });
        assert!(matches!(
            normalise(&noisy, &p),
            Err(ImagingError::NoSignature(_))
        ));
        let mut specks = GrayImage::from_pixel(400, 200, image::Luma([250]));
        for i in 0..20 {
            specks.put_pixel(i * 19 + 3, (i * 7) % 200, image::Luma([0]));
        }
        assert!(matches!(
            normalise(&specks, &p),
            Err(ImagingError::NoSignature(_))
        ));
    }

    #[test]
    fn invalid_params_and_preview() {
        let img = sample();
        let bad = NormaliseParams {
            width: 0,
            ..Default::default()
        };
        assert!(matches!(
            normalise(&img, &bad),
            Err(ImagingError::InvalidParams(_))
        ));
        let bad = NormaliseParams {
            margin: f32::NAN,
            ..Default::default()
        };
        assert!(matches!(
            normalise(&img, &bad),
            Err(ImagingError::InvalidParams(_))
        ));
        let n = normalise(&img, &NormaliseParams::default()).expect("signature");
        let prev = to_gray_preview(&n);
        assert_eq!(prev.dimensions(), (n.width, n.height));
        assert_eq!(prev.get_pixel(0, 0).0[0], 255);
        assert!(prev.as_raw().iter().any(|&v| v < 100));
        let json = serde_json::to_string(&NormaliseParams::default()).expect("json");
        let back: NormaliseParams = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, NormaliseParams::default());
    }
}
