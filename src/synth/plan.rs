//! Action plans: the target points a writer aims at, in x-height units.
//!
//! A plan is what stays constant in a person's signature (the motor "engram"): a name-like sequence of
//! cursive letters, optional separate initials, i-dots and t-bars, a flourish or an underline. The
//! coordinates are in units of the writer's x-height with y pointing up and the baseline at 0, so the
//! same plan can be executed at any size, slant and speed.

use rand::Rng;

/// One target point of a movement. `cusp` marks a sharp reversal: the pen nearly stops there, so the
/// strokes on either side overlap less in time and the direction is not smoothed across it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Target {
    pub x: f32,
    pub y: f32,
    pub cusp: bool,
}

/// What a pen-down component draws; the executor times and inks the kinds differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentKind {
    /// Letters written in one connected movement.
    Word,
    /// An i- or j-dot: a very short tap.
    Dot,
    /// A t-bar or a cross stroke.
    Bar,
    /// A fast, nearly straight line under the name.
    Underline,
    /// A loop or swoop continuing from the end of the name.
    Flourish,
}

/// One pen-down movement through its target points.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    pub kind: ComponentKind,
    pub targets: Vec<Target>,
}

/// A writer's whole signature plan.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionPlan {
    pub components: Vec<Component>,
    /// The letters the plan spells, for display and debugging.
    pub text: String,
}

/// A glyph: target points relative to the letter's left baseline, the advance, and an optional
/// separate mark (dot or bar) drawn after the word.
struct Glyph {
    points: &'static [(f32, f32, bool)],
    advance: f32,
    mark: Option<&'static [(f32, f32)]>,
}

/// A glyph's target points: x, y (x-heights) and whether the point is a cusp.
type GlyphPoints = &'static [(f32, f32, bool)];

const C: bool = true;
const S: bool = false;

