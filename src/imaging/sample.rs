//! Small synthetic cheques and signatures with known signature boxes, for tests and benchmarks.
//!
//! This is deliberately simple (the full generator lives in `synth`): white paper with a little noise,
//! printed text as rows of block glyphs, payee / words / memo / signature rules, an amount box, an
//! "authorised signature" caption, a MICR-like band, a signature of smooth pen strokes in the lower
//! right (sometimes crossing its line), sometimes a stamp ring, then skew, blur and noise. The ground
//! truth box is the bounding box of the signature's ink after all of that.

use image::GrayImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::cheque::CropBox;

/// A generated cheque and the truth about it.
#[derive(Clone, Debug)]
pub struct SampleCheque {
    pub image: GrayImage,
    /// Bounding box of the signature's ink, or `None` when the cheque is unsigned.
    pub signature_box: Option<CropBox>,
    pub skew_degrees: f32,
    pub has_stamp: bool,
    pub crosses_line: bool,
}

/// Darkness canvas: 0 = paper, 255 = black. Drawing keeps the darkest value.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Self {
            w,
            h,
            px: vec![0; w * h],
        }
    }

    fn disc(&mut self, cx: f32, cy: f32, r: f32, dark: u8) {
        let x0 = (cx - r).floor().max(0.0) as usize;
        let y0 = (cy - r).floor().max(0.0) as usize;
        let x1 = ((cx + r).ceil() as usize).min(self.w.saturating_sub(1));
        let y1 = ((cy + r).ceil() as usize).min(self.h.saturating_sub(1));
        let r2 = r * r;
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                if dx * dx + dy * dy <= r2 {
                    let p = &mut self.px[y * self.w + x];
                    *p = (*p).max(dark);
                }
            }
        }
    }

    fn line(&mut self, a: (f32, f32), b: (f32, f32), r: f32, dark: u8) {
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        let n = (len / 0.5).ceil().max(1.0) as usize;
        for i in 0..=n {
            let t = i as f32 / n as f32;
            self.disc(a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t, r, dark);
        }
    }

    fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, thick: f32, dark: u8) {
        self.fill(x0, y0, x1, y0 + thick, dark);
        self.fill(x0, y1 - thick, x1, y1, dark);
        self.fill(x0, y0, x0 + thick, y1, dark);
        self.fill(x1 - thick, y0, x1, y1, dark);
    }

    fn fill(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, dark: u8) {
        let cx = |v: f32| (v.round().max(0.0) as usize).min(self.w);
        let cy = |v: f32| (v.round().max(0.0) as usize).min(self.h);
        for y in cy(y0)..cy(y1) {
            for p in &mut self.px[y * self.w + cx(x0)..y * self.w + cx(x1)] {
                *p = (*p).max(dark);
            }
        }
    }

    fn ring(&mut self, cx: f32, cy: f32, radius: f32, r: f32, dark: u8) {
        let n = (radius * std::f32::consts::TAU / 0.5) as usize;
        for i in 0..n {
            let a = i as f32 / n as f32 * std::f32::consts::TAU;
            self.disc(cx + radius * a.cos(), cy + radius * a.sin(), r, dark);
        }
    }

    /// A line of printed capitals: every glyph spans the full cap height, as printed text does.
    fn text(
        &mut self,
        rng: &mut ChaCha8Rng,
        x: f32,
        y: f32,
        cap: f32,
        chars: usize,
        dark: u8,
    ) -> f32 {
        let gw = cap * 0.62;
        let pen = (cap / 14.0).max(0.8);
        let mut cx = x;
        for i in 0..chars {
            if i > 0 && rng.random_bool(0.15) {
                cx += gw; // a word gap
            }
            let (l, r, t, b) = (cx + pen, cx + gw - pen, y + pen, y + cap - pen);
            match rng.random_range(0..6) {
                0 => self.rect(l - pen, t - pen, r + pen, b + pen, 2.0 * pen, dark),
                1 => {
                    self.line((l, t), (l, b), pen, dark);
                    self.line((l, t), (r, t), pen, dark);
                    self.line(
                        (l, (t + b) / 2.0),
                        (r * 0.9 + l * 0.1, (t + b) / 2.0),
                        pen,
                        dark,
                    );
                }
                2 => {
                    self.line((l, b), ((l + r) / 2.0, t), pen, dark);
                    self.line(((l + r) / 2.0, t), (r, b), pen, dark);
                }
                3 => {
                    self.line((l, t), (l, b), pen, dark);
                    self.line((r, t), (r, b), pen, dark);
                    self.line((l, (t + b) / 2.0), (r, (t + b) / 2.0), pen, dark);
                }
                4 => {
                    self.line((l, t), (r, b), pen, dark);
                    self.line((r, t), (l, b), pen, dark);
                }
                _ => {
                    self.line((l, t), (r, t), pen, dark);
                    self.line(((l + r) / 2.0, t), ((l + r) / 2.0, b), pen, dark);
                }
            }
            cx += gw + cap * 0.18;
        }
        cx
    }
}

