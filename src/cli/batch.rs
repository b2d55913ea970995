//! `countersign batch`: verifies a manifest of cheques, resumably, with one audit row per cheque.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::batch::manifest::count_rows;
use crate::batch::{BatchOptions, BatchSummary, StopReason};
use crate::cli::GlobalOpts;
use crate::cli::verify::{
    authenticate, load_chosen, load_layout, may_choose_policy, model_in_force, out,
};
use crate::store::{Source, Store};
use crate::verify::Verifier;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Manifest (CSV, header row required; columns in any order):\n  \
cheque_id,cheque_path,account_id,reference_paths,amount\n  \
000123,scans/000123.png,ACC-001,,250.00\n  \
000124,scans/000124.png,,refs/a.png;refs/b.png,\n\
Each row names account_id (the account's enrolled references) or reference_paths (image files \
separated by ;); both only in a supervisor's run. amount is optional. A row with more fields than the \
header (an unquoted comma) is an ERROR. Relative paths are relative to the manifest's folder.\n\n\
Results (CSV, the whole manifest): cheque_id, line, account_id, decision (ACCEPT/REFER/REJECT, ERROR \
for a row that could not be verified), probability, score, crop box, find_confidence, reason, error, \
run (this, or earlier for a cheque a previous run decided), audit_row. Every decided cheque is one \
audit row.\n\n\
Resuming: cheque ids already in the audit database are not verified again (their image is hashed: the \
same image shows the earlier decision, another one is an ERROR naming both hashes), so after Ctrl-C or \
a crash run the same command again. Exit status 3 when any row was an ERROR (the other rows were still verified), 130 when \
stopped by Ctrl-C.\n\n\
X9 image cash letters (--x9 FILE, X9.37 / X9.100-187, ASCII or EBCDIC, with or without length prefixes): \
the whole file is checked first (structure, control totals, amounts) and rejected if it does not add up. \
Each item's front image is verified against the account found in its on-us field by the account rule \
(`countersign settings x9-account-rule`); the cheque id is X9-<file SHA-256 prefix>-<item sequence number>. \
Besides the results, a return list (<out>-returns.csv) names the items to refer or reject, and those in error.")]
pub struct BatchArgs {
    /// The manifest CSV.
    #[arg(
        long,
        value_name = "FILE.csv",
        required_unless_present = "x9",
        conflicts_with = "x9"
    )]
    pub manifest: Option<PathBuf>,
    /// An X9.37 / X9.100-187 image cash letter instead of a manifest.
    #[arg(long, value_name = "FILE.x937")]
    pub x9: Option<PathBuf>,
    /// The return list for an X9 file (default: <out stem>-returns.csv beside the results).
    #[arg(long, value_name = "FILE.csv", requires = "x9")]
    pub returns: Option<PathBuf>,
    /// The results CSV (default: <manifest>-results.csv beside the manifest). Overwritten.
    #[arg(long, value_name = "FILE.csv")]
    pub out: Option<PathBuf>,
    /// Threads decoding and preparing cheques (default: all cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: Option<u32>,
    /// Verify at most N cheques in this run; run the command again to continue.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// The cheque design (JSON: signature zone, skew, minimum confidence); default: signature lower right.
    #[arg(long, value_name = "FILE.json")]
    pub layout: Option<PathBuf>,
    /// Rows per chunk: per parallel step and per audit transaction.
    #[arg(long, value_name = "N", default_value_t = crate::batch::DEFAULT_CHUNK_ROWS, hide = true)]
    pub chunk_rows: usize,
    /// Also write the summary (counts, rate, time per stage, peak memory) as JSON to this file.
    #[arg(long, value_name = "FILE.json")]
    pub summary_json: Option<PathBuf>,
}

/// The default results file: `<manifest stem>-results.csv` beside the manifest.
pub fn default_out(manifest: &Path) -> PathBuf {
    let stem = manifest
        .file_stem()
        .map_or_else(|| "manifest".into(), |s| s.to_string_lossy().into_owned());
    manifest.with_file_name(format!("{stem}-results.csv"))
}

