//! Decisions (append-only, chained), clerks' confirmations and overrides, and the paged queries.

use std::collections::HashSet;

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params, params_from_iter};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::chain::{Entry, append};
use super::{Operator, Permission, Role, Store, StoreError, format_time};
use crate::digest::sha256_hex;
use crate::scoring::Decision;

/// Where the signature was found on the cheque, in cheque pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// The clerk's action on a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinalAction {
    Confirm,
    Override,
    /// Not yet acted on (batch runs; the GUI before the clerk clicks).
    Pending,
    /// A supervisor resolved a referral to ACCEPT or REJECT (see [`Store::resolve_referral`]).
    Resolve,
    /// The result was shown and the clerk moved on without deciding (next cheque, a redrawn box):
    /// logged so that no shown result disappears, and never a decision on the cheque.
    Abandoned,
}

impl FinalAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FinalAction::Confirm => "confirm",
            FinalAction::Override => "override",
            FinalAction::Pending => "pending",
            FinalAction::Resolve => "resolve",
            FinalAction::Abandoned => "abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<FinalAction> {
        match s {
            "confirm" => Some(FinalAction::Confirm),
            "override" => Some(FinalAction::Override),
            "pending" => Some(FinalAction::Pending),
            "resolve" => Some(FinalAction::Resolve),
            "abandoned" => Some(FinalAction::Abandoned),
            _ => None,
        }
    }
}

/// Which front end recorded the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Gui,
    Cli,
    Batch,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Gui => "gui",
            Source::Cli => "cli",
            Source::Batch => "batch",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        [Source::Gui, Source::Cli, Source::Batch]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// The one rule for changing a decision by hand, shared by the GUI, the CLI and the store: an
/// override must change something; a clerk may only make a decision stricter (ACCEPT to REFER or
/// REJECT) and never moves a REFER or a REJECT (a REFER is confirmed as referred and goes to the
/// referral queue, where a supervisor resolves it); a supervisor may change any decision, with a
/// reason. Auditors decide nothing.
pub fn override_rule(role: Role, from: Decision, to: Decision) -> Result<(), StoreError> {
    if from == to {
        return Err(StoreError::Invalid(format!(
            "the decision is already {}: confirm it instead of overriding",
            to.as_str()
        )));
    }
    match role {
        Role::Supervisor => Ok(()),
        Role::Auditor => Err(StoreError::Invalid(
            "an auditor does not decide cheques".into(),
        )),
        Role::Clerk => match (from, to) {
            (Decision::Accept, Decision::Refer | Decision::Reject) => Ok(()),
            (Decision::Refer, _) => Err(StoreError::Invalid(
                "a clerk may only confirm a REFER as referred; a supervisor resolves it from the referral queue"
                    .into(),
            )),
            _ => Err(StoreError::Invalid(format!(
                "a clerk may not change {} to {}: a clerk's override may only make a decision stricter",
                from.as_str(),
                to.as_str()
            ))),
        },
    }
}

/// The decisions `role` may turn `from` into (see [`override_rule`]), strictest last.
pub fn override_targets(role: Role, from: Decision) -> Vec<Decision> {
    [Decision::Accept, Decision::Refer, Decision::Reject]
        .into_iter()
        .filter(|&to| override_rule(role, from, to).is_ok())
        .collect()
}

/// The decision an old GUI override encoded in its reason ("Changed to REJECT: ...").
fn legacy_override_target(reason: Option<&str>) -> Option<Decision> {
    let rest = reason?.strip_prefix("Changed to ")?;
    [Decision::Accept, Decision::Refer, Decision::Reject]
        .into_iter()
        .find(|d| rest.starts_with(&format!("{}:", d.as_str())))
}

/// The key of the final decision in the chained payload of rows written before schema version 7
/// (newer rows have the `final_decision` column; old rows are read, never rewritten).
const FINAL_DECISION_KEY: &str = "final_decision";
/// The key that marks a signature box drawn by hand, in a decision's chained payload.
const HAND_DRAWN_KEY: &str = "hand_drawn_box";

/// The final decision recorded in an older row's payload, if any.
fn payload_final(payload: Option<&str>) -> Option<Decision> {
    let v: serde_json::Value = serde_json::from_str(payload?).ok()?;
    parse_decision(v.get(FINAL_DECISION_KEY)?.as_str()?)
}

/// The keys of what the operator said the questioned image is and what it was taken as, in a
/// decision's chained payload (see [`ImageKind`]).
const KIND_CHOSEN_KEY: &str = "kind_chosen";
const KIND_RESOLVED_KEY: &str = "kind_resolved";

/// What the operator said the questioned image is (`auto`, `cheque` or `signature`: the Verify
/// screen's choice, `verify --kind`, a manifest's `kind` column) and what it was taken as (`cheque`
/// or `signature`), as [`crate::verify::InputKind`] names them. Chained with the decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageKind {
    pub chosen: String,
    pub resolved: String,
}

impl ImageKind {
    pub fn new(chosen: &str, resolved: &str) -> Self {
        ImageKind {
            chosen: chosen.into(),
            resolved: resolved.into(),
        }
    }

    fn validate(&self) -> Result<(), StoreError> {
        let ok = ["auto", "cheque", "signature"].contains(&self.chosen.as_str())
            && ["cheque", "signature"].contains(&self.resolved.as_str())
            && (self.chosen == "auto" || self.chosen == self.resolved);
        if ok {
            Ok(())
        } else {
            Err(StoreError::Invalid(format!(
                "the image kind chosen {:?} and taken as {:?} is not one of auto, cheque, signature \
                 taken as cheque or signature (a chosen kind is taken as itself)",
                self.chosen, self.resolved
            )))
        }
    }
}

