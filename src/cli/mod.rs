//! The command line: global options, one subcommand per file in this folder, and the exit codes.
//!
//! With no subcommand the binary starts the GUI. Every command returns `anyhow::Result`; `main`
//! prints the cause chain and maps the error's kind to a documented exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::device::DeviceChoice;

pub mod account;
pub mod assess_args;
pub mod audit;
pub mod batch;
pub mod bench;
pub mod calibrate;
pub mod evaluate;
pub mod info;
pub mod operator;
pub mod referrals;
pub mod settings;
pub mod synth;
pub mod train;
pub mod verify;

/// Set when writing to stdout failed for a reason other than a closed pipe (a full disk behind a
/// redirection, say): `main` then exits with an error instead of claiming success.
static STDOUT_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes to stdout: the one place every command's output goes through ([`outln!`](crate::outln),
/// [`out!`](crate::out)). A closed pipe (`countersign audit export ... | head`) is not an error and
/// never a panic: the reader has what it wanted, and whatever the command records is recorded anyway.
/// Any other failure is remembered for [`stdout_failed`].
pub fn write_stdout(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        STDOUT_FAILED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether some output could not be written (other than to a closed pipe).
pub fn stdout_failed() -> bool {
    STDOUT_FAILED.load(std::sync::atomic::Ordering::Relaxed)
}

/// `println!` for commands: never panics on a closed pipe (see [`write_stdout`]).
#[macro_export]
macro_rules! outln {
    () => {
        $crate::cli::write_stdout("\n")
    };
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for commands: never panics on a closed pipe (see [`write_stdout`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(&format!($($arg)*))
    };
}

/// Exit codes, also listed in `--help`.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any other error.
    pub const FAILURE: u8 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: u8 = 2;
    /// An input file could not be used: unreadable, corrupt, too large, or no signature in it.
    pub const BAD_INPUT: u8 = 3;
    /// The model could not be loaded (missing, wrong card, wrong shapes, hash mismatch).
    pub const MODEL: u8 = 4;
    /// The database is locked, damaged, read-only, or newer than this binary.
    pub const DATABASE: u8 = 5;
    /// The operator lacks the role, or the PIN was wrong.
    pub const DENIED: u8 = 6;
    /// `audit verify` found the hash chain broken.
    pub const CHAIN_BROKEN: u8 = 7;
    /// No display for the GUI.
    pub const NO_DISPLAY: u8 = 8;

    /// The exit code for a store error: the library returns typed errors, and only the command
    /// line's edge turns them into numbers.
    pub fn for_store(e: &crate::store::StoreError) -> u8 {
        use crate::store::StoreError;
        match e {
            StoreError::AuthFailed
            | StoreError::LockedOut { .. }
            | StoreError::PermissionDenied { .. }
            | StoreError::MissingCredentials
            | StoreError::NoOperators => DENIED,
            StoreError::NotFound { .. }
            | StoreError::AlreadyExists { .. }
            | StoreError::Invalid(_) => FAILURE,
            StoreError::CredentialsTampered { .. }
            | StoreError::SignatureTampered { .. }
            | StoreError::Tampered { .. } => CHAIN_BROKEN,
            StoreError::Sqlite(_)
            | StoreError::Io { .. }
            | StoreError::Busy { .. }
            | StoreError::Corrupt { .. }
            | StoreError::ReadOnly { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::DiskFull { .. } => DATABASE,
        }
    }
}

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  any other error
  2  bad command line
  3  an input file could not be used (unreadable, corrupt, too large, no signature found)
  4  the model could not be loaded (missing, card or shapes do not match, hash mismatch)
  5  the database is locked, damaged, read-only or from a newer version
  6  permission denied (the operator lacks the role, or a wrong PIN)
  7  audit verify found the hash chain broken
  8  no display for the GUI (use the subcommands instead)";

#[derive(Debug, Parser)]
#[command(
    name = "countersign",
    version,
    about = "Offline verification of handwritten signatures on cheques.",
    long_about = "Offline verification of handwritten signatures on cheques.\n\nWith no subcommand, starts the desktop application.",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every command understands.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalOpts {
    /// Where the network runs: auto picks CUDA when a GPU is usable.
    #[arg(long, global = true, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// The audit database (default: the user's data directory).
    #[arg(long, global = true, env = crate::paths::DB_ENV)]
    pub db: Option<PathBuf>,
    /// Model weights (.safetensors, with its .json card beside it); default: the active model, else the bundled one.
    /// Audited commands use the store's active model: with other weights, a clerk's verify is a dry
    /// run that records nothing, and a batch needs a supervisor.
    #[arg(long, global = true, env = crate::paths::MODEL_ENV)]
    pub model: Option<PathBuf>,
    /// Operator name for audited actions.
    #[arg(long, global = true, env = "COUNTERSIGN_OPERATOR")]
    pub operator: Option<String>,
    /// Operator PIN (prefer the environment variable; never logged).
    #[arg(long, global = true, env = "COUNTERSIGN_PIN", hide_env_values = true)]
    pub pin: Option<String>,
    /// CPU threads for libtorch and image work (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
}

impl GlobalOpts {
    /// The database path in force.
    pub fn db_path(&self) -> PathBuf {
        self.db.clone().unwrap_or_else(crate::paths::default_db)
    }

    /// The files no command may write over: the audit database in force and SQLite's files beside
    /// it, by name or by any link to them.
    pub fn protected(&self) -> crate::output::Protected {
        crate::output::Protected::database(&self.db_path())
    }

    /// Writes a whole output file through [`crate::output`] (never over the database; temp + rename).
    pub fn write_output(&self, path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
        Ok(crate::output::write(path, &self.protected(), bytes)?)
    }

    /// The model weights in force, and where that choice came from (see
    /// [`crate::model::in_force`]: `--model`, else the model a supervisor activated in the store,
    /// else the bundled default).
    pub fn model_path(&self) -> Result<(PathBuf, &'static str), crate::model::ModelError> {
        let choice = crate::model::in_force::choose_for_db(&self.db_path(), self.model.as_deref())?;
        Ok((choice.path, choice.origin.describe()))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the desktop application (the default).
    Gui,
    /// Show version, libtorch, device, model and database.
    Info(info::InfoArgs),
    /// Generate synthetic writers, forgeries and cheque scans (demo data, pretraining).
    Synth(synth::SynthArgs),
    /// Accounts and their reference signatures.
    Account(account::AccountArgs),
    /// Verify, export and anchor the audit log.
    Audit(audit::AuditArgs),
    /// Operators, roles and PINs.
    Operator(operator::OperatorArgs),
    /// Verify one cheque (or signature) against reference signatures; records an audit row.
    Verify(verify::VerifyArgs),
    /// Verify a manifest of cheques (resumable), writing a results CSV and audit rows.
    Batch(batch::BatchArgs),
    /// Measure latency, throughput, memory and model speed; prints figures.
    Bench(bench::BenchArgs),
    /// Measure the model on labelled signatures (EER, AUC, FAR/FRR, ROC/DET, per writer).
    Evaluate(evaluate::EvaluateArgs),
    /// Fit calibration and choose thresholds for a target false-accept rate on labelled signatures.
    Calibrate(calibrate::CalibrateArgs),
    /// Train or fine-tune the signature network offline on labelled signatures.
    Train(train::TrainArgs),
    /// Supervisor settings (thresholds, active model) and decision confirm/override.
    Settings(settings::SettingsArgs),
    /// The referral queue: cheques decided REFER wait here for a supervisor.
    Referrals(referrals::ReferralsArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    // No file this process writes may replace the database in force, by any name.
    crate::output::protect_for_process(cli.global.protected());
    if let Some(n) = cli.global.threads {
        tch::set_num_threads(n as i32);
        // A second call fails harmlessly when the pool already exists.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    match cli.command {
        None | Some(Command::Gui) => crate::gui::run(&gui_options(&cli.global)),
        Some(Command::Info(args)) => info::run(&cli.global, &args),
        Some(Command::Evaluate(args)) => evaluate::run(&cli.global, &args),
        Some(Command::Calibrate(args)) => calibrate::run(&cli.global, &args),
        Some(Command::Synth(args)) => synth::run(&cli.global, &args),
        Some(Command::Account(args)) => account::run(&cli.global, &args),
        Some(Command::Audit(args)) => audit::run(&cli.global, &args),
        Some(Command::Operator(args)) => operator::run(&cli.global, &args),
        Some(Command::Settings(args)) => settings::run(&cli.global, &args),
        Some(Command::Verify(args)) => verify::run(&cli.global, &args),
        Some(Command::Batch(args)) => batch::run(&cli.global, &args),
        Some(Command::Bench(args)) => bench::run(&cli.global, &args),
        Some(Command::Train(args)) => train::run(&cli.global, &args),
        Some(Command::Referrals(args)) => referrals::run(&cli.global, &args),
    }
}

/// What the GUI takes from the command line. Only an explicit `--model` is passed on: without one
/// the GUI uses the model in force for the store, like every command.
pub fn gui_options(global: &GlobalOpts) -> crate::gui::Options {
    crate::gui::Options {
        db_path: global.db_path(),
        model_path: global.model.clone(),
        device: global.device,
        operator: global.operator.clone(),
        pin: global.pin.clone(),
    }
}

/// Maps an error to its documented exit code by looking through the cause chain for a known kind.
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<crate::gui::NoDisplay>().is_some() {
            return exit::NO_DISPLAY;
        }
        if let Some(e) = cause.downcast_ref::<ExitError>() {
            return e.code;
        }
        if cause
            .downcast_ref::<crate::imaging::ImagingError>()
            .is_some()
        {
            return exit::BAD_INPUT;
        }
        if cause.downcast_ref::<crate::model::ModelError>().is_some() {
            return exit::MODEL;
        }
        if cause.downcast_ref::<crate::device::DeviceError>().is_some() {
            return exit::FAILURE;
        }
        if let Some(e) = cause.downcast_ref::<crate::store::StoreError>() {
            return exit::for_store(e);
        }
        // `#[error(transparent)]` wrappers hide the inner error from the cause chain: look inside.
        if let Some(e) = cause.downcast_ref::<crate::batch::BatchError>() {
            match e {
                crate::batch::BatchError::Store(s) => return exit::for_store(s),
                crate::batch::BatchError::Verify(crate::verify::VerifyError::Store(s)) => {
                    return exit::for_store(s);
                }
                crate::batch::BatchError::Verify(crate::verify::VerifyError::Model(_)) => {
                    return exit::MODEL;
                }
                _ => {}
            }
        }
    }
    exit::FAILURE
}

/// An error that carries its own exit code (for outcomes such as "chain broken" that are not faults).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitError {
    pub code: u8,
    pub message: String,
}

impl ExitError {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Prints an error with its causes, one per line, and returns its exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    ExitCode::from(exit_code_for(err))
}
