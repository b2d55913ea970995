//! Labelled signature collections on disk, in the layouts banks and research sets use.
//!
//! - **CEDAR**: `full_org/original_<w>_<n>.<ext>` (genuine) and `full_forg/forgeries_<w>_<n>.<ext>`
//!   (skilled forgeries of writer `<w>`).
//! - **Writer folders**: `<w>/` holds writer `<w>`'s genuine signatures, `<w>_forg/` skilled forgeries
//!   of `<w>`. Sub-folders without any image are ignored (a README, a cheques folder of JSON files).
//! - **Manifest**: a CSV file with the header `path,writer,label` where `label` is `genuine` or
//!   `forgery` and `path` is relative to the CSV file's folder (or absolute).
//!
//! `--layout auto` picks CEDAR when `full_org/` exists, the manifest when the path is a `.csv` file or
//! the folder has a `manifest.csv` at its top, and writer folders otherwise. Scanning only lists files;
//! images are decoded later, so a damaged image is reported by whoever reads it, with its path.
//!
//! Every layout is checked the same way: each writer needs at least two genuine samples (one to
//! compare against another), forgeries must belong to a writer that has genuine samples, and the set
//! must contain something to tell apart (two writers, or one writer with forgeries).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::TrainError;

/// Image file extensions a dataset may hold (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "gif"];

/// Manifest file name looked for by `--layout auto` in a folder.
pub const MANIFEST_NAME: &str = "manifest.csv";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Detect from the folder's contents.
    #[default]
    Auto,
    /// `full_org/original_<w>_<n>`, `full_forg/forgeries_<w>_<n>`.
    Cedar,
    /// `<w>/` genuine, `<w>_forg/` skilled forgeries.
    Folders,
    /// A CSV file `path,writer,label`.
    Manifest,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Auto => "auto",
            Layout::Cedar => "cedar",
            Layout::Folders => "folders",
            Layout::Manifest => "manifest",
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One labelled signature image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub path: PathBuf,
    /// The writer the signature belongs to; for a forgery, the writer whose signature was forged.
    pub writer: String,
    /// True for a genuine signature, false for a skilled forgery.
    pub genuine: bool,
}

impl Sample {
    /// A stable id of the sample within its writer (used to order references): the file name with
    /// its folder, because a writer's genuine `w1/01.png` and forged `w1_forg/01.png` are two samples.
    pub fn sample_id(&self) -> String {
        let file = self.path.file_name().map(|n| n.to_string_lossy());
        let folder = self
            .path
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy());
        match (folder, file) {
            (Some(folder), Some(file)) => format!("{folder}/{file}"),
            (None, Some(file)) => file.into_owned(),
            _ => self.path.display().to_string(),
        }
    }
}

/// A scanned dataset: where it is, which layout it has, and its samples sorted by (writer, path).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub root: PathBuf,
    /// The layout found (never `Auto`).
    pub layout: Layout,
    pub samples: Vec<Sample>,
}

impl Dataset {
    /// Writer names in sorted order.
    pub fn writers(&self) -> Vec<String> {
        let mut w: Vec<String> = self.samples.iter().map(|s| s.writer.clone()).collect();
        w.sort();
        w.dedup();
        w
    }

    pub fn genuine_count(&self) -> usize {
        self.samples.iter().filter(|s| s.genuine).count()
    }

    pub fn forgery_count(&self) -> usize {
        self.samples.iter().filter(|s| !s.genuine).count()
    }

    /// Samples grouped by writer: `(genuine, forgeries)` per writer name.
    pub fn by_writer(&self) -> BTreeMap<String, (Vec<&Sample>, Vec<&Sample>)> {
        let mut map: BTreeMap<String, (Vec<&Sample>, Vec<&Sample>)> = BTreeMap::new();
        for s in &self.samples {
            let entry = map.entry(s.writer.clone()).or_default();
            if s.genuine {
                entry.0.push(s);
            } else {
                entry.1.push(s);
            }
        }
        map
    }

    /// The dataset restricted to some writers (unknown names are ignored).
    /// The same samples with every writer renamed `PREFIX:WRITER`, so that collections can be pooled
    /// without two collections' writer `001` becoming one person.
    pub fn prefixed(&self, prefix: &str) -> Dataset {
        Dataset {
            root: self.root.clone(),
            layout: self.layout,
            samples: self
                .samples
                .iter()
                .map(|s| Sample {
                    writer: format!("{prefix}:{}", s.writer),
                    ..s.clone()
                })
                .collect(),
        }
    }