fn payload_image_kind(payload: Option<&str>) -> Option<ImageKind> {
    let v: serde_json::Value = serde_json::from_str(payload?).ok()?;
    Some(ImageKind::new(
        v.get(KIND_CHOSEN_KEY)?.as_str()?,
        v.get(KIND_RESOLVED_KEY)?.as_str()?,
    ))
}

fn payload_hand_drawn(payload: Option<&str>) -> bool {
    payload
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .and_then(|v| v.get(HAND_DRAWN_KEY)?.as_bool())
        .unwrap_or(false)
}

/// SQL (on alias `d`) for the id of the latest action row on a decision.
const LATEST_ACTION_SQL: &str =
    "(SELECT max(x.id) FROM ledger x WHERE x.kind = 'action' AND x.ref_id = d.id)";

/// SQL (on alias `d`) for the action in force on a decision: the latest later action, else its own.
fn effective_action_sql() -> String {
    format!(
        "COALESCE((SELECT y.final_action FROM ledger y WHERE y.id = {LATEST_ACTION_SQL}), d.final_action)"
    )
}

/// SQL (on alias `d`) for a decision's final decision: the latest action's, else the override on
/// the row itself (the `final_decision` column; rows from before schema version 7 in the payload,
/// the oldest GUI rows in the reason), else the model's.
fn final_decision_sql() -> String {
    format!(
        "COALESCE((SELECT COALESCE(y.final_decision, json_extract(y.payload, '$.{FINAL_DECISION_KEY}')) \
         FROM ledger y WHERE y.id = {LATEST_ACTION_SQL}), d.final_decision, \
         json_extract(d.payload, '$.{FINAL_DECISION_KEY}'), \
         CASE WHEN d.final_action = 'override' THEN CASE \
         WHEN d.reason LIKE 'Changed to ACCEPT:%' THEN 'ACCEPT' \
         WHEN d.reason LIKE 'Changed to REFER:%' THEN 'REFER' \
         WHEN d.reason LIKE 'Changed to REJECT:%' THEN 'REJECT' END END, d.decision)"
    )
}

fn parse_decision(s: &str) -> Option<Decision> {
    match s {
        "ACCEPT" => Some(Decision::Accept),
        "REFER" => Some(Decision::Refer),
        "REJECT" => Some(Decision::Reject),
        _ => None,
    }
}

/// One verification: the one record of a decision. [`Store::insert_decisions`] takes it, every read
/// gives it back inside a [`DecisionRow`] (what was recorded, field for field), and the export file,
/// the batch results file and the GUI's lists are views of it.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRecord {
    /// When the decision was made (stored as UTC RFC 3339 with milliseconds, so a row read back
    /// carries the time to the millisecond).
    pub time: OffsetDateTime,
    /// Must be the name of the operator passed to [`Store::insert_decisions`].
    pub operator: String,
    pub account: Option<String>,
    pub cheque_id: Option<String>,
    pub amount_cents: Option<i64>,
    /// SHA-256 (lowercase hex) of the cheque image bytes.
    pub cheque_sha256: String,
    /// SHA-256 of each reference image compared.
    pub reference_sha256s: Vec<String>,
    pub crop: Option<CropBox>,
    /// The network's similarity; `None` when no signature was scored (none found on the cheque).
    pub raw_score: Option<f64>,
    /// The calibrated probability of a genuine signature; `None` when no calibration was in force or
    /// nothing was scored. Never a stand-in 0: an auditor must not read "0 %" into a REFER.
    pub probability: Option<f64>,
    pub t_accept: f64,
    pub t_reject: f64,
    pub decision: Decision,
    pub final_action: FinalAction,
    /// Mandatory for an override.
    pub reason: Option<String>,
    /// The decision the operator chose in an override recorded with the decision itself (required
    /// then, and checked by [`override_rule`]); `None` otherwise. The decision in force after later
    /// actions is [`DecisionRow::final_decision`].
    pub final_decision: Option<Decision>,
    /// The operator drew or moved the signature box by hand instead of using the one found.
    pub hand_drawn_box: bool,
    /// What the operator said the questioned image is and what it was taken as; `None` where the
    /// caller did not say (rows from before it was recorded, synthetic rows).
    pub image_kind: Option<ImageKind>,
    pub model_id: String,
    pub device: String,
    pub latency_ms: f64,
    pub source: Source,
    /// The questioned signature as the network saw it, as a PNG (ink dark), kept beside the row for
    /// auditors; its SHA-256 goes into the chained row. `None` when no signature was scored, and in
    /// a row read back (the image is read on its own: [`Store::decision_signature`]).
    pub signature_png: Option<Vec<u8>>,
}

/// Largest logged signature image: a normalised signature is a few kilobytes.
pub const MAX_SIGNATURE_PNG: usize = 256 * 1024;

impl Default for DecisionRecord {
    fn default() -> Self {
        DecisionRecord {
            time: OffsetDateTime::now_utc(),
            operator: String::new(),
            account: None,
            cheque_id: None,
            amount_cents: None,
            cheque_sha256: String::new(),
            reference_sha256s: Vec::new(),
            crop: None,
            raw_score: None,
            probability: None,
            t_accept: 0.5,
            t_reject: 0.5,
            decision: Decision::Refer,
            final_action: FinalAction::Pending,
            reason: None,
            final_decision: None,
            hand_drawn_box: false,
            image_kind: None,
            model_id: String::new(),
            device: String::new(),
            latency_ms: 0.0,
            source: Source::Cli,
            signature_png: None,
        }
    }
}

