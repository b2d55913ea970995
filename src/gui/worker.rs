//! The worker thread: it owns the model and the database connection (a libtorch tensor is not `Sync`,
//! and SQLite work must never stall a frame). The UI sends [`Job`]s and draws the [`Event`]s that come
//! back; each event wakes the UI with `request_repaint`.
//!
//! Long tasks (evaluation, training, batch, export, chain check) run on their own threads with their own
//! connections so that the clerk's verifications are never queued behind them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, unbounded};

use super::backend::{
    self, AuditFilter, Backend, BackendConfig, BatchRow, ChainReport, DecisionDetail, DecisionRow,
    EvalSummary, FinalAction, LoadedImage, Operator, PixelBox, Slot, StatusInfo, StopFlag,
    TrainOptions, TrainUpdate, UserError, VerifyOutcome,
};
use crate::scoring::{Calibration, Thresholds};

/// Long tasks the UI can start and stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskKind {
    Evaluate,
    Train,
    Batch,
    Export,
    Chain,
}

/// Work for the worker.
#[derive(Clone, Debug)]
pub enum Job {
    Status,
    /// Load the model and run one forward pass, so the first verification is quick.
    Warmup,
    SignIn {
        name: String,
        pin: String,
    },
    SignOut,
    LoadImage {
        slot: Slot,
        path: PathBuf,
    },
    ClearSlot(Slot),
    /// What the cheque slot's image is taken to be (auto, cheque, signature).
    SetChequeKind(crate::verify::InputKind),
    LoadAccount {
        account: String,
    },
    Verify {
        crop: Option<PixelBox>,
        account: Option<String>,
        amount_cents: Option<i64>,
    },
    Record {
        outcome: Box<VerifyOutcome>,
        action: FinalAction,
    },
    Recent,
    AuditCount {
        filter: AuditFilter,
        generation: u64,
    },
    AuditPage {
        filter: AuditFilter,
        offset: u64,
        limit: usize,
        generation: u64,
    },
    AuditDetail {
        id: i64,
    },
    VerifyChain,
    AuditExport {
        filter: AuditFilter,
        path: PathBuf,
    },
    Evaluate {
        folder: PathBuf,
        /// Genuine signatures per writer used as references (`countersign calibrate --references`).
        references: usize,
    },
    SaveThresholds {
        thresholds: Thresholds,
        calibration: Option<Calibration>,
        reason: String,
    },
    /// A new probability calibration alone (its own four-eyes change).
    SaveCalibration {
        calibration: Calibration,
        reason: String,
    },
    Train {
        options: TrainOptions,
    },
    ActivateModel {
        path: PathBuf,
        reason: String,
    },
    Batch {
        manifest: PathBuf,
    },
    BatchExport {
        rows: Vec<BatchRow>,
        path: PathBuf,
    },
    Stop(TaskKind),
    /// The Queue screen's work: list, resolve a referral, approve or decline a settings change.
    Queue(super::queue::QueueJob),
    /// The Audit screen's other ledger rows, of one kind or all.
    AuditEvents {
        kind: Option<String>,
    },
}

/// Results for the UI.
#[derive(Clone, Debug)]
pub enum Event {
    Status(StatusInfo),
    SignedIn(Operator),
    SignInFailed(UserError),
    ImageLoaded(Box<LoadedImage>),
    ImageFailed {
        slot: Slot,
        error: UserError,
    },
    AccountLoaded {
        account: String,
        /// The account holder's name, shown beside the references.
        holder: String,
        images: Vec<LoadedImage>,
    },
    AccountFailed(UserError),
    Verified(Box<VerifyOutcome>),
    VerifyFailed(UserError),
    Recorded(Box<DecisionRow>),
    RecordFailed(UserError),
    Recent(Vec<DecisionRow>),
    AuditCount {
        count: u64,
        generation: u64,
    },
    AuditPage {
        offset: u64,
        rows: Vec<DecisionRow>,
        generation: u64,
    },
    AuditDetail(Box<DecisionDetail>),
    AuditFailed(UserError),
    Chain(ChainReport),
    Exported(String),
    Progress {
        task: TaskKind,
        fraction: f32,
        message: String,
    },
    Evaluated(Box<EvalSummary>),
    ThresholdsSaved(String),
    Train(TrainUpdate),
    ModelActivated(String),
    BatchRows {
        done: u64,
        total: u64,
        rows: Vec<BatchRow>,
    },
    BatchDone(Vec<BatchRow>),
    TaskFailed {
        task: TaskKind,
        error: UserError,
    },
    TaskStopped(TaskKind),
    /// A file dialog answered: `purpose` says what the pick is for.
    Picked {
        purpose: String,
        path: Option<PathBuf>,
    },
    /// The Queue screen's results.
    Queue(super::queue::QueueEvent),
    AuditEvents {
        kinds: Vec<String>,
        rows: Vec<crate::store::events::LedgerEvent>,
    },
    /// A job that no screen waits for failed (shown as a banner).
    Failed(UserError),
}

