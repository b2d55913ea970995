//! Issue 17, "audit integrity beyond the chain": each attack of the issue, replayed against the real
//! binary and a real SQLite store, now fails safe. One test (or a few) per item; the names are the
//! ones in docs/HARDENING.md's table.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use countersign::batch::bench::fixture::{self, Fixture};
use countersign::batch::output::{RowStatus, read_results};
use countersign::store::{DecisionFilter, Store};

use crate::pipeline_fixture::setup;

const BIN: &str = env!("CARGO_BIN_EXE_countersign");
const CLERK: (&str, &str) = ("clara", "clara-pin-1");
const BOSS: (&str, &str) = (fixture::OPERATOR, fixture::PIN);

/// Runs the binary on `db` (CPU, no operator unless given, no model or key from the environment).
fn cs(db: &Path, op: Option<(&str, &str)>, args: &[&str]) -> Output {
    cs_env(db, op, args, &[])
}

fn cs_env(db: &Path, op: Option<(&str, &str)>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.arg("--db").arg(db).args(["--device", "cpu"]);
    for k in [
        "COUNTERSIGN_MODEL",
        "COUNTERSIGN_OPERATOR",
        "COUNTERSIGN_PIN",
        "COUNTERSIGN_CHAIN_KEY_FILE",
    ] {
        c.env_remove(k);
    }
    if let Some((name, pin)) = op {
        c.args(["--operator", name, "--pin", pin]);
    }
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// How many decisions the store holds.
fn decisions(db: &Path) -> u64 {
    Store::open_read_only(db)
        .unwrap()
        .count_decisions(&DecisionFilter::default())
        .unwrap()
}

/// The fixture (a supervisor, two enrolled accounts, cheques) plus a clerk.
fn with_clerk(dir: &Path) -> (Fixture, PathBuf) {
    let (fx, model) = setup(dir);
    let o = cs_env(
        &fx.db,
        Some(BOSS),
        &["operator", "add", CLERK.0, "--role", "clerk"],
        &[("COUNTERSIGN_NEW_PIN", CLERK.1)],
    );
    assert!(o.status.success(), "{}", text(&o));
    (fx, model)
}

/// The chain and everything beside it verifies (exit 0), through the binary.
fn assert_audit_clean(db: &Path) {
    let o = cs(db, None, &["audit", "verify"]);
    assert!(o.status.success(), "{}", text(&o));
}

// ---------------------------------------------------------------------------------------------
// 1. Every output goes through one function that refuses the database by any name.

#[test]
fn outputs_refuse_the_database_its_side_files_and_hard_links_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = setup(dir.path());
    let db = &fx.db;
    let manifest = fx.dir.join("one.csv");
    std::fs::write(
        &manifest,
        format!(
            "cheque_id,cheque_path,account_id,reference_paths,amount\nO-1,{},ACC-000,,\n",
            s(&fx.writers[0].cheques[0])
        ),
    )
    .unwrap();
    let before = decisions(db);
    let link = dir.path().join("results.csv");
    std::fs::hard_link(db, &link).unwrap();
    let wal = PathBuf::from(format!("{}-wal", s(db)));
    let attempts: Vec<Vec<String>> = vec![
        // --summary-json over the database: exit 0 and a destroyed store before.
        vec![
            "batch",
            "--manifest",
            s(&manifest),
            "--out",
            s(&dir.path().join("r.csv")),
            "--summary-json",
            s(db),
        ],
        // --out through a hard link (a path comparison does not see it).
        vec!["batch", "--manifest", s(&manifest), "--out", s(&link)],
        vec!["batch", "--manifest", s(&manifest), "--out", s(&wal)],
        vec!["audit", "checkpoint", "--out", s(&link)],
        vec!["audit", "export", "--out", s(&link)],
        // calibrate --json over the database: refused before any work.
        vec!["calibrate", "--data", s(&fx.dir), "--json", s(db)],
        vec!["evaluate", "--data", s(&fx.dir), "--json", s(&link)],
        // Commands that need no sign-in write through the same function.
        vec![
            "synth",
            "--out",
            s(&dir.path().join("synth")),
            "--writers",
            "1",
            "--genuine",
            "1",
            "--forgeries",
            "1",
            "--contact-sheet",
            s(&link),
        ],
    ]
    .into_iter()
    .map(|v| v.into_iter().map(str::to_string).collect())
    .collect();
    for args in attempts {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = cs(db, Some(BOSS), &args);
        assert!(!o.status.success(), "{args:?} was accepted: {}", text(&o));
        assert!(
            text(&o).contains("audit database"),
            "{args:?}: {}",
            text(&o)
        );
        // The store is whole: same decisions, chain intact, still a database.
        assert_eq!(decisions(db), before, "{args:?}");
        assert_audit_clean(db);
    }
    // The link still names the database's bytes, untouched.
    assert_eq!(std::fs::read(&link).unwrap(), std::fs::read(db).unwrap());
}