// Lowercase cursive letters. Each starts where the connecting stroke from the previous letter should
// arrive and ends at the exit the next letter leaves from; shapes are approximate on purpose, because
// the overlapping lognormal strokes round them off the way a hand does.
const L_A: &[(f32, f32, bool)] = &[
    (0.7, 0.8, S),
    (0.4, 1.0, S),
    (0.08, 0.55, S),
    (0.25, 0.02, S),
    (0.6, 0.4, S),
    (0.72, 0.98, C),
    (0.65, 0.25, S),
    (0.95, 0.1, S),
];
const L_B: &[(f32, f32, bool)] = &[
    (0.45, 1.4, S),
    (0.45, 1.95, S),
    (0.25, 1.9, S),
    (0.18, 1.0, S),
    (0.15, 0.05, C),
    (0.4, 0.7, S),
    (0.65, 0.85, S),
    (0.6, 0.2, S),
    (0.3, 0.1, C),
    (0.9, 0.55, S),
];
const L_C: &[(f32, f32, bool)] = &[
    (0.75, 0.85, C),
    (0.45, 1.0, S),
    (0.1, 0.5, S),
    (0.3, 0.0, S),
    (0.85, 0.2, S),
];
const L_D: &[(f32, f32, bool)] = &[
    (0.7, 0.8, S),
    (0.4, 1.0, S),
    (0.08, 0.55, S),
    (0.25, 0.02, S),
    (0.6, 0.4, S),
    (0.8, 1.95, C),
    (0.65, 0.25, S),
    (0.95, 0.1, S),
];
const L_E: &[(f32, f32, bool)] = &[
    (0.6, 0.5, S),
    (0.65, 0.85, S),
    (0.4, 1.0, S),
    (0.15, 0.6, S),
    (0.3, 0.05, S),
    (0.8, 0.2, S),
];
const L_F: &[(f32, f32, bool)] = &[
    (0.45, 1.4, S),
    (0.5, 1.95, S),
    (0.3, 1.9, S),
    (0.25, 1.0, S),
    (0.2, -0.5, S),
    (0.1, -0.9, S),
    (0.0, -0.6, S),
    (0.3, -0.1, S),
    (0.75, 0.15, S),
];
const L_G: &[(f32, f32, bool)] = &[
    (0.7, 0.8, S),
    (0.4, 1.0, S),
    (0.08, 0.55, S),
    (0.25, 0.02, S),
    (0.6, 0.4, S),
    (0.72, 0.98, C),
    (0.65, -0.5, S),
    (0.45, -0.95, S),
    (0.15, -0.7, S),
    (0.5, -0.2, S),
    (0.95, 0.1, S),
];
const L_H: &[(f32, f32, bool)] = &[
    (0.5, 1.4, S),
    (0.5, 1.95, S),
    (0.25, 1.9, S),
    (0.2, 1.0, S),
    (0.15, 0.0, C),
    (0.35, 0.7, S),
    (0.6, 0.95, S),
    (0.75, 0.6, S),
    (0.75, 0.05, S),
    (1.0, 0.15, S),
];
const L_I: &[(f32, f32, bool)] = &[(0.4, 0.95, C), (0.35, 0.1, S), (0.65, 0.1, S)];
const L_J: &[(f32, f32, bool)] = &[
    (0.4, 0.95, C),
    (0.35, -0.5, S),
    (0.2, -0.95, S),
    (0.0, -0.7, S),
    (0.35, -0.2, S),
    (0.75, 0.1, S),
];
const L_K: &[(f32, f32, bool)] = &[
    (0.5, 1.4, S),
    (0.5, 1.95, S),
    (0.25, 1.9, S),
    (0.2, 1.0, S),
    (0.15, 0.0, C),
    (0.35, 0.7, S),
    (0.7, 0.95, S),
    (0.6, 0.55, S),
    (0.35, 0.45, C),
    (0.7, 0.05, S),
    (0.95, 0.15, S),
];
const L_L: &[(f32, f32, bool)] = &[
    (0.55, 1.4, S),
    (0.55, 1.95, S),
    (0.3, 1.9, S),
    (0.25, 1.0, S),
    (0.3, 0.05, S),
    (0.75, 0.15, S),
];
const L_M: &[(f32, f32, bool)] = &[
    (0.2, 0.95, C),
    (0.2, 0.0, C),
    (0.35, 0.7, S),
    (0.52, 0.95, S),
    (0.65, 0.6, S),
    (0.65, 0.0, C),
    (0.78, 0.7, S),
    (0.95, 0.95, S),
    (1.08, 0.6, S),
    (1.1, 0.05, S),
    (1.3, 0.15, S),
];
const L_N: &[(f32, f32, bool)] = &[
    (0.2, 0.95, C),
    (0.2, 0.0, C),
    (0.35, 0.7, S),
    (0.55, 0.95, S),
    (0.7, 0.6, S),
    (0.7, 0.05, S),
    (0.95, 0.15, S),
];
const L_O: &[(f32, f32, bool)] = &[
    (0.6, 0.95, S),
    (0.3, 0.95, S),
    (0.08, 0.5, S),
    (0.3, 0.0, S),
    (0.6, 0.4, S),
    (0.6, 0.95, C),
    (0.9, 0.85, S),
];
const L_P: &[(f32, f32, bool)] = &[
    (0.2, 0.95, C),
    (0.15, -0.95, C),
    (0.2, 0.5, S),
    (0.45, 0.95, S),
    (0.7, 0.6, S),
    (0.5, 0.05, S),
    (0.25, 0.15, C),
    (0.85, 0.15, S),
];
const L_R: &[(f32, f32, bool)] = &[
    (0.2, 0.9, C),
    (0.2, 0.0, C),
    (0.35, 0.7, S),
    (0.6, 0.95, S),
    (0.8, 0.8, S),
];
const L_S: &[(f32, f32, bool)] = &[
    (0.45, 1.0, C),
    (0.7, 0.4, S),
    (0.5, 0.0, S),
    (0.2, 0.15, C),
    (0.5, 0.05, S),
    (0.85, 0.1, S),
];
const L_T: &[(f32, f32, bool)] = &[(0.45, 1.6, C), (0.35, 0.1, S), (0.65, 0.1, S)];
const L_U: &[(f32, f32, bool)] = &[
    (0.15, 0.95, C),
    (0.15, 0.2, S),
    (0.35, 0.0, S),
    (0.55, 0.3, S),
    (0.6, 0.95, C),
    (0.6, 0.1, S),
    (0.85, 0.1, S),
];
const L_V: &[(f32, f32, bool)] = &[
    (0.15, 0.95, C),
    (0.25, 0.3, S),
    (0.45, 0.0, S),
    (0.65, 0.5, S),
    (0.7, 0.95, S),
    (0.9, 0.9, S),
];
const L_W: &[(f32, f32, bool)] = &[
    (0.15, 0.95, C),
    (0.15, 0.2, S),
    (0.35, 0.0, S),
    (0.55, 0.4, S),
    (0.6, 0.95, C),
    (0.6, 0.2, S),
    (0.8, 0.0, S),
    (1.0, 0.4, S),
    (1.0, 0.9, S),
    (1.15, 0.85, S),
];
const L_Y: &[(f32, f32, bool)] = &[
    (0.15, 0.95, C),
    (0.15, 0.2, S),
    (0.35, 0.0, S),
    (0.55, 0.3, S),
    (0.6, 0.95, C),
    (0.55, -0.5, S),
    (0.35, -0.95, S),
    (0.1, -0.7, S),
    (0.45, -0.2, S),
    (0.9, 0.1, S),
];