/// The UI's end of the worker: a job sender, an event receiver, and the context slot the worker uses
/// to wake the UI.
pub struct WorkerHandle {
    jobs: Sender<Job>,
    pub events: Receiver<Event>,
    /// Events from helper threads (file dialogs) travel on the same channel.
    pub event_sender: Sender<Event>,
    pub waker: Waker,
}

/// Wakes the UI when an event is sent. The context is set on the first frame, so a worker started
/// before the window exists (as in tests) still wakes it.
#[derive(Clone, Default)]
pub struct Waker(Arc<OnceLock<egui::Context>>);

impl Waker {
    pub fn set(&self, ctx: &egui::Context) {
        let _ = self.0.set(ctx.clone());
    }

    pub fn wake(&self) {
        if let Some(ctx) = self.0.get() {
            ctx.request_repaint();
        }
    }
}

impl WorkerHandle {
    /// Starts the worker thread.
    pub fn spawn(config: BackendConfig) -> Self {
        let (job_tx, job_rx) = unbounded::<Job>();
        let (event_tx, event_rx) = unbounded::<Event>();
        let waker = Waker::default();
        let worker_events = event_tx.clone();
        let worker_waker = waker.clone();
        let spawned = std::thread::Builder::new()
            .name("countersign-worker".into())
            .spawn(move || worker_loop(config, job_rx, worker_events, worker_waker));
        if let Err(e) = spawned {
            let _ = event_tx.send(Event::Failed(UserError::new(
                format!("Could not start the worker thread: {e}"),
                "Restart the application.",
            )));
        }
        Self {
            jobs: job_tx,
            events: event_rx,
            event_sender: event_tx,
            waker,
        }
    }

    /// Sends a job; the worker only stops when the UI drops its handle, so a send cannot fail while
    /// the UI runs, and a failure after that has nobody to report to.
    pub fn send(&self, job: Job) {
        let _ = self.jobs.send(job);
    }

    /// An event sender with its waker, for helper threads (file dialogs).
    pub fn notifier(&self) -> Notifier {
        Notifier {
            tx: self.event_sender.clone(),
            waker: self.waker.clone(),
        }
    }
}

/// Sends events to the UI and wakes it.
#[derive(Clone)]
pub struct Notifier {
    tx: Sender<Event>,
    waker: Waker,
}

impl Notifier {
    pub fn send(&self, event: Event) {
        let _ = self.tx.send(event);
        self.waker.wake();
    }
}

fn worker_loop(config: BackendConfig, jobs: Receiver<Job>, events: Sender<Event>, waker: Waker) {
    let notify = Notifier { tx: events, waker };
    let mut backend = Backend::new(config.clone());
    let mut stops: HashMap<TaskKind, StopFlag> = HashMap::new();
    while let Ok(job) = jobs.recv() {
        let on_panic = failure_event(&job);
        guarded(&notify, on_panic, || {
            handle_job(&mut backend, &config, &mut stops, &notify, job)
        });
    }
}

/// Runs one job so that a panic does not take the worker down with it: the UI hears about it through
/// `on_panic`, the failure event of the job itself, so the screen that waits for it stops waiting.
fn guarded(notify: &Notifier, on_panic: FailureEvent, work: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).is_err() {
        notify.send(on_panic(UserError::new(
            "An internal error interrupted the last action.",
            "Try again; if it happens again, note what you did and call support.",
        )));
    }
}

/// Makes the event that reports a job's failure.
type FailureEvent = Box<dyn FnOnce(UserError) -> Event + Send>;