/// The key of the logged signature's SHA-256 in a decision row's chained payload.
const SIGNATURE_SHA_KEY: &str = "signature_png_sha256";

/// Keeps each decision's signature image beside its row, in the row's transaction.
fn store_signatures(
    tx: &rusqlite::Transaction<'_>,
    rows: &[(i64, &DecisionRecord)],
) -> rusqlite::Result<()> {
    let mut stmt =
        tx.prepare_cached("INSERT INTO decision_signatures (decision_id, png) VALUES (?1, ?2)")?;
    for (id, d) in rows {
        if let Some(png) = &d.signature_png {
            stmt.execute(params![id, png])?;
        }
    }
    Ok(())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn bounded_text(what: &str, s: &str, max: usize) -> Result<(), StoreError> {
    if s.len() > max || s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(StoreError::Invalid(format!(
            "{what} must be at most {max} bytes of printable text"
        )));
    }
    Ok(())
}

impl DecisionRecord {
    fn validate(&self, op: &Operator) -> Result<(), StoreError> {
        let bad = |m: String| Err(StoreError::Invalid(m));
        if self.operator != op.name() {
            return bad(format!(
                "the decision names operator {:?} but was recorded by {:?}",
                self.operator,
                op.name()
            ));
        }
        for (what, v) in [
            ("raw_score", self.raw_score),
            ("probability", self.probability),
            ("t_accept", Some(self.t_accept)),
            ("t_reject", Some(self.t_reject)),
            ("latency_ms", Some(self.latency_ms)),
        ] {
            if let Some(v) = v
                && !v.is_finite()
            {
                return bad(format!("{what} must be a finite number, got {v}"));
            }
        }
        for (what, v) in [
            ("probability", self.probability),
            ("t_accept", Some(self.t_accept)),
            ("t_reject", Some(self.t_reject)),
        ] {
            if let Some(v) = v
                && !(0.0..=1.0).contains(&v)
            {
                return bad(format!("{what} must be between 0 and 1, got {v}"));
            }
        }
        if self.probability.is_some() && self.raw_score.is_none() {
            return bad("a probability needs the score it was computed from".into());
        }
        if self.t_reject > self.t_accept {
            return bad(format!(
                "t_reject {} is above t_accept {}",
                self.t_reject, self.t_accept
            ));
        }
        if !is_sha256_hex(&self.cheque_sha256) {
            return bad("cheque_sha256 must be 64 lowercase hex digits".into());
        }
        if let Some(r) = self.reference_sha256s.iter().find(|r| !is_sha256_hex(r)) {
            return bad(format!(
                "reference SHA-256 {r:?} is not 64 lowercase hex digits"
            ));
        }
        if self.reference_sha256s.len() > 64 {
            return bad("at most 64 reference images per decision".into());
        }
        if let Some(k) = &self.image_kind {
            k.validate()?;
        }
        if let Some(a) = &self.account {
            bounded_text("account", a, 64)?;
        }
        if let Some(c) = &self.cheque_id {
            bounded_text("cheque_id", c, 128)?;
        }
        if let Some(r) = &self.reason {
            bounded_text("reason", r, 2000)?;
        }
        bounded_text("model_id", &self.model_id, 200)?;
        bounded_text("device", &self.device, 64)?;
        if let Some(png) = &self.signature_png
            && (png.len() > MAX_SIGNATURE_PNG || !png.starts_with(b"\x89PNG\r\n\x1a\n"))
        {
            return bad(format!(
                "the logged signature must be a PNG of at most {MAX_SIGNATURE_PNG} bytes"
            ));
        }
        if self.final_action == FinalAction::Override
            && self.reason.as_deref().is_none_or(|r| r.trim().is_empty())
        {
            return bad("an override needs a reason".into());
        }
        match (self.final_action, self.final_decision) {
            (FinalAction::Override, None) => {
                return bad("an override names the decision it changes to".into());
            }
            (FinalAction::Override, Some(_)) => {}
            (FinalAction::Resolve, _) => {
                return bad("a referral is resolved on a recorded decision, not with it".into());
            }
            (_, Some(d)) if d != self.decision => {
                return bad("only an override changes the decision".into());
            }
            _ => {}
        }
        Ok(())
    }

    fn entry(&self) -> Entry {
        Entry {
            kind: "decision",
            time: format_time(self.time),
            operator: self.operator.clone(),
            account: self.account.clone(),
            cheque_id: self.cheque_id.clone(),
            amount_cents: self.amount_cents,
            cheque_sha256: Some(self.cheque_sha256.clone()),
            reference_sha256s: Some(
                serde_json::Value::from(self.reference_sha256s.clone()).to_string(),
            ),
            crop: match self.crop {
                Some(c) => [
                    Some(c.x.into()),
                    Some(c.y.into()),
                    Some(c.w.into()),
                    Some(c.h.into()),
                ],
                None => [None; 4],
            },
            raw_score: self.raw_score,
            probability: self.probability,
            t_accept: Some(self.t_accept),
            t_reject: Some(self.t_reject),
            decision: Some(self.decision.as_str().to_string()),
            final_action: Some(self.final_action.as_str().to_string()),
            reason: self.reason.clone(),
            model_id: Some(self.model_id.clone()),
            device: Some(self.device.clone()),
            latency_ms: Some(self.latency_ms),
            source: Some(self.source.as_str().to_string()),
            ref_id: None,
            payload: self.payload(),
            final_decision: self
                .final_decision
                .filter(|_| self.final_action == FinalAction::Override)
                .map(|d| d.as_str().to_string()),
        }
    }