// Capitals: about twice the x-height, wider, often with an entry hook.
const U_A: &[(f32, f32, bool)] = &[
    (1.0, 1.8, S),
    (0.6, 2.2, S),
    (0.1, 1.2, S),
    (0.3, 0.0, S),
    (0.9, 0.9, S),
    (1.1, 2.2, C),
    (1.0, 0.3, S),
    (1.3, 0.1, S),
];
const U_C: &[(f32, f32, bool)] = &[
    (1.0, 1.9, S),
    (0.8, 2.3, S),
    (0.2, 1.8, S),
    (0.05, 0.8, S),
    (0.4, 0.0, S),
    (1.0, 0.2, S),
];
const U_E: &[(f32, f32, bool)] = &[
    (1.0, 2.0, S),
    (0.7, 2.3, S),
    (0.3, 2.0, S),
    (0.5, 1.3, S),
    (0.8, 1.2, C),
    (0.2, 1.0, S),
    (0.05, 0.4, S),
    (0.4, 0.0, S),
    (1.0, 0.2, S),
];
const U_G: &[(f32, f32, bool)] = &[
    (1.0, 1.9, S),
    (0.7, 2.3, S),
    (0.2, 1.8, S),
    (0.05, 0.8, S),
    (0.35, 0.0, S),
    (0.8, 0.3, S),
    (0.9, 1.0, C),
    (0.85, -0.5, S),
    (0.6, -0.9, S),
    (0.35, -0.6, S),
    (0.7, -0.1, S),
    (1.1, 0.1, S),
];
const U_J: &[(f32, f32, bool)] = &[
    (0.0, 1.6, S),
    (0.6, 2.2, S),
    (1.0, 2.3, C),
    (0.8, 1.4, S),
    (0.6, 0.0, S),
    (0.4, -0.9, S),
    (0.1, -0.8, S),
    (0.3, -0.2, S),
    (1.0, 0.15, S),
];
const U_L: &[(f32, f32, bool)] = &[
    (0.7, 2.0, S),
    (1.0, 2.3, S),
    (0.75, 2.25, S),
    (0.5, 1.2, S),
    (0.3, 0.2, S),
    (0.05, 0.05, S),
    (0.2, -0.15, S),
    (0.7, -0.05, S),
    (1.1, 0.1, S),
];
const U_M: &[(f32, f32, bool)] = &[
    (0.0, 0.0, S),
    (0.2, 1.5, S),
    (0.35, 2.2, C),
    (0.5, 1.0, S),
    (0.55, 0.2, C),
    (0.75, 1.6, S),
    (0.9, 2.2, C),
    (1.05, 1.0, S),
    (1.1, 0.1, S),
    (1.3, 0.1, S),
];
const U_N: &[(f32, f32, bool)] = &[
    (0.0, 0.0, S),
    (0.2, 1.4, S),
    (0.35, 2.2, C),
    (0.6, 1.0, S),
    (0.8, 0.0, C),
    (0.95, 1.2, S),
    (1.1, 2.2, S),
    (1.25, 2.1, S),
];
const U_P: &[(f32, f32, bool)] = &[
    (0.3, 2.0, C),
    (0.25, 1.0, S),
    (0.15, -0.1, C),
    (0.25, 1.2, S),
    (0.6, 2.2, S),
    (1.0, 2.0, S),
    (0.9, 1.3, S),
    (0.4, 1.1, C),
    (1.0, 0.9, S),
];
const U_R: &[(f32, f32, bool)] = &[
    (0.3, 2.0, C),
    (0.25, 1.0, S),
    (0.15, 0.0, C),
    (0.25, 1.2, S),
    (0.6, 2.2, S),
    (1.0, 2.0, S),
    (0.9, 1.35, S),
    (0.45, 1.15, C),
    (0.8, 0.5, S),
    (1.05, 0.0, S),
    (1.3, 0.1, S),
];
const U_S: &[(f32, f32, bool)] = &[
    (0.3, 1.0, S),
    (0.9, 2.0, S),
    (0.8, 2.3, S),
    (0.45, 2.1, S),
    (0.5, 1.4, S),
    (0.85, 0.8, S),
    (0.7, 0.05, S),
    (0.25, 0.05, S),
    (0.15, 0.3, C),
    (0.7, 0.1, S),
    (1.1, 0.1, S),
];
const U_V: &[(f32, f32, bool)] = &[
    (0.0, 2.0, S),
    (0.2, 2.2, C),
    (0.4, 1.0, S),
    (0.6, 0.0, C),
    (0.9, 1.2, S),
    (1.1, 2.2, S),
    (1.3, 2.1, S),
];
const U_W: &[(f32, f32, bool)] = &[
    (0.0, 2.1, C),
    (0.2, 0.8, S),
    (0.35, 0.0, C),
    (0.55, 1.4, C),
    (0.75, 0.0, C),
    (0.95, 1.2, S),
    (1.05, 2.1, S),
    (1.25, 2.0, S),
];
const U_H: &[(f32, f32, bool)] = &[
    (0.1, 1.9, S),
    (0.3, 2.2, C),
    (0.25, 1.0, S),
    (0.1, 0.0, C),
    (0.5, 1.1, S),
    (0.95, 1.2, C),
    (1.0, 2.2, C),
    (0.9, 0.9, S),
    (0.9, 0.05, S),
    (1.2, 0.15, S),
];
const U_B: &[(f32, f32, bool)] = &[
    (0.3, 2.1, C),
    (0.25, 1.0, S),
    (0.15, 0.0, C),
    (0.3, 1.4, S),
    (0.6, 2.25, S),
    (0.95, 2.0, S),
    (0.75, 1.25, S),
    (0.45, 1.15, C),
    (1.0, 0.8, S),
    (0.9, 0.15, S),
    (0.3, 0.05, S),
    (0.6, 0.2, C),
    (1.2, 0.3, S),
];
const U_D: &[(f32, f32, bool)] = &[
    (0.4, 2.1, C),
    (0.3, 1.0, S),
    (0.15, 0.05, S),
    (0.0, 0.25, C),
    (0.5, 0.0, S),
    (1.1, 0.5, S),
    (1.15, 1.6, S),
    (0.6, 2.25, S),
    (0.1, 1.9, S),
    (0.5, 1.7, S),
];
const U_K: &[(f32, f32, bool)] = &[
    (0.3, 2.2, C),
    (0.25, 1.0, S),
    (0.15, 0.0, C),
    (0.5, 1.1, S),
    (1.05, 2.1, C),
    (0.45, 1.05, C),
    (0.8, 0.4, S),
    (1.05, 0.0, S),
    (1.3, 0.1, S),
];
const U_T: &[(f32, f32, bool)] = &[
    (0.0, 1.9, S),
    (0.4, 2.2, S),
    (1.5, 2.25, C),
    (0.8, 2.2, C),
    (0.7, 1.0, S),
    (0.55, 0.05, S),
    (0.3, 0.15, S),
];

