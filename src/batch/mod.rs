//! Batch verification of cheque manifests: fast, resumable, exact.
//!
//! ```text
//!  reader thread                          this thread (owns the model and the store)
//!  manifest rows --chunk of 256--> rayon:  ==bounded channel==>  references (cache) -> embed 64 at a
//!  decode, find, normalise (all cores)      (back-pressure)      time -> score, decide -> one audit
//!                                                                 transaction per chunk -> results CSV
//! ```
//!
//! - Exact: every stage is the one [`crate::verify`] runs for a single cheque ([`prepare_questioned`],
//!   [`Verifier::embed`], [`Verifier::decide`]), so a batch decides each cheque exactly as
//!   `countersign verify` would.
//! - Bounded memory: the manifest is streamed; at most a few chunks are in flight (the channel holds
//!   two); results are written as each chunk is committed. What grows with the manifest is the set of
//!   cheque ids (for duplicate and resume checks) and the reference-embedding caches.
//! - Resumable: cheque ids already decided in the audit store are not verified again, so rerunning
//!   after a crash or Ctrl-C continues where the last committed chunk ended, with no duplicate
//!   decisions. A cheque id is tied to its image: the image of an already decided id is hashed, and
//!   the same image shows the earlier decision (the results file covers the whole manifest, saying
//!   which run decided each row) while a different image under that id is an ERROR naming both
//!   hashes.
//! - Robust: a row that cannot be verified (missing or corrupt file, unknown account, bad amount)
//!   becomes an ERROR result with its reason and the batch goes on. It is not written to the audit
//!   store, so a rerun tries it again once it is fixed.
//! - Stoppable: the `stop` flag (Ctrl-C) is checked between chunks; the chunk in hand is committed first.

pub mod bench;
pub mod manifest;
pub mod output;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::imaging::NormalisedSignature;
use crate::store::{Operator, Recorded, Source, Store};
use crate::verify::{
    ImageSource, PreparedQuestioned, PreparedReference, Questioned, ReferenceEmbedding,
    StageTimings, Verifier, VerifyError, prepare_questioned, prepare_reference,
};

use manifest::{ManifestError, ManifestReader, ManifestRow, RowReferences};
use output::{ResultRow, ResultWriter, RowStatus};

/// Rows per chunk: one parallel preparation step and one audit transaction.
pub const DEFAULT_CHUNK_ROWS: usize = 256;

/// Account reference sets kept in memory before the cache is emptied (each is a few kilobytes).
const ACCOUNT_CACHE_MAX: usize = 50_000;

/// What stops a batch as a whole (a bad row never does).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot write the results file {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    #[error("cannot start {workers} worker threads: {detail}")]
    Workers { workers: usize, detail: String },
    #[error("the results file {path} is the manifest itself; choose another --out")]
    OutIsManifest { path: PathBuf },
    #[error(transparent)]
    Refused(#[from] crate::output::OutputError),
    #[error("the manifest reader thread failed unexpectedly")]
    ReaderPanicked,
    /// The X9 file as a whole is unusable (structure, control totals, a non-digit amount); nothing
    /// of it was decided.
    #[error(transparent)]
    X9(#[from] crate::x9::X9Error),
    #[error("the X9 account rule in the settings is unusable: {0}")]
    AccountRule(String),
}

/// How to run a batch.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    pub manifest: PathBuf,
    /// The results CSV (created or truncated).
    pub out: PathBuf,
    /// Threads decoding and normalising cheques; `None` = all cores.
    pub workers: Option<usize>,
    /// Rows per chunk (and per audit transaction).
    pub chunk_rows: usize,
    /// Stop after this many rows were verified (decided or failed) in this run; the rest is left for a
    /// rerun, as after Ctrl-C. For tests and benchmarks.
    pub limit: Option<u64>,
    /// Recorded with every decision.
    pub source: Source,
    /// `manifest` is an X9.37 / X9.100-187 image cash letter rather than a CSV manifest.
    pub x9: bool,
    /// Whether a row may name an account together with reference images other than its enrolled
    /// ones (a supervisor's run; the decision's reason is then flagged). Otherwise such a row is an
    /// ERROR: with an account, only its enrolled references count.
    pub allow_adhoc_references: bool,
}

