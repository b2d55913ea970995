//! `countersign bench`: measures the project's own speed and prints a table of figures. Nothing is
//! asserted about time; the figures go into the README's performance section.

use std::time::Instant;

use crate::cli::GlobalOpts;

/// The benchmark groups, in the order they run.
pub const GROUPS: [&str; 7] = [
    "imaging", "model", "store", "latency", "batch", "memory", "formats",
];

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Smaller sizes (seconds instead of minutes); the figures are noisier.
    #[arg(long)]
    pub quick: bool,
    /// Run only this group: imaging, model, synth, scoring, gui, store, latency, batch, memory, formats
    /// (batch throughput per input format, PNG / JPEG / G4 / X9, beside PyTorch SigNet) (repeatable).
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(GROUPS))]
    pub only: Vec<String>,
    /// Keep the generated files in this folder (default: a temporary folder, removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

pub fn run(global: &GlobalOpts, args: &BenchArgs) -> anyhow::Result<()> {
    let (dir, remove_after) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("countersign-bench-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir)?;
    let result = run_groups(global, args, &dir);
    if remove_after {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn run_groups(global: &GlobalOpts, args: &BenchArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let wants = |g: &str| args.only.is_empty() || args.only.iter().any(|o| o == g);
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    crate::cli::verify::out(&format!(
        "countersign {} bench{} on {} CPU core(s){}, libtorch {} ({} threads)\n",
        env!("CARGO_PKG_VERSION"),
        if args.quick { " --quick" } else { "" },
        cpus,
        if tch::Cuda::is_available() {
            format!(", GPU {}", crate::device::describe(tch::Device::Cuda(0)))
        } else {
            String::new()
        },
        env!("COUNTERSIGN_LIBTORCH_VERSION"),
        tch::get_num_threads()
    ))?;
    let print_rows = |rows: Vec<(String, String)>| {
        for (k, v) in &rows {
            let _ = crate::cli::verify::out(&format!("  {k:<58} {v}\n"));
        }
    };
    let group = |name: &str, f: &mut dyn FnMut() -> anyhow::Result<Vec<(String, String)>>| {
        let t0 = Instant::now();
        let r = f();
        let out = match r {
            Ok(v) => v,
            Err(e) => vec![(format!("{name}: FAILED"), format!("{e:#}"))],
        };
        eprintln!("  ({name}: {:.1} s)", t0.elapsed().as_secs_f64());
        out
    };

    if wants("imaging") {
        let r = group("imaging", &mut || crate::imaging::bench::bench());
        print_rows(r);
    }
    if wants("model") {
        let r = group("model", &mut || {
            let model = global.model.as_deref();
            let mut v = crate::model::bench::bench(tch::Device::Cpu, model)?;
            if tch::Cuda::is_available() {
                v.extend(crate::model::bench::bench(tch::Device::Cuda(0), model)?);
            }
            Ok(v)
        });
        print_rows(r);
    }
    if wants("synth") {
        let n = if args.quick { 50 } else { 500 };
        let r = group("synth", &mut || crate::synth::bench::bench(n));
        print_rows(r);
    }
    if wants("scoring") {
        let r = group("scoring", &mut || crate::scoring::bench::bench());
        print_rows(r);
    }
    if wants("gui") {
        let r = group("gui", &mut || crate::gui::bench::bench(global.device));
        print_rows(r);
    }
    if wants("store") {
        let r = group("store", &mut || {
            crate::store::bench::bench(&dir.join("store"))
        });
        print_rows(r);
    }
    let needs_setup = ["latency", "batch", "memory", "formats"]
        .iter()
        .any(|g| wants(g));
    if needs_setup {
        let setup = match crate::batch::bench::setup(
            &dir.join("pipeline"),
            global.model.clone(),
            args.quick,
        ) {
            Ok(s) => s,
            Err(e) => {
                print_rows(vec![("pipeline setup: FAILED".into(), format!("{e:#}"))]);
                return Ok(());
            }
        };
        if wants("latency") {
            let r = group("latency", &mut || {
                let mut v = crate::batch::bench::latency(&setup, tch::Device::Cpu)?;
                if tch::Cuda::is_available() {
                    v.extend(crate::batch::bench::latency(&setup, tch::Device::Cuda(0))?);
                }
                Ok(v)
            });
            print_rows(r);
        }
        if wants("batch") {
            let n = if args.quick { 512 } else { 8192 };
            let r = group("batch", &mut || {
                let mut v = crate::batch::bench::throughput(&setup, tch::Device::Cpu, n)?.0;
                if tch::Cuda::is_available() {
                    v.extend(crate::batch::bench::throughput(&setup, tch::Device::Cuda(0), n)?.0);
                }
                Ok(v)
            });
            print_rows(r);
        }
        if wants("formats") {
            let n = if args.quick { 256 } else { 4096 };
            let r = group("formats", &mut || crate::x9::bench::formats(&setup, n));
            print_rows(r);
        }
        if wants("memory") {
            let n = if args.quick { 5_000 } else { 100_000 };
            let r = group("memory", &mut || {
                let exe = std::env::current_exe()?;
                crate::batch::bench::peak_memory(&setup, &exe, n)
            });
            print_rows(r);
        }
    }
    Ok(())
}
