//! The library's layers, checked on the source: the modules below the command line know nothing of
//! it (exit codes, flags, stdout), so the GUI, the CLI and batch runs share them as they are. The
//! command line maps their typed errors to exit codes at the binary's edge (`cli::exit`).

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read source folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn library_layers_do_not_reach_up_into_the_command_line() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut files = 0;
    // Everything but the command line itself (and the binary's `main.rs`): the GUI too, which the
    // binary starts with a `gui::Options` rather than the command line's own types.
    for layer in [
        "store", "batch", "verify", "model", "assess", "gui", "imaging", "scoring", "train",
        "synth", "x9",
    ] {
        for file in sources(&src.join(layer)) {
            files += 1;
            let text = std::fs::read_to_string(&file).expect("read source");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                let grouped = code.contains("crate::{") && code.contains("cli");
                if code.contains("crate::cli") || code.contains("countersign::cli") || grouped {
                    offenders.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(files > 20, "the layers' sources were found ({files} files)");
    assert!(
        offenders.is_empty(),
        "library layers import the command line:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn store_errors_map_to_the_documented_exit_codes() {
    use countersign::cli::exit;
    use countersign::store::StoreError;
    let cases = [
        (StoreError::AuthFailed, exit::DENIED),
        (StoreError::NoOperators, exit::DENIED),
        (StoreError::MissingCredentials, exit::DENIED),
        (StoreError::Invalid("x".into()), exit::FAILURE),
        (
            StoreError::NotFound {
                what: "account",
                id: "1".into(),
            },
            exit::FAILURE,
        ),
        (
            StoreError::Tampered { detail: "x".into() },
            exit::CHAIN_BROKEN,
        ),
        (StoreError::DiskFull { path: "a".into() }, exit::DATABASE),
    ];
    for (err, code) in cases {
        assert_eq!(exit::for_store(&err), code, "{err}");
        // Through the command line's own mapping, as `main` reports it.
        assert_eq!(
            countersign::cli::exit_code_for(&anyhow::Error::new(err)),
            code
        );
    }
}