const LOWER: &[(char, GlyphPoints, f32)] = &[
    ('a', L_A, 1.0),
    ('b', L_B, 1.0),
    ('c', L_C, 0.9),
    ('d', L_D, 1.0),
    ('e', L_E, 0.85),
    ('f', L_F, 0.8),
    ('g', L_G, 1.0),
    ('h', L_H, 1.05),
    ('i', L_I, 0.65),
    ('j', L_J, 0.75),
    ('k', L_K, 1.0),
    ('l', L_L, 0.8),
    ('m', L_M, 1.35),
    ('n', L_N, 1.0),
    ('o', L_O, 0.95),
    ('p', L_P, 1.0),
    ('r', L_R, 0.85),
    ('s', L_S, 0.9),
    ('t', L_T, 0.7),
    ('u', L_U, 0.9),
    ('v', L_V, 0.95),
    ('w', L_W, 1.2),
    ('y', L_Y, 0.95),
];

const UPPER: &[(char, GlyphPoints, f32)] = &[
    ('A', U_A, 1.3),
    ('B', U_B, 1.25),
    ('C', U_C, 1.1),
    ('D', U_D, 1.2),
    ('E', U_E, 1.1),
    ('G', U_G, 1.15),
    ('H', U_H, 1.25),
    ('J', U_J, 1.05),
    ('K', U_K, 1.3),
    ('L', U_L, 1.15),
    ('M', U_M, 1.35),
    ('N', U_N, 1.3),
    ('P', U_P, 1.05),
    ('R', U_R, 1.3),
    ('S', U_S, 1.15),
    ('T', U_T, 1.2),
    ('V', U_V, 1.3),
    ('W', U_W, 1.3),
];

