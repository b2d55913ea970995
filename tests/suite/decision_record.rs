//! One record of a decision: what the store is given is what every read gives back, and the export
//! row and the batch results row are views of that record, not copies kept in step by hand.

use countersign::batch::output::{ResultRow, RowStatus};
use countersign::scoring::Decision;
use countersign::store::export::ExportRecord;
use countersign::store::{DecisionRecord, FinalAction, ImageKind, format_time};

use crate::store_common as common;

/// Records that between them set every optional field one way or the other.
fn varied(f: &common::Fixture) -> Vec<DecisionRecord> {
    let mut out = Vec::new();
    for i in 0..6 {
        let mut d = common::decision(&f.sup, i);
        match i {
            1 => {
                // A supervisor's override recorded with the decision itself.
                d.decision = Decision::Accept;
                d.final_action = FinalAction::Override;
                d.final_decision = Some(Decision::Reject);
                d.reason = Some("the payee line was altered".into());
            }
            2 => {
                d.raw_score = None;
                d.probability = None;
                d.crop = None;
                d.decision = Decision::Refer;
                d.reason = Some("no signature found".into());
            }
            3 => {
                d.hand_drawn_box = true;
                d.image_kind = Some(ImageKind::new("auto", "cheque"));
                d.signature_png = Some(common::png(3));
                d.final_action = FinalAction::Confirm;
            }
            4 => {
                d.account = None;
                d.amount_cents = None;
                d.probability = None;
                d.source = countersign::store::Source::Gui;
                d.image_kind = Some(ImageKind::new("signature", "signature"));
            }
            _ => {}
        }
        out.push(d);
    }
    out
}

/// A store holding the varied records, and their row ids.
fn stored(dir: &tempfile::TempDir) -> (common::Fixture, Vec<DecisionRecord>, Vec<i64>) {
    let mut f = common::fixture(&dir.path().join("audit.sqlite3"));
    let records = varied(&f);
    let sup = f.sup.clone();
    let ids = f.store.insert_decisions(&sup, &records).expect("stored");
    (f, records, ids)
}

#[test]
fn a_decision_reads_back_as_the_record_that_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (mut f, records, ids) = stored(&dir);
    for (id, want) in ids.iter().zip(&records) {
        let row = f.store.decision(*id).unwrap().expect("row");
        // The image is kept beside the row and read on its own; everything else is the record.
        let expected = DecisionRecord {
            signature_png: None,
            ..want.clone()
        };
        assert_eq!(row.record, expected, "row {id}");
        assert_eq!(
            row.final_decision,
            want.final_decision.unwrap_or(want.decision),
            "the decision in force of row {id}"
        );
        assert_eq!(
            f.store.decision_signature(*id).unwrap(),
            want.signature_png,
            "the logged signature of row {id}"
        );
    }
    // A later action changes what is in force, never the record.
    let before = f.store.decision(ids[0]).unwrap().unwrap();
    let sup = f.sup.clone();
    f.store
        .override_decision(&sup, ids[0], Decision::Refer, "second look")
        .unwrap();
    let after = f.store.decision(ids[0]).unwrap().unwrap();
    assert_eq!(after.record, before.record);
    assert_eq!(after.final_decision, Decision::Refer);
    assert_eq!(after.effective_action(), FinalAction::Override);
    assert_eq!(after.effective_reason(), Some("second look"));
}

#[test]
fn the_export_row_and_the_batch_row_are_views_of_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let (f, records, ids) = stored(&dir);
    for (id, d) in ids.iter().zip(&records) {
        let row = f.store.decision(*id).unwrap().unwrap();

        let e = ExportRecord::from(&row);
        assert_eq!(e.id, *id);
        assert_eq!(e.time, format_time(d.time));
        assert_eq!(
            (&e.operator, &e.account, &e.cheque_id, e.amount_cents),
            (&d.operator, &d.account, &d.cheque_id, d.amount_cents)
        );
        assert_eq!(
            (e.crop_x, e.crop_y, e.crop_w, e.crop_h),
            (
                d.crop.map(|c| c.x),
                d.crop.map(|c| c.y),
                d.crop.map(|c| c.w),
                d.crop.map(|c| c.h)
            )
        );
        assert_eq!((e.raw_score, e.probability), (d.raw_score, d.probability));
        assert_eq!(e.decision, d.decision.as_str());
        assert_eq!(e.final_action, d.final_action.as_str());
        assert_eq!(e.source, d.source.as_str());
        assert_eq!(
            e.reference_sha256s,
            serde_json::to_string(&d.reference_sha256s).unwrap()
        );
        assert_eq!(e.final_decision, row.final_decision.as_str());
        assert_eq!(e.hash, row.hash);
        assert_eq!(
            (e.kind_chosen.as_deref(), e.kind_resolved.as_deref()),
            (
                d.image_kind.as_ref().map(|k| k.chosen.as_str()),
                d.image_kind.as_ref().map(|k| k.resolved.as_str())
            )
        );

        // The batch results row of this run (from the record before it is stored) and of a later run
        // (from the stored row) agree on everything but who decided and why.
        let this = ResultRow::decided(7, d, Some(0.9));
        let earlier = ResultRow::earlier(7, &row);
        assert_eq!(this.decision, RowStatus::from(d.decision));
        assert_eq!(this.reason, d.reason.clone().unwrap_or_default());
        assert_eq!(earlier.audit_row, Some(*id));
        assert_eq!(earlier.run, "earlier");
        assert!(earlier.reason.contains(&format_time(d.time)));
        assert_eq!(
            ResultRow {
                reason: this.reason.clone(),
                run: this.run.clone(),
                audit_row: None,
                find_confidence: Some(0.9),
                ..earlier
            },
            this
        );
    }
}
