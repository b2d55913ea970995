//! `countersign referrals list|resolve` and `countersign settings pending|approve|decline` through
//! the real binary: the referral queue and four eyes from the command line.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use crate::store_common as common;
use countersign::scoring::{Decision, Thresholds};
use countersign::store::{FinalAction, Store};

fn cli(db: &Path, who: (&str, &str), args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_countersign"))
        .arg("--db")
        .arg(db)
        .args(["--device", "cpu"])
        .env_remove("COUNTERSIGN_OPERATOR")
        .env_remove("COUNTERSIGN_PIN")
        .env_remove("COUNTERSIGN_MODEL")
        .args(["--operator", who.0, "--pin", who.1])
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const SAM: (&str, &str) = ("sam", "111100");
const CARLA: (&str, &str) = ("carla", "222200");
const SID: (&str, &str) = common::SECOND_SUPERVISOR;

#[test]
fn referrals_are_listed_and_resolved_by_a_supervisor_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.sqlite3");
    let (refer, accept) = {
        let mut f = common::fixture(&db);
        let mut r = common::decision(&f.clerk, 1);
        r.cheque_id = Some("CHQ-REFER".into());
        let mut a = common::decision(&f.clerk, 0);
        a.cheque_id = Some("CHQ-ACCEPT".into());
        assert_eq!(
            (r.decision, a.decision),
            (Decision::Refer, Decision::Accept)
        );
        let ids = f.store.insert_decisions(&f.clerk.clone(), &[r, a]).unwrap();
        (ids[0], ids[1])
    };
    let o = cli(&db, SAM, &["referrals", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    let listed = text(&o);
    assert!(listed.contains(&format!("#{refer} ")), "{listed}");
    assert!(
        listed.contains("CHQ-REFER") && !listed.contains("CHQ-ACCEPT"),
        "{listed}"
    );

    // A clerk may not resolve, nor confirm a REFER up to ACCEPT by override.
    let o = cli(
        &db,
        CARLA,
        &[
            "referrals",
            "resolve",
            &refer.to_string(),
            "--to",
            "accept",
            "--reason",
            "fine",
        ],
    );
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let o = cli(
        &db,
        CARLA,
        &[
            "settings",
            "override",
            &refer.to_string(),
            "--to",
            "ACCEPT",
            "--reason",
            "looks fine to me",
        ],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("only confirm a REFER"), "{}", text(&o));
    // A clerk may make an ACCEPT stricter.
    let o = cli(
        &db,
        CARLA,
        &[
            "settings",
            "override",
            &accept.to_string(),
            "--to",
            "REFER",
            "--reason",
            "date looks altered",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(&db, SAM, &["referrals", "list"]);
    assert!(
        text(&o).contains("CHQ-ACCEPT"),
        "now referred too: {}",
        text(&o)
    );

    let o = cli(
        &db,
        SAM,
        &[
            "referrals",
            "resolve",
            &refer.to_string(),
            "--to",
            "REJECT",
            "--reason",
            "holder denies signing",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("resolved to REJECT"), "{}", text(&o));
    // Resolved once: a second resolution is refused.
    let o = cli(
        &db,
        SAM,
        &[
            "referrals",
            "resolve",
            &refer.to_string(),
            "--to",
            "ACCEPT",
            "--reason",
            "again",
        ],
    );
    assert!(!o.status.success(), "{}", text(&o));

    let store = Store::open_read_only(&db).unwrap();
    let row = store.decision(refer).unwrap().unwrap();
    assert_eq!(row.final_decision, Decision::Reject);
    assert_eq!(row.effective_action(), FinalAction::Resolve);
    let queue = store.referral_queue(10).unwrap();
    assert_eq!(queue.iter().map(|r| r.id).collect::<Vec<_>>(), vec![accept]);
    assert!(store.verify_chain().unwrap().is_intact());
}

#[test]
fn a_threshold_change_takes_effect_only_when_a_second_supervisor_approves() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.sqlite3");
    {
        let mut f = common::fixture(&db);
        let sup = f.sup.clone();
        common::second_supervisor(&mut f.store, &sup);
    }
    let o = cli(
        &db,
        SAM,
        &[
            "settings",
            "thresholds",
            "--accept",
            "0.9",
            "--reject",
            "0.2",
            "--reason",
            "Q4 review",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("waiting for a second supervisor"),
        "{}",
        text(&o)
    );
    let id = {
        let store = Store::open_read_only(&db).unwrap();
        assert_eq!(
            store.current_settings().unwrap().version,
            0,
            "not in force yet"
        );
        store.pending_settings_requests().unwrap()[0].id
    };
    let o = cli(&db, SID, &["settings", "pending"]);
    assert!(text(&o).contains("ACCEPT 0.800 -> 0.900"), "{}", text(&o));

    // The supervisor who asked may not approve; a clerk may not either.
    let o = cli(&db, SAM, &["settings", "approve", &id.to_string()]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let o = cli(&db, CARLA, &["settings", "approve", &id.to_string()]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    assert_eq!(
        Store::open_read_only(&db)
            .unwrap()
            .current_settings()
            .unwrap()
            .version,
        0
    );

    let o = cli(
        &db,
        SID,
        &[
            "settings",
            "approve",
            &id.to_string(),
            "--note",
            "checked the ROC",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let store = Store::open_read_only(&db).unwrap();
    let s = store.current_settings().unwrap();
    assert_eq!(
        s.thresholds,
        Thresholds {
            accept: 0.9,
            reject: 0.2
        }
    );
    // The request (by sam) and the approval (by sid) are both chained rows.
    let c = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<(String, String, Option<i64>)> = c
        .prepare(
            "SELECT kind, operator, ref_id FROM ledger WHERE kind LIKE 'settings%' ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        vec![
            ("settings_request".into(), "sam".into(), None),
            ("settings".into(), "sid".into(), Some(id)),
        ]
    );
    assert!(store.verify_chain().unwrap().is_intact());
    drop(store);

    // Approved once only; a declined request never applies.
    let o = cli(&db, SID, &["settings", "approve", &id.to_string()]);
    assert!(!o.status.success(), "{}", text(&o));
    let o = cli(
        &db,
        SAM,
        &[
            "settings",
            "thresholds",
            "--accept",
            "0.5",
            "--reject",
            "0.4",
            "--reason",
            "typo",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let id2 = Store::open_read_only(&db)
        .unwrap()
        .pending_settings_requests()
        .unwrap()[0]
        .id;
    let o = cli(
        &db,
        SID,
        &[
            "settings",
            "decline",
            &id2.to_string(),
            "--reason",
            "too loose",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(&db, SID, &["settings", "approve", &id2.to_string()]);
    assert!(!o.status.success(), "{}", text(&o));
    assert_eq!(
        Store::open_read_only(&db)
            .unwrap()
            .current_settings()
            .unwrap()
            .thresholds
            .accept,
        0.9
    );
}
