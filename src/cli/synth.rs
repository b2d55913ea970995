//! `countersign synth`: generate synthetic writers, forgeries and cheque scans.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use crate::cli::GlobalOpts;
use crate::synth::dataset::{DatasetOptions, generate_dataset};

#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Number of synthetic writers.
    #[arg(long, default_value_t = 10)]
    pub writers: u32,
    /// Genuine signatures per writer.
    #[arg(long, default_value_t = 12)]
    pub genuine: u32,
    /// Skilled forgeries per writer.
    #[arg(long, default_value_t = 6)]
    pub forgeries: u32,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder (writer folders, manifest.csv, cheques/).
    #[arg(long)]
    pub out: PathBuf,
    /// Cheque scans per writer (genuine and forged), with JSON ground truth, in OUT/cheques.
    #[arg(long, default_value_t = 0)]
    pub cheques: u32,
    /// Pass each signature image through random scan effects (150-300 dpi, blur, noise, paper, JPEG).
    #[arg(long)]
    pub scan: bool,
    /// Also write a contact sheet (rows = writers, genuine then forgeries) to this PNG.
    #[arg(long)]
    pub contact_sheet: Option<PathBuf>,
}

pub fn run(global: &GlobalOpts, args: &SynthArgs) -> anyhow::Result<()> {
    let opts = DatasetOptions {
        writers: args.writers,
        genuine: args.genuine,
        forgeries: args.forgeries,
        cheques: args.cheques,
        seed: args.seed,
        scan: args.scan,
    };
    let start = Instant::now();
    let summary = generate_dataset(&args.out, &opts)
        .with_context(|| format!("writing the synthetic data set to {}", args.out.display()))?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let sigs = summary.genuine + summary.forgeries;
    crate::outln!(
        "wrote {} writers: {} genuine, {} forgeries, {} cheques to {} in {:.2} s",
        summary.writers,
        summary.genuine,
        summary.forgeries,
        summary.cheques,
        args.out.display(),
        secs,
    );
    if summary.cheques == 0 {
        crate::outln!(
            "{:.0} signatures/s (drawn and PNG-encoded, all cores)",
            sigs as f64 / secs
        );
    }
    if let Some(path) = &args.contact_sheet {
        let sheet = crate::synth::dataset::dataset_contact_sheet(&opts, 6, 4);
        crate::output::write_png(path, &global.protected(), &sheet)
            .with_context(|| format!("writing the contact sheet {}", path.display()))?;
        crate::outln!("contact sheet: {}", path.display());
    }
    Ok(())
}
