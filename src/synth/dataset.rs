//! Writing a synthetic data set: writer folders, a manifest, and cheque scans with ground truth.
//!
//! Every sample gets its own `ChaCha8Rng` seeded from (data-set seed, writer, kind, index), so the
//! bytes do not depend on the order the samples are made in, and generation runs in parallel.

use std::fs;
use std::io::Write;
use std::path::Path;

use image::GrayImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::SynthError;
use super::writer::SyntheticWriter;
use super::{ScanEffects, apply_scan};

/// One manifest line: path relative to the data-set folder, writer id, label.
type ManifestRow = (String, String, &'static str);

/// What to generate.
#[derive(Clone, Debug)]
pub struct DatasetOptions {
    pub writers: u32,
    pub genuine: u32,
    pub forgeries: u32,
    pub cheques: u32,
    pub seed: u64,
    /// Pass each signature through random scan effects (resolution, blur, noise, paper, JPEG).
    pub scan: bool,
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatasetSummary {
    pub writers: u32,
    pub genuine: u64,
    pub forgeries: u64,
    pub cheques: u64,
}

/// Sample kinds, mixed into the per-sample seed.
const KIND_GENUINE: u64 = 1;
const KIND_FORGERY: u64 = 2;
const KIND_CHEQUE: u64 = 3;

/// SplitMix64 finaliser: spreads a combination of small integers over all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of writer `w` (0-based) in a data set.
pub fn writer_seed(seed: u64, w: u32) -> u64 {
    mix(mix(seed) ^ u64::from(w))
}

/// The random generator of one sample.
pub fn sample_rng(seed: u64, w: u32, kind: u64, index: u32) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(
        writer_seed(seed, w) ^ mix(kind << 32 | u64::from(index))
    ))
}

/// The id of writer `w` (0-based): `w0001`, `w0002`, ...
pub fn writer_id(w: u32) -> String {
    format!("w{:04}", w + 1)
}

/// Genuine sample `i` of writer `w`.
pub fn genuine_sample(opts_seed: u64, w: u32, i: u32) -> GrayImage {
    let writer = SyntheticWriter::new(writer_seed(opts_seed, w));
    let mut rng = sample_rng(opts_seed, w, KIND_GENUINE, i);
    writer.genuine(&mut rng)
}

/// Forgery `i` of writer `w`, with a forger skill drawn from its own generator.
pub fn forgery_sample(opts_seed: u64, w: u32, i: u32) -> GrayImage {
    let writer = SyntheticWriter::new(writer_seed(opts_seed, w));
    let mut rng = sample_rng(opts_seed, w, KIND_FORGERY, i);
    let skill = rng.random_range(0.2..1.0);
    writer.forgery(&mut rng, skill)
}

fn scanned<R: Rng>(img: GrayImage, scan: bool, rng: &mut R) -> GrayImage {
    if scan {
        let fx = ScanEffects::random(rng);
        apply_scan(&img, &fx, rng)
    } else {
        img
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn save_png(img: &GrayImage, path: &Path) -> Result<(), SynthError> {
    // Through the one output function: never over the audit database, never half a file.
    crate::output::write_png(path, &crate::output::Protected::none(), img).map_err(|e| {
        SynthError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        }
    })
}

/// Writes `DIR/<w>/NN.png`, `DIR/<w>_forg/NN.png`, `DIR/manifest.csv` and, with cheques,
/// `DIR/cheques/<id>.png` + `<id>.json`.
pub fn generate_dataset(dir: &Path, opts: &DatasetOptions) -> Result<DatasetSummary, SynthError> {
    if opts.writers == 0 {
        return Err(SynthError::Invalid("--writers must be at least 1".into()));
    }
    if opts.writers > 100_000
        || opts.genuine > 10_000
        || opts.forgeries > 10_000
        || opts.cheques > 10_000
    {
        return Err(SynthError::Invalid(
            "too many samples requested (limits: 100000 writers, 10000 per writer)".into(),
        ));
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    if opts.cheques > 0 {
        let cdir = dir.join("cheques");
        fs::create_dir_all(&cdir).map_err(io_err(&cdir))?;
    }
    let per_writer: Result<Vec<Vec<ManifestRow>>, SynthError> = (0..opts.writers)
        .into_par_iter()
        .map(|w| {
            let id = writer_id(w);
            let writer = SyntheticWriter::new(writer_seed(opts.seed, w));
            let mut rows = Vec::new();
            let gdir = dir.join(&id);
            fs::create_dir_all(&gdir).map_err(io_err(&gdir))?;
            for i in 0..opts.genuine {
                let mut rng = sample_rng(opts.seed, w, KIND_GENUINE, i);
                let img = scanned(writer.genuine(&mut rng), opts.scan, &mut rng);
                let name = format!("{:02}.png", i + 1);
                save_png(&img, &gdir.join(&name))?;
                rows.push((format!("{id}/{name}"), id.clone(), "genuine"));
            }
            if opts.forgeries > 0 {
                let fdir = dir.join(format!("{id}_forg"));
                fs::create_dir_all(&fdir).map_err(io_err(&fdir))?;
                for i in 0..opts.forgeries {
                    let mut rng = sample_rng(opts.seed, w, KIND_FORGERY, i);
                    let skill = rng.random_range(0.2..1.0);
                    let img = scanned(writer.forgery(&mut rng, skill), opts.scan, &mut rng);
                    let name = format!("{:02}.png", i + 1);
                    save_png(&img, &fdir.join(&name))?;
                    rows.push((format!("{id}_forg/{name}"), id.clone(), "forgery"));
                }
            }
            for i in 0..opts.cheques {
                let mut rng = sample_rng(opts.seed, w, KIND_CHEQUE, i);
                super::cheque::write_cheque(dir, &writer, &id, i, &mut rng)?;
            }
            Ok(rows)
        })
        .collect();
    let per_writer = per_writer?;
    let manifest = dir.join("manifest.csv");
    let mut out = Vec::new();
    writeln!(out, "path,writer,label").map_err(io_err(&manifest))?;
    let mut summary = DatasetSummary {
        writers: opts.writers,
        ..Default::default()
    };
    for rows in &per_writer {
        for (path, writer, label) in rows {
            writeln!(out, "{path},{writer},{label}").map_err(io_err(&manifest))?;
            if *label == "genuine" {
                summary.genuine += 1;
            } else {
                summary.forgeries += 1;
            }
        }
    }
    summary.cheques = u64::from(opts.writers) * u64::from(opts.cheques);
    crate::output::write_unsynced(&manifest, &crate::output::Protected::none(), &out).map_err(
        |e| SynthError::Io {
            path: manifest.clone(),
            source: e.into(),
        },
    )?;
    Ok(summary)
}

/// A contact sheet of the data set's first writers: each row a writer, `genuine_cols` genuine samples
/// then `forgery_cols` forgeries, drawn exactly as [`generate_dataset`] draws them.
pub fn dataset_contact_sheet(opts: &DatasetOptions, rows: u32, genuine_cols: u32) -> GrayImage {
    let n_rows = rows.min(opts.writers).max(1);
    let g = genuine_cols.min(opts.genuine.max(1));
    let f = 2.min(opts.forgeries.max(1));
    let grid: Vec<Vec<GrayImage>> = (0..n_rows)
        .into_par_iter()
        .map(|w| {
            let mut row: Vec<GrayImage> = (0..g).map(|i| genuine_sample(opts.seed, w, i)).collect();
            row.extend((0..f).map(|i| forgery_sample(opts.seed, w, i)));
            row
        })
        .collect();
    super::contact_sheet(&grid, 300, 140)
}
