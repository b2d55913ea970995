//! Cheque scans with a signature in the signature zone, and their ground truth.
//!
//! The layout follows a common European/UK personal cheque: bank name top left, date top right, a
//! payee line and an amount-in-words line written by hand, an amount box, a signature line in the lower
//! right and a MICR-like code line along the bottom. The signature is inked into its own mask as well,
//! and the mask goes through exactly the same skew as the cheque, so the ground-truth box is tight
//! around the signature's ink as it appears on the final scan.

use std::path::Path;
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::GrayImage;
use image::imageops::{FilterType, resize};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::SynthError;
use super::render::InkCanvas;
use super::scan::{ScanEffects, photometric, rotate};
use super::writer::SyntheticWriter;

/// A box in pixel coordinates (x, y of the top-left corner).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixelBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Ground truth written beside each cheque as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChequeTruth {
    pub cheque_id: String,
    pub writer: String,
    /// True for the account holder's own signature, false for a skilled forgery.
    pub genuine: bool,
    /// "genuine" or "forgery", as in the manifest.
    pub label: String,
    pub amount: String,
    /// Tight box around the signature's ink on the final cheque image (after skew).
    pub signature_box: PixelBox,
    /// The printed signature zone (before skew): where a reader should look for the signature.
    pub signature_zone: PixelBox,
    pub width: u32,
    pub height: u32,
    pub skew_deg: f32,
    pub stamp: bool,
}

/// How to render a cheque.
#[derive(Clone, Debug, PartialEq)]
pub struct ChequeOptions {
    pub cheque_id: String,
    pub writer_id: String,
    pub genuine: bool,
    /// Probability of a rubber stamp near the signature.
    pub stamp_probability: f32,
    /// Apply skew, blur, noise, paper texture and JPEG artefacts.
    pub scan: bool,
    /// The code line to print along the bottom (an X9 generator prints the item's MICR line);
    /// `None` prints a random one.
    pub micr: Option<String>,
}

impl Default for ChequeOptions {
    fn default() -> Self {
        ChequeOptions {
            cheque_id: "c000001".into(),
            writer_id: "w0001".into(),
            genuine: true,
            stamp_probability: 0.3,
            scan: true,
            micr: None,
        }
    }
}

const BANKS: &[&str] = &[
    "Northbridge Savings Bank",
    "Harbour & Vale Bank",
    "Crown Meadow Bank",
    "First Lowland Trust",
    "Eastgate Cooperative Bank",
    "Riverside Mercantile",
    "Bank of Aldermoor",
];
const TOWNS: &[&str] = &[
    "Amsterdam",
    "Leiden",
    "Utrecht",
    "Rotterdam",
    "Delft",
    "Haarlem",
    "Zwolle",
];
const STAMP_WORDS: &[&str] = &["PAID", "RECEIVED", "VERIFIED", "COPY", "ENTERED"];

fn fonts() -> Option<&'static (FontRef<'static>, FontRef<'static>)> {
    static FONTS: OnceLock<Option<(FontRef<'static>, FontRef<'static>)>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let sans = FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT).ok()?;
            let mono = FontRef::try_from_slice(epaint_default_fonts::HACK_REGULAR).ok()?;
            Some((sans, mono))
        })
        .as_ref()
}

/// Draws text with its baseline at `y`, returning the advance width.
fn draw_text(
    canvas: &mut InkCanvas,
    font: &FontRef<'_>,
    text: &str,
    x: f32,
    y: f32,
    px: f32,
    dark: f32,
) -> f32 {
    let scaled = font.as_scaled(PxScale::from(px));
    let mut caret = x;
    let mut last = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(prev) = last {
            caret += scaled.kern(prev, id);
        }
        let glyph = id.with_scale_and_position(px, point(caret, y));
        caret += scaled.h_advance(id);
        last = Some(id);
        if let Some(outline) = font.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline.draw(|gx, gy, cov| {
                canvas.put_max(
                    b.min.x as i64 + gx as i64,
                    b.min.y as i64 + gy as i64,
                    cov * dark,
                );
            });
        }
    }
    caret - x
}

