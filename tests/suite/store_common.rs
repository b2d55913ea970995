//! Helpers shared by the store tests: real database files in tempdirs, cheap argon2.
#![allow(dead_code)]

use std::path::Path;

use countersign::scoring::Decision;
use countersign::store::{
    CropBox, DecisionRecord, FinalAction, KdfCost, OpenOptions, Operator, Role, Settings,
    SettingsChange, Source, Store, StoreError,
};

/// The second supervisor that approves changes in tests (created on first use).
pub const SECOND_SUPERVISOR: (&str, &str) = ("sid", "730214");

/// The second supervisor, created by `by` when the store has none yet.
pub fn second_supervisor(store: &mut Store, by: &Operator) -> Operator {
    let (name, pin) = SECOND_SUPERVISOR;
    match store.add_operator(Some(by), name, Role::Supervisor, pin) {
        Ok(op) => op,
        Err(_) => store.authenticate(name, pin).expect("second supervisor"),
    }
}

/// A settings change under four eyes: `asker` asks, the second supervisor approves.
pub fn change_settings(
    store: &mut Store,
    asker: &Operator,
    change: &SettingsChange,
    reason: &str,
) -> Result<Settings, StoreError> {
    let request = store.request_settings_change(asker, change, reason)?;
    let second = second_supervisor(store, asker);
    store.approve_settings_change(&second, request.id, "approved in a test")
}

/// Approves every pending settings change as the second supervisor (`by` creates it if needed).
pub fn approve_all(store: &mut Store, by: &Operator) -> usize {
    let second = second_supervisor(store, by);
    let pending = store.pending_settings_requests().expect("pending");
    for r in &pending {
        store
            .approve_settings_change(&second, r.id, "approved in a test")
            .expect("approve");
    }
    pending.len()
}

pub fn opts() -> OpenOptions {
    OpenOptions {
        kdf: KdfCost::Test,
        ..Default::default()
    }
}

pub fn open(path: &Path) -> Store {
    Store::open_with(path, &opts()).expect("open store")
}

/// A store with a supervisor, a clerk and an auditor (PINs "111100", "222200", "333300").
pub struct Fixture {
    pub store: Store,
    pub sup: Operator,
    pub clerk: Operator,
    pub auditor: Operator,
}

pub fn fixture(path: &Path) -> Fixture {
    let mut store = open(path);
    let sup = store
        .add_operator(None, "sam", Role::Supervisor, "111100")
        .expect("bootstrap");
    store
        .add_operator(Some(&sup), "carla", Role::Clerk, "222200")
        .expect("clerk");
    store
        .add_operator(Some(&sup), "aude", Role::Auditor, "333300")
        .expect("auditor");
    let clerk = store
        .authenticate("carla", "222200")
        .expect("clerk signs in");
    let auditor = store
        .authenticate("aude", "333300")
        .expect("auditor signs in");
    Fixture {
        store,
        sup,
        clerk,
        auditor,
    }
}

pub fn sha(i: usize, salt: &str) -> String {
    countersign::store::accounts::sha256_hex(format!("{salt}-{i}").as_bytes())
}

/// A varied, valid decision; `i` picks the outcome, account and day.
pub fn decision(op: &Operator, i: usize) -> DecisionRecord {
    let decision = [Decision::Accept, Decision::Refer, Decision::Reject][i % 3];
    let day = 1 + (i % 5) as u8;
    let time = time::Date::from_calendar_date(2026, time::Month::March, day)
        .expect("date")
        .with_hms_milli(9, (i % 60) as u8, 0, (i % 1000) as u16)
        .expect("time")
        .assume_utc();
    DecisionRecord {
        time,
        operator: op.name().to_string(),
        account: Some(format!("ACC-{}", i % 4)),
        cheque_id: Some(format!("CHQ-{i:06}")),
        amount_cents: i.is_multiple_of(2).then_some(1000 * i as i64),
        cheque_sha256: sha(i, "cheque"),
        reference_sha256s: vec![sha(i % 4, "ref-a"), sha(i % 4, "ref-b")],
        crop: (i % 3 != 1).then_some(CropBox {
            x: 10 + i as u32,
            y: 20,
            w: 300,
            h: 90,
        }),
        raw_score: Some(0.1 + (i % 7) as f64 / 10.0),
        probability: Some((i % 10) as f64 / 10.0),
        t_accept: 0.8,
        t_reject: 0.3,
        decision,
        final_action: FinalAction::Pending,
        reason: None,
        final_decision: None,
        hand_drawn_box: false,
        image_kind: None,
        model_id: "siamese-v1@abc123".into(),
        device: "cpu".into(),
        latency_ms: 12.5 + i as f64,
        source: Source::Batch,
        signature_png: None,
    }
}