const DOT: &[(f32, f32)] = &[(0.45, 1.55), (0.5, 1.6)];
const T_BAR: &[(f32, f32)] = &[(0.05, 1.1), (0.85, 1.15)];

fn glyph(c: char) -> Option<Glyph> {
    if let Some(&(_, points, advance)) = LOWER.iter().find(|(k, _, _)| *k == c) {
        let mark = match c {
            'i' | 'j' => Some(DOT),
            't' => Some(T_BAR),
            _ => None,
        };
        return Some(Glyph {
            points,
            advance,
            mark,
        });
    }
    UPPER
        .iter()
        .find(|(k, _, _)| *k == c)
        .map(|&(_, points, advance)| Glyph {
            points,
            advance,
            mark: None,
        })
}

const CONSONANTS: &[char] = &[
    'b', 'c', 'd', 'f', 'g', 'h', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'w',
];
const COMMON_CONSONANTS: &[char] = &['l', 'n', 'r', 's', 't', 'm', 'd', 'k', 'h'];
const VOWELS: &[char] = &['a', 'e', 'i', 'o', 'u', 'e', 'a', 'y'];

fn pick<R: Rng + ?Sized, T: Copy>(rng: &mut R, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// A pronounceable lowercase surname tail (without its capital), 3 to 8 letters.
fn random_tail<R: Rng + ?Sized>(rng: &mut R, len: usize) -> String {
    let mut s = String::new();
    let mut vowel_next = rng.random_bool(0.6);
    while s.len() < len {
        if vowel_next {
            s.push(pick(rng, VOWELS));
        } else if rng.random_bool(0.6) {
            s.push(pick(rng, COMMON_CONSONANTS));
        } else {
            s.push(pick(rng, CONSONANTS));
        }
        // Mostly alternate, with the occasional double consonant or vowel pair.
        vowel_next = if rng.random_bool(0.85) {
            !vowel_next
        } else {
            vowel_next
        };
    }
    s
}

fn random_capital<R: Rng + ?Sized>(rng: &mut R) -> char {
    UPPER[rng.random_range(0..UPPER.len())].0
}

/// Lays letters out along the baseline starting at `x0` and returns the word component, the separate
/// marks (dots, bars) and the x where the word ends. `decay` shrinks later letters, as many people's
/// signatures trail off.
fn lay_out_word(
    text: &str,
    x0: f32,
    width: f32,
    decay: f32,
    marks: &mut Vec<Component>,
) -> (Component, f32) {
    let mut targets = Vec::with_capacity(text.len() * 10);
    let mut x = x0;
    let n = text.chars().count().max(1) as f32;
    for (i, c) in text.chars().enumerate() {
        let Some(g) = glyph(c) else { continue };
        let scale = 1.0 - decay * (i as f32 / n);
        for &(px, py, cusp) in g.points {
            targets.push(Target {
                x: x + px * width * scale,
                y: py * scale,
                cusp,
            });
        }
        if let Some(mark) = g.mark {
            let kind = if mark.len() == 2 && mark[1].0 - mark[0].0 > 0.3 {
                ComponentKind::Bar
            } else {
                ComponentKind::Dot
            };
            marks.push(Component {
                kind,
                targets: mark
                    .iter()
                    .map(|&(px, py)| Target {
                        x: x + px * width * scale,
                        y: py * scale,
                        cusp: false,
                    })
                    .collect(),
            });
        }
        x += g.advance * width * scale;
    }
    // Lead the pen in from a little below and to the left of the first letter, as a real entry stroke.
    if let Some(first) = targets.first().copied() {
        targets.insert(
            0,
            Target {
                x: first.x - 0.35 * width,
                y: first.y.min(0.4) - 0.25,
                cusp: false,
            },
        );
    }
    (
        Component {
            kind: ComponentKind::Word,
            targets,
        },
        x,
    )
}

/// The per-writer style choices that shape the plan.
#[derive(Clone, Copy, Debug)]
pub struct PlanStyle {
    /// Horizontal stretch of letters (1 = the glyph table's proportions).
    pub width: f32,
    /// How much the last letter is smaller than the first (0 = no trailing off).
    pub decay: f32,
    /// Height of the middle zone (lowercase body) relative to the x-height unit.
    pub mid: f32,
    /// Height of ascenders and capitals above the middle zone, relative to the glyph table.
    pub ascender: f32,
    /// Depth of descenders, relative to the glyph table.
    pub descender: f32,
    /// Standard deviation, in x-heights, of the writer's own fixed distortion of every target: the
    /// personal letter forms that make one hand differ from another writing the same word.
    pub idiosyncrasy: f32,
    /// Probability of a long entry stroke from far below and to the left.
    pub lead_in: f32,
}

fn gauss<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    rng.sample(rand_distr::StandardNormal)
}

