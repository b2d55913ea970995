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
    #[arg(long, required_unless_present = "x9")]
    pub out: Option<PathBuf>,
    /// Write an X9.100-187 image cash letter of --cheques synthetic cheques (bitonal CCITT G4 fronts
    /// with the MICR line printed, and a back) instead, with OUT.truth.csv (ground truth) and
    /// OUT.refs/ (each account's reference signatures) beside it. --writers accounts take turns;
    /// every other round carries skilled forgeries.
    #[arg(long, value_name = "OUT.x937", conflicts_with = "out")]
    pub x9: Option<PathBuf>,
    /// With --x9: text in EBCDIC (code page 037) instead of ASCII.
    #[arg(long, requires = "x9")]
    pub ebcdic: bool,
    /// With --x9: one record per line (CR LF) instead of 4-byte length prefixes.
    #[arg(long, requires = "x9")]
    pub no_length_prefix: bool,
    /// With --x9: reference signatures written per account.
    #[arg(long, default_value_t = 4, requires = "x9")]
    pub references: u32,
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
    if let Some(x9) = &args.x9 {
        return run_x9(x9, args);
    }
    let out_dir = args
        .out
        .clone()
        .ok_or_else(|| anyhow::anyhow!("give --out DIR (or --x9 FILE)"))?;
    let opts = DatasetOptions {
        writers: args.writers,
        genuine: args.genuine,
        forgeries: args.forgeries,
        cheques: args.cheques,
        seed: args.seed,
        scan: args.scan,
    };
    let start = Instant::now();
    let summary = generate_dataset(&out_dir, &opts)
        .with_context(|| format!("writing the synthetic data set to {}", out_dir.display()))?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let sigs = summary.genuine + summary.forgeries;
    crate::outln!(
        "wrote {} writers: {} genuine, {} forgeries, {} cheques to {} in {:.2} s",
        summary.writers,
        summary.genuine,
        summary.forgeries,
        summary.cheques,
        out_dir.display(),
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

fn run_x9(path: &std::path::Path, args: &SynthArgs) -> anyhow::Result<()> {
    use crate::x9::synth::{X9SynthOptions, generate};
    let opts = X9SynthOptions {
        cheques: args.cheques,
        writers: args.writers.max(1),
        references: args.references.max(1),
        seed: args.seed,
        encoding: if args.ebcdic {
            crate::x9::Encoding::Ebcdic
        } else {
            crate::x9::Encoding::Ascii
        },
        length_prefixed: !args.no_length_prefix,
        scan: true,
    };
    let start = Instant::now();
    let s = generate(path, &opts).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "wrote {} items ({} in all, {}, {}) to {} in {:.2} s",
        s.items,
        crate::verify::format_amount(i64::try_from(s.total_cents).unwrap_or(i64::MAX)),
        opts.encoding.as_str(),
        if opts.length_prefixed {
            "length-prefixed"
        } else {
            "one record per line"
        },
        path.display(),
        start.elapsed().as_secs_f64()
    );
    println!("truth:      {}", s.truth.display());
    println!("references: {}", s.refs_dir.display());
    for (account, refs) in &s.accounts {
        let list: Vec<String> = refs.iter().map(|p| p.display().to_string()).collect();
        println!("  account {account}: {}", list.join(" "));
    }
    Ok(())
}