    /// The chained payload: the logged signature's SHA-256 and the hand-drawn flag, each only when
    /// there is one (a row without them keeps no payload).
    fn payload(&self) -> Option<String> {
        let mut m = serde_json::Map::new();
        if let Some(png) = self.signature_png.as_deref() {
            m.insert(SIGNATURE_SHA_KEY.into(), sha256_hex(png).into());
        }
        if self.hand_drawn_box {
            m.insert(HAND_DRAWN_KEY.into(), true.into());
        }
        if let Some(k) = &self.image_kind {
            m.insert(KIND_CHOSEN_KEY.into(), k.chosen.clone().into());
            m.insert(KIND_RESOLVED_KEY.into(), k.resolved.clone().into());
        }
        (!m.is_empty()).then(|| serde_json::Value::Object(m).to_string())
    }
}

/// What [`Store::insert_once`] did with one decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded as this row.
    New(i64),
    /// Not recorded: this cheque id was decided before (row `earlier`) for the same image.
    Repeat { earlier: i64 },
    /// Not recorded: this cheque id was decided before (row `earlier`; `None` when earlier in the same
    /// call) for a different image, whose SHA-256 is `earlier_sha256`.
    Conflict {
        earlier: Option<i64>,
        earlier_sha256: String,
    },
}

/// One recorded decision: its ledger row, the record as it was made, and the latest clerk action on
/// it (if any was recorded later).
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRow {
    pub id: i64,
    /// The row's hash in the chain.
    pub hash: String,
    /// What was recorded, as it was recorded.
    pub record: DecisionRecord,
    /// The latest later action row (confirm / override / resolve) on this decision.
    pub action: Option<ActionRow>,
    /// The decision in force: the latest action's, else the override recorded with the row, else
    /// the model's.
    pub final_decision: Decision,
}

impl DecisionRow {
    /// The action in force: the latest later action, else the one recorded with the decision.
    pub fn effective_action(&self) -> FinalAction {
        self.action
            .as_ref()
            .map_or(self.record.final_action, |a| a.action)
    }

    /// The reason that goes with the action in force (the later action's, else the decision's).
    pub fn effective_reason(&self) -> Option<&str> {
        match &self.action {
            Some(a) => a.reason.as_deref(),
            None => self.record.reason.as_deref(),
        }
    }

    /// Whether the cheque waits in the referral queue: its decision in force is REFER and the
    /// result was not abandoned.
    pub fn in_referral(&self) -> bool {
        self.final_decision == Decision::Refer && self.effective_action() != FinalAction::Abandoned
    }
}

/// A clerk's or supervisor's later action on a decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActionRow {
    pub id: i64,
    pub time: String,
    pub operator: String,
    pub action: FinalAction,
    pub reason: Option<String>,
    /// The decision this action left in force (an override's or resolution's choice).
    pub final_decision: Option<Decision>,
}

/// Which decisions to list, count or export. All fields combine with AND.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecisionFilter {
    /// From this time, inclusive.
    pub from: Option<OffsetDateTime>,
    /// Up to this time, exclusive.
    pub to: Option<OffsetDateTime>,
    pub decision: Option<Decision>,
    pub operator: Option<String>,
    pub account: Option<String>,
    pub cheque_id: Option<String>,
    /// The decision in force (after overrides and resolutions), not the model's.
    pub final_decision: Option<Decision>,
    /// The action in force (e.g. only overrides, or abandoned results).
    pub action: Option<FinalAction>,
    /// Only cheques waiting in the referral queue.
    pub open_referrals: bool,
    /// Only decisions whose signature box was drawn by hand.
    pub hand_drawn: bool,
}

impl DecisionFilter {
    /// The WHERE clause (on alias `d`) and its parameters.
    pub(crate) fn sql(&self) -> (String, Vec<Value>) {
        let mut clause = String::from("d.kind = 'decision'");
        let mut p = Vec::new();
        if let Some(f) = self.from {
            clause.push_str(" AND d.time >= ?");
            p.push(Value::Text(format_time(f)));
        }
        if let Some(t) = self.to {
            clause.push_str(" AND d.time < ?");
            p.push(Value::Text(format_time(t)));
        }
        if let Some(dec) = self.decision {
            clause.push_str(" AND d.decision = ?");
            p.push(Value::Text(dec.as_str().into()));
        }
        if let Some(o) = &self.operator {
            clause.push_str(" AND d.operator = ?");
            p.push(Value::Text(o.clone()));
        }
        if let Some(a) = &self.account {
            clause.push_str(" AND d.account = ?");
            p.push(Value::Text(a.clone()));
        }
        if let Some(c) = &self.cheque_id {
            clause.push_str(" AND d.cheque_id = ?");
            p.push(Value::Text(c.clone()));
        }
        if let Some(f) = self.final_decision {
            clause.push_str(&format!(" AND {} = ?", final_decision_sql()));
            p.push(Value::Text(f.as_str().into()));
        }
        if let Some(a) = self.action {
            clause.push_str(&format!(" AND {} = ?", effective_action_sql()));
            p.push(Value::Text(a.as_str().into()));
        }
        if self.open_referrals {
            clause.push_str(&format!(
                " AND {} = 'REFER' AND {} <> 'abandoned'",
                final_decision_sql(),
                effective_action_sql()
            ));
        }
        if self.hand_drawn {
            clause.push_str(&format!(
                " AND json_extract(d.payload, '$.{HAND_DRAWN_KEY}') = 1"
            ));
        }
        (clause, p)
    }
}