fn hline(canvas: &mut InkCanvas, x0: f32, x1: f32, y: f32, thick: f32, dark: f32) {
    let mut x = x0;
    while x <= x1 {
        canvas.stamp(x, y, 0.5 * thick, dark);
        x += 0.5;
    }
}

fn rect(canvas: &mut InkCanvas, x0: f32, y0: f32, x1: f32, y1: f32, thick: f32, dark: f32) {
    hline(canvas, x0, x1, y0, thick, dark);
    hline(canvas, x0, x1, y1, thick, dark);
    let mut y = y0;
    while y <= y1 {
        canvas.stamp(x0, y, 0.5 * thick, dark);
        canvas.stamp(x1, y, 0.5 * thick, dark);
        y += 0.5;
    }
}

fn circle(canvas: &mut InkCanvas, cx: f32, cy: f32, r: f32, thick: f32, dark: f32) {
    let n = (std::f32::consts::TAU * r / 0.5).ceil() as usize;
    for i in 0..n {
        let a = i as f32 / n as f32 * std::f32::consts::TAU;
        canvas.stamp(cx + r * a.cos(), cy + r * a.sin(), 0.5 * thick, dark);
    }
}

/// Pastes a handwritten image (white paper, dark ink) scaled to `height` pixels with its bottom-left
/// at (x, bottom), into a darkness canvas.
fn paste_ink(
    canvas: &mut InkCanvas,
    img: &GrayImage,
    x: f32,
    bottom: f32,
    height: f32,
    max_width: f32,
) {
    if img.width() == 0 || img.height() == 0 {
        return;
    }
    let s = (height / img.height() as f32).min(max_width / img.width() as f32);
    let w = ((img.width() as f32 * s).round() as u32).max(1);
    let h = ((img.height() as f32 * s).round() as u32).max(1);
    let small = resize(img, w, h, FilterType::Triangle);
    let top = bottom - h as f32;
    for (px, py, p) in small.enumerate_pixels() {
        let d = (255.0 - p.0[0] as f32) / 255.0;
        if d > 0.0 {
            canvas.put_max(x as i64 + px as i64, top as i64 + py as i64, d);
        }
    }
}

