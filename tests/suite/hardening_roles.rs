//! Roles through the real binary: every supervisor-only (and auditor-only) action a clerk attempts
//! from the command line exits with code 6, changes nothing, and is logged in the chain; PINs never
//! appear in clear in the database, its WAL, exports, checkpoints or any output; wrong PINs lock an
//! operator out until a supervisor unlocks them.

use crate::store_common as common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use common::{decision, fixture, png};
use countersign::imaging::normalise::NormaliseParams;
use countersign::model::SignatureModel;
use countersign::scoring::Decision;
use countersign::store::Store;

fn cli(db: &Path, who: Option<(&str, &str)>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_countersign"));
    cmd.arg("--db")
        .arg(db)
        .args(["--device", "cpu"])
        .env_remove("COUNTERSIGN_OPERATOR")
        .env_remove("COUNTERSIGN_PIN")
        .env_remove("COUNTERSIGN_NEW_PIN")
        .env_remove("COUNTERSIGN_MODEL");
    if let Some((op, pin)) = who {
        cmd.args(["--operator", op, "--pin", pin]);
    }
    cmd.args(args).output().expect("run countersign")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `(operator, event, action)` of every security row, oldest first.
fn security_events(db: &Path) -> Vec<(String, String, String)> {
    let c = rusqlite::Connection::open(db).expect("open");
    let mut s = c
        .prepare("SELECT operator, payload FROM ledger WHERE kind = 'security' ORDER BY id")
        .expect("prepare");
    s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .expect("query")
        .map(|r| {
            let (op, payload) = r.expect("row");
            let v: serde_json::Value = serde_json::from_str(&payload).expect("json payload");
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            (op, s("event"), s("action"))
        })
        .collect()
}

fn save_model(dir: &Path) -> PathBuf {
    tch::manual_seed(3);
    let mut m = SignatureModel::new(NormaliseParams::default(), tch::Device::Cpu);
    let path = dir.join("candidate.safetensors");
    m.save(&path).expect("save model");
    path
}

#[test]
fn every_supervisor_only_action_is_refused_for_a_clerk_on_the_cli_and_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.sqlite3");
    let model = save_model(dir.path());
    let (reject_id, reference_id) = {
        let mut f = fixture(&db);
        f.store
            .add_account(&f.clerk, "ACC-1", "Ada Holder")
            .expect("account");
        let r = f
            .store
            .enrol_reference(&f.clerk, "ACC-1", &png(4))
            .expect("enrol");
        let mut d = decision(&f.clerk, 2);
        assert_eq!(d.decision, Decision::Reject);
        d.account = Some("ACC-1".into());
        let id = f.store.insert_decision(&f.clerk, &d).expect("decision");
        (id, r.id)
    };
    let model_s = model.to_str().expect("utf-8 path");
    let rej = reject_id.to_string();
    let refid = reference_id.to_string();
    let export = dir.path().join("clerk-export.csv");
    let checkpoint = dir.path().join("clerk-checkpoint.json");
    let export_s = export.to_str().expect("utf-8");
    let checkpoint_s = checkpoint.to_str().expect("utf-8");

    // (what, arguments, the action named in the logged refusal)
    let attempts: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "add a clerk",
            vec![
                "operator",
                "add",
                "eve",
                "--role",
                "clerk",
                "--new-pin",
                "555500",
            ],
            "manage_operators",
        ),
        (
            "add a supervisor",
            vec![
                "operator",
                "add",
                "mallory",
                "--role",
                "supervisor",
                "--new-pin",
                "555500",
            ],
            "manage_operators",
        ),
        (
            "unlock an operator",
            vec!["operator", "unlock", "sam"],
            "manage_operators",
        ),
        (
            "reset the supervisor's PIN",
            vec!["operator", "set-pin", "sam", "--new-pin", "999900"],
            "manage_operators",
        ),
        (
            "retire a reference",
            vec![
                "account",
                "retire-reference",
                &refid,
                "--reason",
                "clerk tries",
            ],
            "retire_reference",
        ),
        (
            "change thresholds",
            vec![
                "settings",
                "thresholds",
                "--accept",
                "0.2",
                "--reject",
                "0.1",
                "--reason",
                "clerk tries",
            ],
            "change_settings",
        ),
        (
            "activate a model",
            vec![
                "settings",
                "activate-model",
                model_s,
                "--reason",
                "clerk tries",
            ],
            "change_model",
        ),
        (
            "override a REJECT",
            vec![
                "settings",
                "override",
                &rej,
                "--to",
                "ACCEPT",
                "--reason",
                "clerk tries",
            ],
            "override_reject",
        ),
        (
            "export the audit log",
            vec!["audit", "export", "--out", export_s],
            "export_audit",
        ),
        (
            "write a checkpoint",
            vec!["audit", "checkpoint", "--out", checkpoint_s],
            "export_audit",
        ),
        (
            "read the settings history",
            vec!["audit", "settings"],
            "read_audit",
        ),
        ("list operators", vec!["operator", "list"], "read_audit"),
    ];
    let before = security_events(&db).len();
    for (what, args, action) in &attempts {
        let o = cli(&db, Some(("carla", "222200")), args);
        assert_eq!(o.status.code(), Some(6), "{what}: {}", text(&o));
        assert!(
            text(&o).contains("permission denied"),
            "{what}: {}",
            text(&o)
        );
        let events = security_events(&db);
        let last = events.last().expect("a security row");
        assert_eq!(
            (last.0.as_str(), last.1.as_str(), last.2.as_str()),
            ("carla", "permission_denied", *action),
            "{what}: the refusal is the newest security row"
        );
    }
    let refusals = security_events(&db).len() - before;
    assert_eq!(refusals, attempts.len(), "one logged refusal per attempt");
    println!(
        "{} clerk attempts refused with exit code 6 and logged",
        attempts.len()
    );

    // Nothing changed.
    let mut store = Store::open_with(&db, &common::opts()).expect("open");
    assert_eq!(store.operator_count().expect("count"), 3);
    store
        .authenticate("sam", "111100")
        .expect("the supervisor's PIN is unchanged");
    let s = store.current_settings().expect("settings");
    assert_eq!(s.version, 0, "no settings change was recorded");
    assert!(s.model_path.is_none());
    let d = store.decision(reject_id).expect("read").expect("decision");
    assert_eq!(
        d.effective_action().as_str(),
        "pending",
        "the REJECT was not overridden"
    );
    assert!(!store.references("ACC-1", true).expect("refs")[0].retired);
    assert!(
        !export.exists() && !checkpoint.exists(),
        "no file was written for the clerk"
    );
    assert!(store.verify_chain().expect("verify").is_intact());
    drop(store);

    // The same commands work for the supervisor, so the refusals above are the role's doing.
    for args in [
        vec![
            "settings",
            "thresholds",
            "--accept",
            "0.85",
            "--reject",
            "0.25",
            "--reason",
            "quarterly review",
        ],
        vec![
            "settings",
            "activate-model",
            model_s,
            "--reason",
            "new weights",
        ],
        vec![
            "settings",
            "override",
            &rej,
            "--to",
            "ACCEPT",
            "--reason",
            "holder confirmed by phone",
        ],
        vec![
            "account",
            "retire-reference",
            &refid,
            "--reason",
            "faded scan",
        ],
    ] {
        let o = cli(&db, Some(("sam", "111100")), &args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "supervisor {args:?}: {}",
            text(&o)
        );
    }
    let mut store = Store::open_with(&db, &common::opts()).expect("open");
    // Four eyes: the threshold and model changes wait for a second supervisor.
    assert_eq!(store.current_settings().expect("settings").version, 0);
    let sam = store.authenticate("sam", "111100").expect("sam");
    assert_eq!(common::approve_all(&mut store, &sam), 2);
    let s = store.current_settings().expect("settings");
    assert_eq!((s.thresholds.accept, s.thresholds.reject), (0.85, 0.25));
    assert!(
        s.model_id
            .as_deref()
            .is_some_and(|id| id.starts_with(countersign::model::ARCH_NAME))
    );
    let d = store.decision(reject_id).expect("read").expect("decision");
    assert_eq!(d.effective_action().as_str(), "override");
    assert!(store.verify_chain().expect("verify").is_intact());

    // A model that does not load is never activated, even by a supervisor; the old one stays.
    std::fs::write(&model, b"not weights").expect("damage model");
    let o = cli(
        &db,
        Some(("sam", "111100")),
        &["settings", "activate-model", model_s, "--reason", "bad"],
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let after = Store::open_with(&db, &common::opts())
        .expect("open")
        .current_settings()
        .expect("s");
    assert_eq!(after.model_id, s.model_id, "the active model is unchanged");
}

