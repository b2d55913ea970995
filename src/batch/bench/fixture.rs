//! The benchmarks' data set: synthetic writers' reference signatures and cheque scans on disk, an
//! audit store with an operator and enrolled accounts, and manifests of any length that reuse a few
//! image files (so a 100,000-row manifest costs kilobytes of disk, not gigabytes).
//!
//! `countersign bench` needs it (batch throughput, X9 files), so it ships with the bench code and
//! nowhere else in the product; the integration tests reuse the same data rather than a copy.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::store::{KdfCost, OpenOptions, Operator, Role, Store, StoreError};
use crate::synth::SyntheticWriter;
use crate::synth::cheque::{ChequeOptions, render_cheque};

/// Operator name and PIN of the fixture store.
pub const OPERATOR: &str = "bench";
pub const PIN: &str = "4711-bench";

/// What [`build`] wrote.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub dir: PathBuf,
    pub db: PathBuf,
    /// Per writer: its account id, its reference images, its cheques (genuine first, then forged).
    pub writers: Vec<FixtureWriter>,
}

#[derive(Clone, Debug)]
pub struct FixtureWriter {
    pub account: String,
    pub references: Vec<PathBuf>,
    pub cheques: Vec<PathBuf>,
}

/// Builds the fixture in `dir`: `writers` synthetic writers with `refs` references each, enrolled as
/// accounts `ACC-000..`, and `cheques` cheques per writer (every other one a skilled forgery).
pub fn build(
    dir: &Path,
    writers: u32,
    refs: u32,
    cheques: u32,
    seed: u64,
) -> anyhow::Result<Fixture> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let db = dir.join("audit.sqlite3");
    let mut store = open_store(&db)?;
    let operator = operator(&mut store)?;
    let mut out = Vec::new();
    for w in 0..writers {
        let writer = SyntheticWriter::new(seed.wrapping_mul(1000).wrapping_add(u64::from(w)));
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (u64::from(w) << 20));
        let account = format!("ACC-{w:03}");
        let mut references = Vec::new();
        for r in 0..refs {
            let img = writer.genuine(&mut rng);
            let p = dir.join(format!("ref-{w:03}-{r}.png"));
            img.save(&p)
                .with_context(|| format!("writing {}", p.display()))?;
            references.push(p);
        }
        enrol(&mut store, &operator, &account, &references)?;
        let mut cheque_paths = Vec::new();
        for c in 0..cheques {
            let genuine = c % 2 == 0;
            let sig = if genuine {
                writer.genuine(&mut rng)
            } else {
                writer.forgery(&mut rng, 0.6)
            };
            // Scan effects on (skew, blur, noise, paper), stamps off: every cheque's signature must be
            // findable, so that tests compare scored decisions rather than refer-for-no-signature.
            let opts = ChequeOptions {
                cheque_id: format!("{account}-{c}"),
                writer_id: account.clone(),
                genuine,
                stamp_probability: 0.0,
                scan: true,
                micr: None,
            };
            let (cheque, _truth) = render_cheque(&sig, &mut rng, &opts);
            let p = dir.join(format!("cheque-{w:03}-{c}.png"));
            cheque
                .save(&p)
                .with_context(|| format!("writing {}", p.display()))?;
            cheque_paths.push(p);
        }
        out.push(FixtureWriter {
            account,
            references,
            cheques: cheque_paths,
        });
    }
    Ok(Fixture {
        dir: dir.to_path_buf(),
        db,
        writers: out,
    })
}

/// Opens (creating) a store whose new PINs use the cheap test cost: the fixture's operator exists only
/// for benchmarks and tests.
pub fn open_store(db: &Path) -> anyhow::Result<Store> {
    let opts = OpenOptions {
        kdf: KdfCost::Test,
        ..OpenOptions::default()
    };
    Ok(Store::open_with(db, &opts)?)
}

/// The fixture's supervisor: created as the first operator of an empty store, else signed in.
pub fn operator(store: &mut Store) -> anyhow::Result<Operator> {
    if store.operator_count()? == 0 {
        Ok(store.add_operator(None, OPERATOR, Role::Supervisor, PIN)?)
    } else {
        Ok(store.authenticate(OPERATOR, PIN)?)
    }
}

/// Creates the account (if new) and enrols the reference images (skipping ones already enrolled).
pub fn enrol(
    store: &mut Store,
    by: &Operator,
    account: &str,
    references: &[PathBuf],
) -> anyhow::Result<()> {
    match store.add_account(by, account, &format!("Holder of {account}")) {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    for r in references {
        let bytes = std::fs::read(r).with_context(|| format!("reading {}", r.display()))?;
        match store.enrol_reference(by, account, &bytes) {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// How a manifest row names its references.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefMode {
    /// `account_id` (the store's enrolled references, embeddings cached).
    Account,
    /// `reference_paths` (the image files).
    Paths,
}

/// Writes a manifest of `rows` rows cycling over the fixture's cheques, with ids `{prefix}{n}`.
pub fn write_manifest(
    fx: &Fixture,
    path: &Path,
    rows: u64,
    prefix: &str,
    mode: RefMode,
) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "cheque_id,cheque_path,account_id,reference_paths,amount")?;
    let all: Vec<(&FixtureWriter, &PathBuf)> = fx
        .writers
        .iter()
        .flat_map(|fw| fw.cheques.iter().map(move |c| (fw, c)))
        .collect();
    anyhow::ensure!(!all.is_empty(), "the fixture has no cheques");
    let base = path.parent().unwrap_or(Path::new("."));
    let rel = |p: &Path| {
        p.strip_prefix(base)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| p.to_path_buf())
    };
    for n in 0..rows {
        let (fw, cheque) = all[(n % all.len() as u64) as usize];
        let cheque = rel(cheque).display().to_string();
        let amount = format!("{}.{:02}", 10 + (n * 37) % 5000, n % 100);
        match mode {
            RefMode::Account => writeln!(w, "{prefix}{n},{cheque},{},,{amount}", fw.account)?,
            RefMode::Paths => {
                let refs: Vec<String> = fw
                    .references
                    .iter()
                    .map(|p| rel(p).display().to_string())
                    .collect();
                writeln!(w, "{prefix}{n},{cheque},,{},{amount}", refs.join(";"))?;
            }
        }
    }
    w.flush()?;
    Ok(())
}
