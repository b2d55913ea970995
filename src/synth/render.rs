//! Ink deposition: anti-aliased discs stamped along the sampled pen trajectory into one pre-sized
//! buffer, so a signature costs one allocation for its canvas and none per sample.

use image::GrayImage;
use rand::Rng;

/// A pen position to ink: centre, radius in pixels and darkness in [0, 1].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct InkPoint {
    pub x: f32,
    pub y: f32,
    pub radius: f32,
    pub darkness: f32,
    /// True for the first point of a pen-down movement (no line is drawn from the point before it).
    pub pen_down: bool,
}

/// A darkness buffer in [0, 1] the size of the output image.
pub struct InkCanvas {
    pub width: u32,
    pub height: u32,
    buf: Vec<f32>,
}

impl InkCanvas {
    pub fn new(width: u32, height: u32) -> InkCanvas {
        InkCanvas {
            width,
            height,
            buf: vec![0.0; width as usize * height as usize],
        }
    }

    /// Raises the darkness of one pixel to at least `v`; coordinates outside are ignored.
    #[inline]
    pub fn put_max(&mut self, x: i64, y: i64, v: f32) {
        if x >= 0
            && y >= 0
            && (x as u64) < u64::from(self.width)
            && (y as u64) < u64::from(self.height)
        {
            let cell = &mut self.buf[y as usize * self.width as usize + x as usize];
            if v > *cell {
                *cell = v;
            }
        }
    }

    /// The darkness at a linear pixel index (0 outside the buffer).
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        self.buf.get(i).copied().unwrap_or(0.0)
    }

    /// Stamps one anti-aliased disc; overlapping stamps keep the darker value, as ink from one pass of
    /// a pen does not build up.
    #[inline]
    pub fn stamp(&mut self, cx: f32, cy: f32, r: f32, darkness: f32) {
        let r = r.max(0.35);
        let x_lo = ((cx - r - 1.0).floor().max(0.0)) as i64;
        let y_lo = ((cy - r - 1.0).floor().max(0.0)) as i64;
        let x_hi = ((cx + r + 1.0).ceil() as i64).min(self.width as i64 - 1);
        let y_hi = ((cy + r + 1.0).ceil() as i64).min(self.height as i64 - 1);
        if x_lo > x_hi || y_lo > y_hi {
            return;
        }
        let w = self.width as usize;
        for py in y_lo..=y_hi {
            let dy = py as f32 - cy;
            let row = py as usize * w;
            for px in x_lo..=x_hi {
                let dx = px as f32 - cx;
                let dist = (dx * dx + dy * dy).sqrt();
                let cov = (r + 0.5 - dist).clamp(0.0, 1.0);
                if cov > 0.0 {
                    let v = cov * darkness;
                    let cell = &mut self.buf[row + px as usize];
                    if v > *cell {
                        *cell = v;
                    }
                }
            }
        }
    }

    /// Draws a polyline of ink points, filling the gaps between consecutive samples with stamps no
    /// further apart than half the pen radius: the edge of such a chain of discs deviates from a straight
    /// edge by under 0.04 radius, invisible, while halving the work of denser stamping.
    pub fn draw(&mut self, points: &[InkPoint]) {
        let mut prev: Option<InkPoint> = None;
        for &p in points {
            match prev {
                Some(q) if !p.pen_down => {
                    let len = ((p.x - q.x).powi(2) + (p.y - q.y).powi(2)).sqrt();
                    let step = (0.5 * p.radius.min(q.radius)).max(0.25);
                    let n = ((len / step).ceil() as usize).clamp(1, 10_000);
                    for j in 1..=n {
                        let f = j as f32 / n as f32;
                        self.stamp(
                            q.x + (p.x - q.x) * f,
                            q.y + (p.y - q.y) * f,
                            q.radius + (p.radius - q.radius) * f,
                            q.darkness + (p.darkness - q.darkness) * f,
                        );
                    }
                }
                _ => self.stamp(p.x, p.y, p.radius, p.darkness),
            }
            prev = Some(p);
        }
    }

    /// Converts to a white-paper grayscale image. `grain` in [0, 1] breaks the ink up a little, as a
    /// ballpoint or pencil line is never perfectly even.
    pub fn to_image<R: Rng + ?Sized>(&self, rng: &mut R, grain: f32) -> GrayImage {
        let mut img = GrayImage::from_pixel(self.width, self.height, image::Luma([255]));
        for (dst, &ink) in img.as_mut().iter_mut().zip(&self.buf) {
            if ink > 0.0 {
                let g = 1.0 - grain * rng.random::<f32>();
                let v = 255.0 * (1.0 - (ink * g).min(1.0));
                *dst = v.round().clamp(0.0, 255.0) as u8;
            }
        }
        img
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_line_is_solid_and_stays_inside() {
        let mut c = InkCanvas::new(60, 20);
        let pts = [
            InkPoint {
                x: 5.0,
                y: 10.0,
                radius: 2.0,
                darkness: 1.0,
                pen_down: true,
            },
            InkPoint {
                x: 55.0,
                y: 10.0,
                radius: 2.0,
                darkness: 1.0,
                pen_down: false,
            },
            // A point far outside is clipped without panicking.
            InkPoint {
                x: 500.0,
                y: -90.0,
                radius: 2.0,
                darkness: 1.0,
                pen_down: true,
            },
        ];
        c.draw(&pts);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let img = c.to_image(&mut rng, 0.0);
        for x in 5..=55 {
            assert_eq!(img.get_pixel(x, 10).0[0], 0, "gap at x={x}");
        }
        assert_eq!(img.get_pixel(30, 2).0[0], 255);
    }
}
