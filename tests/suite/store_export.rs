//! Queries and exports: filters, paging, CSV and JSON Lines round trips, anchors.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use crate::store_common as common;

use common::{decision, fixture};
use countersign::scoring::Decision;
use countersign::store::export::ExportRecord;
use countersign::store::{Checkpoint, DecisionFilter, ExportFormat, FinalAction, StoreError};

fn day(d: u8) -> time::OffsetDateTime {
    time::Date::from_calendar_date(2026, time::Month::March, d)
        .unwrap()
        .midnight()
        .assume_utc()
}

/// 60 decisions over 5 days, 2 operators, 4 accounts; some with awkward reasons.
fn populated(path: &std::path::Path) -> common::Fixture {
    let mut f = fixture(path);
    let sup = f.sup.clone();
    let clerk = f.clerk.clone();
    let mut ds = Vec::new();
    for i in 0..60 {
        let op = if i % 4 == 0 { &sup } else { &clerk };
        let mut d = decision(op, i);
        // Unscored rows (no signature found: no score, REFER) and uncalibrated ones (no probability)
        // hold NULL, which must survive every export format.
        if d.decision == Decision::Refer {
            d.probability = None;
            if i % 2 == 0 {
                d.raw_score = None;
            }
        }
        // Overrides name their new decision; any operator may make an ACCEPT stricter.
        if i % 5 == 0 && d.decision == Decision::Accept {
            d.final_action = FinalAction::Override;
            d.final_decision = Some(Decision::Reject);
            d.reason = Some(format!(
                "looked again, \"fine\", amount ok, line\nbreak {i}"
            ));
        }
        ds.push(d);
    }
    // Mixed operators go in separate calls (one operator per call).
    for op in [&sup, &clerk] {
        let mine: Vec<_> = ds
            .iter()
            .filter(|d| d.operator == op.name())
            .cloned()
            .collect();
        f.store.insert_decisions(op, &mine).unwrap();
    }
    f
}

#[test]
fn filters_count_and_page_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let f = populated(&dir.path().join("a.sqlite3"));
    let all = DecisionFilter::default();
    assert_eq!(f.store.count_decisions(&all).unwrap(), 60);
    let filters = [
        DecisionFilter {
            decision: Some(Decision::Reject),
            ..Default::default()
        },
        DecisionFilter {
            operator: Some("sam".into()),
            ..Default::default()
        },
        DecisionFilter {
            account: Some("ACC-2".into()),
            ..Default::default()
        },
        DecisionFilter {
            from: Some(day(2)),
            to: Some(day(4)),
            ..Default::default()
        },
        DecisionFilter {
            from: Some(day(1)),
            to: Some(day(3)),
            decision: Some(Decision::Accept),
            operator: Some("carla".into()),
            ..Default::default()
        },
        DecisionFilter {
            cheque_id: Some("CHQ-000007".into()),
            ..Default::default()
        },
    ];
    let everything = f.store.query_decisions(&all, 0, 1000).unwrap();
    assert_eq!(everything.len(), 60);
    // Newest first.
    assert!(
        everything
            .windows(2)
            .all(|w| (&w[0].record.time, w[0].id) >= (&w[1].record.time, w[1].id))
    );
    for flt in &filters {
        let expected: Vec<i64> = everything
            .iter()
            .filter(|r| {
                flt.decision.is_none_or(|d| r.record.decision == d)
                    && flt
                        .operator
                        .as_deref()
                        .is_none_or(|o| r.record.operator == o)
                    && flt
                        .account
                        .as_deref()
                        .is_none_or(|a| r.record.account.as_deref() == Some(a))
                    && flt
                        .cheque_id
                        .as_deref()
                        .is_none_or(|c| r.record.cheque_id.as_deref() == Some(c))
                    && flt.from.is_none_or(|t| r.record.time >= t)
                    && flt.to.is_none_or(|t| r.record.time < t)
            })
            .map(|r| r.id)
            .collect();
        assert!(!expected.is_empty(), "{flt:?} selects something");
        assert_eq!(
            f.store.count_decisions(flt).unwrap(),
            expected.len() as u64,
            "{flt:?}"
        );
        // Pages of 7 stitch together into the full result.
        let mut paged = Vec::new();
        let mut offset = 0;
        loop {
            let page = f.store.query_decisions(flt, offset, 7).unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 7);
            offset += page.len() as u64;
            paged.extend(page.into_iter().map(|r| r.id));
        }
        assert_eq!(paged, expected, "{flt:?}");
    }
}