    pub fn only_writers(&self, writers: &[String]) -> Dataset {
        Dataset {
            root: self.root.clone(),
            layout: self.layout,
            samples: self
                .samples
                .iter()
                .filter(|s| writers.contains(&s.writer))
                .cloned()
                .collect(),
        }
    }

    /// Errors unless the set holds skilled forgeries: evaluation and calibration against skilled
    /// forgeries need both classes.
    pub fn require_forgeries(&self) -> Result<(), TrainError> {
        if self.forgery_count() == 0 {
            return Err(TrainError::Dataset {
                path: self.root.clone(),
                problem: "it holds no skilled forgeries (only genuine signatures): this needs both classes"
                    .to_string(),
            });
        }
        Ok(())
    }

    /// The checks every layout shares (see the module documentation).
    pub fn check(&self) -> Result<(), TrainError> {
        let problem = |p: String| TrainError::Dataset {
            path: self.root.clone(),
            problem: p,
        };
        if self.samples.is_empty() {
            return Err(problem(format!(
                "no signature images found ({} layout)",
                self.layout
            )));
        }
        let groups = self.by_writer();
        for (writer, (genuine, forgeries)) in &groups {
            if genuine.is_empty() {
                return Err(problem(format!(
                    "writer {writer} has {} forgeries but no genuine signatures",
                    forgeries.len()
                )));
            }
            if genuine.len() < 2 {
                return Err(problem(format!(
                    "writer {writer} has only {} genuine signature; at least 2 are needed",
                    genuine.len()
                )));
            }
        }
        if groups.len() < 2 && self.forgery_count() == 0 {
            return Err(problem(
                "only one writer and no forgeries: there is nothing to tell apart (one class)"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
    let io = |source| TrainError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort();
    Ok(entries)
}

/// Works out the layout of `path` (module documentation); errors when it matches none.
pub fn detect(path: &Path) -> Result<Layout, TrainError> {
    if !path.exists() {
        return Err(TrainError::Dataset {
            path: path.to_path_buf(),
            problem: "it does not exist".to_string(),
        });
    }
    if path.is_file() {
        if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            return Ok(Layout::Manifest);
        }
        return Err(TrainError::Dataset {
            path: path.to_path_buf(),
            problem: "a dataset is a folder or a .csv manifest, not another kind of file"
                .to_string(),
        });
    }
    if path.join("full_org").is_dir() {
        return Ok(Layout::Cedar);
    }
    if path.join(MANIFEST_NAME).is_file() {
        return Ok(Layout::Manifest);
    }
    let has_image_folder = read_dir_sorted(path)?
        .iter()
        .filter(|p| p.is_dir())
        .any(|d| {
            read_dir_sorted(d)
                .map(|files| files.iter().any(|f| is_image(f)))
                .unwrap_or(false)
        });
    if has_image_folder {
        return Ok(Layout::Folders);
    }
    Err(TrainError::Dataset {
        path: path.to_path_buf(),
        problem:
            "it matches no known layout: expected full_org/ and full_forg/ (CEDAR), writer folders \
                  <w>/ and <w>_forg/ holding images, or a manifest.csv (path,writer,label)"
                .to_string(),
    })
}

/// Lists the samples of the dataset at `path` in `layout` (`Auto` detects it) and checks them.
pub fn scan(path: &Path, layout: Layout) -> Result<Dataset, TrainError> {
    let layout = match layout {
        Layout::Auto => detect(path)?,
        l => l,
    };
    let mut samples = match layout {
        Layout::Cedar => scan_cedar(path)?,
        Layout::Folders => scan_folders(path)?,
        Layout::Manifest => {
            let csv = if path.is_dir() {
                path.join(MANIFEST_NAME)
            } else {
                path.to_path_buf()
            };
            scan_manifest(&csv)?
        }
        Layout::Auto => unreachable_auto(path)?,
    };
    samples.sort_by(|a, b| (&a.writer, !a.genuine, &a.path).cmp(&(&b.writer, !b.genuine, &b.path)));
    let ds = Dataset {
        root: path.to_path_buf(),
        layout,
        samples,
    };
    ds.check()?;
    Ok(ds)
}

fn unreachable_auto(path: &Path) -> Result<Vec<Sample>, TrainError> {
    Err(TrainError::Dataset {
        path: path.to_path_buf(),
        problem: "layout detection failed".to_string(),
    })
}

/// `original_<w>_<n>` or `forgeries_<w>_<n>` -> `<w>`.
fn cedar_writer(stem: &str, prefix: &str) -> Option<String> {
    let rest = stem.strip_prefix(prefix)?;
    let (writer, n) = rest.rsplit_once('_')?;
    let ok = !writer.is_empty()
        && writer.chars().all(|c| c.is_ascii_alphanumeric())
        && !n.is_empty()
        && n.chars().all(|c| c.is_ascii_digit());
    ok.then(|| writer.to_string())
}

fn scan_cedar(root: &Path) -> Result<Vec<Sample>, TrainError> {
    let org = root.join("full_org");
    if !org.is_dir() {
        return Err(TrainError::Dataset {
            path: root.to_path_buf(),
            problem: "CEDAR layout needs a full_org/ folder".to_string(),
        });
    }
    let mut samples = Vec::new();
    for (dir, prefix, genuine) in [
        (org, "original_", true),
        (root.join("full_forg"), "forgeries_", false),
    ] {
        if !dir.is_dir() {
            continue;
        }
        for file in read_dir_sorted(&dir)? {
            if !file.is_file() || !is_image(&file) {
                continue;
            }
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let writer = cedar_writer(stem, prefix).ok_or_else(|| TrainError::Dataset {
                path: file.clone(),
                problem: format!(
                    "the file name does not follow the CEDAR pattern {prefix}<writer>_<n>"
                ),
            })?;
            samples.push(Sample {
                path: file,
                writer,
                genuine,
            });
        }
    }
    Ok(samples)
}

fn scan_folders(root: &Path) -> Result<Vec<Sample>, TrainError> {
    let mut samples = Vec::new();
    for dir in read_dir_sorted(root)? {
        if !dir.is_dir() {
            continue;
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        let (writer, genuine) = match name.strip_suffix("_forg") {
            Some(w) if !w.is_empty() => (w.to_string(), false),
            _ => (name.clone(), true),
        };
        for file in read_dir_sorted(&dir)? {
            if file.is_file() && is_image(&file) {
                samples.push(Sample {
                    path: file,
                    writer: writer.clone(),
                    genuine,
                });
            }
        }
    }
    Ok(samples)
}

fn scan_manifest(csv_path: &Path) -> Result<Vec<Sample>, TrainError> {
    let problem = |p: String| TrainError::Dataset {
        path: csv_path.to_path_buf(),
        problem: p,
    };
    let base = csv_path.parent().unwrap_or(Path::new("."));
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(csv_path)
        .map_err(|e| problem(format!("cannot read the CSV: {e}")))?;
    let headers = reader
        .headers()
        .map_err(|e| problem(format!("cannot read the CSV header: {e}")))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(pc), Some(wc), Some(lc)) = (col("path"), col("writer"), col("label")) else {
        return Err(problem(format!(
            "the header must name the columns path,writer,label (found: {})",
            headers.iter().collect::<Vec<_>>().join(",")
        )));
    };
    let mut samples = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| problem(format!("line {line}: {e}")))?;
        let field = |c: usize| record.get(c).unwrap_or("").to_string();
        let (rel, writer, label) = (field(pc), field(wc), field(lc));
        if rel.is_empty() || writer.is_empty() {
            return Err(problem(format!("line {line}: empty path or writer")));
        }
        let genuine = match label.to_ascii_lowercase().as_str() {
            "genuine" => true,
            "forgery" | "forged" | "skilled" | "skilled_forgery" => false,
            other => {
                return Err(problem(format!(
                    "line {line}: label {other:?} is neither \"genuine\" nor \"forgery\""
                )));
            }
        };
        let path = base.join(&rel);
        if !path.is_file() {
            return Err(problem(format!(
                "line {line}: image {} does not exist",
                path.display()
            )));
        }
        samples.push(Sample {
            path,
            writer,
            genuine,
        });
    }
    Ok(samples)
}

/// Reads a list of writer names, one per line (`#` starts a comment, blank lines are skipped).
/// The name of a collection of labelled data: its folder's name (a CSV manifest's folder). Model
/// cards, held-out lists (`NAME:WRITER`) and per-collection figures use it.
pub fn collection_name(path: &Path) -> String {
    let p = if path.is_file() {
        path.parent().unwrap_or(path)
    } else {
        path
    };
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".to_string())
}

pub fn read_writer_list(path: &Path) -> Result<Vec<String>, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}
