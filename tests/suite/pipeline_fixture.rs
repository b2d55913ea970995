//! The fixture the verification and batch pipeline tests share: synthetic writers with references
//! and rendered cheques, an audit database with their accounts enrolled, and a model.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use countersign::batch::bench::fixture::{self, Fixture};

/// A fixture (2 writers, 3 references and 4 cheques each) and a model: the bundled one when it exists,
/// else a randomly initialised one with a calibration (the pipeline's correctness does not depend on
/// the weights).
pub fn setup(dir: &Path) -> (Fixture, PathBuf) {
    // The images and the model are built once per test run (rendering cheques is the slow part) in
    // cargo's scratch folder; each test gets its own copy of the audit database.
    static SHARED: OnceLock<(Fixture, PathBuf)> = OnceLock::new();
    let (fx, model) = SHARED.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pipeline-fixture");
        let _ = std::fs::remove_dir_all(&root);
        let fx = fixture::build(&root.join("fx"), 2, 3, 4, 11).unwrap();
        let model = countersign::paths::default_model().unwrap_or_else(|| {
            countersign::batch::bench::random_model(&root.join("model")).unwrap()
        });
        (fx, model)
    });
    let mut fx = fx.clone();
    let db = dir.join("audit.sqlite3");
    std::fs::copy(&fx.db, &db).unwrap();
    fx.db = db;
    (fx, model.clone())
}