pub fn run(global: &GlobalOpts, args: &BatchArgs) -> anyhow::Result<()> {
    let db = global.db_path();
    let mut store = Store::open(&db)?;
    // Every file the batch writes is checked before any work: never the database, never the manifest.
    let mut protected = store.protected_files();
    for input in args.manifest.iter().chain(&args.x9) {
        protected.add(input, "the batch's input");
    }
    for p in args
        .out
        .iter()
        .chain(&args.summary_json)
        .chain(&args.returns)
    {
        protected.check(p)?;
    }
    let operator = authenticate(global, &mut store)?;
    // Only the store's active model decides audited decisions (its card carries the policy); other
    // weights need a supervisor.
    let choice = model_in_force(global, Some(&store))?;
    if !choice.is_active() && !may_choose_policy(&operator) {
        return Err(crate::store::StoreError::PermissionDenied {
            operator: operator.name().to_string(),
            action: format!(
                "run a batch with {} instead of the store's active model (--model); drop --model to use the active one",
                choice.path.display()
            ),
            needed: "supervisor".to_string(),
        }
        .into());
    }
    let model = load_chosen(global, &choice)?;
    let verifier = Verifier::from_store(model, load_layout(args.layout.as_deref())?, Some(&store))?;
    let (input, is_x9) = match (&args.manifest, &args.x9) {
        (_, Some(x9)) => (x9.clone(), true),
        (Some(m), None) => (m.clone(), false),
        (None, None) => anyhow::bail!("give --manifest FILE.csv or --x9 FILE"),
    };
    let out_path = args.out.clone().unwrap_or_else(|| default_out(&input));
    let mut opts = if is_x9 {
        BatchOptions::x9(&input, &out_path)
    } else {
        BatchOptions::new(&input, &out_path)
    };
    opts.workers = args.workers.map(|w| w as usize);
    opts.limit = args.limit;
    opts.chunk_rows = args.chunk_rows.max(1);
    opts.source = Source::Batch;
    opts.allow_adhoc_references = may_choose_policy(&operator);

    // Ctrl-C asks the batch to stop after the chunk in hand is committed; a second Ctrl-C exits at
    // once (still safe: every chunk is one transaction, so the store holds whole chunks only).
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        let installed = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("\nstopping now; rerun the same command to resume");
                std::process::exit(130);
            }
            eprintln!(
                "\nCtrl-C: finishing the current chunk, then stopping (press Ctrl-C again to stop at once)"
            );
        });
        if let Err(e) = installed {
            eprintln!(
                "warning: Ctrl-C cannot be caught ({e}); it will stop the batch between transactions"
            );
        }
    }

    let total = if is_x9 { None } else { count_rows(&input) };
    let bar =
        indicatif::ProgressBar::with_draw_target(total, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {pos}/{len} cheques  {per_sec}  ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    eprintln!(
        "verifying {} ({} rows) with model {} on {}; policy from {}",
        input.display(),
        total.map_or("?".to_string(), |n| n.to_string()),
        verifier.model_id(),
        verifier.device_name(),
        verifier.policy().source.describe()
    );
    let result = crate::batch::run(&verifier, &mut store, &operator, &opts, &stop, &|rows| {
        bar.inc(rows)
    });
    bar.finish_and_clear();
    let summary = match result {
        Ok(s) => s,
        // A file that does not add up is unusable input (exit status 3), with nothing decided.
        Err(crate::batch::BatchError::X9(e)) => {
            return Err(crate::cli::ExitError::new(
                crate::cli::exit::BAD_INPUT,
                format!("{}: {e}; nothing in it was verified", input.display()),
            )
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    out(&render_summary(&summary))?;
    if let Some(x9) = &summary.x9 {
        let returns = args
            .returns
            .clone()
            .unwrap_or_else(|| crate::x9::batch::default_returns(&summary.out));
        let n = crate::x9::batch::write_returns(&input, x9, &summary.out, &returns, &protected)?;
        out(&format!(
            "returns      {} ({n} item(s) to refer, reject or fix)\n",
            returns.display()
        ))?;
    }
    if let Some(p) = &args.summary_json {
        crate::output::write(
            p,
            &protected,
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
    }
    match summary.stopped {
        Some(StopReason::Interrupted) => {
            return Err(crate::cli::ExitError::new(
                130,
                "stopped by Ctrl-C; every decision so far is committed. Run the same command again to resume: \
                 cheques already decided are skipped",
            )
            .into());
        }
        Some(StopReason::Limit) => {
            out(
                "stopped at the --limit; run the same command again to continue (decided cheques are skipped)\n",
            )?;
        }
        None => {}
    }
    if summary.errors > 0 {
        return Err(crate::cli::ExitError::new(
            crate::cli::exit::BAD_INPUT,
            format!(
                "{} row(s) could not be verified (decision ERROR in {}); fix them and rerun to verify just those",
                summary.errors,
                summary.out.display()
            ),
        )
        .into());
    }
    Ok(())
}

/// The end-of-batch summary: counts, rate, where the time went, peak memory.
pub fn render_summary(s: &BatchSummary) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let verified = s.decided() + s.errors;
    let _ = writeln!(o, "rows         {}", s.rows);
    let _ = writeln!(o, "ACCEPT       {}", s.accept);
    let _ = writeln!(o, "REFER        {}", s.refer);
    let _ = writeln!(o, "REJECT       {}", s.reject);
    let _ = writeln!(o, "ERROR        {}", s.errors);
    let _ = writeln!(o, "SKIPPED      {} (already decided)", s.skipped);
    let _ = writeln!(
        o,
        "rate         {:.1} cheques/s ({verified} in {:.2} s, {} workers, {})",
        s.per_second, s.elapsed_s, s.workers, s.device
    );
    let t = &s.timings;
    let _ = writeln!(
        o,
        "time         prepare {:.0} ms wall (decode {:.0} + find/normalise {:.0} ms CPU over all workers)",
        t.prepare_wall_ms, t.decode_cpu_ms, t.find_normalise_cpu_ms
    );
    let _ = writeln!(
        o,
        "             model thread: waiting {:.0}, references {:.0}, embed {:.0}, score {:.0}, audit {:.0}, csv {:.0} ms",
        t.wait_ms, t.references_ms, t.embed_ms, t.score_ms, t.store_ms, t.csv_ms
    );
    if let Some(x) = &s.x9 {
        let _ = writeln!(
            o,
            "X9 file      {} items, {} in {} bundle(s), {}, {:?}, SHA-256 {}",
            x.items,
            crate::verify::format_amount(i64::try_from(x.total_cents).unwrap_or(i64::MAX)),
            x.bundles,
            x.encoding.as_str(),
            x.framing,
            x.sha256
        );
        for n in &x.notes {
            let _ = writeln!(o, "X9 note      {n}");
        }
    }
    if let Some(mb) = s.peak_rss_mb {
        let _ = writeln!(o, "peak memory  {mb:.0} MiB");
    }
    let _ = writeln!(o, "results      {}", s.out.display());
    o
}