/// Renders a cheque carrying `signature` (a 300 dpi signature image, white paper) in its signature zone.
pub fn render_cheque<R: Rng>(
    signature: &GrayImage,
    rng: &mut R,
    opts: &ChequeOptions,
) -> (GrayImage, ChequeTruth) {
    let width: u32 = 1700 + rng.random_range(0..60);
    let height: u32 = 780 + rng.random_range(0..40);
    let (wf, hf) = (width as f32, height as f32);
    let mut print = InkCanvas::new(width, height);
    let paper: f32 = rng.random_range(238.0..254.0);

    // Security background: faint wavy guilloche lines.
    let n_waves = rng.random_range(6..12);
    for k in 0..n_waves {
        let y0 = hf * (k as f32 + 0.5) / n_waves as f32;
        let amp = rng.random_range(6.0..20.0);
        let period = rng.random_range(120.0..300.0);
        let phase = rng.random_range(0.0..std::f32::consts::TAU);
        let mut x = 0.0;
        while x < wf {
            let y = y0 + amp * (std::f32::consts::TAU * x / period + phase).sin();
            print.stamp(x, y, 0.6, 0.07);
            x += 1.0;
        }
    }
    rect(&mut print, 12.0, 12.0, wf - 13.0, hf - 13.0, 2.0, 0.6);

    let bank = BANKS[rng.random_range(0..BANKS.len())];
    let town = TOWNS[rng.random_range(0..TOWNS.len())];
    let amount_cents: u64 = rng.random_range(500..2_500_000);
    let amount = format!(
        "{}.{:02}",
        group_thousands(amount_cents / 100),
        amount_cents % 100
    );
    let day = rng.random_range(1..=28);
    let month = rng.random_range(1..=12);
    let year = rng.random_range(2024..=2027);
    let cheque_no: u32 = rng.random_range(100_000..999_999);
    let sort: u32 = rng.random_range(10_000_000..99_999_999);
    let account: u64 = rng.random_range(1_000_000_000..9_999_999_999);
    let payee_seed: u64 = rng.random();
    let words_seed: u64 = rng.random();

    if let Some((sans, mono)) = fonts() {
        // Bank name drawn twice, a pixel apart, for a heavier weight than the light face.
        let bx = 50.0;
        draw_text(&mut print, sans, bank, bx, 80.0, 46.0, 0.95);
        draw_text(&mut print, sans, bank, bx + 1.0, 80.0, 46.0, 0.95);
        draw_text(
            &mut print,
            sans,
            &format!("{town} branch  ·  Sort code {sort}"),
            bx,
            112.0,
            22.0,
            0.8,
        );
        // Date top right.
        let dx = wf - 460.0;
        draw_text(&mut print, sans, "Date", dx, 95.0, 26.0, 0.85);
        hline(&mut print, dx + 70.0, wf - 60.0, 100.0, 1.5, 0.7);
        draw_text(
            &mut print,
            mono,
            &format!("{day:02}-{month:02}-{year}"),
            dx + 110.0,
            92.0,
            32.0,
            0.9,
        );
        // Payee and amount in words.
        draw_text(&mut print, sans, "Pay", 50.0, hf * 0.33, 28.0, 0.85);
        hline(&mut print, 110.0, wf * 0.68, hf * 0.33 + 4.0, 1.5, 0.7);
        draw_text(&mut print, sans, "the sum of", 50.0, hf * 0.47, 24.0, 0.85);
        hline(&mut print, 180.0, wf * 0.68, hf * 0.47 + 4.0, 1.5, 0.7);
        hline(&mut print, 50.0, wf * 0.68, hf * 0.58, 1.5, 0.7);
        // Amount box.
        let ax0 = wf * 0.72;
        rect(&mut print, ax0, hf * 0.36, wf - 60.0, hf * 0.47, 2.0, 0.8);
        draw_text(&mut print, sans, "EUR", ax0 + 12.0, hf * 0.44, 26.0, 0.85);
        draw_text(
            &mut print,
            mono,
            &amount,
            ax0 + 90.0,
            hf * 0.445,
            40.0,
            0.95,
        );
        // Account line and the signature caption.
        draw_text(
            &mut print,
            mono,
            &format!("Account {account}"),
            50.0,
            hf * 0.70,
            24.0,
            0.8,
        );
        draw_text(
            &mut print,
            sans,
            "Signature",
            wf * 0.6,
            hf - 138.0,
            22.0,
            0.8,
        );
        // MICR-like code line.
        let tail = rng.random_range(0..10_000);
        let micr = match &opts.micr {
            Some(m) => m.clone(),
            None => format!("|:{cheque_no:06}|:  {sort}:  {account}||  {tail:04}"),
        };
        draw_text(&mut print, mono, &micr, wf * 0.18, hf - 40.0, 40.0, 0.95);
    }
    let line_y = hf - 170.0 + rng.random_range(-10.0..10.0);
    let zone_x0 = wf * 0.58;
    let zone_x1 = wf - 40.0;
    hline(&mut print, zone_x0, zone_x1 - 20.0, line_y, 1.8, 0.75);

    // Handwritten payee and amount in words, in other people's hands (the clerk's or the drawer's).
    let mut hand_rng = rand_chacha::ChaCha8Rng::seed_from_u64(payee_seed);
    let payee = SyntheticWriter::new(payee_seed).genuine(&mut hand_rng);
    paste_ink(&mut print, &payee, 130.0, hf * 0.33 + 8.0, 58.0, wf * 0.5);
    let words = SyntheticWriter::new(words_seed).genuine(&mut hand_rng);
    paste_ink(&mut print, &words, 200.0, hf * 0.47 + 8.0, 52.0, wf * 0.45);

    // The signature: 300 dpi drawn, this cheque is about 200 dpi.
    let zone_top = line_y - 210.0;
    let zone = PixelBox {
        x: zone_x0 as u32,
        y: zone_top.max(0.0) as u32,
        width: (zone_x1 - zone_x0) as u32,
        height: (line_y + 50.0 - zone_top) as u32,
    };
    let mut scale: f32 = 200.0 / 300.0 * rng.random_range(0.85..1.15);
    let (sw0, sh0) = (
        signature.width().max(1) as f32,
        signature.height().max(1) as f32,
    );
    scale = scale
        .min(0.95 * zone.width as f32 / sw0)
        .min(1.2 * zone.height as f32 / sh0);
    let sw = ((sw0 * scale).round() as u32).max(1);
    let sh = ((sh0 * scale).round() as u32).max(1);
    let sig_small = resize(signature, sw, sh, FilterType::Triangle);
    let sx = zone_x0 + rng.random_range(0.0..((zone.width as f32 - sw as f32).max(1.0)));
    // The bottom of the signature image sits near the line: above it, on it, or through it.
    let sy = line_y + rng.random_range(-22.0..28.0) - sh as f32;
    let mut sig_mask = InkCanvas::new(width, height);
    for (px, py, p) in sig_small.enumerate_pixels() {
        let d = (255.0 - p.0[0] as f32) / 255.0;
        if d > 0.0 {
            sig_mask.put_max(sx as i64 + px as i64, sy as i64 + py as i64, d);
        }
    }

    let stamp = rng.random::<f32>() < opts.stamp_probability;
    let mut stamp_layer = InkCanvas::new(width, height);
    // Drawn from the generator whether or not a stamp is used, so every later random draw is the same.
    let stamp_r = rng.random_range(65.0..95.0);
    let stamp_cx = zone_x0 + rng.random_range(-60.0..260.0);
    let stamp_cy = line_y - rng.random_range(20.0..140.0);
    let stamp_dark = rng.random_range(0.35..0.6);
    let stamp_word = STAMP_WORDS[rng.random_range(0..STAMP_WORDS.len())];
    if stamp {
        circle(
            &mut stamp_layer,
            stamp_cx,
            stamp_cy,
            stamp_r,
            3.0,
            stamp_dark,
        );
        circle(
            &mut stamp_layer,
            stamp_cx,
            stamp_cy,
            stamp_r - 10.0,
            1.5,
            stamp_dark,
        );
        if let Some((sans, _)) = fonts() {
            let short: String = bank
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
                .to_uppercase();
            let date = format!("{day:02}.{month:02}.{year}");
            let lines = [
                (short.as_str(), -0.25, 0.22, 1.2),
                (stamp_word, 0.15, 0.36, 1.45),
                (date.as_str(), 0.5, 0.2, 1.0),
            ];
            for (text, dy, size, max_w) in lines {
                // Shrink the type until the line fits inside the ring at its height.
                let mut px = size * stamp_r;
                let w = text_width(sans, text, px);
                if w > max_w * stamp_r {
                    px *= max_w * stamp_r / w;
                }
                let w = text_width(sans, text, px);
                draw_text(
                    &mut stamp_layer,
                    sans,
                    text,
                    stamp_cx - 0.5 * w,
                    stamp_cy + dy * stamp_r,
                    px,
                    stamp_dark,
                );
            }
        }
    }

    // Compose: ink layers combine like transparent inks (multiplicatively on the paper).
    let mut img = GrayImage::new(width, height);
    let mut mask = GrayImage::new(width, height);
    for (i, (dst, m)) in img
        .as_mut()
        .iter_mut()
        .zip(mask.as_mut().iter_mut())
        .enumerate()
    {
        let a = print.get(i);
        let b = sig_mask.get(i);
        let c = stamp_layer.get(i);
        let keep = (1.0 - a) * (1.0 - b) * (1.0 - c);
        *dst = (paper * keep).round().clamp(0.0, 255.0) as u8;
        *m = (255.0 * b).round().clamp(0.0, 255.0) as u8;
    }

    let skew: f32 = if opts.scan {
        rng.random_range(-1.8..1.8)
    } else {
        0.0
    };
    let fx = {
        let mut f = ScanEffects::random(rng);
        f.dpi = super::scan::SOURCE_DPI;
        f.rotation_deg = 0.0;
        f.paper_level = 255.0;
        // Cheque readers scan cleanly; heavy sensor noise would also make the PNGs needlessly large.
        f.noise_sigma *= 0.15;
        f
    };
    if skew.abs() > 0.01 {
        img = rotate(&img, skew, paper as u8);
        mask = rotate(&mask, skew, 0);
    }
    if opts.scan {
        photometric(&mut img, &fx, rng);
        if let Some(q) = fx.jpeg_quality {
            img = super::scan::jpeg_roundtrip(&img, q);
        }
    }
    let signature_box = ink_box(&mask, 30).unwrap_or(PixelBox {
        x: zone.x,
        y: zone.y,
        width: 0,
        height: 0,
    });
    let truth = ChequeTruth {
        cheque_id: opts.cheque_id.clone(),
        writer: opts.writer_id.clone(),
        genuine: opts.genuine,
        label: if opts.genuine {
            "genuine".into()
        } else {
            "forgery".into()
        },
        amount,
        signature_box,
        signature_zone: zone,
        width,
        height,
        skew_deg: skew,
        stamp,
    };
    (img, truth)
}