/// All the files a PIN could leak into, read whole.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).expect("read");
            (p, b)
        })
        .collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn pins_never_appear_in_clear_and_wrong_pins_lock_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.sqlite3");
    // Distinctive PINs, so a match cannot be a coincidence in hashes or timestamps.
    let boss_pin = "Boss-5821-pin";
    let clerk_pin = "Clerk-7730-pin";
    let wrong_pin = "Wrong-0419-pin";
    let new_pin = "Fresh-2264-pin";
    let mut outputs: Vec<Output> = Vec::new();
    let mut run = |who: Option<(&str, &str)>, args: &[&str]| -> Output {
        let o = cli(&db, who, args);
        outputs.push(o.clone());
        o
    };

    // Real (production-cost) PIN hashing through the CLI.
    let o = run(
        None,
        &[
            "operator",
            "add",
            "boss",
            "--role",
            "supervisor",
            "--new-pin",
            boss_pin,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let boss = Some(("boss", boss_pin));
    let o = run(
        boss,
        &[
            "operator",
            "add",
            "clara",
            "--role",
            "clerk",
            "--new-pin",
            clerk_pin,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let img = dir.path().join("ref.png");
    std::fs::write(&img, png(8)).expect("write image");
    let o = run(
        Some(("clara", clerk_pin)),
        &["account", "add", "ACC-7", "--holder", "Bea Holder"],
    );
    assert!(o.status.success(), "{}", text(&o));

    // Wrong PINs: refused (code 6) and counted; the fifth locks the operator out.
    let mut timings = Vec::new();
    for attempt in 1..=countersign::store::operators::FREE_FAILURES {
        let t0 = Instant::now();
        let o = run(Some(("clara", wrong_pin)), &["account", "list"]);
        timings.push(t0.elapsed());
        assert_eq!(o.status.code(), Some(6), "attempt {attempt}: {}", text(&o));
        let locked = text(&o).contains("locked out");
        assert_eq!(
            locked,
            attempt == countersign::store::operators::FREE_FAILURES,
            "attempt {attempt}: {}",
            text(&o)
        );
    }
    println!("wrong-PIN attempts took {timings:?} each (argon2 verification plus start-up)");
    // Locked out: even the right PIN is refused until a supervisor unlocks.
    let o = run(Some(("clara", clerk_pin)), &["account", "list"]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert!(
        text(&o).contains("a supervisor must unlock"),
        "{}",
        text(&o)
    );
    // A supervisor unlocks; the right PIN works again; the clerk changes it.
    let o = run(boss, &["operator", "unlock", "clara"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(Some(("clara", clerk_pin)), &["account", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        Some(("clara", clerk_pin)),
        &["operator", "set-pin", "clara", "--new-pin", new_pin],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(
        Some(("clara", new_pin)),
        &["account", "enrol", "ACC-7", img.to_str().expect("utf-8")],
    );
    assert!(o.status.success(), "{}", text(&o));

    let events = security_events(&db);
    let failed = events
        .iter()
        .filter(|e| e.0 == "clara" && e.1 == "sign_in_failed")
        .count() as i64;
    let refused = events
        .iter()
        .filter(|e| e.0 == "clara" && e.1 == "sign_in_refused")
        .count();
    assert_eq!(failed, countersign::store::operators::FREE_FAILURES);
    assert_eq!(refused, 1);

    // Exports and a checkpoint, so their files are searched too.
    for (fmt, name) in [("csv", "log.csv"), ("jsonl", "log.jsonl")] {
        let out = dir.path().join(name);
        let o = run(
            boss,
            &[
                "audit",
                "export",
                "--format",
                fmt,
                "--out",
                out.to_str().expect("utf-8"),
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    let cp = dir.path().join("checkpoint.json");
    let o = run(
        boss,
        &["audit", "checkpoint", "--out", cp.to_str().expect("utf-8")],
    );
    assert!(o.status.success(), "{}", text(&o));

    // Search the database with its WAL and shared memory as they are now, then again after the WAL
    // is folded into the main file, plus every exported file and every line the CLI printed.
    let pins = [boss_pin, clerk_pin, wrong_pin, new_pin];
    let mut searched = 0usize;
    let mut check = |label: &str, bytes: &[u8]| {
        searched += bytes.len();
        for pin in pins {
            assert!(
                !contains(bytes, pin),
                "the PIN {pin} appears in clear in {label}"
            );
        }
    };
    for (p, bytes) in files_under(dir.path()) {
        check(&p.display().to_string(), &bytes);
    }
    Store::open_with(&db, &common::opts())
        .expect("open")
        .checkpoint_wal()
        .expect("fold the WAL");
    check("the database file", &std::fs::read(&db).expect("read db"));
    for o in &outputs {
        check("CLI output", &o.stdout);
        check("CLI output", &o.stderr);
    }
    // The hashes are argon2id PHC strings.
    let c = rusqlite::Connection::open(&db).expect("open");
    let hashes: Vec<String> = c
        .prepare("SELECT pin_hash FROM operators")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(hashes.len(), 2);
    assert!(
        hashes.iter().all(|h| h.starts_with("$argon2id$")),
        "{hashes:?}"
    );
    println!("{searched} bytes searched for 4 PINs: none found");
}
