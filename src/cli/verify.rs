//! `countersign verify`: one cheque (or one signature) against reference signatures, with an audit row.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::cli::GlobalOpts;
use crate::imaging::cheque::{ChequeLayout, CropBox};
use crate::model::SignatureModel;
use crate::scoring::Decision;
use crate::store::{Operator, Permission, Source, Store, StoreError};
use crate::verify::{
    ImageSource, InputKind, Questioned, References, Verifier, VerifyRequest, VerifyResult,
    account_references, decision_record, format_amount,
};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Every decision is written to the audit database (with the operator from --operator/--pin or \
COUNTERSIGN_OPERATOR/COUNTERSIGN_PIN); --dry-run shows the decision without recording it. Only the \
store's active model decides a recorded verification (--model with other weights: a supervisor, or a \
dry run), and with --account only its enrolled references count (--reference beside it: a supervisor, \
flagged in the row).\n\n\
Examples:\n  countersign verify --reference ref1.png --reference ref2.png --cheque cheque.png --amount 250.00\n  \
countersign verify --account ACC-001 --cheque cheque.png --json\n  \
countersign verify --reference ref.png --signature questioned.png --dry-run\n  \
countersign verify --account ACC-001 --image scan.png --kind auto")]
pub struct VerifyArgs {
    /// A reference signature of the account holder (repeat for several). Without it, --account's
    /// enrolled references are used.
    #[arg(long = "reference", value_name = "IMAGE")]
    pub references: Vec<PathBuf>,
    /// The questioned image, a cheque scan or a bare signature: what it is comes from --kind.
    #[arg(
        long,
        value_name = "IMAGE",
        required_unless_present_any = ["cheque", "signature"],
        conflicts_with_all = ["cheque", "signature"]
    )]
    pub image: Option<PathBuf>,
    /// What the questioned image shows: auto (by its height: at most 420 pixels tall is a bare
    /// signature), cheque (the signature is searched for) or signature (scored whole). The same rule
    /// as the GUI and the batch manifest's `kind` column.
    #[arg(long, value_enum, value_name = "KIND")]
    pub kind: Option<InputKind>,
    /// The cheque scan; the signature is found on it (the same as --image IMAGE --kind cheque).
    #[arg(long, value_name = "IMAGE", conflicts_with = "signature")]
    pub cheque: Option<PathBuf>,
    /// An image of the questioned signature alone (the same as --image IMAGE --kind signature).
    #[arg(long, value_name = "IMAGE")]
    pub signature: Option<PathBuf>,
    /// The account: its enrolled references (when no --reference is given) and its thresholds.
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// The cheque amount, e.g. 1234.56 (a stricter threshold may apply to large amounts).
    #[arg(long, value_name = "AMOUNT", value_parser = parse_amount_arg)]
    pub amount: Option<i64>,
    /// Where the signature is, in cheque pixels, instead of searching for it: x,y,width,height.
    #[arg(long, value_name = "X,Y,W,H", value_parser = parse_crop_arg)]
    pub crop: Option<CropBox>,
    /// The cheque design (JSON: signature zone, skew, minimum confidence); default: signature lower right.
    #[arg(long, value_name = "FILE.json")]
    pub layout: Option<PathBuf>,
    /// The cheque's id, recorded in the audit row (default: the file's name and the start of its
    /// SHA-256, `04.png@sha256:1a2b3c4d5e6f`). An id names one cheque
    /// image: the same image again shows the earlier decision and records nothing; another image under
    /// an id already decided is refused, naming both SHA-256s.
    #[arg(long, value_name = "ID")]
    pub cheque_id: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show the decision without recording it in the audit database.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_amount_arg(s: &str) -> Result<i64, String> {
    crate::verify::parse_amount(s)
}

fn parse_crop_arg(s: &str) -> Result<CropBox, String> {
    crate::verify::parse_crop(s)
}

/// The model in force for this store (see [`crate::model::in_force`]).
pub fn model_in_force(
    global: &GlobalOpts,
    store: Option<&Store>,
) -> anyhow::Result<crate::model::ModelInForce> {
    Ok(crate::model::in_force::choose(
        store,
        global.model.as_deref(),
    )?)
}

/// Loads the chosen model on the chosen device.
pub fn load_chosen(
    global: &GlobalOpts,
    choice: &crate::model::ModelInForce,
) -> anyhow::Result<Arc<SignatureModel>> {
    let device = global.device.resolve()?;
    let model = choice
        .load(device)
        .with_context(|| format!("loading the model {}", choice.path.display()))?;
    Ok(crate::verify::shared_model(model))
}

