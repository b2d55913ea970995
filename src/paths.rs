//! Default locations: the bundled model, the audit database, the demo assets.

use std::path::{Path, PathBuf};

/// Environment variable that overrides the database path (the `--db` option wins over it).
pub const DB_ENV: &str = "COUNTERSIGN_DB";
/// Environment variable that overrides the model path (the `--model` option wins over it).
pub const MODEL_ENV: &str = "COUNTERSIGN_MODEL";
/// File stem of the bundled default model in `models/`: `<stem>.safetensors` + `<stem>.json`.
pub const DEFAULT_MODEL_STEM: &str = "countersign-default";

/// The source tree this binary was built from; used to find `models/` and `assets/` when the binary
/// runs from `target/`.
pub fn source_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Folders searched for bundled files, in order: beside the executable (an installed layout), the
/// current directory, the source tree.
fn search_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        roots.push(dir);
    }
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    roots.push(source_root());
    roots
}

/// The bundled default model's weights file, if it can be found.
pub fn default_model() -> Option<PathBuf> {
    search_roots()
        .into_iter()
        .map(|r| {
            r.join("models")
                .join(format!("{DEFAULT_MODEL_STEM}.safetensors"))
        })
        .find(|p| p.is_file())
}

/// The demo assets folder (`assets/demo`), if it can be found.
pub fn demo_assets() -> Option<PathBuf> {
    search_roots()
        .into_iter()
        .map(|r| r.join("assets").join("demo"))
        .find(|p| p.is_dir())
}

/// Default database path: the user's data directory, e.g. `~/.local/share/countersign/audit.sqlite3`.
pub fn default_db() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("countersign")
        .join("audit.sqlite3")
}
