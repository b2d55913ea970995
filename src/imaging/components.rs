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
    let mut sets = DisjointSets::default();
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
            let idx = sets.push();
            // Skip previous-row runs that end before this run's left neighbour column.
            while p < prev_end && (runs[p].x1 as usize) < x0 {
                p += 1;
            }
            // Every previous-row run that starts at or before this run's right neighbour column touches
            // it (8-connectivity). The last of them may also touch the next run, so `p` is not advanced.
            let mut q = p;
            while q < prev_end && (runs[q].x0 as usize) <= x {
                sets.union(idx, q);
                q += 1;
            }
            runs.push(Run {
                y: y as u32,
                x0: x0 as u32,
                x1: x as u32,
                label: idx as u32,
            });
        }
        prev_start = row_start;
        prev_end = runs.len();
    }

    // Resolve roots to dense component ids and accumulate statistics.
    let mut id_of_root: Vec<u32> = vec![u32::MAX; runs.len()];
    let mut components: Vec<Component> = Vec::new();
    for (i, r) in runs.iter_mut().enumerate() {
        let root = sets.find(i);
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

/// Disjoint sets over `0..len` (union-find with path halving), the one used for every grouping of
/// ink: runs into components here, components into text lines and signature groups in
/// [`super::cheque`]. A union keeps the smaller root, so labels follow insertion order and results
/// are deterministic. Indices are stored as `u32`: one entry per run of ink keeps it small.
#[derive(Clone, Debug, Default)]
pub struct DisjointSets {
    parent: Vec<u32>,
}

impl DisjointSets {
    /// `n` singleton sets.
    pub fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
        }
    }

    /// Adds a singleton set and returns its index.
    pub fn push(&mut self) -> usize {
        let i = self.parent.len();
        self.parent.push(i as u32);
        i
    }

    /// The root of `i`'s set.
    pub fn find(&mut self, i: usize) -> usize {
        let mut i = i as u32;
        while self.parent[i as usize] != i {
            let gp = self.parent[self.parent[i as usize] as usize];
            self.parent[i as usize] = gp;
            i = gp;
        }
        i as usize
    }

    /// Joins the sets of `a` and `b`; the smaller root becomes the root of both.
    pub fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra < rb {
            self.parent[rb] = ra as u32;
        } else if rb < ra {
            self.parent[ra] = rb as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_sets_join_and_keep_the_smaller_root() {
        let mut s = DisjointSets::new(5);
        s.union(3, 4);
        s.union(4, 1);
        assert_eq!(s.find(4), 1);
        assert_eq!(s.find(3), 1);
        assert_eq!(s.find(0), 0);
        let six = s.push();
        assert_eq!(six, 5);
        s.union(six, 0);
        assert_eq!(s.find(5), 0);
        assert_ne!(s.find(0), s.find(1));
    }

    #[test]
    fn two_strokes_touching_diagonally_are_one_component() {
        // 8-connectivity: a pixel touching another only at a corner joins it.
        #[rustfmt::skip]
        let px = [
            1, 0, 0, 1,
            0, 1, 1, 0,
            0, 0, 0, 0,
            1, 1, 0, 1,
        ];
        let l = label(&px, 4, 4, |v| v == 1);
        assert_eq!(l.components.len(), 3);
        assert_eq!(l.components[0].area, 4);
        assert_eq!(l.components[1].area, 2);
        assert_eq!(l.components[2].area, 1);
    }
}