/// The event that reports `job`'s failure: the one its screen waits for (and clears its spinner on).
fn failure_event(job: &Job) -> FailureEvent {
    let task = |task: TaskKind| -> FailureEvent {
        Box::new(move |error| Event::TaskFailed { task, error })
    };
    match job {
        Job::SignIn { .. } => Box::new(Event::SignInFailed),
        Job::LoadImage { slot, .. } => {
            let slot = *slot;
            Box::new(move |error| Event::ImageFailed { slot, error })
        }
        Job::SetChequeKind(_) => Box::new(|error| Event::ImageFailed {
            slot: Slot::Cheque,
            error,
        }),
        Job::LoadAccount { .. } => Box::new(Event::AccountFailed),
        Job::Verify { .. } => Box::new(Event::VerifyFailed),
        Job::Record { .. } => Box::new(Event::RecordFailed),
        Job::Recent
        | Job::AuditCount { .. }
        | Job::AuditPage { .. }
        | Job::AuditDetail { .. }
        | Job::AuditEvents { .. } => Box::new(Event::AuditFailed),
        Job::VerifyChain => task(TaskKind::Chain),
        Job::AuditExport { .. } => task(TaskKind::Export),
        Job::Evaluate { .. } | Job::SaveThresholds { .. } | Job::SaveCalibration { .. } => {
            task(TaskKind::Evaluate)
        }
        Job::Train { .. } | Job::ActivateModel { .. } => task(TaskKind::Train),
        Job::Batch { .. } | Job::BatchExport { .. } => task(TaskKind::Batch),
        Job::Queue(_) => Box::new(|e| Event::Queue(super::queue::QueueEvent::Failed(e))),
        Job::Status | Job::Warmup | Job::SignOut | Job::ClearSlot(_) | Job::Stop(_) => {
            Box::new(Event::Failed)
        }
    }
}

