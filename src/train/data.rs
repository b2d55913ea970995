//! Loading every training source once into memory, split by writer.
//!
//! Training images are kept as a cropped, moderately downscaled grayscale copy (the ink plus a margin,
//! at most [`WORK_SCALE`] times the network input): augmentation then works on a small image and runs
//! fast, and the normalisation after it is the exact inference code. Validation images are normalised
//! from the full decoded image, exactly as at inference, once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use image::GrayImage;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::dataset::{self, Sample};
use super::{Holdout, SourceSpec, TrainConfig, TrainError};
use crate::imaging::NormalisedSignature;
use crate::imaging::decode::{DecodeLimits, decode_path};
use crate::imaging::normalise::{InkMap, NormaliseParams, histogram, normalise, otsu_threshold};
use crate::model::DataSourceInfo;

/// Cached training images are at most this many times the network input in each direction.
pub const WORK_SCALE: f32 = 1.6;

/// One cached training image.
pub struct TrainItem {
    /// Index of its writer in the pools.
    pub writer: usize,
    /// Cropped, downscaled grayscale (dark ink on light paper), the input of augmentation.
    pub image: GrayImage,
    /// The normalised un-augmented image, used when augmentation is off or washes the ink out.
    pub fallback: NormalisedSignature,
}

/// A training writer: its genuine samples and the skilled forgeries of its signature.
pub struct WriterPool {
    pub name: String,
    pub genuine: Vec<usize>,
    pub forgeries: Vec<usize>,
}

/// One validation signature, normalised exactly as at inference.
pub struct ValItem {
    pub writer: String,
    pub genuine: bool,
    pub sample_id: String,
    pub sig: NormalisedSignature,
}

/// Everything [`load_all`] prepared.
pub struct Loaded {
    pub items: Vec<TrainItem>,
    pub pools: Vec<WriterPool>,
    /// Per source with training writers: (weight, pool indices).
    pub by_source: Vec<(f64, Vec<usize>)>,
    pub val: Vec<ValItem>,
    /// Validation writers as `<source>:<writer>`.
    pub val_writers: Vec<String>,
    /// Names of the sources validation writers came from.
    pub val_sources: Vec<String>,
    /// References per writer for the validation protocol (5, or fewer when writers have fewer).
    pub val_references: usize,
    pub skipped: Vec<(PathBuf, String)>,
    pub source_info: Vec<DataSourceInfo>,
    /// Writers sampled in training.
    pub train_writer_count: usize,
}

/// Crops to the ink (plus a margin for rotation) and shrinks to at most [`WORK_SCALE`] times the
/// network input. An image without detectable ink is returned whole (normalisation will judge it).
pub fn prepare(img: &GrayImage, params: &NormaliseParams) -> GrayImage {
    let bbox = otsu_threshold(&histogram(img))
        .and_then(|o| InkMap::extract(img, o.threshold, params.min_speck_area).bbox);
    let cropped = match bbox {
        Some((x0, y0, x1, y1)) => {
            let (bw, bh) = (x1 - x0, y1 - y0);
            let pad_x = bw / 10 + 4;
            let pad_y = bh / 10 + 4;
            let cx0 = x0.saturating_sub(pad_x);
            let cy0 = y0.saturating_sub(pad_y);
            let cx1 = (x1 + pad_x).min(img.width());
            let cy1 = (y1 + pad_y).min(img.height());
            image::imageops::crop_imm(img, cx0, cy0, cx1 - cx0, cy1 - cy0).to_image()
        }
        None => img.clone(),
    };
    let (w, h) = cropped.dimensions();
    let max_w = params.width as f32 * WORK_SCALE;
    let max_h = params.height as f32 * WORK_SCALE;
    let scale = (max_w / w.max(1) as f32).min(max_h / h.max(1) as f32);
    if scale >= 1.0 {
        return cropped;
    }
    let nw = ((w as f32 * scale).round() as u32).max(1);
    let nh = ((h as f32 * scale).round() as u32).max(1);
    image::imageops::resize(&cropped, nw, nh, image::imageops::FilterType::Triangle)
}

/// A labelled image from any source, before caching.
struct Raw {
    writer: String,
    genuine: bool,
    sample_id: String,
    path: PathBuf,
    image: Result<GrayImage, String>,
}

fn decode_samples(samples: &[Sample]) -> Vec<Raw> {
    let limits = DecodeLimits::default();
    samples
        .par_iter()
        .map(|s| Raw {
            writer: s.writer.clone(),
            genuine: s.genuine,
            sample_id: s.sample_id(),
            path: s.path.clone(),
            image: decode_path(&s.path, &limits).map_err(|e| e.to_string()),
        })
        .collect()
}