/// Columns read for a [`DecisionRow`], on alias `d` (decision) and `a` (latest action).
pub(crate) const ROW_COLUMNS: &str = "d.id, d.time, d.operator, d.account, d.cheque_id, d.amount_cents, \
    d.cheque_sha256, d.reference_sha256s, d.crop_x, d.crop_y, d.crop_w, d.crop_h, d.raw_score, d.probability, \
    d.t_accept, d.t_reject, d.decision, d.final_action, d.reason, d.model_id, d.device, d.latency_ms, d.source, \
    d.hash, a.id, a.time, a.operator, a.final_action, a.reason, d.payload, a.payload, d.final_decision, \
    a.final_decision";

/// The join that finds the latest action on each decision.
pub(crate) const ACTION_JOIN: &str = "LEFT JOIN ledger a ON a.id = \
    (SELECT max(x.id) FROM ledger x WHERE x.kind = 'action' AND x.ref_id = d.id)";

pub(crate) fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DecisionRow> {
    let conv = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("bad {what}").into(),
        )
    };
    let refs: Option<String> = r.get(7)?;
    let reference_sha256s = match refs {
        Some(s) => serde_json::from_str(&s).map_err(|_| conv(7, "reference list"))?,
        None => Vec::new(),
    };
    let crop = match (
        r.get::<_, Option<u32>>(8)?,
        r.get(9)?,
        r.get(10)?,
        r.get(11)?,
    ) {
        (Some(x), Some(y), Some(w), Some(h)) => Some(CropBox { x, y, w, h }),
        _ => None,
    };
    let decision: String = r.get(16)?;
    let final_action: String = r.get(17)?;
    let d_payload: Option<String> = r.get(29)?;
    let action = match r.get::<_, Option<i64>>(24)? {
        None => None,
        Some(id) => {
            let act: String = r.get(27)?;
            let a_payload: Option<String> = r.get(30)?;
            Some(ActionRow {
                id,
                time: r.get(25)?,
                operator: r.get(26)?,
                action: FinalAction::parse(&act).ok_or_else(|| conv(27, "action"))?,
                reason: r.get(28)?,
                final_decision: match r.get::<_, Option<String>>(32)? {
                    Some(d) => Some(parse_decision(&d).ok_or_else(|| conv(32, "decision"))?),
                    None => payload_final(a_payload.as_deref()),
                },
            })
        }
    };
    let decision = parse_decision(&decision).ok_or_else(|| conv(16, "decision"))?;
    let final_action = FinalAction::parse(&final_action).ok_or_else(|| conv(17, "final action"))?;
    let reason: Option<String> = r.get(18)?;
    let own_column = match r.get::<_, Option<String>>(31)? {
        Some(d) => Some(parse_decision(&d).ok_or_else(|| conv(31, "decision"))?),
        None => None,
    };
    // The override recorded with the decision itself: its own column, or where rows from before
    // that column keep it (the chained payload, then the reason text of the oldest rows).
    let recorded_override = (final_action == FinalAction::Override)
        .then(|| {
            own_column
                .or_else(|| payload_final(d_payload.as_deref()))
                .or_else(|| legacy_override_target(reason.as_deref()))
        })
        .flatten();
    let final_decision = action
        .as_ref()
        .and_then(|a| a.final_decision)
        .or(recorded_override)
        .unwrap_or(decision);
    let time: String = r.get(1)?;
    let source: Option<String> = r.get(22)?;
    Ok(DecisionRow {
        id: r.get(0)?,
        hash: r.get(23)?,
        record: DecisionRecord {
            time: super::parse_time(&time).map_err(|_| conv(1, "time"))?,
            operator: r.get(2)?,
            account: r.get(3)?,
            cheque_id: r.get(4)?,
            amount_cents: r.get(5)?,
            cheque_sha256: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
            reference_sha256s,
            crop,
            raw_score: r.get(12)?,
            probability: r.get(13)?,
            t_accept: r.get(14)?,
            t_reject: r.get(15)?,
            decision,
            final_action,
            reason,
            final_decision: recorded_override,
            hand_drawn_box: payload_hand_drawn(d_payload.as_deref()),
            image_kind: payload_image_kind(d_payload.as_deref()),
            model_id: r.get::<_, Option<String>>(19)?.unwrap_or_default(),
            device: r.get::<_, Option<String>>(20)?.unwrap_or_default(),
            latency_ms: r.get::<_, Option<f64>>(21)?.unwrap_or_default(),
            source: Source::parse(source.as_deref().unwrap_or_default())
                .ok_or_else(|| conv(22, "source"))?,
            signature_png: None,
        },
        action,
        final_decision,
    })
}

impl Store {
    /// Records decisions in one transaction (all or none); returns their row ids in order.
    /// Needs [`Permission::Verify`]; an override recorded directly needs the override permission
    /// for that decision (a REJECT override is supervisor-only).
    pub fn insert_decisions(
        &mut self,
        op: &Operator,
        decisions: &[DecisionRecord],
    ) -> Result<Vec<i64>, StoreError> {
        self.check_new_decisions(op, decisions)?;
        let entries: Vec<Entry> = decisions.iter().map(DecisionRecord::entry).collect();
        let m = self.mapper();
        let tx = self.write_tx()?;
        let ids = append(&tx, &entries).map_err(&m)?;
        let pairs: Vec<(i64, &DecisionRecord)> = ids.iter().copied().zip(decisions).collect();
        store_signatures(&tx, &pairs).map_err(&m)?;
        tx.commit().map_err(&m)?;
        Ok(ids)
    }

    /// Records, in one transaction, each decision whose cheque id no decision in the ledger has yet,
    /// and returns its row id; `None` marks a cheque that was already decided (by another run, say, or
    /// earlier in `decisions`), whatever its image. See [`Store::insert_once`] for the outcome that
    /// tells a repeat from a conflicting image.
    pub fn insert_undecided(
        &mut self,
        op: &Operator,
        decisions: &[DecisionRecord],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        Ok(self
            .insert_once(op, decisions)?
            .into_iter()
            .map(|r| match r {
                Recorded::New(id) => Some(id),
                Recorded::Repeat { .. } | Recorded::Conflict { .. } => None,
            })
            .collect())
    }