/// Draws a signature of smooth pen strokes into `c` within `area` = [x, y, width, height].
fn signature(c: &mut Canvas, rng: &mut ChaCha8Rng, area: [f32; 4], pen: f32, dark: u8) {
    let [x, y, w, h] = area;
    let strokes = rng.random_range(1..=3usize);
    let seg = w / strokes as f32;
    for s in 0..strokes {
        let sx = x + s as f32 * seg + rng.random_range(0.0..0.08) * seg;
        let len = seg * rng.random_range(0.8..0.95);
        let amp = h * rng.random_range(0.25..0.4);
        let f1 = rng.random_range(2.0..6.0f32);
        let f2 = f1 * rng.random_range(0.9..1.1f32);
        let loop_amp = len / (f1 * 2.0) * rng.random_range(0.2..0.9f32);
        let (p1, p2) = (rng.random_range(0.0..6.3f32), rng.random_range(0.0..6.3f32));
        let tilt = rng.random_range(-0.1..0.1f32);
        // Loops reach out by `loop_amp` either side; keep the stroke inside its share of the box.
        let len = len - 2.0 * loop_amp.min(len / 4.0);
        let n = (len * 4.0) as usize;
        let mut prev: Option<(f32, f32)> = None;
        for i in 0..=n {
            let t = i as f32 / n as f32;
            let tau = std::f32::consts::TAU;
            let px = sx + loop_amp.min(len / 4.0) + t * len + loop_amp * (tau * f2 * t + p2).cos();
            // The envelope keeps the ends of each stroke near the middle so the box is well filled.
            let env = 0.55 + 0.45 * (std::f32::consts::PI * t).sin();
            let py = y + h / 2.0 + amp * env * (tau * f1 * t + p1).sin() + tilt * (t - 0.5) * h;
            let p = (px, py);
            if let Some(q) = prev {
                c.line(q, p, pen, dark);
            }
            prev = Some(p);
        }
    }
}

/// Rotates a darkness canvas by `deg` about its centre (bilinear when `smooth`, else nearest).
fn rotate(c: &Canvas, deg: f32, smooth: bool) -> Canvas {
    let mut out = Canvas::new(c.w, c.h);
    let (s, co) = deg.to_radians().sin_cos();
    let (cx, cy) = (c.w as f32 / 2.0, c.h as f32 / 2.0);
    for y in 0..c.h {
        for x in 0..c.w {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            // Inverse map: rotate the destination point back by -deg.
            let sx = cx + dx * co + dy * s - 0.5;
            let sy = cy - dx * s + dy * co - 0.5;
            if sx < 0.0 || sy < 0.0 || sx >= (c.w - 1) as f32 || sy >= (c.h - 1) as f32 {
                continue;
            }
            let v = if smooth {
                let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
                let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
                let p = |xx: usize, yy: usize| f32::from(c.px[yy * c.w + xx]);
                let top = p(x0, y0) * (1.0 - fx) + p(x0 + 1, y0) * fx;
                let bot = p(x0, y0 + 1) * (1.0 - fx) + p(x0 + 1, y0 + 1) * fx;
                (top * (1.0 - fy) + bot * fy).round() as u8
            } else {
                c.px[(sy + 0.5) as usize * c.w + (sx + 0.5) as usize]
            };
            out.px[y * c.w + x] = v;
        }
    }
    out
}