/// Loads the model in force on the chosen device.
pub fn load_model(
    global: &GlobalOpts,
    store: Option<&Store>,
) -> anyhow::Result<Arc<SignatureModel>> {
    load_chosen(global, &model_in_force(global, store)?)
}

/// Whether an operator may record decisions made with a model other than the active one, or with
/// reference images other than an account's enrolled ones: a supervisor only.
pub fn may_choose_policy(op: &Operator) -> bool {
    op.role() == crate::store::Role::Supervisor
}

pub use crate::verify::ADHOC_REFERENCES_FLAG;

/// The questioned image and its kind: `--image` with `--kind` (auto by default), or `--cheque` /
/// `--signature`, which fix the kind (a `--kind` beside them must agree).
fn questioned_of(args: &VerifyArgs) -> anyhow::Result<Questioned> {
    let (path, fixed) = match (&args.image, &args.cheque, &args.signature) {
        (Some(p), _, _) => (p, None),
        (None, Some(c), _) => (c, Some(InputKind::Cheque)),
        (None, None, Some(s)) => (s, Some(InputKind::Signature)),
        (None, None, None) => {
            anyhow::bail!("give the questioned image with --image (or --cheque or --signature)")
        }
    };
    let kind = match (fixed, args.kind) {
        (Some(f), Some(k)) if f != k => anyhow::bail!(
            "--kind {k} contradicts --{f}: use --image IMAGE --kind {k}, or drop --kind"
        ),
        (Some(f), _) => f,
        (None, k) => k.unwrap_or_default(),
    };
    Ok(Questioned {
        kind,
        image: ImageSource::Path(path.clone()),
    })
}

/// The cheque layout from `--layout`, else the default.
pub fn load_layout(path: Option<&Path>) -> anyhow::Result<ChequeLayout> {
    Ok(match path {
        Some(p) => ChequeLayout::load(p)?,
        None => ChequeLayout::default(),
    })
}

/// Signs the operator in and checks that they may record decisions (every decision names who made
/// it). Done before any image is read, so a wrong PIN fails fast.
pub fn authenticate(global: &GlobalOpts, store: &mut Store) -> anyhow::Result<Operator> {
    if store.operator_count()? == 0 {
        return Err(StoreError::NoOperators.into());
    }
    let (Some(name), Some(pin)) = (&global.operator, &global.pin) else {
        return Err(StoreError::MissingCredentials.into());
    };
    let operator = store.authenticate(name, pin)?;
    store.require(&operator, Permission::Verify)?;
    Ok(operator)
}