/// Applies the writer's zone proportions and personal distortions to a laid-out plan.
fn personalise<R: Rng + ?Sized>(rng: &mut R, style: &PlanStyle, components: &mut [Component]) {
    for comp in components.iter_mut() {
        for t in comp.targets.iter_mut() {
            t.y = if t.y <= 1.0 && t.y >= 0.0 {
                t.y * style.mid
            } else if t.y > 1.0 {
                style.mid + (t.y - 1.0) * style.ascender
            } else {
                t.y * style.descender
            };
            // Dots and bars move together with their letter; other targets each get their own offset.
            if comp.kind == ComponentKind::Word || comp.kind == ComponentKind::Underline {
                t.x += style.idiosyncrasy * gauss(rng);
                t.y += style.idiosyncrasy * gauss(rng);
            }
        }
    }
    if rng.random::<f32>() < style.lead_in
        && let Some(first_word) = components
            .iter_mut()
            .find(|c| c.kind == ComponentKind::Word)
        && let Some(first) = first_word.targets.first().copied()
    {
        let dx = rng.random_range(0.8..2.0);
        let dy = rng.random_range(0.6..1.6);
        first_word.targets.insert(
            0,
            Target {
                x: first.x - dx,
                y: first.y - dy,
                cusp: false,
            },
        );
    }
}