/// A small real PNG.
pub fn png(seed: u8) -> Vec<u8> {
    let img = image::GrayImage::from_fn(40, 20, |x, y| {
        image::Luma([((x * 7 + y * 3) as u8).wrapping_add(seed)])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

/// Opens the file with plain SQLite, as an attacker would, and drops the append-only triggers.
pub fn attacker(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).expect("attacker opens");
    c.execute_batch("DROP TRIGGER ledger_no_update; DROP TRIGGER ledger_no_delete;")
        .expect("drop triggers");
    c
}

/// The documented canonical encoding of a ledger row (src/store/chain.rs), written here from the
/// documentation alone so that the tests also pin the format down:
/// `SHA-256(prev || "countersign-ledger-v1" || values)`, each value a type byte and its
/// little-endian bytes. `values` are the 26 version-1 columns, optionally followed by
/// `final_decision`: when that is given and not NULL, the row is version 2
/// (`"countersign-ledger-v2"` and all 27 values).
pub fn ledger_row_hash(prev: &[u8; 32], values: &[rusqlite::types::Value]) -> [u8; 32] {
    use rusqlite::types::Value;
    use sha2::{Digest, Sha256};
    let mut buf = prev.to_vec();
    let values = match values.get(26) {
        Some(Value::Null) | None => {
            buf.extend_from_slice(b"countersign-ledger-v1");
            &values[..values.len().min(26)]
        }
        Some(_) => {
            buf.extend_from_slice(b"countersign-ledger-v2");
            values
        }
    };
    for v in values {
        match v {
            Value::Null => buf.push(0),
            Value::Integer(i) => {
                buf.push(1);
                buf.extend_from_slice(&i.to_le_bytes());
            }
            Value::Real(f) => {
                buf.push(2);
                buf.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            Value::Text(s) => {
                buf.push(3);
                buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
                buf.extend_from_slice(s.as_bytes());
            }
            Value::Blob(b) => {
                buf.push(4);
                buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
                buf.extend_from_slice(b);
            }
        }
    }
    Sha256::digest(&buf).into()
}

/// The 26 ledger columns of the canonical encoding version 1, in order.
pub const V1_COLUMNS: &str = "id, kind, time, operator, account, cheque_id, amount_cents, cheque_sha256, \
    reference_sha256s, crop_x, crop_y, crop_w, crop_h, raw_score, probability, t_accept, t_reject, decision, \
    final_action, reason, model_id, device, latency_ms, source, ref_id, payload";

/// The newest decision row's 26 version-1 values: a template for rows written by hand.
pub fn last_decision_values(c: &rusqlite::Connection) -> Vec<rusqlite::types::Value> {
    c.query_row(
        &format!(
            "SELECT {V1_COLUMNS} FROM ledger WHERE kind = 'decision' ORDER BY id DESC LIMIT 1"
        ),
        [],
        |r| (0..26).map(|i| r.get(i)).collect(),
    )
    .expect("a decision row")
}

/// Appends `row` (26 version-1 values; its id is replaced by the next one) with plain SQL and a
/// correct hash by the documented encoding, as an older binary (or an attacker who read the
/// documentation) would write it. Returns the new row's id.
pub fn append_raw_row(c: &rusqlite::Connection, mut row: Vec<rusqlite::types::Value>) -> i64 {
    use rusqlite::types::Value;
    let (last, prev_hex): (i64, String) = c
        .query_row(
            "SELECT id, hash FROM ledger ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the chain head");
    row[0] = Value::Integer(last + 1);
    let mut prev = [0u8; 32];
    hex::decode_to_slice(&prev_hex, &mut prev).expect("hex hash");
    let h = ledger_row_hash(&prev, &row);
    row.push(Value::Text(prev_hex));
    row.push(Value::Text(hex::encode(h)));
    c.execute(
        &format!(
            "INSERT INTO ledger ({V1_COLUMNS}, prev_hash, hash) VALUES ({})",
            vec!["?"; 28].join(", ")
        ),
        rusqlite::params_from_iter(row),
    )
    .expect("append the row");
    last + 1
}