/// Synthetic writers from [`crate::synth`]: `genuine` signatures and `forgeries` skilled forgeries for
/// each of `writers` writers, all from `seed`.
fn synthetic_samples(
    writers: usize,
    genuine: usize,
    forgeries: usize,
    seed: u64,
) -> Result<Vec<Raw>, TrainError> {
    use crate::synth::dataset::{forgery_sample, genuine_sample, writer_id};
    if writers < 2 || genuine < 2 {
        return Err(TrainError::Synthetic(format!(
            "{writers} writers with {genuine} genuine signatures each: at least 2 of each are needed"
        )));
    }
    let (w_max, g_max, f_max) = (
        u32::try_from(writers),
        u32::try_from(genuine),
        u32::try_from(forgeries),
    );
    let (Ok(w_max), Ok(g_max), Ok(f_max)) = (w_max, g_max, f_max) else {
        return Err(TrainError::Synthetic(
            "too many synthetic writers or samples".to_string(),
        ));
    };
    // Each sample has its own generator (synth::dataset), so the parallel order does not matter.
    let jobs: Vec<(u32, bool, u32)> = (0..w_max)
        .flat_map(|w| {
            (0..g_max)
                .map(move |i| (w, true, i))
                .chain((0..f_max).map(move |i| (w, false, i)))
        })
        .collect();
    Ok(jobs
        .par_iter()
        .map(|&(w, is_genuine, i)| {
            let image = if is_genuine {
                genuine_sample(seed, w, i)
            } else {
                forgery_sample(seed, w, i)
            };
            let kind = if is_genuine { "g" } else { "f" };
            Raw {
                writer: writer_id(w),
                genuine: is_genuine,
                sample_id: format!("{kind}{:03}", i + 1),
                path: PathBuf::from(format!("synthetic/{}/{kind}{:03}", writer_id(w), i + 1)),
                image: Ok(image),
            }
        })
        .collect())
}

fn choose_holdout(
    cfg: &TrainConfig,
    source_index: usize,
    source: &str,
    writers: &[String],
) -> Vec<String> {
    let mut shuffled = writers.to_vec();
    shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(
        cfg.seed ^ (0xA5A5 + source_index as u64),
    ));
    match &cfg.holdout {
        Holdout::None => Vec::new(),
        Holdout::List(list) => writers
            .iter()
            .filter(|w| {
                list.iter()
                    .any(|l| l == *w || *l == format!("{source}:{w}"))
            })
            .cloned()
            .collect(),
        Holdout::Count(n) => shuffled.into_iter().take(*n).collect(),
        Holdout::Fifth => {
            let n = (writers.len() / 5).max(1);
            shuffled.into_iter().take(n).collect()
        }
        Holdout::Fold(k, n) => {
            let (len, k, n) = (shuffled.len(), *k, (*n).max(1));
            let (start, end) = (k * len / n, (k + 1) * len / n);
            shuffled
                .into_iter()
                .skip(start)
                .take(end.saturating_sub(start))
                .collect()
        }
    }
}

/// Loads, splits and caches every source (module documentation).
pub fn load_all(cfg: &TrainConfig) -> Result<Loaded, TrainError> {
    load(cfg, false)
}

/// Loads only the validation writers (for measuring an existing model on the held-out writers).
pub fn load_validation(cfg: &TrainConfig) -> Result<Loaded, TrainError> {
    load(cfg, true)
}