#[test]
fn csv_and_jsonl_round_trip_with_anchor_and_sha() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite3");
    let mut f = populated(&path);
    let aud = f.auditor.clone();
    let flt = DecisionFilter {
        from: Some(day(1)),
        to: Some(day(5)),
        ..Default::default()
    };
    let mut expected: Vec<ExportRecord> = f
        .store
        .query_decisions(&flt, 0, 1000)
        .unwrap()
        .iter()
        .map(ExportRecord::from)
        .collect();
    expected.reverse(); // exports are oldest first
    assert!(expected.iter().any(|r| r.raw_score.is_none()));
    assert!(
        expected
            .iter()
            .any(|r| r.raw_score.is_some() && r.probability.is_none())
    );
    assert!(expected.iter().any(|r| {
        r.reason
            .as_deref()
            .is_some_and(|s| s.contains(",") && s.contains('"'))
    }));

    for format in [ExportFormat::Csv, ExportFormat::Jsonl] {
        let out = dir.path().join(format!("export.{format:?}"));
        let mut calls = 0;
        let summary = f
            .store
            .export_decisions(&aud, &flt, format, &out, &mut |_| calls += 1)
            .unwrap();
        assert!(calls >= 1);
        assert_eq!(summary.rows, expected.len() as u64);
        let got: Vec<ExportRecord> = match format {
            ExportFormat::Csv => {
                let mut rdr = csv::Reader::from_path(&out).unwrap();
                assert_eq!(
                    rdr.headers().unwrap().iter().collect::<Vec<_>>(),
                    countersign::store::export::csv_header()
                );
                rdr.deserialize().collect::<Result<_, _>>().unwrap()
            }
            ExportFormat::Jsonl => std::fs::read_to_string(&out)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
        };
        assert_eq!(got, expected, "{format:?} round trip");
        // The .sha256 side file matches the bytes.
        let digest = countersign::store::accounts::sha256_hex(&std::fs::read(&out).unwrap());
        assert_eq!(summary.file_sha256, digest);
        let side = std::fs::read_to_string(&summary.sha256_path).unwrap();
        assert!(side.starts_with(&digest), "{side}");
        // The anchor names the chain head and works as a checkpoint.
        let cp = Checkpoint::read(&summary.anchor_path).unwrap();
        assert_eq!(
            Some(cp.row_id),
            summary.chain_head.as_ref().map(|h| h.row_id)
        );
        assert!(f.store.verify_checkpoint(&cp).unwrap().matches);
        // The export itself was logged.
        let c = rusqlite::Connection::open(&path).unwrap();
        let kind: String = c
            .query_row(
                "SELECT kind FROM ledger WHERE id = ?1",
                [summary.logged_as],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kind, "export");
    }
    assert!(f.store.verify_chain().unwrap().is_intact());
}

#[test]
fn empty_export_has_a_header_and_clerks_cannot_export() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = populated(&dir.path().join("a.sqlite3"));
    let aud = f.auditor.clone();
    let out = dir.path().join("none.csv");
    let flt = DecisionFilter {
        account: Some("NOBODY".into()),
        ..Default::default()
    };
    let s = f
        .store
        .export_decisions(&aud, &flt, ExportFormat::Csv, &out, &mut |_| {})
        .unwrap();
    assert_eq!(s.rows, 0);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.starts_with("id,time,operator"));
    let clerk = f.clerk.clone();
    let err = f.store.export_decisions(
        &clerk,
        &flt,
        ExportFormat::Csv,
        &dir.path().join("x.csv"),
        &mut |_| {},
    );
    assert!(matches!(
        err.unwrap_err(),
        StoreError::PermissionDenied { .. }
    ));
    assert!(
        !dir.path().join("x.csv").exists(),
        "nothing written on refusal"
    );
}

#[test]
fn resumability_queries_see_committed_cheques() {
    let dir = tempfile::tempdir().unwrap();
    let f = populated(&dir.path().join("a.sqlite3"));
    let ids = f.store.decided_cheque_ids().unwrap();
    assert_eq!(ids.len(), 60);
    assert!(f.store.has_decision("CHQ-000059").unwrap());
    assert!(!f.store.has_decision("CHQ-999999").unwrap());
}

#[test]
fn insert_undecided_records_each_cheque_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = populated(&dir.path().join("a.sqlite3"));
    let clerk = f.clerk.clone();
    // 58 and 59 are in the ledger already; 100 comes twice in this call; one row has no cheque id.
    let mut ds: Vec<_> = [58, 100, 59, 101, 100]
        .into_iter()
        .map(|i| decision(&clerk, i))
        .collect();
    let mut anonymous = decision(&clerk, 102);
    anonymous.cheque_id = None;
    ds.push(anonymous.clone());
    let ids = f.store.insert_undecided(&clerk, &ds).unwrap();
    let recorded: Vec<bool> = ids.iter().map(Option::is_some).collect();
    assert_eq!(recorded, [false, true, false, true, false, true]);
    assert_eq!(f.store.decided_cheque_ids().unwrap().len(), 62);
    // The ids are the rows written, in order.
    for (d, id) in ds.iter().zip(&ids) {
        if let Some(id) = id {
            let row = f.store.decision(*id).unwrap().unwrap();
            assert_eq!(row.record.cheque_id, d.cheque_id);
        }
    }
    // Again: every cheque is taken now; a row without a cheque id is still recorded.
    let again = f.store.insert_undecided(&clerk, &ds).unwrap();
    assert_eq!(
        again.iter().map(Option::is_some).collect::<Vec<_>>(),
        [false, false, false, false, false, true]
    );
    assert!(f.store.verify_chain().unwrap().is_intact());
}
