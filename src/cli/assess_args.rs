//! Options shared by `evaluate` and `calibrate`: which labelled data, and the evaluation protocol.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::GlobalOpts;
use crate::model::SignatureModel;
use crate::scoring::{Aggregation, EvalConfig};
use crate::train::dataset::{self, Dataset, Layout};

#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Labelled signatures: writer folders, a CEDAR tree, or a CSV manifest. Repeat to pool several
    /// collections: the figures are then printed per collection (named by its folder) and pooled.
    #[arg(long, required = true)]
    pub data: Vec<PathBuf>,
    /// Dataset layout.
    #[arg(long, value_enum, default_value_t = Layout::Auto)]
    pub layout: Layout,
    /// Only these writers: a comma-separated list, or @FILE with one writer per line. With several
    /// --data, name each as COLLECTION:WRITER (as the held-out lists in models/ do); a collection the
    /// list does not name is refused, so a typo cannot silently evaluate on every writer.
    #[arg(long)]
    pub writers: Option<String>,
    /// Genuine signatures per writer used as references (the first K, in natural file-name order).
    #[arg(long, default_value_t = 5)]
    pub references: usize,
    /// How a questioned signature's similarities to several references are combined.
    #[arg(long, default_value = "top3_mean")]
    pub aggregation: Aggregation,
    /// Normalise each score against the spread of the account's own references (z-norm).
    #[arg(long)]
    pub znorm: bool,
    /// Random forgeries (other writers' genuine signatures) questioned per writer.
    #[arg(long, default_value_t = 10)]
    pub random_per_writer: usize,
    /// Seed for the choice of random forgeries.
    #[arg(long, default_value_t = 2011)]
    pub seed: u64,
}

/// One labelled collection of a (possibly pooled) data set.
#[derive(Debug, Clone)]
pub struct Collection {
    /// The collection's name: its folder's name (the name the held-out lists and cards use).
    pub name: String,
    pub dataset: Dataset,
}

impl DataArgs {
    /// The name of each --data collection (its folder's name), in order.
    pub fn collection_names(&self) -> Vec<String> {
        self.data
            .iter()
            .map(|p| dataset::collection_name(p))
            .collect()
    }

    /// Scans every --data and restricts each to the chosen writers. Writer names are prefixed with
    /// `COLLECTION:` when there are several collections, so writers of two collections never merge.
    pub fn collections(&self) -> anyhow::Result<Vec<Collection>> {
        let wanted: Option<Vec<String>> = match &self.writers {
            None => None,
            Some(spec) => Some(match spec.strip_prefix('@') {
                Some(file) => dataset::read_writer_list(Path::new(file))?,
                None => spec
                    .split(',')
                    .map(|w| w.trim().to_string())
                    .filter(|w| !w.is_empty())
                    .collect(),
            }),
        };
        let several = self.data.len() > 1;
        let names: Vec<String> = self
            .data
            .iter()
            .map(|p| dataset::collection_name(p))
            .collect();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                anyhow::bail!(
                    "two --data collections are both named {name:?}; each needs its own folder name"
                );
            }
        }
        if let Some(list) = &wanted {
            let unknown: Vec<&String> = list
                .iter()
                .filter(|w| match w.split_once(':') {
                    Some((c, _)) => !names.iter().any(|n| n == c),
                    None => several,
                })
                .collect();
            if !unknown.is_empty() {
                anyhow::bail!(
                    "--writers entries must be COLLECTION:WRITER with a collection that a --data gives \
                     (with several --data, a bare writer name could be anyone's): {unknown:?} \
                     (collections: {})",
                    names.join(", ")
                );
            }
        }
        let mut out: Vec<Collection> = Vec::with_capacity(self.data.len());
        for (path, name) in self.data.iter().zip(names.iter().cloned()) {
            let ds = dataset::scan(path, self.layout)
                .with_context(|| format!("reading labelled data from {}", path.display()))?;
            let ds = match &wanted {
                None => ds,
                Some(list) => {
                    let mine = writers_of(list, &name, several);
                    if mine.is_empty() {
                        anyhow::bail!(
                            "--writers names no writer of {name} (write them as {name}:WRITER)"
                        );
                    }
                    let missing: Vec<&String> = mine
                        .iter()
                        .filter(|w| !ds.samples.iter().any(|s| &s.writer == *w))
                        .collect();
                    if !missing.is_empty() {
                        anyhow::bail!(
                            "--writers names writers not in {}: {missing:?}",
                            path.display()
                        );
                    }
                    ds.only_writers(&mine)
                }
            };
            let ds = if several { ds.prefixed(&name) } else { ds };
            out.push(Collection { name, dataset: ds });
        }
        Ok(out)
    }

    /// Every collection pooled into one data set (see [`DataArgs::collections`] for writer names).
    pub fn dataset(&self) -> anyhow::Result<Dataset> {
        let mut cols = self.collections()?.into_iter();
        let Some(first) = cols.next() else {
            anyhow::bail!("give at least one --data");
        };
        let mut pooled = first.dataset;
        for c in cols {
            pooled.samples.extend(c.dataset.samples);
        }
        Ok(pooled)
    }

    pub fn eval_config(&self) -> EvalConfig {
        EvalConfig {
            references: self.references,
            aggregation: self.aggregation,
            znorm: self.znorm,
            random_forgeries_per_writer: self.random_per_writer,
            seed: self.seed,
            ..EvalConfig::default()
        }
    }
}

/// The writers of `list` that belong to collection `name`: entries `name:WRITER`, and plain entries
/// when there is only one collection.
fn writers_of(list: &[String], name: &str, several: bool) -> Vec<String> {
    list.iter()
        .filter_map(|w| match w.split_once(':') {
            Some((c, writer)) if c == name => Some(writer.to_string()),
            Some(_) => None,
            None if !several => Some(w.clone()),
            None => None,
        })
        .collect()
}

/// Loads the model in force (see `GlobalOpts::model_path`) on the chosen device.
pub fn load_model(global: &GlobalOpts) -> anyhow::Result<SignatureModel> {
    let device = global.device.resolve()?;
    let (path, source) = global.model_path()?;
    SignatureModel::load(&path, device)
        .with_context(|| format!("loading the model ({source}) from {}", path.display()))
}

/// Embeds a dataset with a progress bar on stderr (hidden when stderr is not a terminal).
pub fn embed_with_progress(
    model: &SignatureModel,
    ds: &Dataset,
) -> anyhow::Result<crate::assess::EmbeddedSet> {
    embed_with_progress_using(&[model], false, ds)
}

/// As [`embed_with_progress`], with an ensemble and/or TTA (`assess::embed_dataset_with`).
pub fn embed_with_progress_using(
    models: &[&SignatureModel],
    tta: bool,
    ds: &Dataset,
) -> anyhow::Result<crate::assess::EmbeddedSet> {
    let bar = indicatif::ProgressBar::new(ds.samples.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "embedding {bar:40} {pos}/{len} images, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let set = crate::assess::embed_dataset_with(models, tta, ds, &mut |done, _| {
        bar.set_position(done as u64);
        std::ops::ControlFlow::Continue(())
    })?;
    bar.finish_and_clear();
    for (path, why) in set.failures.iter().take(10) {
        eprintln!("skipped {}: {why}", path.display());
    }
    if set.failures.len() > 10 {
        eprintln!("... and {} more images skipped", set.failures.len() - 10);
    }
    Ok(set)
}