fn handle_job(
    backend: &mut Backend,
    config: &BackendConfig,
    stops: &mut HashMap<TaskKind, StopFlag>,
    notify: &Notifier,
    job: Job,
) {
    match job {
        Job::Status => notify.send(Event::Status(backend.status())),
        Job::Warmup => {
            // A failure here is reported when the clerk verifies; the status bar shows it now.
            backend.warmup();
            notify.send(Event::Status(backend.status()));
        }
        Job::SignIn { name, pin } => match backend.sign_in(&name, &pin) {
            Ok(op) => {
                notify.send(Event::SignedIn(op));
                notify.send(Event::Status(backend.status()));
            }
            Err(e) => notify.send(Event::SignInFailed(e)),
        },
        Job::SignOut => backend.sign_out(),
        Job::LoadImage { slot, path } => match backend.load_image(slot, &path) {
            Ok(img) => notify.send(Event::ImageLoaded(Box::new(img))),
            Err(error) => notify.send(Event::ImageFailed { slot, error }),
        },
        Job::ClearSlot(slot) => backend.clear_slot(slot),
        Job::SetChequeKind(kind) => match backend.set_cheque_kind(kind) {
            Ok(Some(img)) => notify.send(Event::ImageLoaded(Box::new(img))),
            Ok(None) => {}
            Err(error) => notify.send(Event::ImageFailed {
                slot: Slot::Cheque,
                error,
            }),
        },
        Job::LoadAccount { account } => match backend.load_account(&account) {
            Ok((holder, images)) => notify.send(Event::AccountLoaded {
                account,
                holder,
                images,
            }),
            Err(e) => notify.send(Event::AccountFailed(e)),
        },
        Job::Verify {
            crop,
            account,
            amount_cents,
        } => {
            let start = Instant::now();
            match backend.verify(crop, account, amount_cents) {
                Ok(mut outcome) => {
                    outcome.latency_ms = start.elapsed().as_secs_f64() * 1000.0;
                    notify.send(Event::Verified(Box::new(outcome)));
                    notify.send(Event::Status(backend.status()));
                }
                Err(e) => notify.send(Event::VerifyFailed(e)),
            }
        }
        Job::Record { outcome, action } => match backend.record(&outcome, &action) {
            Ok(row) => {
                notify.send(Event::Recorded(Box::new(row)));
                if let Ok(rows) = backend.recent(20) {
                    notify.send(Event::Recent(rows));
                }
            }
            Err(e) => notify.send(Event::RecordFailed(e)),
        },
        Job::Recent => match backend.recent(20) {
            Ok(rows) => notify.send(Event::Recent(rows)),
            Err(e) => notify.send(Event::AuditFailed(e)),
        },
        Job::AuditCount { filter, generation } => match backend.count_decisions(&filter) {
            Ok(count) => notify.send(Event::AuditCount { count, generation }),
            Err(e) => notify.send(Event::AuditFailed(e)),
        },
        Job::AuditPage {
            filter,
            offset,
            limit,
            generation,
        } => match backend.query_decisions(&filter, offset, limit) {
            Ok(rows) => notify.send(Event::AuditPage {
                offset,
                rows,
                generation,
            }),
            Err(e) => notify.send(Event::AuditFailed(e)),
        },
        Job::AuditDetail { id } => match backend.decision_detail(id) {
            Ok(d) => notify.send(Event::AuditDetail(Box::new(d))),
            Err(e) => notify.send(Event::AuditFailed(e)),
        },
        Job::VerifyChain => {
            let config = config.clone();
            spawn_task(
                TaskKind::Chain,
                notify,
                move |n, _stop| {
                    n.send(Event::Progress {
                        task: TaskKind::Chain,
                        fraction: 0.0,
                        message: "Checking".into(),
                    });
                    backend::verify_chain(&config).map(Event::Chain)
                },
                stops,
            );
        }
        Job::AuditExport { filter, path } => {
            let Some(operator) = backend.store_operator() else {
                notify.send(Event::TaskFailed {
                    task: TaskKind::Export,
                    error: not_signed_in(),
                });
                return;
            };
            let config = config.clone();
            spawn_task(
                TaskKind::Export,
                notify,
                move |_n, _stop| {
                    backend::export_audit(&config, &operator, &filter, &path).map(Event::Exported)
                },
                stops,
            );
        }
        Job::Evaluate { folder, references } => {
            let config = config.clone();
            spawn_task(
                TaskKind::Evaluate,
                notify,
                move |n, stop| {
                    let mut progress = |fraction: f32, message: &str| {
                        n.send(Event::Progress {
                            task: TaskKind::Evaluate,
                            fraction,
                            message: message.to_string(),
                        })
                    };
                    backend::evaluate(&config, &folder, references, &mut progress, stop)
                        .map(|s| Event::Evaluated(Box::new(s)))
                },
                stops,
            );
        }
        Job::SaveThresholds {
            thresholds,
            calibration,
            reason,
        } => {
            let requested = backend.save_thresholds(thresholds, calibration, &reason);
            report_settings_request(backend, notify, requested);
        }
        Job::SaveCalibration {
            calibration,
            reason,
        } => {
            let requested = backend.request_calibration(calibration, &reason);
            report_settings_request(backend, notify, requested);
        }
        Job::Train { options } => {
            let config = config.clone();
            spawn_task(
                TaskKind::Train,
                notify,
                move |n, stop| {
                    let mut on_update = |u: TrainUpdate| n.send(Event::Train(u));
                    // A stopped run wrote no model; `TrainUpdate::Stopped` said what was kept.
                    backend::train(&config, &options, &mut on_update, stop).map(|p| match p {
                        Some(p) => Event::Train(TrainUpdate::Message(format!(
                            "Model written to {}",
                            p.display()
                        ))),
                        None => Event::TaskStopped(TaskKind::Train),
                    })
                },
                stops,
            );
        }
        Job::ActivateModel { path, reason } => match backend.activate_model(&path, &reason) {
            Ok(msg) => {
                notify.send(Event::ModelActivated(msg));
                notify.send(Event::Status(backend.status()));
            }
            Err(error) => notify.send(Event::TaskFailed {
                task: TaskKind::Train,
                error,
            }),
        },
        Job::Batch { manifest } => {
            let Some(operator) = backend.store_operator() else {
                notify.send(Event::TaskFailed {
                    task: TaskKind::Batch,
                    error: not_signed_in(),
                });
                return;
            };
            let config = config.clone();
            spawn_task(
                TaskKind::Batch,
                notify,
                move |n, stop| {
                    let progress = |done: u64, total: u64, rows: &[BatchRow]| {
                        n.send(Event::BatchRows {
                            done,
                            total,
                            rows: rows.to_vec(),
                        })
                    };
                    backend::run_batch(&config, &operator, &manifest, &progress, stop)
                        .map(Event::BatchDone)
                },
                stops,
            );
        }
        Job::BatchExport { rows, path } => match backend::export_batch(&rows, &path) {
            Ok(msg) => notify.send(Event::Exported(msg)),
            Err(error) => notify.send(Event::TaskFailed {
                task: TaskKind::Batch,
                error,
            }),
        },
        Job::Stop(kind) => {
            if let Some(flag) = stops.get(&kind) {
                flag.store(true, Ordering::Relaxed);
            }
        }
        Job::AuditEvents { kind } => match backend.ledger_events(kind.as_deref()) {
            Ok((kinds, rows)) => notify.send(Event::AuditEvents { kinds, rows }),
            Err(e) => notify.send(Event::AuditFailed(e)),
        },
        Job::Queue(job) => {
            let changed_settings = job.changes_settings();
            notify.send(Event::Queue(backend.queue_job(job)));
            if changed_settings {
                notify.send(Event::Status(backend.status()));
            }
        }
    }
}