impl BatchOptions {
    pub fn new(manifest: &Path, out: &Path) -> Self {
        Self {
            manifest: manifest.to_path_buf(),
            out: out.to_path_buf(),
            workers: None,
            chunk_rows: DEFAULT_CHUNK_ROWS,
            limit: None,
            source: Source::Batch,
            allow_adhoc_references: false,
            x9: false,
        }
    }

    /// A batch over the items of an X9 image cash letter.
    pub fn x9(file: &Path, out: &Path) -> Self {
        Self {
            x9: true,
            ..Self::new(file, out)
        }
    }
}

/// Why a batch ended before the end of the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The stop flag was raised (Ctrl-C).
    Interrupted,
    /// The row limit was reached.
    Limit,
}

/// Where a batch's time went, in milliseconds. `decode_cpu_ms` and `find_normalise_cpu_ms` are summed
/// over all worker threads (CPU time); the others are wall time on the thread that owns the model.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct BatchTimings {
    pub decode_cpu_ms: f64,
    pub find_normalise_cpu_ms: f64,
    /// Wall time of the parallel preparation (on the reader thread, overlapping the rest).
    pub prepare_wall_ms: f64,
    /// Time the model thread waited for prepared chunks (the preparation was the bottleneck).
    pub wait_ms: f64,
    /// Loading and embedding references that were not cached yet.
    pub references_ms: f64,
    pub embed_ms: f64,
    pub score_ms: f64,
    /// Audit transactions.
    pub store_ms: f64,
    pub csv_ms: f64,
}

/// The outcome of a batch.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BatchSummary {
    /// Manifest rows read in this run.
    pub rows: u64,
    pub accept: u64,
    pub refer: u64,
    pub reject: u64,
    pub errors: u64,
    /// Cheque ids already decided before this run.
    pub skipped: u64,
    pub elapsed_s: f64,
    /// Cheques verified (decided or failed) per second of wall time.
    pub per_second: f64,
    pub timings: BatchTimings,
    /// Peak resident memory of this process (VmHWM), when the system reports it.
    pub peak_rss_mb: Option<f64>,
    pub stopped: Option<StopReason>,
    pub out: PathBuf,
    pub device: String,
    pub model_id: String,
    pub workers: usize,
    /// For an X9 file: what it holds (hash, counts, totals, encoding, notes).
    pub x9: Option<crate::x9::X9Summary>,
}

impl BatchSummary {
    /// Cheques decided in this run.
    pub fn decided(&self) -> u64 {
        self.accept + self.refer + self.reject
    }
}

/// Peak resident set size of this process in MiB, read from `/proc/self/status` (Linux).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// What the reader thread did with one row.
enum Work {
    /// Decided before as audit row `earlier` for an image with SHA-256 `sha256`: to be hashed.
    Repeat { earlier: i64, sha256: String },
    /// Decided before, as this audit row, for this same image.
    Earlier(i64),
    /// To be prepared by the parallel step.
    Pending,
    /// Cannot be verified; the message says why.
    Error(String),
    /// Decoded, found and normalised.
    Ready(Box<PreparedQuestioned>),
}

struct Item {
    row: ManifestRow,
    /// The cheque's bytes when they do not come from `row.cheque_path` (an X9 item's front image).
    image: Option<ImageSource>,
    work: Work,
}

/// Where the rows come from.
enum Rows {
    Manifest(Box<ManifestReader>),
    X9(Box<crate::x9::batch::X9Rows>),
}

impl Rows {
    fn next_row(&mut self) -> Result<Option<(ManifestRow, Option<ImageSource>)>, BatchError> {
        match self {
            Rows::Manifest(m) => Ok(m.next_row()?.map(|r| (r, None))),
            Rows::X9(x) => Ok(x.next_row()?),
        }
    }
}