/// Builds a random name-like plan: initials, a capital with a cursive surname, or a full short name,
/// with optional dots, an underline or a flourish.
pub fn random_plan<R: Rng + ?Sized>(rng: &mut R, style: PlanStyle) -> ActionPlan {
    let mut components = Vec::new();
    let mut marks = Vec::new();
    let mut text = String::new();
    let w = style.width;
    let mut x = 0.0_f32;
    let kind = rng.random_range(0..10);
    // 0-1: initials only (two capitals, large); 2-5: initial + surname; 6-9: capital + surname only.
    if kind <= 1 {
        let a = random_capital(rng);
        let b = random_capital(rng);
        text.push(a);
        text.push(b);
        let (c1, x1) = lay_out_word(&a.to_string(), x, w * 1.2, 0.0, &mut marks);
        components.push(c1);
        // Sometimes the two initials are connected in one movement.
        if rng.random_bool(0.5) {
            if let (Some(last), Some(c)) = (components.last_mut(), glyph(b)) {
                for &(px, py, cusp) in c.points {
                    last.targets.push(Target {
                        x: x1 + 0.1 + px * w * 1.2,
                        y: py,
                        cusp,
                    });
                }
                x = x1 + 0.1 + c.advance * w * 1.2;
            }
        } else {
            let (c2, x2) = lay_out_word(&b.to_string(), x1 + 0.4, w * 1.2, 0.0, &mut marks);
            components.push(c2);
            x = x2;
        }
        // A short lowercase tail after the initials is common ("JBrn...").
        if rng.random_bool(0.5) {
            let len = rng.random_range(2..=4);
            let tail = random_tail(rng, len);
            let (c3, x3) = lay_out_word(&tail, x + 0.2, w, style.decay, &mut marks);
            text.push_str(&tail);
            components.push(c3);
            x = x3;
        }
    } else {
        if kind <= 5 {
            let initial = random_capital(rng);
            text.push(initial);
            text.push(' ');
            let (c, x1) = lay_out_word(&initial.to_string(), x, w * 1.1, 0.0, &mut marks);
            components.push(c);
            x = x1 + rng.random_range(0.3..0.9);
            if rng.random_bool(0.4) {
                // A full stop after the initial.
                marks.push(Component {
                    kind: ComponentKind::Dot,
                    targets: vec![
                        Target {
                            x: x - 0.25,
                            y: 0.05,
                            cusp: false,
                        },
                        Target {
                            x: x - 0.2,
                            y: 0.1,
                            cusp: false,
                        },
                    ],
                });
            }
        }
        let cap = random_capital(rng);
        let len = rng.random_range(3..=7);
        let tail = random_tail(rng, len);
        let word = format!("{cap}{tail}");
        text.push_str(&word);
        let (c, x1) = lay_out_word(&word, x, w, style.decay, &mut marks);
        components.push(c);
        x = x1;
    }

    // Ending: an underline, a flourish continuing the last movement, or nothing.
    let ending = rng.random_range(0..10);
    if ending < 3 {
        let y = -rng.random_range(0.5..1.2);
        let x_start = rng.random_range(-0.5..0.8);
        let x_end = x + rng.random_range(-0.3..0.8);
        let bow = rng.random_range(-0.15..0.15);
        components.push(Component {
            kind: ComponentKind::Underline,
            targets: vec![
                Target {
                    x: x_start,
                    y,
                    cusp: false,
                },
                Target {
                    x: 0.5 * (x_start + x_end),
                    y: y + bow,
                    cusp: false,
                },
                Target {
                    x: x_end,
                    y: y + rng.random_range(-0.1..0.4),
                    cusp: false,
                },
            ],
        });
    } else if ending < 6
        && let Some(last) = components
            .iter_mut()
            .rev()
            .find(|c| c.kind == ComponentKind::Word)
    {
        let end = last.targets.last().copied().unwrap_or(Target {
            x,
            y: 0.0,
            cusp: false,
        });
        let depth = rng.random_range(0.6..1.3);
        let back = rng.random_range(0.3..0.9) * x;
        last.targets.push(Target {
            x: end.x + 0.6,
            y: end.y + 0.3,
            cusp: true,
        });
        last.targets.push(Target {
            x: end.x + 0.2,
            y: -depth * 0.6,
            cusp: false,
        });
        last.targets.push(Target {
            x: end.x - 0.4 * back,
            y: -depth,
            cusp: false,
        });
        last.targets.push(Target {
            x: end.x - back,
            y: -depth * 0.8,
            cusp: false,
        });
    }
    components.extend(marks);
    personalise(rng, &style, &mut components);
    ActionPlan { components, text }
}
