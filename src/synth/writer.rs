//! Synthetic writers: a plan plus a motor style, executed with natural variation (genuine) or by
//! another person copying it (skilled forgery).

use image::GrayImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::lognormal::{PenSample, Stroke, sample_strokes};
use super::plan::{ActionPlan, ComponentKind, PlanStyle, random_plan};
use super::render::{InkCanvas, InkPoint};

/// The time step of the pen trajectory. Two milliseconds keeps consecutive samples a few pixels apart
/// at a fast writer's peak speed; the renderer fills the gaps.
const DT: f32 = 0.002;

/// A writer's motor style. Everything a person does the same way every time they sign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WriterParams {
    /// How alike the writer's own signatures are, in [0, 1]: 1 is a very consistent signer.
    pub stability: f32,
    /// Height of a lowercase letter in pixels at 300 dpi.
    pub x_height_px: f32,
    /// Horizontal stretch of the letters relative to their height.
    pub width: f32,
    /// Extra vertical scale of the whole signature (tall or flat writing).
    pub y_scale: f32,
    /// Slant of the writing in degrees; positive leans right.
    pub slant_deg: f32,
    /// Angle of the baseline in degrees; positive rises to the right.
    pub baseline_deg: f32,
    /// Pen line width in pixels.
    pub pen_width_px: f32,
    /// Ink darkness in [0, 1] (pencil-grey to black ballpoint).
    pub ink: f32,
    /// Typical lognormal time scale `exp(mu)` of a stroke in seconds; smaller is faster.
    pub stroke_time_s: f32,
    /// Typical lognormal `sigma` (log-response time) of a stroke.
    pub sigma: f32,
    /// Onset gap between strokes through a smooth target, in units of the stroke time.
    pub gap_smooth: f32,
    /// Onset gap after a cusp (where the pen nearly stops), in units of the stroke time.
    pub gap_cusp: f32,
    /// How much later letters shrink (trailing off), in [0, 0.5].
    pub size_decay: f32,
    /// Variation of pen pressure along the line, in [0, 0.5].
    pub pressure_var: f32,
    /// How much faster movement thins the line, in [0, 0.5].
    pub speed_thinning: f32,
    /// Height of the lowercase body relative to the x-height (small or large middle zone).
    pub zone_mid: f32,
    /// Relative height of ascenders and capitals above the middle zone.
    pub zone_ascender: f32,
    /// Relative depth of descenders.
    pub zone_descender: f32,
    /// How far the writer's personal letter forms depart from the copybook, in x-heights.
    pub idiosyncrasy: f32,
    /// Probability that the plan starts with a long entry stroke.
    pub lead_in: f32,
}

impl WriterParams {
    /// A random, plausible motor style.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> WriterParams {
        let n = |rng: &mut R| -> f32 { rng.sample(StandardNormal) };
        WriterParams {
            stability: rng.random_range(0.5..0.95),
            x_height_px: rng.random_range(48.0..85.0),
            width: rng.random_range(0.95..1.7),
            y_scale: rng.random_range(0.8..1.3),
            slant_deg: (12.0 + 10.0 * n(rng)).clamp(-15.0, 35.0),
            baseline_deg: (2.0 + 3.0 * n(rng)).clamp(-7.0, 10.0),
            pen_width_px: rng.random_range(3.0..7.0),
            ink: rng.random_range(0.55..0.95),
            stroke_time_s: rng.random_range(0.07..0.13),
            sigma: rng.random_range(0.22..0.36),
            gap_smooth: rng.random_range(0.35..0.65),
            gap_cusp: rng.random_range(0.9..1.3),
            size_decay: rng.random_range(0.0..0.45),
            pressure_var: rng.random_range(0.1..0.35),
            speed_thinning: rng.random_range(0.1..0.4),
            zone_mid: rng.random_range(0.6..1.1),
            zone_ascender: rng.random_range(0.7..1.5),
            zone_descender: rng.random_range(0.6..1.3),
            idiosyncrasy: rng.random_range(0.03..0.16),
            lead_in: rng.random_range(0.0..0.5),
        }
    }
}