/// One chunk of prepared rows, plus the reference images first seen in it.
struct Chunk {
    items: Vec<Item>,
    new_refs: Vec<(PathBuf, Result<PreparedReference, String>)>,
    decode_cpu_ms: f64,
    find_normalise_cpu_ms: f64,
    prepare_wall_ms: f64,
    /// The limit was reached with this chunk.
    limit_reached: bool,
}

/// Runs a batch. `progress(rows)` is called after each chunk with the number of rows it finished
/// (the CLI draws its progress bar from it, the GUI its counter; pass `&|_| {}` for none); `stop` is
/// checked between chunks.
pub fn run(
    verifier: &Verifier,
    store: &mut Store,
    operator: &Operator,
    opts: &BatchOptions,
    stop: &AtomicBool,
    progress: &dyn Fn(u64),
) -> Result<BatchSummary, BatchError> {
    let started = Instant::now();
    let mut x9_summary = None;
    let mut reader = if opts.x9 {
        // The whole file is checked (structure, control totals, amounts) and hashed before anything
        // is decided: a file that does not add up is rejected as a whole.
        let summary = crate::x9::scan(&opts.manifest)?;
        let rule = crate::x9::AccountRule::from_settings(&store.current_settings()?)
            .map_err(BatchError::AccountRule)?;
        crate::x9::batch::log_file(store, operator, &opts.manifest, &summary, &rule)?;
        let rows = crate::x9::batch::X9Rows::open(&opts.manifest, &summary, rule)?;
        x9_summary = Some(summary);
        Rows::X9(Box::new(rows))
    } else {
        Rows::Manifest(Box::new(ManifestReader::open(&opts.manifest)?))
    };
    // Creating the results file truncates it: refuse to overwrite the manifest with its own results.
    if let (Ok(a), Ok(b)) = (opts.manifest.canonicalize(), opts.out.canonicalize())
        && a == b
    {
        return Err(BatchError::OutIsManifest {
            path: opts.out.clone(),
        });
    }
    // Nor the audit database (by any name): replacing it would destroy every committed decision.
    let mut protected = store.protected_files();
    protected.add(&opts.manifest, "the batch's manifest");
    let mut writer = ResultWriter::create(&opts.out, &protected)?;
    let decided: HashMap<String, (i64, String)> = store.decided_cheques()?;
    let workers = opts
        .workers
        .unwrap_or_else(rayon::current_num_threads)
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("countersign-batch-{i}"))
        .build()
        .map_err(|e| BatchError::Workers {
            workers,
            detail: e.to_string(),
        })?;
    let params = verifier.params().clone();
    let chunk_rows = opts.chunk_rows.max(1);
    // On the CPU the batch is parallel across cheques (the worker pool), so the network runs one
    // thread per forward pass: libtorch's own threads on the same cores wait on each other and on the
    // workers (measured on 2 cores: 698 embeddings/s with one thread, 168 with two, batch 64).
    let _torch_threads = (verifier.device() == tch::Device::Cpu).then(|| TorchThreads::set(1));

    let mut summary = BatchSummary {
        out: opts.out.clone(),
        device: verifier.device_name().to_string(),
        model_id: verifier.model_id().to_string(),
        workers,
        x9: x9_summary,
        ..Default::default()
    };
    let mut state = ConsumerState::default();

    let (tx, rx) = crossbeam_channel::bounded::<Result<Chunk, BatchError>>(2);
    let outcome = std::thread::scope(|scope| -> Result<(), BatchError> {
        let pool = &pool;
        let params = &params;
        let decided = &decided;
        let limit = opts.limit;
        let producer = scope.spawn(move || {
            let mut seen: HashMap<String, u64> = HashMap::new();
            let mut sent_refs: HashSet<PathBuf> = HashSet::new();
            let mut verified: u64 = 0;
            loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let mut items = Vec::with_capacity(chunk_rows);
                let mut eof = false;
                let mut limit_reached = false;
                while items.len() < chunk_rows {
                    if limit.is_some_and(|l| verified >= l) {
                        limit_reached = true;
                        break;
                    }
                    let (row, image) = match reader.next_row() {
                        Ok(Some(r)) => r,
                        Ok(None) => {
                            eof = true;
                            break;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let work = if let Some(p) = &row.problem {
                        Work::Error(p.clone())
                    } else if let Some((earlier, sha256)) = decided.get(&row.cheque_id) {
                        Work::Repeat { earlier: *earlier, sha256: sha256.clone() }
                    } else if let Some(first) = seen.get(&row.cheque_id) {
                        Work::Error(format!(
                            "duplicate cheque_id: the same id is on line {first} of this manifest; only the first is verified"
                        ))
                    } else {
                        seen.insert(row.cheque_id.clone(), row.line);
                        Work::Pending
                    };
                    if !matches!(work, Work::Repeat { .. }) {
                        verified += 1;
                    }
                    items.push(Item { row, image, work });
                }
                let t0 = Instant::now();
                // Reference images seen for the first time in this run are prepared once, here.
                let mut new_paths: Vec<PathBuf> = Vec::new();
                for item in &items {
                    if let (Work::Pending, RowReferences::Paths(paths)) = (&item.work, &item.row.references) {
                        for p in paths {
                            if sent_refs.insert(p.clone()) {
                                new_paths.push(p.clone());
                            }
                        }
                    }
                }
                let (new_refs, prepared) = pool.install(|| {
                    let new_refs: Vec<(PathBuf, Result<PreparedReference, String>)> = new_paths
                        .into_par_iter()
                        .map(|p| {
                            let r = prepare_reference(params, &ImageSource::Path(p.clone())).map_err(|e| e.to_string());
                            (p, r)
                        })
                        .collect();
                    let prepared: Vec<Option<Result<Work, String>>> = items
                        .par_iter()
                        .map(|item| match &item.work {
                            Work::Pending => {
                                let q = Questioned {
                                    kind: item.row.kind,
                                    image: item.image.clone().unwrap_or_else(|| {
                                        ImageSource::Path(item.row.cheque_path.clone())
                                    }),
                                };
                                Some(
                                    prepare_questioned(params, &q, None)
                                        .map(|q| Work::Ready(Box::new(q)))
                                        .map_err(|e| e.to_string()),
                                )
                            }
                            Work::Repeat { earlier, sha256 } => Some(repeat_check(
                                params,
                                &item.row,
                                item.image.as_ref(),
                                *earlier,
                                sha256,
                            )),
                            _ => None,
                        })
                        .collect();
                    (new_refs, prepared)
                });
                let mut decode_cpu_ms = 0.0;
                let mut find_normalise_cpu_ms = 0.0;
                for (item, p) in items.iter_mut().zip(prepared) {
                    // The encoded image is no longer needed once decoded (its hash is kept).
                    item.image = None;
                    match p {
                        Some(Ok(w)) => {
                            if let Work::Ready(q) = &w {
                                decode_cpu_ms += q.decode_ms;
                                find_normalise_cpu_ms += q.find_normalise_ms;
                            }
                            item.work = w;
                        }
                        Some(Err(e)) => item.work = Work::Error(e),
                        None => {}
                    }
                }
                for (_, r) in &new_refs {
                    if let Ok(r) = r {
                        decode_cpu_ms += r.decode_ms;
                        find_normalise_cpu_ms += r.find_normalise_ms;
                    }
                }
                let chunk = Chunk {
                    items,
                    new_refs,
                    decode_cpu_ms,
                    find_normalise_cpu_ms,
                    prepare_wall_ms: t0.elapsed().as_secs_f64() * 1e3,
                    limit_reached,
                };
                // An empty chunk is only worth sending to say that the limit was reached.
                let send = !chunk.items.is_empty() || limit_reached;
                if send && tx.send(Ok(chunk)).is_err() {
                    // The model thread stopped (Ctrl-C or an error): nothing more to do.
                    return;
                }
                if eof || limit_reached {
                    return;
                }
            }
        });

        let mut result = Ok(());
        loop {
            let t_wait = Instant::now();
            let msg = rx.recv();
            summary.timings.wait_ms += t_wait.elapsed().as_secs_f64() * 1e3;
            let chunk = match msg {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    result = Err(e);
                    break;
                }
                // The reader finished the manifest (or stopped on the flag).
                Err(_) => break,
            };
            let limit_reached = chunk.limit_reached;
            if let Err(e) = process_chunk(
                verifier,
                store,
                operator,
                opts,
                chunk,
                &mut state,
                &mut writer,
                &mut summary,
                progress,
            ) {
                result = Err(e);
                break;
            }
            if limit_reached {
                summary.stopped = Some(StopReason::Limit);
                break;
            }
            if stop.load(Ordering::SeqCst) {
                summary.stopped = Some(StopReason::Interrupted);
                break;
            }
        }
        drop(rx);
        if producer.join().is_err() {
            return Err(BatchError::ReaderPanicked);
        }
        result
    });
    if stop.load(Ordering::SeqCst) && summary.stopped.is_none() {
        summary.stopped = Some(StopReason::Interrupted);
    }
    writer.flush().map_err(|source| BatchError::Output {
        path: opts.out.clone(),
        source,
    })?;
    // The results of every committed chunk are kept even when the batch stopped on an error.
    writer.commit()?;
    outcome?;
    summary.elapsed_s = started.elapsed().as_secs_f64();
    let verified = summary.decided() + summary.errors;
    summary.per_second = if summary.elapsed_s > 0.0 {
        verified as f64 / summary.elapsed_s
    } else {
        0.0
    };
    summary.peak_rss_mb = peak_rss_mb();
    Ok(summary)
}