// ---------------------------------------------------------------------------------------------
// 2. Inputs to a decision are checked against the chain before use, and by `audit verify`.

/// A copy of the store in which account ACC-000 was verified once (embeddings cached, a signature
/// logged).
fn verified_once(dir: &Path) -> (Fixture, PathBuf) {
    let (fx, model) = setup(dir);
    let o = cs(
        &fx.db,
        Some(BOSS),
        &[
            "verify",
            "--account",
            "ACC-000",
            "--cheque",
            s(&fx.writers[0].cheques[1]),
            "--cheque-id",
            "E-1",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_audit_clean(&fx.db);
    (fx, model)
}

fn verify_again(fx: &Fixture) -> Output {
    cs(
        &fx.db,
        Some(BOSS),
        &[
            "verify",
            "--account",
            "ACC-000",
            "--cheque",
            s(&fx.writers[0].cheques[3]),
            "--cheque-id",
            "E-2",
        ],
    )
}

#[test]
fn an_edited_embedding_cache_is_refused_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = verified_once(dir.path());
    let before = decisions(&fx.db);
    {
        // The attack: make every cached reference vector point where the forged cheque points.
        let c = rusqlite::Connection::open(&fx.db).unwrap();
        c.execute_batch("DROP TRIGGER reference_embeddings_no_update")
            .unwrap();
        let n = c
            .execute(
                "UPDATE reference_embeddings SET vector = (SELECT vector FROM reference_embeddings LIMIT 1)",
                [],
            )
            .unwrap();
        assert!(n >= 3, "the first verification cached the references");
    }
    let o = verify_again(&fx);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(text(&o).contains("cached embedding"), "{}", text(&o));
    assert_eq!(decisions(&fx.db), before, "nothing was decided on it");
    let o = cs(&fx.db, None, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("cached embedding") && t.contains("reference_embeddings_no_update"),
        "{t}"
    );
}

#[test]
fn a_swapped_reference_image_is_refused_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = verified_once(dir.path());
    let forger = std::fs::read(&fx.writers[1].references[0]).unwrap();
    let forger_sha = countersign::digest::sha256_hex(&forger);
    {
        let c = rusqlite::Connection::open(&fx.db).unwrap();
        c.execute_batch("DROP TRIGGER reference_signatures_fixed")
            .unwrap();
        c.execute(
            "UPDATE reference_signatures SET image = ?1, sha256 = ?2 WHERE id = \
             (SELECT min(id) FROM reference_signatures WHERE account = 'ACC-000')",
            rusqlite::params![forger, forger_sha],
        )
        .unwrap();
    }
    let before = decisions(&fx.db);
    let o = verify_again(&fx);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(text(&o).contains("chained at enrolment"), "{}", text(&o));
    assert_eq!(decisions(&fx.db), before);
    let o = cs(&fx.db, None, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(text(&o).contains("chained at enrolment"), "{}", text(&o));
}

#[test]
fn a_swapped_logged_signature_fails_audit_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = verified_once(dir.path());
    {
        let c = rusqlite::Connection::open(&fx.db).unwrap();
        c.execute_batch("DROP TRIGGER decision_signatures_no_update; CREATE TRIGGER decision_signatures_no_update BEFORE UPDATE ON decision_signatures BEGIN SELECT 1; END;")
            .unwrap();
        let png: Vec<u8> = c
            .query_row("SELECT png FROM decision_signatures LIMIT 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        // Another valid PNG: the same image with one more (ignored) byte of trailing data.
        let mut other = png.clone();
        other.push(0);
        c.execute("UPDATE decision_signatures SET png = ?1", [other])
            .unwrap();
    }
    let o = cs(&fx.db, None, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(
        text(&o).contains("signature image logged with decision"),
        "{}",
        text(&o)
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Only the active model decides audited commands (and the GUI uses the activated one).

/// A copy of `model` whose card accepts nearly everything (accept at 0.0005).
fn lax_copy(model: &Path, dir: &Path) -> PathBuf {
    let weights = dir.join("lax.safetensors");
    std::fs::copy(model, &weights).unwrap();
    let card = countersign::model::card_path(model);
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(card).unwrap()).unwrap();
    v["thresholds"] = serde_json::json!({"accept": 0.0005, "reject": 0.0001});
    if v["calibration"].is_null() {
        v["calibration"] = serde_json::json!({"a": 12.0, "b": -9.0});
    }
    std::fs::write(
        countersign::model::card_path(&weights),
        serde_json::to_string_pretty(&v).unwrap(),
    )
    .unwrap();
    weights
}

#[test]
fn a_clerk_cannot_choose_the_decision_policy_with_model() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, model) = with_clerk(dir.path());
    let lax = lax_copy(&model, dir.path());
    let forged = s(&fx.writers[0].cheques[1]).to_string();
    let before = decisions(&fx.db);
    let o = cs(
        &fx.db,
        Some(CLERK),
        &[
            "--model",
            s(&lax),
            "verify",
            "--account",
            "ACC-000",
            "--cheque",
            &forged,
            "--cheque-id",
            "M-1",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("DRY RUN"), "{}", text(&o));
    assert_eq!(
        decisions(&fx.db),
        before,
        "a clerk's --model run recorded nothing"
    );
    // A batch has no dry run: refused.
    let manifest = fx.dir.join("m.csv");
    std::fs::write(
        &manifest,
        format!(
            "cheque_id,cheque_path,account_id,reference_paths,amount\nM-2,{forged},ACC-000,,\n"
        ),
    )
    .unwrap();
    let o = cs(
        &fx.db,
        Some(CLERK),
        &["--model", s(&lax), "batch", "--manifest", s(&manifest)],
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert_eq!(decisions(&fx.db), before);
    // The active model records for the clerk; a supervisor may record with other weights.
    let o = cs(
        &fx.db,
        Some(CLERK),
        &[
            "verify",
            "--account",
            "ACC-000",
            "--cheque",
            &forged,
            "--cheque-id",
            "M-3",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = cs(
        &fx.db,
        Some(BOSS),
        &[
            "--model",
            s(&lax),
            "verify",
            "--account",
            "ACC-000",
            "--cheque",
            &forged,
            "--cheque-id",
            "M-4",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(decisions(&fx.db), before + 2);
}

#[test]
fn the_gui_backend_verifies_with_the_model_a_supervisor_activated() {
    use clap::Parser;
    use countersign::gui::Slot;
    use countersign::gui::backend::Backend;
    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = setup(dir.path());
    let other = countersign::batch::bench::random_model(&dir.path().join("other")).unwrap();
    let other_id = countersign::model::SignatureModel::load(&other, tch::Device::Cpu)
        .unwrap()
        .id();
    let o = cs(
        &fx.db,
        Some(BOSS),
        &[
            "settings",
            "activate-model",
            s(&other),
            "--reason",
            "new weights",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    // Four eyes: a second supervisor approves the activation.
    {
        let mut store = Store::open(&fx.db).unwrap();
        let boss = store.authenticate(BOSS.0, BOSS.1).unwrap();
        assert_eq!(crate::store_common::approve_all(&mut store, &boss), 1);
    }
    // The GUI's command line, as `countersign` with no subcommand parses it.
    let cli = countersign::cli::Cli::try_parse_from([
        "countersign",
        "--db",
        s(&fx.db),
        "--device",
        "cpu",
    ])
    .unwrap();
    let mut config = countersign::cli::gui_options(&cli.global).backend_config();
    if std::env::var_os("COUNTERSIGN_MODEL").is_some() {
        config.model_path = None;
    }
    let mut b = Backend::new(config);
    b.sign_in(BOSS.0, BOSS.1).unwrap();
    b.load_image(Slot::Cheque, &fx.writers[0].cheques[0])
        .unwrap();
    b.load_account("ACC-000").unwrap();
    let outcome = b.verify(None, Some("ACC-000".into()), None).unwrap();
    assert_eq!(outcome.model_id, other_id);
}

// ---------------------------------------------------------------------------------------------
// 4. With an account, only its enrolled references count.

#[test]
fn a_clerk_cannot_verify_an_account_against_references_they_supply() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = with_clerk(dir.path());
    let forger_ref = s(&fx.writers[1].references[0]).to_string();
    let cheque = s(&fx.writers[1].cheques[0]).to_string();
    let before = decisions(&fx.db);
    let args = [
        "verify",
        "--account",
        "ACC-000",
        "--reference",
        &forger_ref,
        "--cheque",
        &cheque,
        "--cheque-id",
        "R-1",
    ];
    let o = cs(&fx.db, Some(CLERK), &args);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert_eq!(decisions(&fx.db), before);
    // A supervisor may, and the row says so.
    let o = cs(&fx.db, Some(BOSS), &args);
    assert!(o.status.success(), "{}", text(&o));
    let store = Store::open_read_only(&fx.db).unwrap();
    let rows = store
        .query_decisions(
            &DecisionFilter {
                cheque_id: Some("R-1".into()),
                ..Default::default()
            },
            0,
            10,
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0]
            .record
            .reason
            .as_deref()
            .unwrap()
            .starts_with("AD-HOC REFERENCES"),
        "{:?}",
        rows[0].record.reason
    );
    // The same in a clerk's batch: an ERROR row.
    let manifest = fx.dir.join("adhoc.csv");
    std::fs::write(
        &manifest,
        format!("cheque_id,cheque_path,account_id,reference_paths,amount\nR-2,{cheque},ACC-000,{forger_ref},\n"),
    )
    .unwrap();
    let out = dir.path().join("adhoc-results.csv");
    let o = cs(
        &fx.db,
        Some(CLERK),
        &["batch", "--manifest", s(&manifest), "--out", s(&out)],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let r = read_results(&out).unwrap();
    assert_eq!(r[0].decision, RowStatus::Error);
    assert!(r[0].error.contains("enrolled references"), "{:?}", r[0]);
    assert_eq!(decisions(&fx.db), before + 1);
}

// ---------------------------------------------------------------------------------------------
// 5. A cheque id is tied to its image.

#[test]
fn a_cheque_id_names_one_image_in_verify_and_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = setup(dir.path());
    let c = &fx.writers[0].cheques;
    let manifest = fx.dir.join("ids.csv");
    std::fs::write(
        &manifest,
        format!(
            "cheque_id,cheque_path,account_id,reference_paths,amount\nT-1,{},ACC-000,,\n",
            s(&c[0])
        ),
    )
    .unwrap();
    let out = dir.path().join("ids-results.csv");
    let o = cs(
        &fx.db,
        Some(BOSS),
        &["batch", "--manifest", s(&manifest), "--out", s(&out)],
    );
    assert!(o.status.success(), "{}", text(&o));
    let before = decisions(&fx.db);
    let sha = |p: &Path| countersign::digest::sha256_hex(&std::fs::read(p).unwrap());
    // verify: a different image under the batch's id is an ERROR naming both hashes.
    let o = cs(
        &fx.db,
        Some(BOSS),
        &[
            "verify",
            "--account",
            "ACC-000",
            "--cheque",
            s(&c[1]),
            "--cheque-id",
            "T-1",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains(&sha(&c[0])) && text(&o).contains(&sha(&c[1])),
        "{}",
        text(&o)
    );
    // The same image shows the earlier decision and records nothing.
    let o = cs(
        &fx.db,
        Some(BOSS),
        &[
            "verify",
            "--account",
            "ACC-000",
            "--cheque",
            s(&c[0]),
            "--cheque-id",
            "T-1",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("already decided"), "{}", text(&o));
    assert_eq!(decisions(&fx.db), before);
    // verify first, then a batch row with the same id and another image: ERROR, not SKIPPED.
    let o = cs(
        &fx.db,
        Some(BOSS),
        &[
            "verify",
            "--account",
            "ACC-000",
            "--cheque",
            s(&c[2]),
            "--cheque-id",
            "V-1",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(
        &manifest,
        format!(
            "cheque_id,cheque_path,account_id,reference_paths,amount\nV-1,{},ACC-000,,\nT-1,{},ACC-000,,\n",
            s(&c[3]),
            s(&c[0])
        ),
    )
    .unwrap();
    let o = cs(
        &fx.db,
        Some(BOSS),
        &["batch", "--manifest", s(&manifest), "--out", s(&out)],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let r = read_results(&out).unwrap();
    assert_eq!(r[0].decision, RowStatus::Error, "{:?}", r[0]);
    assert!(
        r[0].error.contains(&sha(&c[2])) && r[0].error.contains(&sha(&c[3])),
        "{:?}",
        r[0]
    );
    // T-1 with its own image: the earlier decision, from the earlier run.
    assert_eq!(r[1].run, "earlier");
    assert!(r[1].audit_row.is_some());
    assert_eq!(decisions(&fx.db), before + 1);
}

// ---------------------------------------------------------------------------------------------
// 6. A manifest row with more fields than the header is refused.

#[test]
fn an_unquoted_thousands_comma_in_a_manifest_is_an_error_not_an_amount() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = setup(dir.path());
    let manifest = fx.dir.join("comma.csv");
    std::fs::write(
        &manifest,
        format!(
            "cheque_id,cheque_path,account_id,reference_paths,amount\r\n\r\nK-1,{},ACC-000,,1,200.00\r\n",
            s(&fx.writers[0].cheques[0])
        ),
    )
    .unwrap();
    let out = dir.path().join("comma-results.csv");
    let before = decisions(&fx.db);
    let o = cs(
        &fx.db,
        Some(BOSS),
        &["batch", "--manifest", s(&manifest), "--out", s(&out)],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let r = read_results(&out).unwrap();
    assert_eq!(r[0].decision, RowStatus::Error);
    assert_eq!(r[0].line, 3, "the CRLF and the blank line are counted");
    assert!(r[0].error.contains("unquoted comma"), "{:?}", r[0]);
    assert_eq!(decisions(&fx.db), before);
}

// ---------------------------------------------------------------------------------------------
// 7. PINs of at least six characters; a lockout waits for a supervisor.

#[test]
fn short_pins_are_refused_and_a_lockout_never_expires_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = with_clerk(dir.path());
    let o = cs_env(
        &fx.db,
        Some(BOSS),
        &["operator", "add", "shorty", "--role", "clerk"],
        &[("COUNTERSIGN_NEW_PIN", "4821")],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("at least 6 digits"), "{}", text(&o));
    for _ in 0..countersign::store::operators::FREE_FAILURES {
        let o = cs(&fx.db, Some((CLERK.0, "wrong-pin")), &["account", "list"]);
        assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    }
    // Time passes (the old 30 s window is long over): still locked.
    rusqlite::Connection::open(&fx.db)
        .unwrap()
        .execute(
            "UPDATE operators SET locked_until = '2000-01-01T00:00:00.000Z' WHERE name = ?1",
            [CLERK.0],
        )
        .unwrap();
    let o = cs(&fx.db, Some(CLERK), &["account", "list"]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(
        text(&o).contains("a supervisor must unlock"),
        "{}",
        text(&o)
    );
    let o = cs(&fx.db, Some(BOSS), &["operator", "unlock", CLERK.0]);
    assert!(o.status.success(), "{}", text(&o));
    let o = cs(&fx.db, Some(CLERK), &["account", "list"]);
    assert!(o.status.success(), "{}", text(&o));
}

// ---------------------------------------------------------------------------------------------
// 8. Smaller issues.

#[test]
fn a_closed_pipe_is_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = verified_once(dir.path());
    for (op, args) in [
        (None, vec!["audit", "verify"]),
        (Some(BOSS), vec!["operator", "list"]),
        (Some(BOSS), vec!["account", "list"]),
        (Some(BOSS), vec!["audit", "settings"]),
    ] {
        // A pipe whose reading end is closed before the command writes anything: every write
        // fails with EPIPE, as with `countersign ... | head -0`.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut c = Command::new(BIN);
        c.arg("--db").arg(&fx.db).args(["--device", "cpu"]);
        if let Some((n, p)) = op {
            c.args(["--operator", n, "--pin", p]);
        }
        let o = c
            .args(&args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(o.status.code(), Some(101), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(o.status.success(), "{args:?}: {err}");
    }
}

#[test]
fn results_after_a_resume_cover_the_whole_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = setup(dir.path());
    let manifest = fx.dir.join("resume.csv");
    fixture::write_manifest(&fx, &manifest, 8, "res-", fixture::RefMode::Account).unwrap();
    let out = dir.path().join("resume-results.csv");
    let run = |extra: &[&str]| {
        let mut args = vec!["batch", "--manifest", s(&manifest), "--out", s(&out)];
        args.extend_from_slice(extra);
        cs(&fx.db, Some(BOSS), &args)
    };
    let o = run(&["--limit", "3"]);
    assert!(o.status.success(), "{}", text(&o));
    let first = read_results(&out).unwrap();
    let o = run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let r = read_results(&out).unwrap();
    assert_eq!(r.len(), 8);
    assert!(
        r.iter()
            .all(|x| x.decision != RowStatus::Error && x.decision != RowStatus::Skipped)
    );
    let earlier: Vec<_> = r.iter().filter(|x| x.run == "earlier").collect();
    assert_eq!(earlier.len(), 3);
    // The earlier rows show the earlier run's decisions, with their audit rows.
    for e in earlier {
        let f = first.iter().find(|f| f.cheque_id == e.cheque_id).unwrap();
        assert_eq!(f.decision, e.decision);
        assert!(e.audit_row.is_some());
    }
    assert_eq!(r.iter().filter(|x| x.run == "this").count(), 5);
}

#[test]
fn errors_name_the_size_and_kind_of_a_file_never_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("shadow");
    let content = "root:*:20000:0:99999:7:::\ndaemon:*:20000:0:99999:7:::\n";
    std::fs::write(&secret, content).unwrap();
    let o = cs(
        &dir.path().join("none.sqlite3"),
        None,
        &[
            "verify",
            "--dry-run",
            "--reference",
            s(&secret),
            "--signature",
            s(&secret),
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    assert!(!t.contains("726f6f74") && !t.contains("root:"), "{t}");
    assert!(
        t.contains(&format!("{} bytes of text", content.len())),
        "{t}"
    );
}

#[test]
fn a_full_disk_in_a_batch_is_a_database_error_that_keeps_committed_rows() {
    let e = anyhow::Error::new(countersign::batch::BatchError::Store(
        countersign::store::StoreError::DiskFull {
            path: PathBuf::from("a.sqlite3"),
        },
    ));
    assert_eq!(
        countersign::cli::exit_code_for(&e),
        countersign::cli::exit::DATABASE
    );
    let msg = e.to_string();
    assert!(!msg.contains("nothing was written"), "{msg}");
    assert!(msg.contains("committed before it is kept"), "{msg}");
}

#[test]
fn audit_verify_reads_a_database_on_a_read_only_mount() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = verified_once(dir.path());
    // The file alone, its WAL folded in, in a folder of its own (no -wal, no -shm beside it).
    Store::open(&fx.db).unwrap().checkpoint_wal().unwrap();
    let src = dir.path().join("media");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(&fx.db, src.join("audit.sqlite3")).unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    // A private mount namespace with that folder bound read-only (needs CAP_SYS_ADMIN).
    let script = format!(
        "mount --bind -o ro '{}' '{}' && '{BIN}' --db '{}/audit.sqlite3' --device cpu audit verify",
        s(&src),
        s(&ro),
        s(&ro)
    );
    let o = Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output();
    match o {
        Ok(o) if text(&o).contains("mount:") || text(&o).contains("unshare:") => {
            eprintln!(
                "skipped: this machine cannot make a read-only mount here ({})",
                text(&o)
            );
        }
        Ok(o) => {
            assert!(o.status.success(), "{}", text(&o));
            assert!(text(&o).contains("chain intact"), "{}", text(&o));
            // Read-write and plain read-only opens fail there: the immutable fallback did it.
            assert!(text(&o).contains("opened as immutable"), "{}", text(&o));
        }
        Err(e) => eprintln!("skipped: unshare is not available ({e})"),
    }
}

// ---------------------------------------------------------------------------------------------
// 9. The keyed chain: an appended row with a valid hash but no MAC is caught.

#[test]
fn the_keyed_chain_catches_an_appended_row_with_a_valid_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = setup(dir.path());
    let key = dir.path().join("chain.key");
    std::fs::write(&key, [0x5au8; 32]).unwrap();
    let keyed = [("COUNTERSIGN_CHAIN_KEY_FILE", s(&key))];
    let o = cs_env(
        &fx.db,
        Some(BOSS),
        &[
            "verify",
            "--account",
            "ACC-000",
            "--cheque",
            s(&fx.writers[0].cheques[0]),
            "--cheque-id",
            "KEY-1",
        ],
        &keyed,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = cs_env(&fx.db, None, &["audit", "verify"], &keyed);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("carry a valid MAC"), "{}", text(&o));
    // The attack: append a copy of the last decision as an ACCEPT with a correct hash.
    {
        let c = rusqlite::Connection::open(&fx.db).unwrap();
        let mut row = crate::store_common::last_decision_values(&c);
        row[5] = rusqlite::types::Value::Text("FORGED-1".into());
        row[17] = rusqlite::types::Value::Text("ACCEPT".into());
        // No logged signature (its absence would be reported on its own): only the MAC can tell.
        row[25] = rusqlite::types::Value::Null;
        crate::store_common::append_raw_row(&c, row);
    }
    // Unkeyed, nothing sees it (the documented limit of a bare hash chain)...
    let o = cs(&fx.db, None, &["audit", "verify"]);
    assert!(o.status.success(), "{}", text(&o));
    // ...with the key, `audit verify` names the forged row.
    let o = cs_env(&fx.db, None, &["audit", "verify"], &keyed);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(text(&o).contains("no MAC"), "{}", text(&o));
}

/// The GUI names a cheque as `verify` does (file name and the start of the image's SHA-256): the
/// same cheque gets the same id on both, so `verify` afterwards shows the GUI's decision instead of
/// recording a second, possibly contradicting one, and two images that share a file name are two ids.
#[test]
fn the_gui_names_a_cheque_by_its_image_as_verify_does() {
    use countersign::gui::Slot;
    use countersign::gui::backend::{Backend, BackendConfig, FinalAction};
    let dir = tempfile::tempdir().unwrap();
    let (fx, _) = setup(dir.path());
    let cheque = &fx.writers[0].cheques[0];
    // A different cheque image under the same file name, in another folder.
    let other_dir = dir.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let twin = other_dir.join(cheque.file_name().unwrap());
    std::fs::copy(&fx.writers[0].cheques[1], &twin).unwrap();

    let mut b = Backend::new(BackendConfig {
        db_path: fx.db.clone(),
        model_path: None,
        device: countersign::device::DeviceChoice::Cpu,
    });
    b.sign_in(BOSS.0, BOSS.1).unwrap();
    b.load_account("ACC-000").unwrap();
    let mut ids = Vec::new();
    let mut rows = Vec::new();
    for path in [cheque, &twin] {
        b.load_image(Slot::Cheque, path).unwrap();
        let outcome = b.verify(None, Some("ACC-000".into()), None).unwrap();
        let row = b.record(&outcome, &FinalAction::Confirm).unwrap();
        let sha = countersign::digest::sha256_hex(&std::fs::read(path).unwrap());
        let id = row.record.cheque_id.clone().unwrap_or_default();
        assert_eq!(
            id,
            countersign::verify::default_cheque_id(
                &path.file_name().unwrap().to_string_lossy(),
                &sha
            )
        );
        ids.push(id);
        rows.push(row.id);
    }
    assert_ne!(ids[0], ids[1], "two images under one file name are two ids");

    // `verify` of the same cheque names it the same way and shows the GUI's decision.
    let before = decisions(&fx.db);
    let o = cs(
        &fx.db,
        Some(BOSS),
        &["verify", "--account", "ACC-000", "--cheque", s(cheque)],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(decisions(&fx.db), before, "a repeat records nothing");
    assert!(
        text(&o).contains(&format!("audit row {}", rows[0])),
        "{}",
        text(&o)
    );
}