/// How one signature is executed: the writer's style plus this occasion's variation.
#[derive(Clone, Debug)]
struct Performance {
    /// Standard deviation of target-point displacement, in x-heights.
    target_jitter: f32,
    /// Amplitude of a smooth horizontal warp of the plan, in x-heights (proportions).
    warp: f32,
    sx: f32,
    sy: f32,
    slant: f32,
    rotation: f32,
    x_height: f32,
    pen_radius: f32,
    ink: f32,
    pressure_var: f32,
    speed_thinning: f32,
    stroke_time: f32,
    time_jitter: f32,
    sigma: f32,
    gap_smooth: f32,
    gap_cusp: f32,
    gap_jitter: f32,
    dtheta_jitter: f32,
    tremor_px: f32,
    tremor_hz: f32,
    /// Probability of lifting the pen (a hesitation) at a smooth target inside a word.
    lift_prob: f32,
    /// Forgers stop the pen before lifting it; genuine writers lift while still moving (tapered ends).
    blunt: bool,
    /// Probability of leaving out each dot or bar.
    skip_mark: f32,
    grain: f32,
}

/// A synthetic writer: an action plan and a motor style. Deterministic from its seed.
#[derive(Clone, Debug)]
pub struct SyntheticWriter {
    seed: u64,
    params: WriterParams,
    plan: ActionPlan,
}

fn gauss<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    rng.sample(StandardNormal)
}

fn wrap(a: f32) -> f32 {
    let tau = std::f32::consts::TAU;
    let mut a = a % tau;
    if a > std::f32::consts::PI {
        a -= tau;
    } else if a < -std::f32::consts::PI {
        a += tau;
    }
    a
}

impl SyntheticWriter {
    /// A new random writer (name-like plan and motor style) from a seed.
    pub fn new(seed: u64) -> SyntheticWriter {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let params = WriterParams::random(&mut rng);
        Self::with_params(seed, params)
    }