fn text_width(font: &FontRef<'_>, text: &str, px: f32) -> f32 {
    let scaled = font.as_scaled(PxScale::from(px));
    text.chars()
        .map(|c| scaled.h_advance(scaled.glyph_id(c)))
        .sum()
}

fn group_thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// The tight box of mask pixels above `threshold`, or None when there are none.
pub fn ink_box(mask: &GrayImage, threshold: u8) -> Option<PixelBox> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in mask.enumerate_pixels() {
        if p.0[0] > threshold {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    (x0 != u32::MAX).then(|| PixelBox {
        x: x0,
        y: y0,
        width: x1 - x0 + 1,
        height: y1 - y0 + 1,
    })
}

/// Writes one cheque of writer `writer_id`: odd indices carry a skilled forgery, even ones a genuine
/// signature. Files: `DIR/cheques/<writer>_cNN.png` and `.json`.
pub fn write_cheque<R: Rng>(
    dir: &Path,
    writer: &SyntheticWriter,
    writer_id: &str,
    index: u32,
    rng: &mut R,
) -> Result<ChequeTruth, SynthError> {
    let genuine = index.is_multiple_of(2);
    let signature = if genuine {
        writer.genuine(rng)
    } else {
        let skill = rng.random_range(0.3..1.0);
        writer.forgery(rng, skill)
    };
    let opts = ChequeOptions {
        cheque_id: format!("{writer_id}_c{:02}", index + 1),
        writer_id: writer_id.to_string(),
        genuine,
        stamp_probability: 0.4,
        ..ChequeOptions::default()
    };
    let (img, truth) = render_cheque(&signature, rng, &opts);
    let cdir = dir.join("cheques");
    let png = cdir.join(format!("{}.png", truth.cheque_id));
    crate::output::write_png(&png, &crate::output::Protected::none(), &img).map_err(|e| {
        SynthError::Io {
            path: png.clone(),
            source: e.into(),
        }
    })?;
    let json_path = cdir.join(format!("{}.json", truth.cheque_id));
    let json = serde_json::to_vec_pretty(&truth).map_err(|source| SynthError::Json {
        path: json_path.clone(),
        source,
    })?;
    crate::output::write_unsynced(&json_path, &crate::output::Protected::none(), &json).map_err(
        |e| SynthError::Io {
            path: json_path.clone(),
            source: e.into(),
        },
    )?;
    Ok(truth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(5), "5");
        assert_eq!(group_thousands(1234), "1,234");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn fonts_load() {
        assert!(fonts().is_some());
    }

    #[test]
    fn ink_box_is_tight() {
        let mut m = GrayImage::new(50, 40);
        m.put_pixel(10, 5, Luma([200]));
        m.put_pixel(30, 20, Luma([200]));
        m.put_pixel(45, 35, Luma([10]));
        assert_eq!(
            ink_box(&m, 30),
            Some(PixelBox {
                x: 10,
                y: 5,
                width: 21,
                height: 16
            })
        );
        assert_eq!(ink_box(&GrayImage::new(5, 5), 30), None);
    }
}