/// What the Calibrate screen hears about a four-eyes request it made (thresholds or calibration):
/// the request's message and the refreshed status, or why it was refused.
fn report_settings_request(
    backend: &mut Backend,
    notify: &Notifier,
    requested: Result<String, UserError>,
) {
    match requested {
        Ok(msg) => {
            notify.send(Event::ThresholdsSaved(msg));
            notify.send(Event::Status(backend.status()));
        }
        Err(error) => notify.send(Event::TaskFailed {
            task: TaskKind::Evaluate,
            error,
        }),
    }
}

fn not_signed_in() -> UserError {
    UserError::new("Nobody is signed in.", "Sign in first.")
}

/// Runs a long task on its own thread; its stop flag replaces any earlier one of the same kind.
fn spawn_task(
    kind: TaskKind,
    notify: &Notifier,
    task: impl FnOnce(&Notifier, &StopFlag) -> Result<Event, UserError> + Send + 'static,
    stops: &mut HashMap<TaskKind, StopFlag>,
) {
    let stop: StopFlag = Arc::new(AtomicBool::new(false));
    stops.insert(kind, stop.clone());
    let n = notify.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("countersign-{kind:?}").to_lowercase())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(&n, &stop)));
            match result {
                Ok(Ok(event)) => n.send(event),
                Ok(Err(_)) if backend::stopped(&stop) => n.send(Event::TaskStopped(kind)),
                Ok(Err(error)) => n.send(Event::TaskFailed { task: kind, error }),
                Err(_) => n.send(Event::TaskFailed {
                    task: kind,
                    error: UserError::new(
                        "An internal error stopped the task.",
                        "Try again; if it happens again, call support.",
                    ),
                }),
            }
        });
    if let Err(e) = spawned {
        notify.send(Event::TaskFailed {
            task: kind,
            error: UserError::new(
                format!("Could not start a thread: {e}"),
                "Close other programs and retry.",
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panicking(job: Job) -> Event {
        let (tx, rx) = unbounded();
        let notify = Notifier {
            tx,
            waker: Waker::default(),
        };
        let on_panic = failure_event(&job);
        guarded(&notify, on_panic, || panic!("a job panics"));
        let event = rx.try_recv().expect("the panic is reported");
        assert!(rx.try_recv().is_err(), "reported once");
        event
    }

    /// Before: every panic on the worker came back as `TaskFailed { task: Chain }`, so the Verify
    /// screen's spinner (or the slot's, the sign-in's, the queue's) kept running.
    #[test]
    fn a_panicking_job_reports_its_own_failure() {
        let verify = Job::Verify {
            crop: None,
            account: None,
            amount_cents: None,
        };
        assert!(
            matches!(panicking(verify), Event::VerifyFailed(e) if e.what.contains("internal error"))
        );
        let load = Job::LoadImage {
            slot: Slot::Reference(2),
            path: PathBuf::from("r.png"),
        };
        assert!(matches!(
            panicking(load),
            Event::ImageFailed {
                slot: Slot::Reference(2),
                ..
            }
        ));
        let sign_in = Job::SignIn {
            name: "a".into(),
            pin: "b".into(),
        };
        assert!(matches!(panicking(sign_in), Event::SignInFailed(_)));
        assert!(matches!(
            panicking(Job::Evaluate {
                folder: PathBuf::from("f"),
                references: 5
            }),
            Event::TaskFailed {
                task: TaskKind::Evaluate,
                ..
            }
        ));
        assert!(matches!(
            panicking(Job::Queue(super::super::queue::QueueJob::Refresh)),
            Event::Queue(super::super::queue::QueueEvent::Failed(_))
        ));
        assert!(matches!(
            panicking(Job::AuditDetail { id: 1 }),
            Event::AuditFailed(_)
        ));
        assert!(matches!(panicking(Job::Status), Event::Failed(_)));
    }

    /// A long task's thread that panics reports under its own kind, and says "stopped" only when asked.
    #[test]
    fn a_panicking_background_task_reports_under_its_own_kind() {
        let (tx, rx) = unbounded();
        let notify = Notifier {
            tx,
            waker: Waker::default(),
        };
        let mut stops = HashMap::new();
        spawn_task(
            TaskKind::Batch,
            &notify,
            |_n, _stop| -> Result<Event, UserError> { panic!("a task panics") },
            &mut stops,
        );
        let event = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the task reports");
        assert!(matches!(
            event,
            Event::TaskFailed {
                task: TaskKind::Batch,
                ..
            }
        ));
    }
}