    /// A writer with a chosen motor style; the plan still comes from the seed.
    pub fn with_params(seed: u64, params: WriterParams) -> SyntheticWriter {
        // The plan has its own stream so changing the style does not change the name.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
        let style = PlanStyle {
            width: params.width,
            decay: params.size_decay,
            mid: params.zone_mid,
            ascender: params.zone_ascender,
            descender: params.zone_descender,
            idiosyncrasy: params.idiosyncrasy,
            lead_in: params.lead_in,
        };
        let plan = random_plan(&mut rng, style);
        SyntheticWriter { seed, params, plan }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn params(&self) -> &WriterParams {
        &self.params
    }

    /// The letters the writer's plan spells (for display; signatures are rarely this legible).
    pub fn text(&self) -> &str {
        &self.plan.text
    }

    /// A genuine signature: the writer's own plan with the natural variation of one occasion.
    pub fn genuine<R: Rng>(&self, rng: &mut R) -> GrayImage {
        let p = &self.params;
        let u = 1.0 - p.stability.clamp(0.0, 1.0);
        let perf = Performance {
            target_jitter: 0.025 + 0.07 * u,
            warp: 0.05 + 0.15 * u,
            sx: 1.0 + (0.03 + 0.07 * u) * gauss(rng),
            sy: p.y_scale * (1.0 + (0.03 + 0.07 * u) * gauss(rng)),
            slant: (p.slant_deg + (1.5 + 4.0 * u) * gauss(rng)).to_radians(),
            rotation: (p.baseline_deg + (1.0 + 3.0 * u) * gauss(rng)).to_radians(),
            x_height: p.x_height_px * (1.0 + (0.03 + 0.06 * u) * gauss(rng)),
            pen_radius: 0.5 * p.pen_width_px * (1.0 + 0.06 * gauss(rng)),
            ink: (p.ink * (1.0 + 0.05 * gauss(rng))).clamp(0.3, 1.0),
            pressure_var: p.pressure_var,
            speed_thinning: p.speed_thinning,
            stroke_time: p.stroke_time_s * (1.0 + (0.03 + 0.08 * u) * gauss(rng)),
            time_jitter: 0.06 + 0.14 * u,
            sigma: p.sigma,
            gap_smooth: p.gap_smooth * (1.0 + 0.08 * gauss(rng)),
            gap_cusp: p.gap_cusp,
            gap_jitter: 0.08 + 0.18 * u,
            dtheta_jitter: 0.06 + 0.18 * u,
            tremor_px: 0.0,
            tremor_hz: 8.0,
            lift_prob: 0.0,
            blunt: false,
            skip_mark: 0.03 + 0.1 * u,
            grain: 0.15,
        };
        execute(&self.plan, &perf, rng)
    }

    /// A skilled forgery: another person copying this writer's plan. `skill` in [0, 1]; higher is a
    /// closer, more fluent copy.
    pub fn forgery<R: Rng>(&self, rng: &mut R, skill: f32) -> GrayImage {
        let p = &self.params;
        let skill = if skill.is_finite() {
            skill.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let u = 1.0 - skill;
        // The forger's own pen and hand.
        let own = WriterParams::random(rng);
        let perf = Performance {
            target_jitter: 0.04 + 0.1 * u,
            warp: 0.1 + 0.3 * u,
            sx: 1.0 + (0.04 + 0.12 * u) * gauss(rng),
            sy: p.y_scale * (1.0 + (0.04 + 0.12 * u) * gauss(rng)),
            slant: (p.slant_deg + (2.0 + 8.0 * u) * gauss(rng)).to_radians(),
            rotation: (p.baseline_deg + (1.5 + 4.0 * u) * gauss(rng)).to_radians(),
            x_height: p.x_height_px * (1.0 + (0.04 + 0.12 * u) * gauss(rng)),
            pen_radius: 0.5 * (0.5 * p.pen_width_px + 0.5 * own.pen_width_px) * 1.1,
            ink: own.ink,
            // A careful copier presses evenly and does not speed up enough to thin the line.
            pressure_var: 0.5 * own.pressure_var,
            speed_thinning: 0.3 * own.speed_thinning,
            stroke_time: p.stroke_time_s * (1.6 + 1.6 * u) * (1.0 + 0.1 * gauss(rng)),
            time_jitter: 0.12 + 0.2 * u,
            sigma: p.sigma * (0.9 + 0.2 * rng.random::<f32>()),
            // Slow drawing: strokes follow one another with little overlap, so corners are angular.
            gap_smooth: p.gap_smooth + (0.25 + 0.5 * u) * (p.gap_cusp - p.gap_smooth).max(0.2),
            gap_cusp: p.gap_cusp * 1.1,
            gap_jitter: 0.15 + 0.25 * u,
            dtheta_jitter: 0.1 + 0.3 * u,
            tremor_px: 0.25 + 1.0 * u,
            tremor_hz: rng.random_range(5.0..10.0),
            lift_prob: 0.02 + 0.1 * u,
            blunt: true,
            skip_mark: 0.05 + 0.2 * u,
            grain: 0.15,
        };
        execute(&self.plan, &perf, rng)
    }
}

/// Executes a plan: transforms the targets, turns each component into lognormal strokes, samples
/// them, adds tremor, and inks the result onto a canvas cropped to the signature with a margin.
fn execute<R: Rng + ?Sized>(plan: &ActionPlan, perf: &Performance, rng: &mut R) -> GrayImage {
    let xh = perf.x_height.clamp(8.0, 200.0);
    let (rs, rc) = perf.rotation.sin_cos();
    let shear = perf.slant.tan().clamp(-1.0, 1.0);
    let warp_phase = rng.random_range(0.0..std::f32::consts::TAU);
    let warp_len = rng.random_range(2.0..5.0);
    let to_px = |x: f32, y: f32| -> (f32, f32) {
        let x = x + perf.warp * (std::f32::consts::TAU * x / warp_len + warp_phase).sin();
        let x = x * perf.sx * xh + shear * y * perf.sy * xh;
        let y = y * perf.sy * xh;
        (x * rc - y * rs, x * rs + y * rc)
    };

    let mut points: Vec<(f32, f32, bool)> = Vec::with_capacity(64);
    let mut strokes: Vec<Stroke> = Vec::with_capacity(64);
    let mut samples: Vec<PenSample> = Vec::with_capacity(4096);
    let mut ink: Vec<InkPoint> = Vec::with_capacity(8192);
    let mut t_offset = 0.0_f32;
    let tremor_phase: [f32; 4] =
        std::array::from_fn(|_| rng.random_range(0.0..std::f32::consts::TAU));

    for comp in &plan.components {
        if matches!(comp.kind, ComponentKind::Dot | ComponentKind::Bar)
            && rng.random::<f32>() < perf.skip_mark
        {
            continue;
        }
        // Targets in pixels (y up), with this occasion's jitter; hesitations split the component.
        points.clear();
        let mut pieces: Vec<(usize, usize)> = Vec::new();
        let mut piece_start = 0;
        for (i, t) in comp.targets.iter().enumerate() {
            let jx = perf.target_jitter * gauss(rng);
            let jy = perf.target_jitter * gauss(rng);
            let (x, y) = to_px(t.x + jx, t.y + jy);
            points.push((x, y, t.cusp));
            let inner = i > 0 && i + 1 < comp.targets.len();
            if inner && comp.kind == ComponentKind::Word && rng.random::<f32>() < perf.lift_prob {
                pieces.push((piece_start, points.len()));
                // The pen comes down again a little off the point where it stopped.
                let (ox, oy) = (0.6 * gauss(rng), 0.6 * gauss(rng));
                points.push((x + ox, y + oy, t.cusp));
                piece_start = points.len() - 1;
            }
        }
        pieces.push((piece_start, points.len()));

        for &(a, b) in &pieces {
            let pts = &points[a..b];
            if pts.len() < 2 {
                continue;
            }
            build_strokes(pts, comp.kind, perf, xh, rng, &mut strokes);
            samples.clear();
            sample_strokes(&strokes, pts[0].0, pts[0].1, DT, &mut samples);
            append_ink(
                &samples,
                comp.kind,
                perf,
                xh,
                t_offset,
                &tremor_phase,
                rng,
                &mut ink,
            );
            t_offset += samples.len() as f32 * DT + 0.2;
        }
    }

    rasterise(&ink, perf.grain, rng)
}

/// Turns target points into overlapping lognormal strokes, one per segment.
fn build_strokes<R: Rng + ?Sized>(
    pts: &[(f32, f32, bool)],
    kind: ComponentKind,
    perf: &Performance,
    xh: f32,
    rng: &mut R,
    out: &mut Vec<Stroke>,
) {
    out.clear();
    let n = pts.len();
    // The tangent direction at each target: none at cusps and ends, else the Catmull-Rom direction.
    let tangent = |i: usize| -> Option<f32> {
        if i == 0 || i + 1 >= n || pts[i].2 {
            return None;
        }
        Some((pts[i + 1].1 - pts[i - 1].1).atan2(pts[i + 1].0 - pts[i - 1].0))
    };
    let speed_factor = match kind {
        ComponentKind::Underline | ComponentKind::Bar => 0.8,
        ComponentKind::Dot => 0.6,
        _ => 1.0,
    };
    let mut t0 = 0.0_f32;
    for k in 0..n - 1 {
        let (x0, y0, _) = pts[k];
        let (x1, y1, cusp_end) = pts[k + 1];
        let (cx, cy) = (x1 - x0, y1 - y0);
        let phi = cy.atan2(cx);
        let ts = tangent(k).map_or(0.0, |t| wrap(t - phi));
        let te = tangent(k + 1).map_or(0.0, |t| wrap(t - phi));
        let dtheta = ((te - ts) * 0.9 + perf.dtheta_jitter * gauss(rng)).clamp(-2.8, 2.8);
        let chord = (cx * cx + cy * cy).sqrt() / xh;
        // Longer strokes take a little longer (weak isochrony).
        let big_t = perf.stroke_time
            * speed_factor
            * chord.clamp(0.05, 4.0).powf(0.3)
            * (perf.time_jitter * gauss(rng)).exp();
        let sigma = (perf.sigma * (1.0 + 0.08 * gauss(rng))).clamp(0.12, 0.6);
        out.push(Stroke::for_chord(cx, cy, dtheta, t0, big_t.ln(), sigma));
        let gap = if cusp_end {
            perf.gap_cusp
        } else {
            perf.gap_smooth
        };
        t0 += (big_t * gap * (perf.gap_jitter * gauss(rng)).exp()).max(0.005);
    }
}

/// Converts the samples of one pen-down movement into ink points (pressure, width, tremor, tapering).
#[allow(clippy::too_many_arguments)]
fn append_ink<R: Rng + ?Sized>(
    samples: &[PenSample],
    kind: ComponentKind,
    perf: &Performance,
    xh: f32,
    t_offset: f32,
    tremor_phase: &[f32; 4],
    rng: &mut R,
    out: &mut Vec<InkPoint>,
) {
    if samples.is_empty() {
        return;
    }
    let peak = samples
        .iter()
        .map(|s| s.speed)
        .fold(0.0_f32, f32::max)
        .max(1e-3);
    let mean = (samples.iter().map(|s| s.speed).sum::<f32>() / samples.len() as f32).max(1e-3);
    // A genuine writer lifts the pen while it is still moving: drop the slow tails at both ends
    // (except for dots, which are all tail). A forger puts the pen down and stops it on the paper.
    let (mut lo, mut hi) = (0, samples.len());
    if !perf.blunt && kind != ComponentKind::Dot {
        let cut = 0.12 * peak;
        while hi > lo + 2 && samples[hi - 1].speed < cut {
            hi -= 1;
        }
        while lo + 2 < hi && samples[lo + 1].speed < 0.03 * peak {
            lo += 1;
        }
    }
    let s = &samples[lo..hi];
    // Arc length, for tapering by distance from the ends.
    let total: f32 = s
        .windows(2)
        .map(|w| ((w[1].x - w[0].x).powi(2) + (w[1].y - w[0].y).powi(2)).sqrt())
        .sum();
    let taper_len = (0.35 * xh).min(0.3 * total).max(1e-3);
    let tau = std::f32::consts::TAU;
    let pressure_phase = rng.random_range(0.0..tau);
    let pressure_hz = rng.random_range(0.8..2.0);
    let mut walked = 0.0_f32;
    let mut prev: Option<(f32, f32)> = None;
    for (i, smp) in s.iter().enumerate() {
        if let Some((px, py)) = prev {
            walked += ((smp.x - px).powi(2) + (smp.y - py).powi(2)).sqrt();
        }
        prev = Some((smp.x, smp.y));
        let t = t_offset + i as f32 * DT;
        let (mut x, mut y) = (smp.x, smp.y);
        if perf.tremor_px > 0.0 {
            let w = tau * perf.tremor_hz * t;
            x += perf.tremor_px
                * (0.7 * (w + tremor_phase[0]).sin() + 0.3 * (2.3 * w + tremor_phase[1]).sin());
            y += perf.tremor_px
                * (0.7 * (1.1 * w + tremor_phase[2]).sin()
                    + 0.3 * (1.9 * w + tremor_phase[3]).sin());
        }
        let pressure = (1.0 + perf.pressure_var * (tau * pressure_hz * t + pressure_phase).sin()
            - perf.speed_thinning * (smp.speed / mean - 1.0).clamp(-1.0, 2.0))
        .clamp(0.45, 1.5);
        let mut radius = perf.pen_radius * pressure;
        let mut dark = perf.ink * (0.8 + 0.2 * pressure).min(1.0);
        if perf.blunt {
            // Resting pen at the ends leaves a slightly heavier blob.
            if walked < 1.5 || total - walked < 1.5 {
                radius *= 1.15;
                dark = (dark * 1.1).min(1.0);
            }
        } else if kind != ComponentKind::Dot {
            let from_end = (total - walked).max(0.0);
            let from_start = walked;
            let end_f = (from_end / taper_len).min(1.0);
            let start_f = (from_start / (0.4 * taper_len)).min(1.0);
            let f = end_f.min(0.5 + 0.5 * start_f);
            radius *= 0.3 + 0.7 * f;
            dark *= 0.6 + 0.4 * f;
        }
        out.push(InkPoint {
            x,
            y: -y,
            radius,
            darkness: dark,
            pen_down: i == 0,
        });
    }
}

/// Crops the ink points to their bounding box with a margin and draws them.
fn rasterise<R: Rng + ?Sized>(ink: &[InkPoint], grain: f32, rng: &mut R) -> GrayImage {
    let mut min_x = f32::INFINITY;
    let mut min_y = f32::INFINITY;
    let mut max_x = f32::NEG_INFINITY;
    let mut max_y = f32::NEG_INFINITY;
    for p in ink {
        if p.x.is_finite() && p.y.is_finite() {
            min_x = min_x.min(p.x - p.radius);
            min_y = min_y.min(p.y - p.radius);
            max_x = max_x.max(p.x + p.radius);
            max_y = max_y.max(p.y + p.radius);
        }
    }
    if !min_x.is_finite() {
        return GrayImage::from_pixel(64, 32, image::Luma([255]));
    }
    let margin = 12.0;
    // Caps keep a runaway plan from allocating a huge canvas; anything beyond is clipped.
    let width = ((max_x - min_x + 2.0 * margin).ceil() as u32).clamp(16, 3000);
    let height = ((max_y - min_y + 2.0 * margin).ceil() as u32).clamp(16, 2000);
    let mut canvas = InkCanvas::new(width, height);
    let ox = margin - min_x;
    let oy = margin - min_y;
    let shifted: Vec<InkPoint> = ink
        .iter()
        .map(|p| InkPoint {
            x: p.x + ox,
            y: p.y + oy,
            ..*p
        })
        .collect();
    canvas.draw(&shifted);
    canvas.to_image(rng, grain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ink_pixels(img: &GrayImage) -> usize {
        img.pixels().filter(|p| p.0[0] < 128).count()
    }

    #[test]
    fn same_seed_same_pixels_and_different_seeds_differ() {
        let a = SyntheticWriter::new(7).genuine(&mut ChaCha8Rng::seed_from_u64(3));
        let b = SyntheticWriter::new(7).genuine(&mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(a, b);
        let c = SyntheticWriter::new(8).genuine(&mut ChaCha8Rng::seed_from_u64(3));
        assert_ne!(a.as_raw(), c.as_raw());
        let f1 = SyntheticWriter::new(7).forgery(&mut ChaCha8Rng::seed_from_u64(4), 0.5);
        let f2 = SyntheticWriter::new(7).forgery(&mut ChaCha8Rng::seed_from_u64(4), 0.5);
        assert_eq!(f1, f2);
    }

    #[test]
    fn signatures_are_dark_ink_on_white_at_a_plausible_size() {
        for seed in 0..20 {
            let w = SyntheticWriter::new(seed);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for img in [w.genuine(&mut rng), w.forgery(&mut rng, 0.3)] {
                assert!(
                    (120..=1400).contains(&img.width()),
                    "seed {seed}: width {}",
                    img.width()
                );
                assert!(
                    (60..=700).contains(&img.height()),
                    "seed {seed}: height {}",
                    img.height()
                );
                // The border (the margin) is white paper.
                assert!((0..img.width()).all(|x| img.get_pixel(x, 0).0[0] == 255));
                let ink = ink_pixels(&img);
                let area = (img.width() * img.height()) as usize;
                assert!(
                    ink > area / 100 && ink < area / 3,
                    "seed {seed}: {ink} ink pixels of {area}"
                );
            }
        }
    }

    #[test]
    fn out_of_range_skill_is_clamped_not_a_panic() {
        let w = SyntheticWriter::new(1);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for skill in [-3.0, 0.0, 1.0, 7.0, f32::NAN, f32::INFINITY] {
            let img = w.forgery(&mut rng, skill);
            assert!(ink_pixels(&img) > 0);
        }
    }
}