/// Generates a `width x height` cheque from `seed`; unsigned when `signed` is false.
pub fn sample_cheque(seed: u64, width: u32, height: u32, signed: bool) -> SampleCheque {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (w, h) = (width as usize, height as usize);
    let (wf, hf) = (width as f32, height as f32);
    let s = hf / 800.0;
    let mut print = Canvas::new(w, h);
    let ink = |rng: &mut ChaCha8Rng| rng.random_range(170..=235u8);

    // Bank name and address, date, payee, amount box, words line, memo.
    let d = ink(&mut rng);
    let n = rng.random_range(8..16);
    print.text(&mut rng, 0.05 * wf, 0.05 * hf, 34.0 * s, n, d);
    let n = rng.random_range(15..30);
    print.text(&mut rng, 0.05 * wf, 0.12 * hf, 16.0 * s, n, d);
    let date_x = rng.random_range(0.62..0.7) * wf;
    let date_end = print.text(&mut rng, date_x, 0.13 * hf, 16.0 * s, 4, d);
    print.fill(
        date_end + 10.0 * s,
        0.13 * hf + 16.0 * s,
        0.95 * wf,
        0.13 * hf + 18.0 * s,
        d,
    );
    let pay_y = rng.random_range(0.27..0.33) * hf;
    let pay_end = print.text(&mut rng, 0.05 * wf, pay_y, 16.0 * s, 17, d);
    print.fill(
        pay_end + 10.0 * s,
        pay_y + 16.0 * s,
        0.7 * wf,
        pay_y + 18.0 * s,
        d,
    );
    let box_y = rng.random_range(0.24..0.34) * hf;
    print.rect(
        0.74 * wf,
        box_y,
        0.96 * wf,
        box_y + 0.1 * hf,
        rng.random_range(1.5..3.5) * s,
        d,
    );
    let words_y = rng.random_range(0.44..0.52) * hf;
    print.fill(
        0.05 * wf,
        words_y,
        rng.random_range(0.6..0.72) * wf,
        words_y + 2.0 * s,
        d,
    );
    let memo_y = rng.random_range(0.74..0.8) * hf;
    let memo_end = print.text(&mut rng, 0.05 * wf, memo_y - 16.0 * s, 14.0 * s, 4, d);
    print.fill(memo_end + 8.0 * s, memo_y, 0.42 * wf, memo_y + 2.0 * s, d);

    // Signature line and its caption.
    let line_y = rng.random_range(0.74..0.82) * hf;
    let line_x0 = rng.random_range(0.53..0.6) * wf;
    let line_x1 = rng.random_range(0.9..0.96) * wf;
    let line_t = rng.random_range(1.0..3.5) * s;
    print.fill(line_x0, line_y, line_x1, line_y + line_t, d);
    if rng.random_bool(0.6) {
        let cap = 12.0 * s;
        let n = rng.random_range(10..20);
        let tw = n as f32 * cap * 0.8;
        print.text(
            &mut rng,
            (line_x0 + line_x1 - tw) / 2.0,
            line_y + line_t + 6.0 * s,
            cap,
            n,
            d,
        );
    }

    // MICR-like code line along the bottom.
    let micr_y = rng.random_range(0.905..0.92) * hf;
    print.text(&mut rng, 0.1 * wf, micr_y, 26.0 * s, 30, 230);

    // The signature, usually resting on its line and sometimes crossing it.
    let mut sig = Canvas::new(w, h);
    let crosses = rng.random_bool(0.4);
    let sw = rng.random_range(0.17..0.28) * wf;
    let sh = rng.random_range(0.08..0.16) * hf;
    let sx = rng.random_range(line_x0..(line_x1 - sw).max(line_x0 + 1.0));
    let bottom = if crosses {
        line_y + rng.random_range(0.01..0.04) * hf
    } else {
        line_y - rng.random_range(0.005..0.03) * hf
    };
    if signed {
        let pen = rng.random_range(1.0..2.2) * s;
        let dark = rng.random_range(170..=240u8);
        signature(&mut sig, &mut rng, [sx, bottom - sh, sw, sh], pen, dark);
    }

    // A stamp ring beside the signature, in fainter ink.
    let has_stamp = rng.random_bool(0.3);
    if has_stamp {
        let radius = rng.random_range(45.0..65.0) * s;
        let left_room = sx - 0.46 * wf;
        let cx = if left_room > 2.2 * radius {
            rng.random_range(0.46 * wf + radius..sx - radius - 4.0 * s)
        } else {
            (sx + sw + radius + 6.0 * s).min(wf - radius - 2.0)
        };
        let cy = line_y - rng.random_range(0.0..0.5) * radius;
        let dark = rng.random_range(110..170u8);
        print.ring(cx, cy, radius, 1.6 * s, dark);
        if rng.random_bool(0.5) {
            print.ring(cx, cy, radius * 0.78, 1.2 * s, dark);
        }
    }

    // Merge, skew, blur and noise. The signature layer is rotated the same way for the ground truth.
    for (p, q) in print.px.iter_mut().zip(&sig.px) {
        *p = (*p).max(*q);
    }
    let skew = rng.random_range(-5.0..5.0f32);
    let dark = rotate(&print, skew, true);
    let blur = rng.random_bool(0.5);
    let paper = rng.random_range(232..=250u8);
    let noise = rng.random_range(2..7u32);
    // Per-pixel noise from a cheap xorshift: a ChaCha draw per pixel would dominate the run time.
    let mut state = rng.random::<u64>() | 1;
    let mut img = GrayImage::new(width, height);
    let out = img.as_mut();
    for y in 0..h {
        for x in 0..w {
            let dv = if blur && x > 0 && y > 0 && x + 1 < w && y + 1 < h {
                let mut acc = 0u32;
                for yy in y - 1..=y + 1 {
                    let row = &dark.px[yy * w + x - 1..yy * w + x + 2];
                    acc += row.iter().map(|&v| u32::from(v)).sum::<u32>();
                }
                (acc / 9) as i32
            } else {
                i32::from(dark.px[y * w + x])
            };
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (state % u64::from(2 * noise + 1)) as i32 - noise as i32;
            let v = i32::from(paper) - dv * i32::from(paper) / 255 + n;
            out[y * w + x] = v.clamp(0, 255) as u8;
        }
    }
    // Ground truth: the signature's ink pixels carried through the same rotation as the page.
    let signature_box = if signed {
        let (sn, cs) = skew.to_radians().sin_cos();
        let (cx, cy) = (wf / 2.0, hf / 2.0);
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for (i, &v) in sig.px.iter().enumerate() {
            if v == 0 {
                continue;
            }
            let (sx, sy) = ((i % w) as f32 + 0.5 - cx, (i / w) as f32 + 0.5 - cy);
            let (dx, dy) = (cx + sx * cs - sy * sn, cy + sx * sn + sy * cs);
            x0 = x0.min(dx);
            y0 = y0.min(dy);
            x1 = x1.max(dx);
            y1 = y1.max(dy);
        }
        (x1 >= x0).then(|| {
            let bx0 = x0.floor().clamp(0.0, wf - 1.0) as u32;
            let by0 = y0.floor().clamp(0.0, hf - 1.0) as u32;
            let bx1 = (x1.floor() + 1.0).clamp(1.0, wf) as u32;
            let by1 = (y1.floor() + 1.0).clamp(1.0, hf) as u32;
            CropBox {
                x: bx0,
                y: by0,
                width: bx1.saturating_sub(bx0).max(1),
                height: by1.saturating_sub(by0).max(1),
            }
        })
    } else {
        None
    };
    SampleCheque {
        image: img,
        signature_box,
        skew_degrees: skew,
        has_stamp,
        crosses_line: crosses,
    }
}

/// A bare signature on white paper, about `width x height`, for normalisation tests and benchmarks.
pub fn sample_signature(seed: u64, width: u32, height: u32) -> GrayImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (w, h) = (width as usize, height as usize);
    let mut c = Canvas::new(w, h);
    let pen = rng.random_range(1.5..3.0);
    let dark = rng.random_range(180..=240u8);
    let (wf, hf) = (width as f32, height as f32);
    let area = [0.08 * wf, 0.12 * hf, 0.84 * wf, 0.76 * hf];
    signature(&mut c, &mut rng, area, pen, dark);
    let mut img = GrayImage::new(width, height);
    for (o, &d) in img.as_mut().iter_mut().zip(&c.px) {
        let v = 245 - i32::from(d) * 245 / 255 + rng.random_range(-3..=3);
        *o = v.clamp(0, 255) as u8;
    }
    img
}
