//! `countersign info`: what this installation is and what it would use.

use crate::cli::GlobalOpts;

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &GlobalOpts, args: &InfoArgs) -> anyhow::Result<()> {
    let device = global.device.resolve()?;
    let report = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "libtorch": env!("COUNTERSIGN_LIBTORCH_VERSION"),
        "cuda_available": tch::Cuda::is_available(),
        "cuda_devices": tch::Cuda::device_count(),
        "device": crate::device::describe(device),
        "cpu_threads": tch::get_num_threads(),
        "database": global.db_path(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("countersign {}", env!("CARGO_PKG_VERSION"));
        println!("libtorch     {}", env!("COUNTERSIGN_LIBTORCH_VERSION"));
        println!(
            "CUDA         {}",
            if tch::Cuda::is_available() {
                "available"
            } else {
                "not available"
            }
        );
        println!("device       {}", crate::device::describe(device));
        println!("CPU threads  {}", tch::get_num_threads());
        println!("database     {}", global.db_path().display());
    }
    Ok(())
}
