//! Finding the signature on a cheque scan.
//!
//! The search runs inside the layout's signature zone (by default the lower right of the cheque):
//! binarise (Otsu) -> estimate skew from the projection profile (printed rules and text lines make sharp
//! peaks) -> deskew the ink mask -> remove printed rules and box borders (long runs whose perpendicular
//! extent is thin, so ink that crosses a rule survives) -> drop specks, straight rule fragments, stamp
//! rings and lines of printed text (shape statistics of connected components) -> group what remains by
//! proximity -> the heaviest group is the signature, mapped back to cheque coordinates. A confidence in
//! [0, 1] says how convincing it is; below the layout's threshold `found` is false and the caller must
//! refer the cheque to a person instead of scoring a guess.

use std::path::Path;

use image::GrayImage;
use serde::{Deserialize, Serialize};

use super::components::{self, Component, DisjointSets, Labelled};
use super::normalise::{NormaliseParams, normalise, otsu_threshold};
use super::{ImagingError, NormalisedSignature};

/// A rectangle in image pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CropBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl CropBox {
    /// Intersection over union of two boxes, in [0, 1].
    pub fn iou(&self, other: &CropBox) -> f32 {
        let ix0 = self.x.max(other.x);
        let iy0 = self.y.max(other.y);
        let ix1 = (self.x + self.width).min(other.x + other.width);
        let iy1 = (self.y + self.height).min(other.y + other.height);
        let inter = u64::from(ix1.saturating_sub(ix0)) * u64::from(iy1.saturating_sub(iy0));
        let area = |b: &CropBox| u64::from(b.width) * u64::from(b.height);
        let union = area(self) + area(other) - inter;
        if union == 0 {
            0.0
        } else {
            inter as f32 / union as f32
        }
    }
}

/// A region of the cheque as fractions of its width and height (0 = left/top, 1 = right/bottom).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    pub left: f32,
    pub top: f32,
    pub right: f32,
    pub bottom: f32,
}

/// Where to look for the signature on one kind of cheque, and how sure the finder must be.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChequeLayout {
    /// A label for people (e.g. the bank's cheque design).
    pub name: String,
    /// The region that holds the signature.
    pub signature_zone: Zone,
    /// Largest rotation searched when deskewing, in degrees.
    pub max_skew_degrees: f32,
    /// Confidence below which the finder reports `found = false`.
    pub min_confidence: f32,
}

impl Default for ChequeLayout {
    fn default() -> Self {
        Self {
            name: "default (signature lower right)".into(),
            // Right half, below the payee/amount lines and above the MICR code line.
            signature_zone: Zone {
                left: 0.45,
                top: 0.42,
                right: 1.0,
                bottom: 0.89,
            },
            max_skew_degrees: 5.0,
            min_confidence: 0.5,
        }
    }
}

impl ChequeLayout {
    /// Parses a layout from JSON; missing fields take the defaults.
    pub fn from_json(text: &str) -> Result<Self, ImagingError> {
        let layout: ChequeLayout = serde_json::from_str(text)
            .map_err(|e| ImagingError::InvalidLayout(format!("not a valid layout JSON: {e}")))?;
        layout.validate()?;
        Ok(layout)
    }

    /// Reads a layout JSON file.
    pub fn load(path: &Path) -> Result<Self, ImagingError> {
        let text = std::fs::read_to_string(path).map_err(|source| ImagingError::Io {
            name: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| match e {
            ImagingError::InvalidLayout(m) => {
                ImagingError::InvalidLayout(format!("{}: {m}", path.display()))
            }
            other => other,
        })
    }

    /// Refuses zones outside the cheque or empty, and nonsensical thresholds.
    pub fn validate(&self) -> Result<(), ImagingError> {
        let z = &self.signature_zone;
        let ok = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        if !(ok(z.left) && ok(z.top) && ok(z.right) && ok(z.bottom))
            || z.right - z.left < 0.05
            || z.bottom - z.top < 0.05
        {
            return Err(ImagingError::InvalidLayout(format!(
                "signature zone {z:?} must lie within [0, 1] and span at least 5% each way"
            )));
        }
        if !(self.max_skew_degrees.is_finite() && (0.0..=15.0).contains(&self.max_skew_degrees)) {
            return Err(ImagingError::InvalidLayout(format!(
                "max_skew_degrees {} must be in [0, 15]",
                self.max_skew_degrees
            )));
        }
        if !(self.min_confidence.is_finite() && (0.0..=1.0).contains(&self.min_confidence)) {
            return Err(ImagingError::InvalidLayout(format!(
                "min_confidence {} must be in [0, 1]",
                self.min_confidence
            )));
        }
        Ok(())
    }

    /// The signature zone in pixels of a `width x height` cheque.
    pub fn zone_box(&self, width: u32, height: u32) -> CropBox {
        let z = &self.signature_zone;
        let x0 = (z.left * width as f32).floor().clamp(0.0, width as f32) as u32;
        let y0 = (z.top * height as f32).floor().clamp(0.0, height as f32) as u32;
        let x1 = (z.right * width as f32).ceil().clamp(0.0, width as f32) as u32;
        let y1 = (z.bottom * height as f32).ceil().clamp(0.0, height as f32) as u32;
        CropBox {
            x: x0,
            y: y0,
            width: x1.saturating_sub(x0),
            height: y1.saturating_sub(y0),
        }
    }
}

/// The finder's answer. When `found` is false, `bbox` is its best candidate (or the whole zone) and
/// must not be scored without a person's review.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignatureFind {
    /// The signature's box in the original cheque's pixel coordinates.
    pub bbox: CropBox,
    /// How convincing the find is, in [0, 1].
    pub confidence: f32,
    /// Estimated rotation of the cheque's printed lines, in degrees (positive: falling to the right).
    pub skew_degrees: f32,
    pub found: bool,
    /// The box ends on the edge of the signature zone while the ink goes on outside it: the box
    /// covers only part of the ink, so `found` is false whatever the confidence, and the cheque is
    /// referred ("signature box uncertain").
    #[serde(default)]
    pub box_uncertain: bool,
}