/// Sets libtorch's intra-op thread count and puts the old value back when dropped.
pub struct TorchThreads(i32);

impl TorchThreads {
    pub fn set(n: i32) -> Self {
        let old = tch::get_num_threads();
        tch::set_num_threads(n.max(1));
        Self(old)
    }
}

impl Drop for TorchThreads {
    fn drop(&mut self) {
        tch::set_num_threads(self.0.max(1));
    }
}

/// Caches on the model thread.
#[derive(Default)]
struct ConsumerState {
    /// Reference images given by path: their embedding, or why they cannot be used.
    path_refs: HashMap<PathBuf, Result<ReferenceEmbedding, String>>,
    /// Accounts' enrolled references: their embeddings, or why they cannot be used.
    accounts: HashMap<String, Result<Arc<[ReferenceEmbedding]>, String>>,
}

#[allow(clippy::too_many_arguments)]
fn process_chunk(
    verifier: &Verifier,
    store: &mut Store,
    operator: &Operator,
    opts: &BatchOptions,
    mut chunk: Chunk,
    state: &mut ConsumerState,
    writer: &mut ResultWriter,
    summary: &mut BatchSummary,
    progress: &dyn Fn(u64),
) -> Result<(), BatchError> {
    let t = &mut summary.timings;
    t.decode_cpu_ms += chunk.decode_cpu_ms;
    t.find_normalise_cpu_ms += chunk.find_normalise_cpu_ms;
    t.prepare_wall_ms += chunk.prepare_wall_ms;

    // References: new reference images (embedded together), then accounts not cached yet.
    let t_refs = Instant::now();
    let (ok_refs, bad_refs): (Vec<_>, Vec<_>) =
        chunk.new_refs.into_iter().partition(|(_, r)| r.is_ok());
    for (p, r) in bad_refs {
        if let Err(e) = r {
            state.path_refs.insert(p, Err(e));
        }
    }
    let (paths, refs): (Vec<PathBuf>, Vec<PreparedReference>) = ok_refs
        .into_iter()
        .filter_map(|(p, r)| r.ok().map(|r| (p, r)))
        .unzip();
    if !refs.is_empty() {
        let embs = verifier.embed_references(&refs)?;
        for (p, e) in paths.into_iter().zip(embs) {
            state.path_refs.insert(p, Ok(e));
        }
    }
    for item in &chunk.items {
        if let (Work::Ready(_), RowReferences::Account, Some(acct)) =
            (&item.work, &item.row.references, &item.row.account_id)
            && !state.accounts.contains_key(acct)
        {
            if state.accounts.len() >= ACCOUNT_CACHE_MAX {
                state.accounts.clear();
            }
            let refs = match crate::verify::account_references(store, verifier, acct) {
                Ok(r) => Ok(Arc::from(r)),
                // A store or network failure is not this row's fault: stop (the rows so far are
                // committed, a rerun resumes) rather than mark every later row of the account.
                Err(VerifyError::Store(e)) => return Err(e.into()),
                Err(e @ VerifyError::Model(_)) => return Err(e.into()),
                // An unknown account, one without references, or a stored reference that cannot be
                // used: the rows of that account are ERRORs with this reason.
                Err(e) => Err(e.to_string()),
            };
            state.accounts.insert(acct.clone(), refs);
        }
    }
    summary.timings.references_ms += t_refs.elapsed().as_secs_f64() * 1e3;

    // Questioned signatures: one embedding per row that has a signature, 64 per forward pass.
    let t_embed = Instant::now();
    let mut sigs: Vec<NormalisedSignature> = Vec::new();
    for item in &mut chunk.items {
        if let Work::Ready(q) = &item.work
            && let Some(n) = &q.normalised
        {
            // A copy goes to the network; the result keeps the signature for the audit row's image.
            sigs.push(n.clone());
        }
    }
    let mut embs = verifier.embed(&sigs)?.into_iter();
    let embed_ms = t_embed.elapsed().as_secs_f64() * 1e3;
    summary.timings.embed_ms += embed_ms;
    let per_sig_embed_ms = if sigs.is_empty() {
        0.0
    } else {
        embed_ms / sigs.len() as f64
    };
    drop(sigs);

    // Decisions, in manifest order.
    let t_score = Instant::now();
    let mut rows: Vec<ResultRow> = Vec::with_capacity(chunk.items.len());
    let mut decisions = Vec::new();
    for item in chunk.items {
        let row = item.row;
        let acct = row.account_id.as_deref();
        match item.work {
            Work::Repeat { .. } => {
                rows.push(ResultRow::bare(
                    &row.cheque_id,
                    row.line,
                    acct,
                    RowStatus::Skipped,
                    "already decided in the audit store (an earlier run); see `countersign audit export`".into(),
                ));
            }
            Work::Earlier(id) => rows.push(earlier_row(store, &row, id)?),
            Work::Error(e) => rows.push(ResultRow::bare(
                &row.cheque_id,
                row.line,
                acct,
                RowStatus::Error,
                e,
            )),
            Work::Pending => rows.push(ResultRow::bare(
                &row.cheque_id,
                row.line,
                acct,
                RowStatus::Error,
                "internal error: the row was not prepared".into(),
            )),
            Work::Ready(q) => {
                let q = *q;
                let q_emb = if q.found { embs.next() } else { None };
                let refs: Result<Arc<[ReferenceEmbedding]>, String> = match &row.references {
                    RowReferences::Account => match acct.and_then(|a| state.accounts.get(a)) {
                        Some(r) => r.clone(),
                        None => Err("the account's references could not be loaded".to_string()),
                    },
                    RowReferences::Paths(paths) => paths
                        .iter()
                        .map(|p| match state.path_refs.get(p) {
                            Some(Ok(r)) => Ok(r.clone()),
                            Some(Err(e)) => Err(e.clone()),
                            None => Err(format!("reference {} was not prepared", p.display())),
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map(Arc::from),
                };
                let adhoc = acct.is_some() && matches!(row.references, RowReferences::Paths(_));
                let refs = if adhoc && !opts.allow_adhoc_references {
                    Err(format!(
                        "the row names account {} and reference_paths: with an account only its enrolled \
                         references count (leave reference_paths empty); other references need a supervisor's run",
                        acct.unwrap_or_default()
                    ))
                } else {
                    refs
                };
                let refs = match refs {
                    Ok(r) => r,
                    Err(e) => {
                        rows.push(ResultRow::bare(
                            &row.cheque_id,
                            row.line,
                            acct,
                            RowStatus::Error,
                            e,
                        ));
                        continue;
                    }
                };
                let scored = match verifier.decide(
                    q_emb.as_ref(),
                    q.not_found_reason.as_deref(),
                    &refs,
                    acct,
                    row.amount_cents,
                ) {
                    Ok(s) => s,
                    Err(e) => {
                        rows.push(ResultRow::bare(
                            &row.cheque_id,
                            row.line,
                            acct,
                            RowStatus::Error,
                            e.to_string(),
                        ));
                        continue;
                    }
                };
                let timings = StageTimings {
                    decode_ms: q.decode_ms,
                    find_normalise_ms: q.find_normalise_ms,
                    embed_ms: if q_emb.is_some() {
                        per_sig_embed_ms
                    } else {
                        0.0
                    },
                    score_ms: scored.score_ms,
                };
                let latency = timings.decode_ms
                    + timings.find_normalise_ms
                    + timings.embed_ms
                    + timings.score_ms;
                let result = verifier.assemble(
                    Some(row.cheque_id.clone()),
                    row.account_id.clone(),
                    row.amount_cents,
                    q,
                    &refs,
                    scored,
                    timings,
                    latency,
                );
                let mut d = crate::verify::decision_record(&result, operator, opts.source);
                if adhoc {
                    d.reason = Some(format!(
                        "{} (given in the manifest by supervisor {}, not the account's enrolled references): {}",
                        crate::verify::ADHOC_REFERENCES_FLAG,
                        operator.name(),
                        d.reason.as_deref().unwrap_or_default()
                    ));
                }
                rows.push(ResultRow::decided(
                    row.line,
                    &d,
                    Some(result.find_confidence),
                ));
                decisions.push((rows.len() - 1, d));
            }
        }
    }
    summary.timings.score_ms += t_score.elapsed().as_secs_f64() * 1e3;

    // One transaction for the chunk's decisions, then its result rows.
    let t_store = Instant::now();
    if !decisions.is_empty() {
        let batch: Vec<_> = decisions.iter().map(|(_, d)| d.clone()).collect();
        // Only cheques nobody decided yet: another batch over the same manifest may be running.
        let mark_taken = |store: &Store,
                          rows: &mut Vec<ResultRow>,
                          i: usize,
                          d: &crate::store::DecisionRecord,
                          r: Recorded|
         -> Result<(), BatchError> {
            let line = rows[i].line;
            match r {
                Recorded::New(id) => {
                    rows[i].run = "this".into();
                    rows[i].audit_row = Some(id);
                }
                Recorded::Repeat { earlier } => {
                    rows[i] = match store.decision(earlier)? {
                        Some(e) => ResultRow::earlier(line, &e),
                        None => ResultRow::bare(
                            &rows[i].cheque_id,
                            line,
                            rows[i].account_id.as_deref(),
                            RowStatus::Skipped,
                            "decided meanwhile by another run on this audit store; this run recorded nothing for it".into(),
                        ),
                    };
                }
                Recorded::Conflict {
                    earlier,
                    earlier_sha256,
                } => {
                    let r = &rows[i];
                    rows[i] = ResultRow::bare(
                        &r.cheque_id,
                        line,
                        r.account_id.as_deref(),
                        RowStatus::Error,
                        id_conflict_message(
                            &r.cheque_id,
                            earlier,
                            &earlier_sha256,
                            &d.cheque_sha256,
                        ),
                    );
                }
            }
            Ok(())
        };
        match store.insert_once(operator, &batch) {
            Ok(outcomes) => {
                for ((i, d), r) in decisions.iter().zip(outcomes) {
                    mark_taken(store, &mut rows, *i, d, r)?;
                }
            }
            // The store refuses a row it considers malformed (an over-long cheque id, say) and with it
            // the whole transaction; find the culprit(s) one by one and report them as ERROR rows.
            Err(crate::store::StoreError::Invalid(_)) => {
                for (i, d) in decisions {
                    match store.insert_once(operator, std::slice::from_ref(&d)) {
                        Ok(mut r) => {
                            if let Some(r) = r.pop() {
                                mark_taken(store, &mut rows, i, &d, r)?;
                            }
                        }
                        Err(crate::store::StoreError::Invalid(msg)) => {
                            let r = &rows[i];
                            rows[i] = ResultRow::bare(
                                &r.cheque_id,
                                r.line,
                                r.account_id.as_deref(),
                                RowStatus::Error,
                                format!("the audit store refused the decision: {msg}"),
                            );
                        }
                        Err(other) => return Err(other.into()),
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    summary.timings.store_ms += t_store.elapsed().as_secs_f64() * 1e3;
    let t_csv = Instant::now();
    for r in &rows {
        match r.decision {
            _ if r.run == "earlier" => summary.skipped += 1,
            RowStatus::Accept => summary.accept += 1,
            RowStatus::Refer => summary.refer += 1,
            RowStatus::Reject => summary.reject += 1,
            RowStatus::Error => summary.errors += 1,
            RowStatus::Skipped => summary.skipped += 1,
        }
        summary.rows += 1;
        writer.write(r).map_err(|source| BatchError::Output {
            path: writer.path().to_path_buf(),
            source,
        })?;
    }
    writer.flush().map_err(|source| BatchError::Output {
        path: writer.path().to_path_buf(),
        source,
    })?;
    summary.timings.csv_ms += t_csv.elapsed().as_secs_f64() * 1e3;
    progress(rows.len() as u64);
    Ok(())
}

/// The check of a row whose cheque id was decided before: the image is read and hashed (not
/// decoded); the same image shows the earlier decision, a different one is an ERROR naming both.
fn repeat_check(
    params: &crate::verify::PrepareParams,
    row: &ManifestRow,
    image: Option<&ImageSource>,
    earlier: i64,
    earlier_sha256: &str,
) -> Result<Work, String> {
    // An X9 item's image is in memory; a manifest row's is a file.
    let sha = match image {
        Some(ImageSource::Bytes { bytes, .. }) => crate::verify::sha256_hex(bytes),
        _ => {
            let bytes = crate::verify::input::read_bounded(&row.cheque_path, &params.limits)
                .map_err(|e| format!("the cheque image cannot be used: {e}"))?;
            crate::verify::sha256_hex(&bytes)
        }
    };
    if sha == earlier_sha256 {
        Ok(Work::Earlier(earlier))
    } else {
        Err(id_conflict_message(
            &row.cheque_id,
            Some(earlier),
            earlier_sha256,
            &sha,
        ))
    }
}

/// The ERROR for a cheque id already decided for a different image.
pub fn id_conflict_message(
    cheque_id: &str,
    earlier: Option<i64>,
    earlier_sha256: &str,
    this_sha256: &str,
) -> String {
    let row = earlier.map_or("earlier in this run".to_string(), |id| {
        format!("audit row {id}")
    });
    format!(
        "cheque id {cheque_id} was already decided ({row}) for an image with SHA-256 {earlier_sha256}, but this \
         image has SHA-256 {this_sha256}: a cheque id names one cheque image, so nothing was recorded; check \
         which image is the cheque"
    )
}

/// The results row of a cheque decided by an earlier run, read back from its audit row.
fn earlier_row(store: &Store, row: &ManifestRow, id: i64) -> Result<ResultRow, BatchError> {
    Ok(match store.decision(id)? {
        Some(d) => ResultRow::earlier(row.line, &d),
        None => ResultRow::bare(
            &row.cheque_id,
            row.line,
            row.account_id.as_deref(),
            RowStatus::Skipped,
            format!(
                "already decided in the audit store (row {id}); see `countersign audit export`"
            ),
        ),
    })
}