pub fn run(global: &GlobalOpts, args: &VerifyArgs) -> anyhow::Result<()> {
    if args.references.is_empty() && args.account.is_none() {
        anyhow::bail!(crate::cli::ExitError::new(
            crate::cli::exit::USAGE,
            "give the reference signature(s) with --reference IMAGE, or --account ID to use the account's enrolled references"
        ));
    }
    let db = global.db_path();
    // A dry run without an account does not need the database; it uses it (read for settings) only when
    // it already exists, so that a dry run never creates one.
    let needs_store = !args.dry_run || (args.references.is_empty() && args.account.is_some());
    let mut store = if needs_store || db.is_file() {
        Some(Store::open(&db)?)
    } else {
        None
    };
    let mut operator = match (&mut store, args.dry_run) {
        (Some(s), false) => Some(authenticate(global, s)?),
        _ => None,
    };

    // Only the store's active model decides a recorded verification: the model's card carries the
    // policy. Anyone but a supervisor naming other weights gets a dry run.
    let choice = model_in_force(global, store.as_ref())?;
    if !choice.is_active()
        && let Some(op) = &operator
        && !may_choose_policy(op)
    {
        eprintln!(
            "note: --model {} is not the active model of this store; a run with it by {} ({}) is a DRY RUN and \
             records nothing. A supervisor records with it, or activates it with `countersign settings model`",
            choice.path.display(),
            op.name(),
            op.role()
        );
        operator = None;
    }
    // With an account, only its enrolled references decide: references given on the command line
    // next to --account are a supervisor's exception, flagged in the row.
    let adhoc = !args.references.is_empty() && args.account.is_some();
    if adhoc
        && let Some(op) = &operator
        && !may_choose_policy(op)
    {
        return Err(StoreError::PermissionDenied {
            operator: op.name().to_string(),
            action: "verify an account against reference images other than its enrolled ones \
                     (drop --reference to use the account's references, or --dry-run to only look)"
                .to_string(),
            needed: "supervisor".to_string(),
        }
        .into());
    }

    let model = load_chosen(global, &choice)?;
    let verifier =
        Verifier::from_store(model, load_layout(args.layout.as_deref())?, store.as_ref())?;
    let references = if args.references.is_empty() {
        let account = args.account.as_deref().unwrap_or_default();
        let store = store
            .as_mut()
            .context("the account's references need the audit database")?;
        References::Embeddings(account_references(store, &verifier, account)?.into())
    } else {
        References::Images(
            args.references
                .iter()
                .map(|p| ImageSource::Path(p.clone()))
                .collect(),
        )
    };
    let questioned = questioned_of(args)?;
    let req = VerifyRequest {
        references,
        questioned,
        manual_crop: args.crop,
        account: args.account.clone(),
        amount_cents: args.amount,
        cheque_id: args.cheque_id.clone(),
    };
    // One signature or a few: the network is small enough that libtorch's thread team costs more
    // than it gains, and on a busy machine its threads wait on each other (see `model::bench`).
    if global.threads.is_none() {
        tch::set_num_threads(1);
    }
    // libtorch's one-time start-up (hundreds of ms) happens here, so that the timing printed below is
    // the pipeline's own.
    verifier.warm_up()?;
    let mut result = verifier.verify(&req)?;
    // Without --cheque-id, the row names the file and its image: `04.png@sha256:1a2b3c4d5e6f`. Two
    // cheques that share a file name in different folders are then two ids, and verifying the same
    // image again is a repeat of its earlier decision (a cheque id names one image).
    if result.cheque_id.is_none() {
        result.cheque_id = default_cheque_id(args)
            .map(|name| crate::verify::default_cheque_id(&name, &result.questioned_sha256));
    }

    let recorded = match (&mut store, &operator) {
        (Some(s), Some(op)) => {
            let mut row = decision_record(&result, op, Source::Cli);
            if adhoc {
                row.reason = Some(format!(
                    "{ADHOC_REFERENCES_FLAG} (given by supervisor {}, not account {}'s enrolled references): {}",
                    op.name(),
                    args.account.as_deref().unwrap_or_default(),
                    row.reason.as_deref().unwrap_or_default()
                ));
            }
            // A cheque id names one cheque image: a repeat shows the earlier decision, another
            // image under the same id is refused (both hashes named).
            match s.insert_once(op, std::slice::from_ref(&row))?.pop() {
                Some(crate::store::Recorded::Repeat { earlier }) => {
                    return show_earlier(s, earlier, args.json);
                }
                Some(crate::store::Recorded::Conflict {
                    earlier,
                    earlier_sha256,
                }) => {
                    return Err(crate::cli::ExitError::new(
                        crate::cli::exit::BAD_INPUT,
                        crate::batch::id_conflict_message(
                            row.cheque_id.as_deref().unwrap_or_default(),
                            earlier,
                            &earlier_sha256,
                            &row.cheque_sha256,
                        ),
                    )
                    .into());
                }
                _ => {}
            }
            Some(op.name().to_string())
        }
        _ => None,
    };
    if args.json {
        let mut v = serde_json::to_value(&result)?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "recorded".into(),
                serde_json::Value::Bool(recorded.is_some()),
            );
            obj.insert(
                "operator".into(),
                recorded
                    .clone()
                    .map_or(serde_json::Value::Null, serde_json::Value::String),
            );
            obj.insert(
                "decision".into(),
                serde_json::Value::String(result.outcome.decision.to_string()),
            );
        }
        out(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
    } else {
        out(&render(
            &result,
            recorded.as_deref(),
            &db,
            std::io::stdout().is_terminal(),
        ))?;
    }
    Ok(())
}

