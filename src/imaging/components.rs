//! Connected components of ink, labelled run by run.
//!
//! Signatures and cheques are mostly paper, so labelling horizontal runs of ink (instead of pixels)
//! touches far less memory: one union-find entry per run, and no per-pixel label image at all.

/// A horizontal run of ink pixels `x0..x1` (end exclusive) on row `y`, belonging to component `label`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub y: u32,
    pub x0: u32,
    pub x1: u32,
    pub label: u32,
}

/// Size and bounding box (end exclusive) of one 8-connected component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Component {
    pub area: u32,
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
    /// Number of runs: together with the area it gives the mean run length, a stroke-width cue.
    pub runs: u32,
}

impl Component {
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }
    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }
}

/// The runs (row-major order) and components of a labelled image.
#[derive(Clone, Debug, Default)]
pub struct Labelled {
    pub runs: Vec<Run>,
    pub components: Vec<Component>,
}

/// Labels the 8-connected components of the pixels for which `is_ink` holds. `pixels` is row-major with
/// `width` pixels per row; any trailing partial row is ignored.
pub fn label(pixels: &[u8], width: u32, height: u32, is_ink: impl Fn(u8) -> bool) -> Labelled {
    let w = width as usize;
    let mut runs: Vec<Run> = Vec::new();
    let mut parent: Vec<u32> = Vec::new();
    if w == 0 {
        return Labelled::default();
    }
    let mut prev_start = 0usize; // first run of the previous row
    let mut prev_end = 0usize; // one past the last run of the previous row
    for (y, row) in pixels.chunks_exact(w).take(height as usize).enumerate() {
        let row_start = runs.len();
        let mut x = 0usize;
        let mut p = prev_start;
        while x < w {
            if !is_ink(row[x]) {
                x += 1;
                continue;
            }
            let x0 = x;
            while x < w && is_ink(row[x]) {
                x += 1;
            }
            let idx = runs.len() as u32;
            parent.push(idx);
            // Skip previous-row runs that end before this run's left neighbour column.
            while p < prev_end && (runs[p].x1 as usize) < x0 {
                p += 1;
            }
            // Every previous-row run that starts at or before this run's right neighbour column touches
            // it (8-connectivity). The last of them may also touch the next run, so `p` is not advanced.
            let mut q = p;
            while q < prev_end && (runs[q].x0 as usize) <= x {
                union(&mut parent, idx, q as u32);
                q += 1;
            }
            runs.push(Run {
                y: y as u32,
                x0: x0 as u32,
                x1: x as u32,
                label: idx,
            });
        }
        prev_start = row_start;
        prev_end = runs.len();
    }

    // Resolve roots to dense component ids and accumulate statistics.
    let mut id_of_root: Vec<u32> = vec![u32::MAX; runs.len()];
    let mut components: Vec<Component> = Vec::new();
    for (i, r) in runs.iter_mut().enumerate() {
        let root = find(&mut parent, i as u32) as usize;
        let id = if id_of_root[root] == u32::MAX {
            id_of_root[root] = components.len() as u32;
            components.push(Component {
                area: 0,
                x0: r.x0,
                y0: r.y,
                x1: r.x1,
                y1: r.y + 1,
                runs: 0,
            });
            components.len() - 1
        } else {
            id_of_root[root] as usize
        };
        r.label = id as u32;
        let c = &mut components[id];
        c.area += r.x1 - r.x0;
        c.runs += 1;
        c.x0 = c.x0.min(r.x0);
        c.x1 = c.x1.max(r.x1);
        c.y0 = c.y0.min(r.y);
        c.y1 = c.y1.max(r.y + 1);
    }
    Labelled { runs, components }
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let gp = parent[parent[i as usize] as usize];
        parent[i as usize] = gp;
        i = gp;
    }
    i
}

fn union(parent: &mut [u32], a: u32, b: u32) {
    let ra = find(parent, a);
    let rb = find(parent, b);
    // The smaller index wins so that labels follow scan order, which keeps results deterministic.
    if ra < rb {
        parent[rb as usize] = ra;
    } else if rb < ra {
        parent[ra as usize] = rb;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(rows: &[&str]) -> (Vec<u8>, u32, u32) {
        let w = rows[0].len() as u32;
        let h = rows.len() as u32;
        let px = rows
            .iter()
            .flat_map(|r| r.bytes().map(|b| if b == b'#' { 0u8 } else { 255u8 }))
            .collect();
        (px, w, h)
    }

    #[test]
    fn labels_separate_and_diagonal_components() {
        let (px, w, h) = img(&[
            "##....#", //
            ".#....#", //
            "..#....", //
            ".......", //
            "####..#", //
        ]);
        let l = label(&px, w, h, |v| v < 128);
        let mut areas: Vec<u32> = l.components.iter().map(|c| c.area).collect();
        areas.sort_unstable();
        // The diagonal chain joins (8-connectivity); the right column pair, the bottom bar and the lone
        // pixel stay apart.
        assert_eq!(areas, vec![1, 2, 4, 4]);
        let chain = l
            .components
            .iter()
            .find(|c| c.y0 == 0 && c.x0 == 0)
            .expect("chain");
        assert_eq!((chain.x1, chain.y1, chain.area), (3, 3, 4));
    }

    #[test]
    fn u_shape_merges_into_one_component() {
        let (px, w, h) = img(&[
            "#...#.#", //
            "#...#.#", //
            "#####.#", //
            "......#", //
            "#######", //
        ]);
        let l = label(&px, w, h, |v| v < 128);
        assert_eq!(l.components.len(), 2);
        let total: u32 = l.components.iter().map(|c| c.area).sum();
        assert_eq!(total, px.iter().filter(|&&v| v == 0).count() as u32);
        for r in &l.runs {
            assert!(r.x0 < r.x1 && (r.label as usize) < l.components.len());
        }
    }
}
