//! Options shared by `evaluate` and `calibrate`: which labelled data, and the evaluation protocol.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::GlobalOpts;
use crate::model::SignatureModel;
use crate::scoring::{Aggregation, EvalConfig};
use crate::train::dataset::{self, Dataset, Layout};

#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Labelled signatures: writer folders, a CEDAR tree, or a CSV manifest.
    #[arg(long)]
    pub data: PathBuf,
    /// Dataset layout.
    #[arg(long, value_enum, default_value_t = Layout::Auto)]
    pub layout: Layout,
    /// Only these writers: a comma-separated list, or @FILE with one writer per line.
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

impl DataArgs {
    /// Scans the dataset and restricts it to the chosen writers.
    pub fn dataset(&self) -> anyhow::Result<Dataset> {
        let ds = dataset::scan(&self.data, self.layout)
            .with_context(|| format!("reading labelled data from {}", self.data.display()))?;
        let Some(spec) = &self.writers else {
            return Ok(ds);
        };
        let wanted: Vec<String> = match spec.strip_prefix('@') {
            Some(file) => dataset::read_writer_list(Path::new(file))?,
            None => spec
                .split(',')
                .map(|w| w.trim().to_string())
                .filter(|w| !w.is_empty())
                .collect(),
        };
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|w| !ds.samples.iter().any(|s| &s.writer == *w))
            .collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "--writers names writers not in {}: {missing:?}",
                self.data.display()
            );
        }
        Ok(ds.only_writers(&wanted))
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
    let bar = indicatif::ProgressBar::new(ds.samples.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "embedding {bar:40} {pos}/{len} images, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let set = crate::assess::embed_dataset(model, ds, &mut |done, _| {
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