fn load(cfg: &TrainConfig, only_validation: bool) -> Result<Loaded, TrainError> {
    let params = &cfg.params;
    let mut loaded = Loaded {
        items: Vec::new(),
        pools: Vec::new(),
        by_source: Vec::new(),
        val: Vec::new(),
        val_writers: Vec::new(),
        val_sources: Vec::new(),
        val_references: 5,
        skipped: Vec::new(),
        source_info: Vec::new(),
        train_writer_count: 0,
    };
    let has_disk_holdout = !matches!(cfg.holdout, Holdout::None)
        && cfg
            .sources
            .iter()
            .any(|s| matches!(s, SourceSpec::Data { .. }));
    let need_synthetic_val = !has_disk_holdout && cfg.validation_data.is_empty();

    for (si, source) in cfg.sources.iter().enumerate() {
        let name = source.name();
        let (raws, held_out, info) = match source {
            SourceSpec::Data {
                path,
                layout,
                weight,
                licence,
                ..
            } => {
                let ds = dataset::scan(path, *layout)?;
                let writers = ds.writers();
                let held = choose_holdout(cfg, si, &name, &writers);
                let info = DataSourceInfo {
                    name: name.clone(),
                    layout: ds.layout.to_string(),
                    writers: writers.len(),
                    genuine: ds.genuine_count(),
                    forgeries: ds.forgery_count(),
                    weight: *weight,
                    licence: licence.clone(),
                };
                let wanted: Vec<Sample> = if only_validation {
                    ds.samples
                        .iter()
                        .filter(|s| held.contains(&s.writer))
                        .cloned()
                        .collect()
                } else {
                    ds.samples.clone()
                };
                (decode_samples(&wanted), held, info)
            }
            SourceSpec::Synthetic {
                writers,
                genuine,
                forgeries,
                weight,
            } => {
                let raws = if only_validation && !need_synthetic_val {
                    Vec::new()
                } else {
                    synthetic_samples(*writers, *genuine, *forgeries, cfg.seed)?
                };
                let mut names: Vec<String> = raws.iter().map(|r| r.writer.clone()).collect();
                names.sort();
                names.dedup();
                let held = if need_synthetic_val {
                    let mut shuffled = names.clone();
                    shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5151));
                    shuffled
                        .into_iter()
                        .take((names.len() / 5).max(2))
                        .collect()
                } else {
                    Vec::new()
                };
                let info = DataSourceInfo {
                    name: name.clone(),
                    layout: "synthetic".to_string(),
                    writers: *writers,
                    genuine: writers * genuine,
                    forgeries: writers * forgeries,
                    weight: *weight,
                    licence: "generated by Countersign (sigma-lognormal synthetic writers); no third-party data"
                        .to_string(),
                };
                (raws, held, info)
            }
        };
        loaded.source_info.push(info);
        let mut pool_of: BTreeMap<String, usize> = BTreeMap::new();
        let mut source_pools = Vec::new();
        let mut val_any = false;
        // Normalise in parallel, then file the results in order (the order fixes the seeded sampling).
        let prepared: Vec<Result<(Option<GrayImage>, NormalisedSignature), String>> = raws
            .par_iter()
            .map(|r| {
                let img = r.image.as_ref().map_err(Clone::clone)?;
                if held_out.contains(&r.writer) {
                    normalise(img, params)
                        .map(|n| (None, n))
                        .map_err(|e| e.to_string())
                } else {
                    let small = prepare(img, params);
                    normalise(&small, params)
                        .map(|n| (Some(small), n))
                        .map_err(|e| e.to_string())
                }
            })
            .collect();
        for (raw, prep) in raws.into_iter().zip(prepared) {
            let (small, sig) = match prep {
                Ok(p) => p,
                Err(e) => {
                    loaded.skipped.push((raw.path.clone(), e));
                    continue;
                }
            };
            let id = format!("{name}:{}", raw.writer);
            match small {
                None => {
                    val_any = true;
                    loaded.val.push(ValItem {
                        writer: id,
                        genuine: raw.genuine,
                        sample_id: raw.sample_id,
                        sig,
                    });
                }
                Some(image) => {
                    let pool = *pool_of.entry(raw.writer.clone()).or_insert_with(|| {
                        loaded.pools.push(WriterPool {
                            name: id.clone(),
                            genuine: Vec::new(),
                            forgeries: Vec::new(),
                        });
                        source_pools.push(loaded.pools.len() - 1);
                        loaded.pools.len() - 1
                    });
                    let index = loaded.items.len();
                    loaded.items.push(TrainItem {
                        writer: pool,
                        image,
                        fallback: sig,
                    });
                    if raw.genuine {
                        loaded.pools[pool].genuine.push(index);
                    } else {
                        loaded.pools[pool].forgeries.push(index);
                    }
                }
            }
        }
        // A writer left with fewer than two genuine images (after skipping bad files) cannot supply a
        // positive pair; it stays out of sampling.
        source_pools.retain(|&p| loaded.pools[p].genuine.len() >= 2);
        if !source_pools.is_empty() {
            loaded.by_source.push((source.weight(), source_pools));
        }
        if val_any {
            loaded.val_sources.push(name);
        }
    }

    for (name, path, layout) in &cfg.validation_data {
        let ds = dataset::scan(path, *layout)?;
        let raws = decode_samples(&ds.samples);
        let sigs: Vec<Result<NormalisedSignature, String>> = raws
            .par_iter()
            .map(|r| {
                let img = r.image.as_ref().map_err(Clone::clone)?;
                normalise(img, params).map_err(|e| e.to_string())
            })
            .collect();
        for (raw, sig) in raws.into_iter().zip(sigs) {
            match sig {
                Ok(sig) => loaded.val.push(ValItem {
                    writer: format!("{name}:{}", raw.writer),
                    genuine: raw.genuine,
                    sample_id: raw.sample_id,
                    sig,
                }),
                Err(e) => loaded.skipped.push((raw.path, e)),
            }
        }
        loaded.val_sources.push(name.clone());
    }

    loaded.train_writer_count = loaded.by_source.iter().map(|(_, p)| p.len()).sum::<usize>();
    if loaded.train_writer_count < 2 && !only_validation {
        return Err(TrainError::NoData(
            "fewer than two training writers with at least two usable genuine signatures remain after the \
             validation split"
                .to_string(),
        ));
    }
    // Validation writers and K: a writer needs K references and at least one questioned genuine.
    let mut genuine_per_writer: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &loaded.val {
        *genuine_per_writer.entry(&v.writer).or_default() += usize::from(v.genuine);
    }
    loaded.val_writers = genuine_per_writer.keys().map(|s| s.to_string()).collect();
    let min_genuine = genuine_per_writer.values().copied().min().unwrap_or(0);
    loaded.val_references = min_genuine.saturating_sub(1).clamp(1, 5);
    if !loaded.val.is_empty()
        && genuine_per_writer.len() < 2
        && loaded.val.iter().all(|v| v.genuine)
    {
        return Err(TrainError::NoData(
            "the validation set has one writer and no forgeries: nothing to tell apart".to_string(),
        ));
    }
    Ok(loaded)
}