/// A verification of a cheque id already decided for the same image: the earlier decision is shown
/// and nothing new is recorded.
fn show_earlier(store: &Store, id: i64, json: bool) -> anyhow::Result<()> {
    let Some(d) = store.decision(id)? else {
        anyhow::bail!("the earlier decision (audit row {id}) could not be read");
    };
    let r = &d.record;
    let time = crate::store::format_time(r.time);
    if json {
        let v = serde_json::json!({
            "recorded": false,
            "repeat_of": d.id,
            "decision": r.decision.to_string(),
            "probability": r.probability,
            "raw_score": r.raw_score,
            "cheque_id": r.cheque_id,
            "operator": r.operator,
            "time": time,
            "reason": r.reason,
        });
        out(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
    } else {
        out(&format!(
            "decision     {} (already decided: audit row {} at {} by {})\nreason       {}\naudit        nothing new \
             was recorded: this cheque id was decided before for this same image\n",
            r.decision,
            d.id,
            time,
            r.operator,
            r.reason.as_deref().unwrap_or_default()
        ))?;
    }
    Ok(())
}

/// Writes to stdout. A closed pipe (`countersign verify ... | head`) is not an error worth a panic
/// or a message: the reader has what it wanted, and the decision is already recorded.
pub fn out(text: &str) -> anyhow::Result<()> {
    crate::cli::write_stdout(text);
    Ok(())
}

/// Without --cheque-id, the audit row names the questioned file (its name, not its folder; the
/// image's hash is appended by `run`).
fn default_cheque_id(args: &VerifyArgs) -> Option<String> {
    args.image
        .as_ref()
        .or(args.cheque.as_ref())
        .or(args.signature.as_ref())
        .and_then(|p| Path::new(p).file_name())
        .map(|n| n.to_string_lossy().into_owned())
}

/// The decision word, in colour when writing to a terminal (and NO_COLOR is not set).
pub fn decision_word(d: Decision, colour: bool) -> String {
    if !colour || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return d.to_string();
    }
    let code = match d {
        Decision::Accept => "1;32",
        Decision::Refer => "1;33",
        Decision::Reject => "1;31",
    };
    format!("\x1b[{code}m{d}\x1b[0m")
}

/// The text report of one verification.
pub fn render(r: &VerifyResult, recorded_by: Option<&str>, db: &Path, colour: bool) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let t = r.outcome.thresholds_used;
    let _ = writeln!(
        s,
        "decision     {}",
        decision_word(r.outcome.decision, colour)
    );
    let _ = writeln!(s, "reason       {}", r.outcome.reason);
    let _ = writeln!(
        s,
        "score        {}",
        r.raw_score.map_or("-".to_string(), |v| format!("{v:.4}"))
    );
    let _ = writeln!(
        s,
        "probability  {}",
        r.probability.map_or("-".to_string(), |v| format!("{v:.4}"))
    );
    let _ = writeln!(
        s,
        "thresholds   accept >= {:.4}, reject < {:.4} (from {})",
        t.accept,
        t.reject,
        r.policy_source.describe()
    );
    match (r.found, r.crop) {
        (true, Some(c)) => {
            let _ = writeln!(
                s,
                "signature    found at x={} y={} {}x{} (confidence {:.2})",
                c.x, c.y, c.width, c.height, r.find_confidence
            );
        }
        (true, None) => {
            let _ = writeln!(
                s,
                "signature    the whole image (taken as a bare signature, scored whole)"
            );
        }
        (false, Some(c)) => {
            let _ = writeln!(
                s,
                "signature    not found (best candidate x={} y={} {}x{})",
                c.x, c.y, c.width, c.height
            );
        }
        (false, None) => {
            let _ = writeln!(s, "signature    not found");
        }
    }
    if let Some(c) = &r.cheque_id {
        let _ = writeln!(s, "cheque       {c}");
    }
    if let Some(a) = &r.account {
        let _ = writeln!(s, "account      {a}");
    }
    if let Some(c) = r.amount_cents {
        let _ = writeln!(s, "amount       {}", format_amount(c));
    }
    let _ = writeln!(s, "references   {}", r.reference_sha256s.len());
    let _ = writeln!(s, "questioned   sha256 {}", r.questioned_sha256);
    let tm = &r.timings;
    let _ = writeln!(
        s,
        "timing       {:.1} ms (decode {:.1}, find+normalise {:.1}, embed {:.1}, score {:.2})",
        r.latency_ms, tm.decode_ms, tm.find_normalise_ms, tm.embed_ms, tm.score_ms
    );
    let _ = writeln!(s, "model        {} on {}", r.model_id, r.device);
    match recorded_by {
        Some(op) => {
            let _ = writeln!(s, "audit        recorded in {} by {op}", db.display());
        }
        None => {
            let _ = writeln!(
                s,
                "audit        DRY RUN: nothing was recorded in the audit database"
            );
        }
    }
    s
}
