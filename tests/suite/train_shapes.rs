//! Generated "signatures" for tests: each writer is a smooth curve through its own random control
//! points; genuine samples jitter those points a little, forgeries a lot. Written as real PNG files.

use std::path::Path;

use image::{GrayImage, Luma};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const W: u32 = 300;
pub const H: u32 = 120;

/// Control points of writer `w`.
pub fn writer_points(w: u64) -> Vec<(f32, f32)> {
    let mut rng = ChaCha8Rng::seed_from_u64(1000 + w);
    (0..7)
        .map(|i| {
            let x = 20.0 + i as f32 * 43.0 + rng.random_range(-10.0..10.0);
            let y = rng.random_range(20.0..(H as f32 - 20.0));
            (x, y)
        })
        .collect()
}

/// Draws a thick polyline through points interpolated with Catmull-Rom splines.
pub fn draw(points: &[(f32, f32)], thickness: f32) -> GrayImage {
    let mut img = GrayImage::from_pixel(W, H, Luma([240]));
    let n = points.len();
    for i in 0..n.saturating_sub(1) {
        let p0 = points[i.saturating_sub(1)];
        let (p1, p2) = (points[i], points[i + 1]);
        let p3 = points[(i + 2).min(n - 1)];
        for s in 0..60 {
            let t = s as f32 / 60.0;
            let (t2, t3) = (t * t, t * t * t);
            let f = |a: f32, b: f32, c: f32, d: f32| {
                0.5 * (2.0 * b
                    + (-a + c) * t
                    + (2.0 * a - 5.0 * b + 4.0 * c - d) * t2
                    + (-a + 3.0 * b - 3.0 * c + d) * t3)
            };
            let x = f(p0.0, p1.0, p2.0, p3.0);
            let y = f(p0.1, p1.1, p2.1, p3.1);
            let r = thickness / 2.0;
            for dy in -(r.ceil() as i32)..=(r.ceil() as i32) {
                for dx in -(r.ceil() as i32)..=(r.ceil() as i32) {
                    let (px, py) = (x as i32 + dx, y as i32 + dy);
                    if px >= 0
                        && py >= 0
                        && (px as u32) < W
                        && (py as u32) < H
                        && ((dx * dx + dy * dy) as f32) <= r * r
                    {
                        img.put_pixel(px as u32, py as u32, Luma([35]));
                    }
                }
            }
        }
    }
    img
}

/// One sample of writer `w`: genuine (small jitter) or forged (large jitter), seeded by `n`.
pub fn sample(w: u64, n: u64, genuine: bool) -> GrayImage {
    let mut rng = ChaCha8Rng::seed_from_u64(w * 7919 + n * 31 + u64::from(genuine));
    let jitter = if genuine { 3.0 } else { 14.0 };
    let pts: Vec<(f32, f32)> = writer_points(w)
        .into_iter()
        .map(|(x, y)| {
            (
                x + rng.random_range(-jitter..jitter),
                y + rng.random_range(-jitter..jitter),
            )
        })
        .collect();
    draw(&pts, rng.random_range(2.5..4.0))
}

pub fn save(img: &GrayImage, path: &Path) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    img.save(path).expect("save png");
}

/// Writes a writer-folder dataset: `<w>/` with `genuine` samples and `<w>_forg/` with `forged` ones.
pub fn write_folders(root: &Path, writers: u64, genuine: u64, forged: u64) {
    for w in 0..writers {
        for n in 0..genuine {
            save(
                &sample(w, n, true),
                &root.join(format!("w{w:02}")).join(format!("g{n:02}.png")),
            );
        }
        for n in 0..forged {
            save(
                &sample(w, n, false),
                &root
                    .join(format!("w{w:02}_forg"))
                    .join(format!("f{n:02}.png")),
            );
        }
    }
}