    /// Records, in one transaction, each decision whose cheque id no decision has yet. A cheque id is
    /// tied to the image it was first decided for: a decision for an id already decided is not
    /// recorded, and comes back as [`Recorded::Repeat`] when the image hash is the same (show the
    /// earlier decision) or [`Recorded::Conflict`] when it differs (an ERROR naming both hashes). The
    /// check and the append share the write lock, so two batches over the same manifest at once still
    /// decide each cheque exactly once. Decisions without a cheque id are always recorded.
    pub fn insert_once(
        &mut self,
        op: &Operator,
        decisions: &[DecisionRecord],
    ) -> Result<Vec<Recorded>, StoreError> {
        self.check_new_decisions(op, decisions)?;
        let m = self.mapper();
        let tx = self.write_tx()?;
        let mut fresh = Vec::with_capacity(decisions.len());
        // Per input: Ok(()) to record, Err(outcome) when not.
        let mut plan: Vec<Option<Recorded>> = Vec::with_capacity(decisions.len());
        {
            let mut taken = tx
                .prepare_cached(
                    "SELECT id, cheque_sha256 FROM ledger WHERE kind = 'decision' AND cheque_id = ?1 \
                     ORDER BY id LIMIT 1",
                )
                .map_err(&m)?;
            // Ids recorded earlier in this call: (position in `decisions`, image hash).
            let mut in_this_call: std::collections::HashMap<&str, (usize, &str)> =
                std::collections::HashMap::new();
            for (i, d) in decisions.iter().enumerate() {
                let outcome = match &d.cheque_id {
                    None => None,
                    Some(c) => {
                        let earlier: Option<(i64, Option<String>)> = taken
                            .query_row(params![c], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                            .map_err(&m)?;
                        match earlier {
                            Some((id, sha)) => {
                                let sha = sha.unwrap_or_default();
                                Some(if sha == d.cheque_sha256 {
                                    Recorded::Repeat { earlier: id }
                                } else {
                                    Recorded::Conflict {
                                        earlier: Some(id),
                                        earlier_sha256: sha,
                                    }
                                })
                            }
                            None => match in_this_call.get(c.as_str()) {
                                Some((_, sha)) if *sha == d.cheque_sha256 => {
                                    Some(Recorded::Repeat { earlier: 0 })
                                }
                                Some((_, sha)) => Some(Recorded::Conflict {
                                    earlier: None,
                                    earlier_sha256: (*sha).to_string(),
                                }),
                                None => {
                                    in_this_call.insert(c.as_str(), (i, d.cheque_sha256.as_str()));
                                    None
                                }
                            },
                        }
                    }
                };
                if outcome.is_none() {
                    fresh.push(d.entry());
                }
                plan.push(outcome);
            }
        }
        let appended = append(&tx, &fresh).map_err(&m)?;
        let kept_decisions = decisions
            .iter()
            .zip(&plan)
            .filter(|(_, p)| p.is_none())
            .map(|(d, _)| d);
        let pairs: Vec<(i64, &DecisionRecord)> =
            appended.iter().copied().zip(kept_decisions).collect();
        store_signatures(&tx, &pairs).map_err(&m)?;
        tx.commit().map_err(&m)?;
        // A repeat of a row recorded earlier in this call points at that row's new id.
        let mut ids = appended.into_iter();
        let mut new_ids: Vec<Option<i64>> = Vec::with_capacity(plan.len());
        let mut out = Vec::with_capacity(plan.len());
        for p in plan {
            match p {
                None => {
                    let id = ids.next().unwrap_or(0);
                    new_ids.push(Some(id));
                    out.push(Recorded::New(id));
                }
                Some(r) => {
                    new_ids.push(None);
                    out.push(r);
                }
            }
        }
        for (i, r) in out.iter_mut().enumerate() {
            if let Recorded::Repeat { earlier: 0 } = r
                && let Some(c) = decisions[i].cheque_id.as_deref()
                && let Some(j) = decisions
                    .iter()
                    .position(|d| d.cheque_id.as_deref() == Some(c))
                && let Some(Some(id)) = new_ids.get(j)
            {
                *r = Recorded::Repeat { earlier: *id };
            }
        }
        Ok(out)
    }

    /// Every decided cheque id with the row that decided it and the SHA-256 of its image (for
    /// resuming a batch: a repeat is shown, a different image under a decided id is an ERROR).
    pub fn decided_cheques(
        &self,
    ) -> Result<std::collections::HashMap<String, (i64, String)>, StoreError> {
        let m = self.mapper();
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT cheque_id, min(id), cheque_sha256 FROM ledger WHERE kind = 'decision' \
                 AND cheque_id IS NOT NULL GROUP BY cheque_id",
            )
            .map_err(&m)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    ),
                ))
            })
            .map_err(&m)?;
        rows.collect::<Result<_, _>>().map_err(&m)
    }

    /// What every insert checks first: the operator may verify (and override, when a row does), and
    /// every row is well formed.
    fn check_new_decisions(
        &mut self,
        op: &Operator,
        decisions: &[DecisionRecord],
    ) -> Result<(), StoreError> {
        self.require(op, Permission::Verify)?;
        for d in decisions {
            d.validate(op)?;
            if d.final_action == FinalAction::Override {
                let p = if d.decision == Decision::Reject {
                    Permission::OverrideReject
                } else {
                    Permission::Override
                };
                self.require(op, p)?;
                if let Some(to) = d.final_decision {
                    override_rule(op.role(), d.decision, to)?;
                }
            }
        }
        Ok(())
    }

    /// Records one decision; returns its row id.
    pub fn insert_decision(
        &mut self,
        op: &Operator,
        decision: &DecisionRecord,
    ) -> Result<i64, StoreError> {
        Ok(self
            .insert_decisions(op, std::slice::from_ref(decision))?
            .first()
            .copied()
            .unwrap_or(0))
    }

    /// Records a clerk's confirm of an earlier decision as a new chained row (rows are never
    /// updated). Confirming a REFER confirms it as referred: it stays in the referral queue. An
    /// override names its new decision: use [`Store::override_decision`]; a referral is resolved by
    /// [`Store::resolve_referral`].
    pub fn record_action(
        &mut self,
        op: &Operator,
        decision_id: i64,
        action: FinalAction,
        reason: Option<&str>,
    ) -> Result<i64, StoreError> {
        match action {
            FinalAction::Confirm => {}
            FinalAction::Override => {
                return Err(StoreError::Invalid(
                    "an override names the decision it changes to (countersign settings override --to)"
                        .into(),
                ));
            }
            FinalAction::Resolve => {
                return Err(StoreError::Invalid(
                    "a referral is resolved with a decision (countersign referrals resolve)".into(),
                ));
            }
            FinalAction::Pending | FinalAction::Abandoned => {
                return Err(StoreError::Invalid(format!(
                    "{} is not an action on a recorded decision",
                    action.as_str()
                )));
            }
        }
        let row = self.decision_for_action(decision_id)?;
        self.require(op, Permission::Confirm)?;
        self.append_action(op, &row, action, reason, None)
    }

    /// Records an override of an earlier decision to `to`, with a reason, under the one rule of
    /// [`override_rule`] (a clerk only makes a decision stricter; REFER goes to a supervisor).
    pub fn override_decision(
        &mut self,
        op: &Operator,
        decision_id: i64,
        to: Decision,
        reason: &str,
    ) -> Result<i64, StoreError> {
        let row = self.decision_for_action(decision_id)?;
        let needed = if row.final_decision == Decision::Reject {
            Permission::OverrideReject
        } else {
            Permission::Override
        };
        self.require(op, needed)?;
        override_rule(op.role(), row.final_decision, to)?;
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid("an override needs a reason".into()));
        }
        self.append_action(op, &row, FinalAction::Override, Some(reason), Some(to))
    }

    /// A supervisor resolves a cheque in the referral queue to ACCEPT or REJECT, with a reason. The
    /// resolution is a chained action row; the cheque leaves the queue.
    pub fn resolve_referral(
        &mut self,
        op: &Operator,
        decision_id: i64,
        to: Decision,
        reason: &str,
    ) -> Result<i64, StoreError> {
        let row = self.decision_for_action(decision_id)?;
        self.require(op, Permission::ResolveReferral)?;
        if !row.in_referral() {
            return Err(StoreError::Invalid(format!(
                "decision {decision_id} is not waiting in the referral queue (its decision in force is {}, action {})",
                row.final_decision.as_str(),
                row.effective_action().as_str()
            )));
        }
        if to == Decision::Refer {
            return Err(StoreError::Invalid(
                "a referral is resolved to ACCEPT or REJECT".into(),
            ));
        }
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid(
                "resolving a referral needs a reason".into(),
            ));
        }
        self.append_action(op, &row, FinalAction::Resolve, Some(reason), Some(to))
    }

    /// The cheques waiting in the referral queue, oldest first (at most `limit`).
    pub fn referral_queue(&self, limit: u64) -> Result<Vec<DecisionRow>, StoreError> {
        let filter = DecisionFilter {
            open_referrals: true,
            ..Default::default()
        };
        let total = self.count_decisions(&filter)?;
        let start = total.saturating_sub(limit);
        let mut rows = self.query_decisions(&filter, start, limit)?;
        rows.reverse();
        Ok(rows)
    }

    fn decision_for_action(&self, decision_id: i64) -> Result<DecisionRow, StoreError> {
        let row = self.decision(decision_id)?.ok_or(StoreError::NotFound {
            what: "decision",
            id: decision_id.to_string(),
        })?;
        if row.effective_action() == FinalAction::Abandoned {
            return Err(StoreError::Invalid(format!(
                "decision {decision_id} was abandoned (shown, then left undecided); verify the cheque again"
            )));
        }
        Ok(row)
    }

    fn append_action(
        &mut self,
        op: &Operator,
        row: &DecisionRow,
        action: FinalAction,
        reason: Option<&str>,
        to: Option<Decision>,
    ) -> Result<i64, StoreError> {
        if let Some(r) = reason {
            bounded_text("reason", r, 2000)?;
        }
        let entry = Entry {
            kind: "action",
            time: super::now_utc(),
            operator: op.name().to_string(),
            account: row.record.account.clone(),
            cheque_id: row.record.cheque_id.clone(),
            decision: Some(row.record.decision.as_str().to_string()),
            final_action: Some(action.as_str().to_string()),
            reason: reason.map(str::to_string),
            ref_id: Some(row.id),
            final_decision: to.map(|d| d.as_str().to_string()),
            ..Default::default()
        };
        self.append_event(entry)
    }

    /// One decision by row id.
    pub fn decision(&self, id: i64) -> Result<Option<DecisionRow>, StoreError> {
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM ledger d {ACTION_JOIN} WHERE d.id = ?1 AND d.kind = 'decision'"
        );
        self.conn()
            .query_row(&sql, params![id], read_row)
            .optional()
            .map_err(|e| self.map(e))
    }

    /// Whether a decision for this cheque id is already recorded (for resuming a batch).
    pub fn has_decision(&self, cheque_id: &str) -> Result<bool, StoreError> {
        self.conn()
            .query_row(
                "SELECT 1 FROM ledger WHERE kind = 'decision' AND cheque_id = ?1 LIMIT 1",
                params![cheque_id],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.map(e))
    }

    /// Every cheque id that has a decision (for resuming a batch).
    pub fn decided_cheque_ids(&self) -> Result<HashSet<String>, StoreError> {
        let m = self.mapper();
        let mut stmt = self
            .conn()
            .prepare("SELECT DISTINCT cheque_id FROM ledger WHERE kind = 'decision' AND cheque_id IS NOT NULL")
            .map_err(&m)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(&m)?;
        rows.collect::<Result<HashSet<_>, _>>().map_err(&m)
    }

    /// The signature image logged with a decision, checked against the SHA-256 in its chained row.
    /// `None` when none was logged (no signature found, or a decision from before version 4).
    pub fn decision_signature(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let m = self.mapper();
        let found: Option<(Vec<u8>, Option<String>)> = self
            .conn()
            .query_row(
                "SELECT s.png, d.payload FROM decision_signatures s JOIN ledger d ON d.id = s.decision_id \
                 WHERE s.decision_id = ?1 AND d.kind = 'decision'",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(&m)?;
        let Some((png, payload)) = found else {
            return Ok(None);
        };
        let chained = payload
            .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
            .and_then(|v| v.get(SIGNATURE_SHA_KEY)?.as_str().map(str::to_string));
        if chained.as_deref() != Some(sha256_hex(&png).as_str()) {
            return Err(StoreError::SignatureTampered { decision: id });
        }
        Ok(Some(png))
    }

    /// Every decision whose logged signature image does not match the SHA-256 in its chained row, or
    /// whose chained row names an image that is missing. For `audit verify`.
    pub fn signature_problems(&self) -> Result<Vec<String>, StoreError> {
        let m = self.mapper();
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT d.id, d.payload, s.png, s.decision_id FROM ledger d \
                 LEFT JOIN decision_signatures s ON s.decision_id = d.id \
                 WHERE d.kind = 'decision' AND (s.decision_id IS NOT NULL OR d.payload LIKE '%signature_png_sha256%')",
            )
            .map_err(&m)?;
        let mut rows = stmt.query([]).map_err(&m)?;
        let mut problems = Vec::new();
        while let Some(r) = rows.next().map_err(&m)? {
            let id: i64 = r.get(0).map_err(&m)?;
            let payload: Option<String> = r.get(1).map_err(&m)?;
            let png: Option<Vec<u8>> = r.get(2).map_err(&m)?;
            let chained = payload
                .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
                .and_then(|v| v.get(SIGNATURE_SHA_KEY)?.as_str().map(str::to_string));
            match (png, chained) {
                (Some(png), Some(sha)) if sha256_hex(&png) == sha => {}
                (Some(_), _) => problems.push(format!(
                    "the signature image logged with decision {id} does not match the SHA-256 in its chained row: \
                     it was replaced outside Countersign"
                )),
                (None, Some(_)) => problems.push(format!(
                    "the signature image logged with decision {id} is missing: it was deleted outside Countersign"
                )),
                (None, None) => {}
            }
        }
        // A signature row whose decision is not in the ledger.
        let orphans: i64 = self
            .conn()
            .query_row(
                "SELECT count(*) FROM decision_signatures s WHERE NOT EXISTS \
                 (SELECT 1 FROM ledger d WHERE d.id = s.decision_id AND d.kind = 'decision')",
                [],
                |r| r.get(0),
            )
            .map_err(&m)?;
        if orphans > 0 {
            problems.push(format!(
                "{orphans} logged signature image(s) belong to no decision: inserted outside Countersign"
            ));
        }
        Ok(problems)
    }

    /// How many decisions match the filter.
    pub fn count_decisions(&self, filter: &DecisionFilter) -> Result<u64, StoreError> {
        let (clause, p) = filter.sql();
        let sql = format!("SELECT count(*) FROM ledger d WHERE {clause}");
        self.conn()
            .query_row(&sql, params_from_iter(p), |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.map(e))
    }

    /// One page of matching decisions, newest first (by time, then row id). The page start is found
    /// on the index alone, then only `limit` rows are read, so deep pages stay fast.
    pub fn query_decisions(
        &self,
        filter: &DecisionFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<DecisionRow>, StoreError> {
        let m = self.mapper();
        let (clause, p) = filter.sql();
        let start_sql = format!(
            "SELECT d.time, d.id FROM ledger d WHERE {clause} ORDER BY d.time DESC, d.id DESC LIMIT 1 OFFSET ?"
        );
        let mut start_p = p.clone();
        start_p.push(Value::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
        let start: Option<(String, i64)> = self
            .conn()
            .prepare_cached(&start_sql)
            .and_then(|mut s| {
                s.query_row(params_from_iter(start_p), |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(&m)?;
        let Some((t0, id0)) = start else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM ledger d {ACTION_JOIN} WHERE {clause} AND (d.time < ? OR (d.time = ? AND d.id <= ?)) \
             ORDER BY d.time DESC, d.id DESC LIMIT ?"
        );
        let mut q = p;
        q.push(Value::Text(t0.clone()));
        q.push(Value::Text(t0));
        q.push(Value::Integer(id0));
        q.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let mut stmt = self.conn().prepare_cached(&sql).map_err(&m)?;
        let rows = stmt.query_map(params_from_iter(q), read_row).map_err(&m)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(&m)
    }
}
