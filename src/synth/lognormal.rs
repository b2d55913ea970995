//! Sigma-lognormal strokes (Plamondon's kinematic theory) and their dense sampling.
//!
//! Each stroke moves the pen along a circular arc of length `d` whose direction turns from
//! `theta_start` to `theta_start + dtheta`; the fraction of the arc covered by time `t` is the lognormal
//! CDF with onset `t0`, log-time delay `mu` and log-response time `sigma`. The pen position is the sum
//! of all strokes' displacements, so strokes that overlap in time blend into the smooth, rounded
//! movement of a practised hand, and strokes that barely overlap give the stops and corners of a slow one.

/// One lognormal stroke.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stroke {
    pub d: f32,
    pub t0: f32,
    pub mu: f32,
    pub sigma: f32,
    pub theta_start: f32,
    pub dtheta: f32,
}

impl Stroke {
    /// The stroke that carries the pen along the chord `(cx, cy)` on an arc that turns by `dtheta`.
    pub fn for_chord(cx: f32, cy: f32, dtheta: f32, t0: f32, mu: f32, sigma: f32) -> Stroke {
        let chord = (cx * cx + cy * cy).sqrt();
        let phi = cy.atan2(cx);
        let half = 0.5 * dtheta;
        // The arc length whose chord is `chord`: d = chord * (dtheta/2) / sin(dtheta/2).
        let d = if half.abs() < 1e-4 {
            chord
        } else {
            chord * half / half.sin()
        };
        Stroke {
            d,
            t0,
            mu,
            sigma,
            theta_start: phi - half,
            dtheta,
        }
    }

    /// Time after which the stroke is complete for drawing purposes (CDF above 0.9998).
    pub fn end_time(&self) -> f32 {
        self.t0 + (self.mu + 3.6 * self.sigma).exp()
    }

    /// The fraction of the arc covered at time `t`.
    #[inline]
    pub fn fraction(&self, t: f32) -> f32 {
        let dt = t - self.t0;
        if dt <= 0.0 {
            return 0.0;
        }
        let z = (dt.ln() - self.mu) / (self.sigma * std::f32::consts::SQRT_2);
        0.5 * (1.0 + crate::math::erf(f64::from(z)) as f32)
    }

    /// The displacement after covering fraction `f` of the arc.
    #[inline]
    pub fn displacement(&self, f: f32) -> (f32, f32) {
        if self.dtheta.abs() < 1e-4 {
            let (s, c) = self.theta_start.sin_cos();
            (self.d * f * c, self.d * f * s)
        } else {
            let r = self.d / self.dtheta;
            let (s0, c0) = self.theta_start.sin_cos();
            let (s1, c1) = (self.theta_start + self.dtheta * f).sin_cos();
            (r * (s1 - s0), r * (c0 - c1))
        }
    }
}

/// A sampled pen position with the speed there (pixels per second).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PenSample {
    pub x: f32,
    pub y: f32,
    pub speed: f32,
}

/// Samples a pen-down movement that starts at `(x0, y0)` every `dt` seconds until every stroke is
/// complete, appending to `out` (which the caller reuses, so there is no allocation per signature once
/// it has grown). `strokes` must be sorted by onset.
pub fn sample_strokes(strokes: &[Stroke], x0: f32, y0: f32, dt: f32, out: &mut Vec<PenSample>) {
    let Some(first) = strokes.first() else { return };
    let t_end = strokes
        .iter()
        .map(Stroke::end_time)
        .fold(first.t0, f32::max);
    let mut done_x = x0;
    let mut done_y = y0;
    let mut first_active = 0;
    let mut t = first.t0;
    let mut prev: Option<(f32, f32)> = None;
    // A hard cap keeps a pathological timing from producing millions of samples.
    let max_samples = 20_000;
    let mut n = 0;
    while t <= t_end + dt && n < max_samples {
        // Strokes that have finished contribute their whole chord; fold them in once.
        while first_active < strokes.len() && strokes[first_active].end_time() < t {
            let (dx, dy) = strokes[first_active].displacement(1.0);
            done_x += dx;
            done_y += dy;
            first_active += 1;
        }
        let mut x = done_x;
        let mut y = done_y;
        for s in &strokes[first_active..] {
            if s.t0 >= t {
                break;
            }
            let (dx, dy) = s.displacement(s.fraction(t));
            x += dx;
            y += dy;
        }
        let speed = match prev {
            Some((px, py)) => ((x - px).powi(2) + (y - py).powi(2)).sqrt() / dt,
            None => 0.0,
        };
        out.push(PenSample { x, y, speed });
        prev = Some((x, y));
        t += dt;
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stroke_ends_at_its_chord() {
        for dtheta in [-2.0_f32, -0.5, 0.0, 0.7, 2.5] {
            let s = Stroke::for_chord(30.0, -12.0, dtheta, 0.0, -2.0, 0.3);
            let (x, y) = s.displacement(1.0);
            assert!(
                (x - 30.0).abs() < 1e-3 && (y + 12.0).abs() < 1e-3,
                "dtheta {dtheta}: ({x}, {y})"
            );
        }
    }

    #[test]
    fn overlapping_strokes_reach_the_last_target() {
        let strokes = [
            Stroke::for_chord(50.0, 0.0, 0.5, 0.0, -2.0, 0.3),
            Stroke::for_chord(0.0, 40.0, -0.8, 0.06, -2.0, 0.3),
            Stroke::for_chord(-20.0, -10.0, 0.0, 0.12, -2.1, 0.25),
        ];
        let mut out = Vec::new();
        sample_strokes(&strokes, 5.0, 5.0, 0.001, &mut out);
        let last = out.last().copied().unwrap_or_default();
        assert!(
            (last.x - 35.0).abs() < 0.1 && (last.y - 35.0).abs() < 0.1,
            "{last:?}"
        );
        // The path is continuous: no jump larger than the peak speed allows.
        assert!(
            out.windows(2)
                .all(|w| ((w[1].x - w[0].x).powi(2) + (w[1].y - w[0].y).powi(2)).sqrt() < 5.0)
        );
    }
}
