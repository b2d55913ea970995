//! Gives every binary and test executable an rpath to libtorch, so that `target/*/countersign` runs
//! with an empty environment (no LD_LIBRARY_PATH). torch-sys declares `links = "tch"` and exports the
//! library folder it linked against as DEP_TCH_LIBTORCH_LIB.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=build.rs");
    let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:rustc-env=COUNTERSIGN_LIBTORCH_VERSION=unknown");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    // The PyPI wheel keeps its version in torch/version.py, one folder above lib/.
    let version = std::path::Path::new(&dir)
        .parent()
        .and_then(|torch| std::fs::read_to_string(torch.join("version.py")).ok())
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=COUNTERSIGN_LIBTORCH_VERSION={version}");
}