/// A questioned signature ready for scoring, with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    pub normalised: NormalisedSignature,
    pub bbox: CropBox,
    pub confidence: f32,
    pub found: bool,
    /// See [`SignatureFind::box_uncertain`].
    pub box_uncertain: bool,
}

/// Finds the signature on a cheque scan: a manual crop wins; otherwise the finder runs. The crop is
/// normalised either way, so the clerk sees what would be scored; `found == false` means REFER.
pub fn prepare_questioned(
    cheque: &GrayImage,
    layout: &ChequeLayout,
    manual: Option<CropBox>,
    params: &NormaliseParams,
) -> Result<Prepared, ImagingError> {
    let (bbox, confidence, found, box_uncertain) = match manual {
        Some(b) => (b, 1.0, true, false),
        None => {
            let f = find_signature(cheque, layout)?;
            if f.bbox.width == 0 || f.bbox.height == 0 {
                return Err(ImagingError::NoSignature(
                    "the cheque's signature zone".into(),
                ));
            }
            (f.bbox, f.confidence, f.found, f.box_uncertain)
        }
    };
    let region = crop(cheque, bbox)?;
    let normalised = normalise(&region, params)?;
    Ok(Prepared {
        normalised,
        bbox,
        confidence,
        found,
        box_uncertain,
    })
}

/// Copies a region out of an image. The box is clamped to the image; a box that misses the image or
/// has no area is an error.
pub fn crop(img: &GrayImage, b: CropBox) -> Result<GrayImage, ImagingError> {
    let (w, h) = img.dimensions();
    if b.width == 0 || b.height == 0 {
        return Err(ImagingError::InvalidCrop(format!("box {b:?} has no area")));
    }
    if b.x >= w || b.y >= h {
        return Err(ImagingError::InvalidCrop(format!(
            "box {b:?} lies outside the {w}x{h} image"
        )));
    }
    let cw = b.width.min(w - b.x);
    let ch = b.height.min(h - b.y);
    Ok(image::imageops::crop_imm(img, b.x, b.y, cw, ch).to_image())
}

/// Pixels of a 200 dpi cheque's height; the finder's size constants are set for this and scale with
/// the actual scan.
const REFERENCE_HEIGHT: f32 = 800.0;

