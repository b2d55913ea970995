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
    // A missing or broken model is reported, not fatal: `info` is what people run to find out why.
    let model = match global.model_path() {
        Ok((path, source)) => match crate::model::SignatureModel::load(&path, device) {
            Ok(m) => {
                let card = m.card();
                serde_json::json!({
                    "id": m.id(),
                    "path": path,
                    "source": source,
                    "architecture": format!("{} v{}", card.architecture, card.architecture_version),
                    "input": format!("{}x{}", card.input_width, card.input_height),
                    "embedding_dim": card.embedding_dim,
                    "parameters": card.parameters,
                    "flops": card.flops,
                    "preprocessing_version": card.preprocessing.version,
                    "calibrated": card.calibration.is_some(),
                    "validation": card.validation,
                    "created_at": card.created_at,
                })
            }
            Err(e) => serde_json::json!({ "path": path, "source": source, "error": e.to_string() }),
        },
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    };
    let db = global.db_path();
    let report = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "libtorch": env!("COUNTERSIGN_LIBTORCH_VERSION"),
        "cuda_available": tch::Cuda::is_available(),
        "cuda_devices": tch::Cuda::device_count(),
        "device": crate::device::describe(device),
        "cpu_threads": tch::get_num_threads(),
        "model": model,
        "database": db,
        "database_exists": db.is_file(),
    });
    if args.json {
        crate::outln!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    crate::outln!("countersign  {}", env!("CARGO_PKG_VERSION"));
    crate::outln!("libtorch     {}", env!("COUNTERSIGN_LIBTORCH_VERSION"));
    let cuda = if tch::Cuda::is_available() {
        format!("available ({} device(s))", tch::Cuda::device_count())
    } else {
        "not available".to_string()
    };
    crate::outln!("CUDA         {cuda}");
    crate::outln!("device       {}", crate::device::describe(device));
    crate::outln!("CPU threads  {}", tch::get_num_threads());
    match model.get("error").and_then(|e| e.as_str()) {
        Some(err) => crate::outln!("model        NOT LOADED: {err}"),
        None => {
            let field = |k: &str| {
                model
                    .get(k)
                    .map(|v| v.to_string().trim_matches('"').to_string())
                    .unwrap_or_default()
            };
            crate::outln!("model        {} ({})", field("id"), field("source"));
            crate::outln!("  path       {}", field("path"));
            crate::outln!(
                "  card       {}, input {}, {}-d embedding, {} parameters, {} FLOPs, preprocessing v{}",
                field("architecture"),
                field("input"),
                field("embedding_dim"),
                field("parameters"),
                field("flops"),
                field("preprocessing_version")
            );
            crate::outln!("  calibrated {}", field("calibrated"));
            if let Some(v) = model.get("validation").filter(|v| !v.is_null()) {
                crate::outln!("  validation {v}");
            }
        }
    }
    let exists = if db.is_file() {
        ""
    } else {
        " (not created yet)"
    };
    crate::outln!("database     {}{exists}", db.display());
    Ok(())
}