/// Finds the signature in the layout's zone of a cheque scan.
pub fn find_signature(
    cheque: &GrayImage,
    layout: &ChequeLayout,
) -> Result<SignatureFind, ImagingError> {
    layout.validate()?;
    let (cw, ch) = cheque.dimensions();
    if cw == 0 || ch == 0 {
        return Err(ImagingError::ZeroSize {
            name: "cheque".into(),
            width: cw,
            height: ch,
        });
    }
    let zone = layout.zone_box(cw, ch);
    let not_found = |bbox: CropBox, skew: f32, confidence: f32| SignatureFind {
        bbox,
        confidence,
        skew_degrees: skew,
        found: false,
        box_uncertain: false,
    };
    if zone.width < 16 || zone.height < 16 {
        return Ok(not_found(zone, 0.0, 0.0));
    }

    // Binarise the zone. Otsu's contrast check tells blank paper from ink.
    // Rows of the zone, read in place.
    let (zw, zh) = (zone.width as usize, zone.height as usize);
    let stride = cw as usize;
    let zone_rows = || {
        cheque
            .as_raw()
            .chunks_exact(stride)
            .skip(zone.y as usize)
            .take(zh)
            .map(|row| &row[zone.x as usize..zone.x as usize + zw])
    };
    let mut hist = [0u32; 256];
    for row in zone_rows() {
        for &v in row {
            hist[v as usize] += 1;
        }
    }
    let Some(otsu) = otsu_threshold(&hist) else {
        return Ok(not_found(zone, 0.0, 0.0));
    };
    if otsu.contrast() < 40 {
        return Ok(not_found(zone, 0.0, 0.0));
    }
    // High-resolution scans are reduced to about 200 dpi first: an f x f block is ink when any of its
    // pixels is, which keeps thin strokes and rules connected, and every later pass touches 1/f^2 of
    // the pixels. Boxes are mapped back to full resolution at the end (within f pixels). Reducing a
    // 200 dpi scan further merges small print into blobs that look like handwriting, so it is not done.
    let f: usize = ((ch as usize) / 700).clamp(1, 4);
    let (ww, wh) = (zw / f, zh / f);
    let scale = ch as f32 / (REFERENCE_HEIGHT * f as f32);
    let mut mask: Vec<u8> = vec![0; ww * wh];
    for (y, row) in zone_rows().take(wh * f).enumerate() {
        let out = &mut mask[(y / f) * ww..(y / f + 1) * ww];
        for (o, block) in out.iter_mut().zip(row.chunks_exact(f)) {
            *o |= u8::from(block.iter().any(|&v| v < otsu.threshold));
        }
    }

    let skew = estimate_skew(&mask, ww, wh, layout.max_skew_degrees);
    let rot = Rotation::new(skew, ww, wh);
    let mut r = rot.apply(&mask, ww, wh);
    let (rw, rh) = (rot.out_w, rot.out_h);

    // Block reduction can widen a rule by a pixel, hence the `f - 1`.
    let thick = ((6.0 * scale).round() as usize + f - 1).max(3);
    remove_rules(
        &mut r,
        rw,
        rh,
        thick,
        ((0.14 * ww as f32) as usize).max(20),
        ((0.22 * wh as f32) as usize).max(15),
    );

    let labelled = components::label(&r, rw as u32, rh as u32, |v| v == 1);
    let keep = classify_components(&labelled, scale, thick as u32);
    let kept_area: u64 = labelled
        .components
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(c, _)| u64::from(c.area))
        .sum();

    let groups = group_components(
        &labelled.components,
        &keep,
        0.06 * rw as f32,
        0.035 * rh as f32 + 6.0 * scale,
    );
    let Some(best) = groups.iter().max_by_key(|g| g.area) else {
        return Ok(not_found(zone, skew, 0.0));
    };

    // Map the group's ink back to cheque coordinates through the inverse rotation.
    let member: Vec<bool> = {
        let mut m = vec![false; labelled.components.len()];
        for &i in &best.members {
            m[i] = true;
        }
        m
    };
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for run in labelled.runs.iter().filter(|r| member[r.label as usize]) {
        for (u, v) in [
            (run.x0 as f32, run.y as f32),
            (run.x1 as f32, run.y as f32),
            (run.x0 as f32, run.y as f32 + 1.0),
            (run.x1 as f32, run.y as f32 + 1.0),
        ] {
            let (x, y) = rot.to_source(u, v);
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    let fs = f as f32;
    let bx0 = ((x0 * fs).floor().max(0.0) as u32).min(zone.width - 1) + zone.x;
    let by0 = ((y0 * fs).floor().max(0.0) as u32).min(zone.height - 1) + zone.y;
    let bx1 = ((x1 * fs).ceil().max(0.0) as u32).min(zone.width) + zone.x;
    let by1 = ((y1 * fs).ceil().max(0.0) as u32).min(zone.height) + zone.y;
    let bbox = CropBox {
        x: bx0,
        y: by0,
        width: bx1.saturating_sub(bx0).max(1),
        height: by1.saturating_sub(by0).max(1),
    };

    // Confidence: enough ink for a signature, a signature's proportions, and no rival group.
    let expected_ink = 1500.0 * scale * scale;
    let mass = ((best.area as f32 - 0.25 * expected_ink) / expected_ink).clamp(0.0, 1.0);
    let gw = best.x1 - best.x0;
    let gh = best.y1 - best.y0;
    let aspect = gw as f32 / gh.max(1) as f32;
    let shape =
        if gw as f32 >= 60.0 * scale && gh as f32 >= 20.0 * scale && (0.7..=14.0).contains(&aspect)
        {
            1.0
        } else {
            0.3
        };
    let dominance = if kept_area == 0 {
        0.0
    } else {
        best.area as f32 / kept_area as f32
    };
    let confidence = (0.45 * mass + 0.25 * shape + 0.3 * dominance).clamp(0.0, 1.0);
    let box_uncertain = ink_crosses_zone_edge(cheque, &zone, &bbox, otsu.threshold, f as u32);
    Ok(SignatureFind {
        bbox,
        confidence,
        skew_degrees: skew,
        found: confidence >= layout.min_confidence && !box_uncertain,
        box_uncertain,
    })
}

/// Whether the found box ends on an edge of the zone while the signature's ink goes on outside it:
/// a stroke crosses that edge (ink on the zone's edge row or column and on the first one outside),
/// and the ink just outside spreads over at least six rows (or columns) across the edge. A printed
/// rule running through the edge crosses it too, but stays within a few rows, so it does not count.
/// Then the signature ran out of the zone (or the zone is drawn wrong for this cheque) and the box
/// holds only part of it.
fn ink_crosses_zone_edge(
    img: &GrayImage,
    zone: &CropBox,
    b: &CropBox,
    threshold: u8,
    f: u32,
) -> bool {
    let (cw, ch) = img.dimensions();
    let tol = f + 1;
    let band = 4 * f + 8;
    let ink = |x: u32, y: u32| img.get_pixel(x, y).0[0] < threshold;
    let (zx1, zy1) = (zone.x + zone.width, zone.y + zone.height);
    let (bx1, by1) = (b.x + b.width, b.y + b.height);
    let ys = || b.y..by1.min(ch);
    let xs = || b.x..bx1.min(cw);
    // Left and right edges: (the zone's edge column, the column outside, the outside strip).
    let mut vertical = Vec::new();
    if b.x <= zone.x + tol && zone.x >= 1 {
        vertical.push((zone.x, zone.x - 1, zone.x.saturating_sub(band)..zone.x));
    }
    if bx1 + tol >= zx1 && zx1 < cw {
        vertical.push((zx1 - 1, zx1, zx1..(zx1 + band).min(cw)));
    }
    for (inside, outside, strip) in vertical {
        let crosses = ys().any(|y| ink(inside, y) && ink(outside, y));
        let spread = ys().filter(|&y| strip.clone().any(|x| ink(x, y))).count();
        if crosses && spread >= 6 {
            return true;
        }
    }
    let mut horizontal = Vec::new();
    if b.y <= zone.y + tol && zone.y >= 1 {
        horizontal.push((zone.y, zone.y - 1, zone.y.saturating_sub(band)..zone.y));
    }
    if by1 + tol >= zy1 && zy1 < ch {
        horizontal.push((zy1 - 1, zy1, zy1..(zy1 + band).min(ch)));
    }
    for (inside, outside, strip) in horizontal {
        let crosses = xs().any(|x| ink(x, inside) && ink(x, outside));
        let spread = xs().filter(|&x| strip.clone().any(|y| ink(x, y))).count();
        if crosses && spread >= 6 {
            return true;
        }
    }
    false
}

/// Angle (degrees) whose shear makes the ink's row profile sharpest: printed rules and text lines give
/// a peak at the page's skew. Returns 0 when the profile does not clearly prefer another angle.
fn estimate_skew(mask: &[u8], w: usize, h: usize, max_deg: f32) -> f32 {
    // Ink points, subsampled on a coarse grid of columns to bound the work on dense scans.
    let step = (w / 600).max(1);
    let mut pts: Vec<(f32, u32)> = Vec::new();
    for (y, row) in mask.chunks_exact(w).enumerate() {
        for x in (0..w).step_by(step) {
            if row[x] == 1 {
                pts.push((x as f32 - w as f32 / 2.0, y as u32));
            }
        }
    }
    if pts.len() < 50 || max_deg <= 0.0 {
        return 0.0;
    }
    // A few thousand points fix the angle to a tenth of a degree; more only cost time.
    let keep_every = pts.len().div_ceil(8000);
    if keep_every > 1 {
        pts = pts.into_iter().step_by(keep_every).collect();
    }
    let pad = (w as f32 * max_deg.to_radians().tan()).ceil() as usize + 2;
    let mut bins = vec![0u32; h + 2 * pad];
    let mut score = |deg: f32| -> f64 {
        bins.iter_mut().for_each(|b| *b = 0);
        let t = deg.to_radians().tan();
        // The padding keeps every sheared row index positive, so truncation rounds correctly.
        let off = pad as f32 + 0.5;
        for &(x, y) in &pts {
            let yy = (y as f32 - x * t + off) as usize;
            if let Some(b) = bins.get_mut(yy) {
                *b += 1;
            }
        }
        bins.iter().map(|&b| f64::from(b) * f64::from(b)).sum()
    };
    let base = score(0.0);
    let (mut best_deg, mut best) = (0.0f32, base);
    let coarse = (max_deg / 0.5).floor() as i32;
    for i in -coarse..=coarse {
        let d = i as f32 * 0.5;
        let s = score(d);
        if s > best {
            best = s;
            best_deg = d;
        }
    }
    let centre = best_deg;
    for i in -4..=4 {
        let d = centre + i as f32 * 0.1;
        if d.abs() > max_deg {
            continue;
        }
        let s = score(d);
        if s > best {
            best = s;
            best_deg = d;
        }
    }
    // A profile that barely improves is noise (e.g. a zone holding only a signature).
    if best < base * 1.05 { 0.0 } else { best_deg }
}

/// Nearest-neighbour rotation of a binary mask about its centre, onto a canvas large enough to hold
/// every source pixel.
struct Rotation {
    cos: f32,
    sin: f32,
    identity: bool,
    src_cx: f32,
    src_cy: f32,
    out_cx: f32,
    out_cy: f32,
    out_w: usize,
    out_h: usize,
}

impl Rotation {
    fn new(skew_deg: f32, w: usize, h: usize) -> Self {
        let identity = skew_deg.abs() < 0.05;
        let (sin, cos) = if identity {
            (0.0, 1.0)
        } else {
            skew_deg.to_radians().sin_cos()
        };
        let out_w = if identity {
            w
        } else {
            (w as f32 * cos + h as f32 * sin.abs()).ceil() as usize
        };
        let out_h = if identity {
            h
        } else {
            (h as f32 * cos + w as f32 * sin.abs()).ceil() as usize
        };
        Self {
            cos,
            sin,
            identity,
            src_cx: w as f32 / 2.0,
            src_cy: h as f32 / 2.0,
            out_cx: out_w as f32 / 2.0,
            out_cy: out_h as f32 / 2.0,
            out_w,
            out_h,
        }
    }

    /// Source coordinates of a point of the deskewed canvas.
    fn to_source(&self, u: f32, v: f32) -> (f32, f32) {
        let (du, dv) = (u - self.out_cx, v - self.out_cy);
        (
            self.src_cx + du * self.cos - dv * self.sin,
            self.src_cy + du * self.sin + dv * self.cos,
        )
    }

    fn apply(&self, src: &[u8], w: usize, h: usize) -> Vec<u8> {
        if self.identity {
            return src.to_vec();
        }
        let mut out = vec![0u8; self.out_w * self.out_h];
        // Fixed point (16 fractional bits): each step right moves (cos, sin) in the source.
        const ONE: f32 = 65536.0;
        let (dx, dy) = ((self.cos * ONE) as i64, (self.sin * ONE) as i64);
        for (v, row) in out.chunks_exact_mut(self.out_w).enumerate() {
            let (x, y) = self.to_source(0.5, v as f32 + 0.5);
            let (mut x, mut y) = ((x * ONE) as i64, (y * ONE) as i64);
            for dst in row.iter_mut() {
                // Negative coordinates become huge when cast, so one comparison per axis suffices.
                let (xi, yi) = ((x >> 16) as usize, (y >> 16) as usize);
                if x >= 0 && y >= 0 && xi < w && yi < h {
                    *dst = src[yi * w + xi];
                }
                x += dx;
                y += dy;
            }
        }
        out
    }
}

/// Clears printed rules: ink pixels on horizontal runs of at least `min_h` whose vertical ink extent is
/// at most `thick`, and likewise for vertical runs of at least `min_v`. Runs are measured on the mask
/// dilated by one pixel across the run, so a rule that steps by a pixel (residual skew) still counts as
/// one long run. A pen stroke crossing a rule has a larger extent across it, so the crossing survives.
fn remove_rules(m: &mut [u8], w: usize, h: usize, thick: usize, min_h: usize, min_v: usize) {
    const RULE: u8 = 2;
    // Faint or thin rules binarise into dashes; gaps this short do not end a run.
    let max_gap = (thick / 2).max(2);
    let ink = |v: u8| v != 0;
    // Ink counts per row and column: a row band (or column band) with fewer ink pixels than a rule's
    // length cannot hold one, so most of the zone is never scanned for rules.
    let mut row_count = vec![0usize; h];
    let mut col_count = vec![0usize; w];
    for (y, row) in m.chunks_exact(w).enumerate() {
        for (x, &v) in row.iter().enumerate() {
            let i = usize::from(v != 0);
            row_count[y] += i;
            col_count[x] += i;
        }
    }
    let near = |counts: &[usize], i: usize| {
        counts[i.saturating_sub(1)..(i + 2).min(counts.len())]
            .iter()
            .sum::<usize>()
    };
    let mut band = vec![false; w.max(h)];
    // Horizontal rules.
    for y in 0..h {
        if near(&row_count, y) < min_h {
            continue;
        }
        for (x, b) in band.iter_mut().take(w).enumerate() {
            *b = ink(m[y * w + x])
                || (y > 0 && ink(m[(y - 1) * w + x]))
                || (y + 1 < h && ink(m[(y + 1) * w + x]));
        }
        let mut x = 0;
        while x < w {
            if !band[x] {
                x += 1;
                continue;
            }
            let x0 = x;
            x = run_end(&band[..w], x, max_gap);
            if x - x0 < min_h {
                continue;
            }
            for xx in x0..x {
                if !ink(m[y * w + xx]) {
                    continue;
                }
                let mut up = 0;
                while up <= thick && y > up && ink(m[(y - up - 1) * w + xx]) {
                    up += 1;
                }
                let mut down = 0;
                while up + down <= thick && y + down + 1 < h && ink(m[(y + down + 1) * w + xx]) {
                    down += 1;
                }
                if up + down < thick {
                    m[y * w + xx] = RULE;
                }
            }
        }
    }
    // Vertical rules, only in columns with enough ink nearby.
    for x in 0..w {
        if near(&col_count, x) < min_v {
            continue;
        }
        for (y, b) in band.iter_mut().take(h).enumerate() {
            let row = y * w;
            *b = ink(m[row + x])
                || (x > 0 && ink(m[row + x - 1]))
                || (x + 1 < w && ink(m[row + x + 1]));
        }
        let mut y = 0;
        while y < h {
            if !band[y] {
                y += 1;
                continue;
            }
            let y0 = y;
            y = run_end(&band[..h], y, max_gap);
            if y - y0 < min_v {
                continue;
            }
            for yy in y0..y {
                let row = yy * w;
                if !ink(m[row + x]) {
                    continue;
                }
                let mut left = 0;
                while left <= thick && x > left && ink(m[row + x - left - 1]) {
                    left += 1;
                }
                let mut right = 0;
                while left + right <= thick && x + right + 1 < w && ink(m[row + x + right + 1]) {
                    right += 1;
                }
                if left + right < thick {
                    m[row + x] = RULE;
                }
            }
        }
    }
    for v in m.iter_mut() {
        if *v == RULE {
            *v = 0;
        }
    }
}

/// End (exclusive) of the run starting at `start`, bridging gaps of at most `max_gap` unset entries.
fn run_end(band: &[bool], start: usize, max_gap: usize) -> usize {
    let mut end = start;
    let mut i = start;
    while i < band.len() {
        if band[i] {
            end = i + 1;
            i += 1;
        } else if i - end < max_gap {
            i += 1;
        } else {
            break;
        }
    }
    end
}

/// Which components may belong to a signature: not specks, not straight rule fragments, not stamp
/// rings, not members of a line of printed characters.
fn classify_components(l: &Labelled, scale: f32, thick: u32) -> Vec<bool> {
    let comps = &l.components;
    let speck = (12.0 * scale * scale).max(4.0) as u32;
    let mut keep: Vec<bool> = comps.iter().map(|c| c.area >= speck).collect();

    // Straight, thin fragments left over from rules (box corners, short ticks).
    let long = (24.0 * scale) as u32;
    for (k, c) in keep.iter_mut().zip(comps) {
        if (c.width() <= thick + 1 && c.height() >= long)
            || (c.height() <= thick + 1 && c.width() >= long)
        {
            *k = false;
        }
    }

    // Stamp rings: round, hollow components whose pixels lie at a nearly constant distance from the
    // centre. Accumulate radius statistics per candidate over its runs.
    let min_ring = (40.0 * scale) as u32;
    let candidates: Vec<usize> = (0..comps.len())
        .filter(|&i| {
            let c = &comps[i];
            keep[i]
                && c.width() >= min_ring
                && c.height() >= min_ring
                && (0.75..=1.33).contains(&(c.width() as f32 / c.height() as f32))
        })
        .collect();
    if !candidates.is_empty() {
        let mut ring_stats = vec![RingStats::default(); comps.len()];
        let mut rings: Vec<Component> = Vec::new();
        for r in &l.runs {
            let c = &comps[r.label as usize];
            if !(keep[r.label as usize] && c.width() >= min_ring && c.height() >= min_ring) {
                continue;
            }
            let cx = (c.x0 + c.x1) as f32 / 2.0;
            let cy = (c.y0 + c.y1) as f32 / 2.0;
            let half = c.width().min(c.height()) as f32 / 2.0;
            let dy = r.y as f32 + 0.5 - cy;
            let st = &mut ring_stats[r.label as usize];
            for x in r.x0..r.x1 {
                let dx = x as f32 + 0.5 - cx;
                let d = (dx * dx + dy * dy).sqrt();
                st.total += 1;
                if d >= 0.6 * half && d <= 1.15 * half {
                    st.outer += 1;
                }
                let oct =
                    ((dy.atan2(dx) + std::f32::consts::PI) / std::f32::consts::FRAC_PI_4) as usize;
                st.octants[oct.min(7)] += 1;
            }
        }
        for &i in &candidates {
            let st = &ring_stats[i];
            if st.total == 0 {
                continue;
            }
            // A stamp (one ring or two concentric ones): nearly all ink far from the centre, and
            // spread all the way round.
            let outer = st.outer as f32 / st.total as f32;
            let octants = st.octants.iter().filter(|&&n| n * 20 >= st.total).count();
            if outer >= 0.9 && octants >= 7 {
                keep[i] = false;
                rings.push(comps[i]);
            }
        }
        // Whatever lies wholly inside a stamp's ring (an inner ring, its lettering) is stamp too.
        for (k, c) in keep.iter_mut().zip(comps) {
            if rings.iter().any(|r| {
                c.x0 + 2 >= r.x0 && c.y0 + 2 >= r.y0 && c.x1 <= r.x1 + 2 && c.y1 <= r.y1 + 2
            }) {
                *k = false;
            }
        }
    }

    // Lines of printed text: chains of at least four small components side by side on a shared band
    // of rows, spaced like characters. Heights may differ: small print breaks into pieces when
    // binarised.
    let text_h = (40.0 * scale) as u32;
    let mut small: Vec<usize> = (0..comps.len())
        .filter(|&i| keep[i] && comps[i].height() <= text_h && comps[i].width() <= 2 * text_h)
        .collect();
    small.sort_by_key(|&i| comps[i].x0);
    let mut sets = DisjointSets::new(small.len());
    for a in 0..small.len() {
        let ca = &comps[small[a]];
        for b in a + 1..small.len() {
            let cb = &comps[small[b]];
            let hmax = ca.height().max(cb.height());
            if cb.x0 > ca.x1 + 2 * hmax {
                break; // sorted by x0: every later component is further away
            }
            let overlap = ca.y1.min(cb.y1).saturating_sub(ca.y0.max(cb.y0));
            let hmin = ca.height().min(cb.height());
            if 3 * overlap >= 2 * hmin && horizontal_gap(ca, cb) <= 2 * hmax {
                sets.union(a, b);
            }
        }
    }
    let mut chain_len = vec![0usize; small.len()];
    for a in 0..small.len() {
        let r = sets.find(a);
        chain_len[r] += 1;
    }
    let mut text = vec![false; comps.len()];
    // Small print whose letters merged into one blob per word: low, wide and dense, where handwriting
    // of that height is sparse strokes.
    for &i in &small {
        let c = &comps[i];
        if 2 * c.height() <= text_h
            && c.width() >= 2 * c.height()
            && u64::from(c.area) * 10 >= 4 * u64::from(c.width()) * u64::from(c.height())
        {
            text[i] = true;
        }
    }
    for a in 0..small.len() {
        let r = sets.find(a);
        if chain_len[r] >= 4 {
            text[small[a]] = true;
        }
    }
    for (k, t) in keep.iter_mut().zip(text) {
        if t {
            *k = false;
        }
    }
    keep
}

#[derive(Clone, Default)]
struct RingStats {
    total: u32,
    outer: u32,
    octants: [u32; 8],
}

fn horizontal_gap(a: &Component, b: &Component) -> u32 {
    a.x0.max(b.x0).saturating_sub(a.x1.min(b.x1))
}

fn vertical_gap(a: &Component, b: &Component) -> u32 {
    a.y0.max(b.y0).saturating_sub(a.y1.min(b.y1))
}

/// A group of nearby components and its ink.
struct Group {
    members: Vec<usize>,
    area: u64,
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

/// Joins kept components whose boxes lie within `gap_x` horizontally and `gap_y` vertically.
fn group_components(comps: &[Component], keep: &[bool], gap_x: f32, gap_y: f32) -> Vec<Group> {
    let idx: Vec<usize> = (0..comps.len()).filter(|&i| keep[i]).collect();
    let mut sets = DisjointSets::new(idx.len());
    for a in 0..idx.len() {
        for b in a + 1..idx.len() {
            let (ca, cb) = (&comps[idx[a]], &comps[idx[b]]);
            // Side by side on one baseline (the words of a name) may sit further apart than pieces
            // above or below each other.
            let overlap = ca.y1.min(cb.y1).saturating_sub(ca.y0.max(cb.y0));
            let aligned = 2 * overlap >= ca.height().min(cb.height());
            let gx = if aligned { gap_x * 1.6 } else { gap_x };
            if horizontal_gap(ca, cb) as f32 <= gx && vertical_gap(ca, cb) as f32 <= gap_y {
                sets.union(a, b);
            }
        }
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut slot = vec![usize::MAX; idx.len()];
    for a in 0..idx.len() {
        let root = sets.find(a);
        let c = &comps[idx[a]];
        if slot[root] == usize::MAX {
            slot[root] = groups.len();
            groups.push(Group {
                members: Vec::new(),
                area: 0,
                x0: c.x0,
                y0: c.y0,
                x1: c.x1,
                y1: c.y1,
            });
        }
        let g = &mut groups[slot[root]];
        g.members.push(idx[a]);
        g.area += u64::from(c.area);
        g.x0 = g.x0.min(c.x0);
        g.y0 = g.y0.min(c.y0);
        g.x1 = g.x1.max(c.x1);
        g.y1 = g.y1.max(c.y1);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_from(rows: &[&str]) -> (Vec<u8>, usize, usize) {
        let w = rows[0].len();
        (
            rows.iter()
                .flat_map(|r| r.bytes().map(|b| u8::from(b == b'#')))
                .collect(),
            w,
            rows.len(),
        )
    }

    #[test]
    fn rule_removal_keeps_the_crossing_stroke() {
        let (mut m, w, h) = mask_from(&[
            "..........#.........",
            "..........#.........",
            "....................",
            "####################",
            "####################",
            "..........#.........",
            "..........#.........",
        ]);
        m[2 * w + 10] = 1; // the stroke is continuous through the rule
        remove_rules(&mut m, w, h, 3, 10, 100);
        // The rule is gone except where the stroke crosses it.
        for x in 0..w {
            let expect = u8::from(x == 10);
            assert_eq!(m[3 * w + x], expect, "row 3 col {x}");
            assert_eq!(m[4 * w + x], expect, "row 4 col {x}");
        }
        assert_eq!(m[w + 10], 1);
        assert_eq!(m[6 * w + 10], 1);
    }

    #[test]
    fn vertical_rule_is_removed_too() {
        let mut rows = vec!["..#.....".to_string(); 40];
        rows[20] = "..#####.".to_string();
        let refs: Vec<&str> = rows.iter().map(|s| s.as_str()).collect();
        let (mut m, w, h) = mask_from(&refs);
        remove_rules(&mut m, w, h, 3, 100, 30);
        assert_eq!(m[5 * w + 2], 0);
        // The short horizontal stroke touching the rule survives.
        assert_eq!(m[20 * w + 4], 1);
    }

    #[test]
    fn skew_estimate_recovers_the_slope_of_a_rule() {
        let (w, h) = (600usize, 200usize);
        for deg in [-4.0f32, -1.5, 0.0, 2.0, 3.7] {
            let mut m = vec![0u8; w * h];
            let t = deg.to_radians().tan();
            for x in 0..w {
                let y = (100.0 + (x as f32 - 300.0) * t).round() as usize;
                m[y * w + x] = 1;
                m[(y + 1) * w + x] = 1;
            }
            let est = estimate_skew(&m, w, h, 5.0);
            assert!((est - deg).abs() <= 0.15, "{deg} estimated as {est}");
        }
    }

    #[test]
    fn rotation_round_trips_coordinates() {
        let r = Rotation::new(3.0, 400, 200);
        let (x, y) = r.to_source(r.out_cx, r.out_cy);
        assert!((x - 200.0).abs() < 1e-3 && (y - 100.0).abs() < 1e-3);
        // A horizontal step on the canvas follows the skewed rule in the source.
        let (x2, y2) = r.to_source(r.out_cx + 100.0, r.out_cy);
        assert!(((y2 - y) / (x2 - x) - 3f32.to_radians().tan()).abs() < 1e-4);
    }

    #[test]
    fn iou_and_crop_validate() {
        let a = CropBox {
            x: 0,
            y: 0,
            width: 10,
            height: 10,
        };
        let b = CropBox {
            x: 5,
            y: 0,
            width: 10,
            height: 10,
        };
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.iou(&a), 1.0);
        let img = GrayImage::new(20, 10);
        assert_eq!(
            crop(
                &img,
                CropBox {
                    x: 15,
                    y: 5,
                    width: 100,
                    height: 100
                }
            )
            .expect("clamped")
            .dimensions(),
            (5, 5)
        );
        assert!(matches!(
            crop(
                &img,
                CropBox {
                    x: 20,
                    y: 0,
                    width: 5,
                    height: 5
                }
            ),
            Err(ImagingError::InvalidCrop(_))
        ));
        assert!(matches!(
            crop(
                &img,
                CropBox {
                    x: 0,
                    y: 0,
                    width: 0,
                    height: 5
                }
            ),
            Err(ImagingError::InvalidCrop(_))
        ));
    }

    #[test]
    fn layout_json_round_trips_and_rejects_bad_zones() {
        let l = ChequeLayout::default();
        let json = serde_json::to_string(&l).expect("json");
        assert_eq!(ChequeLayout::from_json(&json).expect("parse"), l);
        let partial = ChequeLayout::from_json(
            r#"{"signature_zone":{"left":0.5,"top":0.5,"right":0.9,"bottom":0.9}}"#,
        )
        .expect("partial");
        assert_eq!(partial.max_skew_degrees, 5.0);
        assert_eq!(
            partial.zone_box(1000, 500),
            CropBox {
                x: 500,
                y: 250,
                width: 400,
                height: 200
            }
        );
        for bad in [
            r#"{"signature_zone":{"left":0.9,"top":0.5,"right":0.5,"bottom":0.9}}"#,
            r#"{"signature_zone":{"left":-1,"top":0.5,"right":0.5,"bottom":0.9}}"#,
            r#"{"min_confidence": 3}"#,
            "not json",
        ] {
            assert!(
                matches!(
                    ChequeLayout::from_json(bad),
                    Err(ImagingError::InvalidLayout(_))
                ),
                "{bad}"
            );
        }
    }
}
