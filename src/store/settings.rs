//! Settings history: thresholds, calibration, amount rule, per-account overrides, active model.
//!
//! Each change is a chained ledger row of kind `settings` whose payload holds the whole settings
//! before and after (so any version can be shown without replaying), with who, when and why.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::chain::Entry;
use super::{Operator, Permission, Store, StoreError};
use crate::scoring::{Calibration, DecisionPolicy, Thresholds};

/// A stricter accept threshold for cheques above an amount.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AmountRule {
    /// Applies when the amount is strictly above this, in cents.
    pub above_cents: i64,
    /// The accept threshold for such cheques (used when stricter than the normal one).
    pub t_accept: f64,
}

/// What approved settings changes put in force over the model card ([`Store::approved_overrides`]);
/// `None` where no change of that kind was ever approved.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ApprovedOverrides {
    pub thresholds: Option<Thresholds>,
    pub calibration: Option<Calibration>,
}

/// The decision settings in force.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub thresholds: Thresholds,
    pub calibration: Calibration,
    #[serde(default)]
    pub amount_rule: Option<AmountRule>,
    #[serde(default)]
    pub account_overrides: BTreeMap<String, Thresholds>,
    #[serde(default)]
    pub model_id: Option<String>,
    #[serde(default)]
    pub model_path: Option<String>,
    /// Which part of an X9 item's on-us field is the account number: a regular expression (see
    /// [`crate::x9::AccountRule`]); `None` = the default rule. Not written while unset, so settings
    /// rows from before X9 support hash the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x9_account_rule: Option<String>,
    /// The ledger row of the last change; 0 when nothing was ever set (the defaults below are then
    /// in force, and callers should prefer the model card's calibration and thresholds).
    #[serde(skip)]
    pub version: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            thresholds: Thresholds {
                accept: 0.8,
                reject: 0.3,
            },
            calibration: Calibration { a: 1.0, b: 0.0 },
            amount_rule: None,
            account_overrides: BTreeMap::new(),
            model_id: None,
            model_path: None,
            x9_account_rule: None,
            version: 0,
        }
    }
}

impl AmountRule {
    /// The rule as the decision step applies it. The two types differ only in field names: this one
    /// is serialised into the hash chain and keeps its names.
    pub fn to_scoring(self) -> crate::scoring::AmountRule {
        crate::scoring::AmountRule {
            above_cents: self.above_cents,
            accept: self.t_accept,
        }
    }
}

impl Settings {
    /// The decision policy these settings give (global thresholds, amount rule, per-account
    /// thresholds). Which thresholds apply to a cheque is decided in one place only:
    /// [`crate::scoring::DecisionPolicy::thresholds_for`].
    pub fn decision_policy(&self) -> Result<DecisionPolicy, crate::scoring::ScoringError> {
        let policy = DecisionPolicy {
            thresholds: self.thresholds,
            amount_rule: self.amount_rule.map(AmountRule::to_scoring),
            per_account: self.account_overrides.clone(),
        };
        policy.validate()?;
        Ok(policy)
    }
}

/// One change to the settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum SettingsChange {
    Thresholds(Thresholds),
    Calibration(Calibration),
    AmountRule {
        rule: Option<AmountRule>,
    },
    AccountOverride {
        account: String,
        thresholds: Option<Thresholds>,
    },
    Model {
        id: String,
        path: Option<String>,
    },
    /// The X9 account rule (`None` restores the default).
    X9AccountRule {
        pattern: Option<String>,
    },
}

/// A settings change that waits for a second supervisor (four eyes).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SettingsRequest {
    /// The request's ledger row.
    pub id: i64,
    pub time: String,
    /// The supervisor who asked.
    pub operator: String,
    pub reason: String,
    pub change: SettingsChange,
    /// The settings in force when it was asked for, and what the change would make of them.
    pub old: Settings,
    pub new: Settings,
}

impl SettingsRequest {
    /// What the change does, before -> after, in one line (the CLI and the GUI show the same words).
    pub fn describe_change(&self) -> String {
        let (o, n) = (&self.old, &self.new);
        match &self.change {
            SettingsChange::Thresholds(_) => format!(
                "Thresholds: ACCEPT {:.3} -> {:.3}, REJECT {:.3} -> {:.3}",
                o.thresholds.accept, n.thresholds.accept, o.thresholds.reject, n.thresholds.reject
            ),
            SettingsChange::Calibration(_) => format!(
                "Probability calibration: a {:.4} -> {:.4}, b {:.4} -> {:.4}",
                o.calibration.a, n.calibration.a, o.calibration.b, n.calibration.b
            ),
            SettingsChange::Model { id, .. } => format!(
                "Active model: {} -> {id}",
                o.model_id.as_deref().unwrap_or("(none set)")
            ),
            SettingsChange::AmountRule { rule } => match rule {
                Some(r) => format!(
                    "Amount rule: ACCEPT at {:.3} or more above {} cents",
                    r.t_accept, r.above_cents
                ),
                None => "Amount rule: removed".into(),
            },
            SettingsChange::AccountOverride {
                account,
                thresholds,
            } => match thresholds {
                Some(t) => format!(
                    "Thresholds of account {account}: ACCEPT {:.3}, REJECT {:.3}",
                    t.accept, t.reject
                ),
                None => format!("Thresholds of account {account}: back to the global ones"),
            },
            SettingsChange::X9AccountRule { pattern } => format!(
                "X9 account rule: {} -> {}",
                o.x9_account_rule
                    .as_deref()
                    .unwrap_or(crate::x9::AccountRule::DEFAULT),
                pattern
                    .as_deref()
                    .unwrap_or(crate::x9::AccountRule::DEFAULT)
            ),
        }
    }
}

fn parse_request(
    id: i64,
    time: String,
    operator: String,
    reason: Option<String>,
    payload: &str,
) -> Result<SettingsRequest, StoreError> {
    let bad = |e: serde_json::Error| {
        StoreError::Invalid(format!("settings request {id} is unreadable: {e}"))
    };
    let v: serde_json::Value = serde_json::from_str(payload).map_err(bad)?;
    Ok(SettingsRequest {
        id,
        time,
        operator,
        reason: reason.unwrap_or_default(),
        change: serde_json::from_value(v.get("change").cloned().unwrap_or_default())
            .map_err(bad)?,
        old: serde_json::from_value(v.get("old").cloned().unwrap_or_default()).map_err(bad)?,
        new: serde_json::from_value(v.get("new").cloned().unwrap_or_default()).map_err(bad)?,
    })
}

fn check_reason(reason: &str) -> Result<(), StoreError> {
    if reason.trim().is_empty() || reason.len() > 2000 {
        return Err(StoreError::Invalid(
            "a settings change needs a reason (at most 2000 bytes)".into(),
        ));
    }
    Ok(())
}

/// The settings in force, read inside a transaction (`Err(None)` wraps a SQLite error for the
/// caller's mapper, `Err(Some)` an unreadable row).
fn latest_settings(
    tx: &rusqlite::Transaction<'_>,
) -> Result<Settings, Result<StoreError, rusqlite::Error>> {
    let last: Option<String> = tx
        .query_row(
            "SELECT payload FROM ledger WHERE kind = 'settings' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(Err)?;
    match last {
        None => Ok(Settings::default()),
        Some(p) => serde_json::from_str::<serde_json::Value>(&p)
            .ok()
            .and_then(|v| serde_json::from_value(v.get("new")?.clone()).ok())
            .ok_or_else(|| {
                Ok(StoreError::Invalid(
                    "the last settings row is unreadable".into(),
                ))
            }),
    }
}

fn request_decided(tx: &rusqlite::Transaction<'_>, request_id: i64) -> rusqlite::Result<bool> {
    tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM ledger WHERE ref_id = ?1 AND kind IN ('settings', 'settings_declined'))",
        params![request_id],
        |r| r.get(0),
    )
}

/// One row of the settings history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SettingsHistoryEntry {
    pub id: i64,
    pub time: String,
    pub operator: String,
    pub reason: String,
    pub change: SettingsChange,
    pub old: Settings,
    pub new: Settings,
}

fn check_thresholds(t: &Thresholds) -> Result<(), StoreError> {
    let ok = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
    if !ok(t.accept) || !ok(t.reject) || t.reject > t.accept {
        return Err(StoreError::Invalid(format!(
            "thresholds must lie in [0, 1] with reject <= accept (got accept {}, reject {})",
            t.accept, t.reject
        )));
    }
    Ok(())
}

impl SettingsChange {
    fn permission(&self) -> Permission {
        match self {
            SettingsChange::Model { .. } => Permission::ChangeModel,
            _ => Permission::ChangeSettings,
        }
    }

    fn apply(&self, s: &Settings) -> Result<Settings, StoreError> {
        let mut n = s.clone();
        match self {
            SettingsChange::Thresholds(t) => {
                check_thresholds(t)?;
                n.thresholds = *t;
            }
            SettingsChange::Calibration(c) => {
                if !c.a.is_finite() || !c.b.is_finite() {
                    return Err(StoreError::Invalid(
                        "calibration a and b must be finite".into(),
                    ));
                }
                n.calibration = *c;
            }
            SettingsChange::AmountRule { rule } => {
                if let Some(r) = rule
                    && (r.above_cents < 0
                        || !r.t_accept.is_finite()
                        || !(0.0..=1.0).contains(&r.t_accept))
                {
                    return Err(StoreError::Invalid(
                        "an amount rule needs a non-negative amount and t_accept in [0, 1]".into(),
                    ));
                }
                n.amount_rule = *rule;
            }
            SettingsChange::AccountOverride {
                account,
                thresholds,
            } => {
                super::operators::check_name("an account id", account)?;
                match thresholds {
                    Some(t) => {
                        check_thresholds(t)?;
                        n.account_overrides.insert(account.clone(), *t);
                    }
                    None => {
                        n.account_overrides.remove(account);
                    }
                }
            }
            SettingsChange::Model { id, path } => {
                if id.trim().is_empty() || id.len() > 200 {
                    return Err(StoreError::Invalid(
                        "a model id must be 1 to 200 characters".into(),
                    ));
                }
                n.model_id = Some(id.clone());
                n.model_path = path.clone();
            }
            SettingsChange::X9AccountRule { pattern } => {
                if let Some(p) = pattern {
                    crate::x9::AccountRule::new(p).map_err(StoreError::Invalid)?;
                }
                n.x9_account_rule = pattern.clone();
            }
        }
        Ok(n)
    }
}

impl Store {
    /// The settings in force (defaults with `version == 0` if never set).
    pub fn current_settings(&self) -> Result<Settings, StoreError> {
        let row: Option<(i64, String)> = self
            .conn()
            .query_row(
                "SELECT id, payload FROM ledger WHERE kind = 'settings' ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.map(e))?;
        let Some((id, payload)) = row else {
            return Ok(Settings::default());
        };
        let v: serde_json::Value = serde_json::from_str(&payload)
            .map_err(|e| StoreError::Invalid(format!("settings row {id} is unreadable: {e}")))?;
        let mut s: Settings = serde_json::from_value(v.get("new").cloned().unwrap_or_default())
            .map_err(|e| StoreError::Invalid(format!("settings row {id} is unreadable: {e}")))?;
        s.version = id;
        Ok(s)
    }

    /// Asks for a settings change (supervisor; a reason is required). Nothing changes yet: under
    /// four eyes the change takes effect only when a second supervisor approves it
    /// ([`Store::approve_settings_change`]). The request, with the settings before and the settings
    /// it would give, is a chained `settings_request` row; its row id names it.
    pub fn request_settings_change(
        &mut self,
        by: &Operator,
        change: &SettingsChange,
        reason: &str,
    ) -> Result<SettingsRequest, StoreError> {
        self.require(by, change.permission())?;
        check_reason(reason)?;
        let m = self.mapper();
        let tx = self.write_tx()?;
        let old = latest_settings(&tx).map_err(|e| e.unwrap_or_else(&m))?;
        // Refuse a change that could never apply now, rather than at approval.
        let new = change.apply(&old)?;
        let payload = serde_json::json!({"change": change, "old": old, "new": new});
        let mut e = Entry::event("settings_request", by.name(), payload);
        e.reason = Some(reason.to_string());
        let time = e.time.clone();
        let ids = super::chain::append(&tx, &[e]).map_err(&m)?;
        tx.commit().map_err(&m)?;
        Ok(SettingsRequest {
            id: ids.first().copied().unwrap_or(0),
            time,
            operator: by.name().to_string(),
            reason: reason.to_string(),
            change: change.clone(),
            old,
            new,
        })
    }

    /// A second supervisor approves a pending request: the change is applied to the settings in
    /// force now and written as a chained `settings` row that names the request and who asked. The
    /// supervisor who asked may not approve their own request.
    pub fn approve_settings_change(
        &mut self,
        by: &Operator,
        request_id: i64,
        note: &str,
    ) -> Result<Settings, StoreError> {
        let request = self.pending_request(request_id)?;
        self.require(by, request.change.permission())?;
        if request.operator == by.name() {
            let denied = StoreError::PermissionDenied {
                operator: by.name().to_string(),
                action: format!("approve settings change {request_id}, which they asked for"),
                needed: "a second supervisor: four eyes".into(),
            };
            let payload = serde_json::json!({
                "event": "permission_denied",
                "action": "approve own settings change",
                "request": request_id,
            });
            // The refusal is evidence too; a failure to log it does not hide the refusal.
            let _ = self.append_event(Entry::event("security", by.name(), payload));
            return Err(denied);
        }
        if note.len() > 2000 {
            return Err(StoreError::Invalid(
                "an approval note is at most 2000 bytes".into(),
            ));
        }
        let m = self.mapper();
        let tx = self.write_tx()?;
        // Decided by someone else meanwhile? Checked again under the write lock.
        if request_decided(&tx, request_id).map_err(&m)? {
            return Err(StoreError::Invalid(format!(
                "settings request {request_id} was already approved or declined"
            )));
        }
        let old = latest_settings(&tx).map_err(|e| e.unwrap_or_else(&m))?;
        let mut new = request.change.apply(&old)?;
        let payload = serde_json::json!({
            "change": request.change,
            "old": old,
            "new": new,
            "request": request_id,
            "requested_by": request.operator,
            "approval_note": note,
        });
        let mut e = Entry::event("settings", by.name(), payload);
        e.reason = Some(request.reason.clone());
        e.ref_id = Some(request_id);
        let ids = super::chain::append(&tx, &[e]).map_err(&m)?;
        tx.commit().map_err(&m)?;
        new.version = ids.first().copied().unwrap_or(0);
        Ok(new)
    }

    /// Declines (or, by the supervisor who asked, withdraws) a pending request, with a reason.
    pub fn decline_settings_change(
        &mut self,
        by: &Operator,
        request_id: i64,
        reason: &str,
    ) -> Result<i64, StoreError> {
        let request = self.pending_request(request_id)?;
        self.require(by, request.change.permission())?;
        check_reason(reason)?;
        let mut e = Entry::event(
            "settings_declined",
            by.name(),
            serde_json::json!({"request": request_id, "change": request.change}),
        );
        e.reason = Some(reason.to_string());
        e.ref_id = Some(request_id);
        self.append_event(e)
    }

    /// The settings requests that wait for a second supervisor, oldest first.
    pub fn pending_settings_requests(&self) -> Result<Vec<SettingsRequest>, StoreError> {
        let m = self.mapper();
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT r.id, r.time, r.operator, r.reason, r.payload FROM ledger r \
                 WHERE r.kind = 'settings_request' AND NOT EXISTS (SELECT 1 FROM ledger x \
                 WHERE x.ref_id = r.id AND x.kind IN ('settings', 'settings_declined')) ORDER BY r.id",
            )
            .map_err(&m)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(&m)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, time, operator, reason, payload) = row.map_err(&m)?;
            out.push(parse_request(id, time, operator, reason, &payload)?);
        }
        Ok(out)
    }

    fn pending_request(&self, request_id: i64) -> Result<SettingsRequest, StoreError> {
        self.pending_settings_requests()?
            .into_iter()
            .find(|r| r.id == request_id)
            .ok_or_else(|| StoreError::NotFound {
                what: "pending settings request",
                id: request_id.to_string(),
            })
    }

    /// Records, as a `model_card` row in the chain, that a supervisor rewrote the calibration and
    /// thresholds in a model's card (`calibrate --write-card`). The card's thresholds are the policy
    /// while no supervisor has saved settings, so changing them is audited like a settings change.
    pub fn log_model_card_change(
        &mut self,
        by: &Operator,
        card: &str,
        weights_sha256: &str,
        old: serde_json::Value,
        new: serde_json::Value,
        reason: &str,
    ) -> Result<i64, StoreError> {
        self.require(by, super::Permission::ChangeModel)?;
        if reason.trim().is_empty() || reason.len() > 2000 {
            return Err(StoreError::Invalid(
                "a model card change needs a reason (at most 2000 bytes)".into(),
            ));
        }
        let payload = serde_json::json!({
            "event": "card_calibration_written",
            "card": card,
            "weights_sha256": weights_sha256,
            "old": old,
            "new": new,
        });
        let mut e = Entry::event("model_card", by.name(), payload);
        e.reason = Some(reason.to_string());
        self.append_event(e)
    }

    /// The thresholds and the calibration that supervisors' approved changes put in force over the
    /// model card's. Each is a change of its own: each applies only once a change of it was approved
    /// (a settings version made by another change, such as a model or an amount rule, does not make
    /// the stored defaults the ones in force). The one rule for `verify::Policy::resolve` and the
    /// screens that show what is in force.
    pub fn approved_overrides(&self) -> Result<ApprovedOverrides, StoreError> {
        let settings = self.current_settings()?;
        if settings.version == 0 {
            return Ok(ApprovedOverrides::default());
        }
        let history = self.settings_history()?;
        let approved = |f: fn(&SettingsChange) -> bool| history.iter().any(|h| f(&h.change));
        Ok(ApprovedOverrides {
            thresholds: approved(|c| matches!(c, SettingsChange::Thresholds(_)))
                .then_some(settings.thresholds),
            calibration: approved(|c| matches!(c, SettingsChange::Calibration(_)))
                .then_some(settings.calibration),
        })
    }

    /// Every settings change, oldest first.
    pub fn settings_history(&self) -> Result<Vec<SettingsHistoryEntry>, StoreError> {
        let m = self.mapper();
        let mut stmt = self
            .conn()
            .prepare("SELECT id, time, operator, reason, payload FROM ledger WHERE kind = 'settings' ORDER BY id")
            .map_err(&m)?;
        let rows = stmt
            .query_map(params![], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(&m)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, time, operator, reason, payload) = row.map_err(&m)?;
            let bad = |e: serde_json::Error| {
                StoreError::Invalid(format!("settings row {id} is unreadable: {e}"))
            };
            let v: serde_json::Value = serde_json::from_str(&payload).map_err(bad)?;
            out.push(SettingsHistoryEntry {
                id,
                time,
                operator,
                reason: reason.unwrap_or_default(),
                change: serde_json::from_value(v.get("change").cloned().unwrap_or_default())
                    .map_err(bad)?,
                old: serde_json::from_value(v.get("old").cloned().unwrap_or_default())
                    .map_err(bad)?,
                new: serde_json::from_value(v.get("new").cloned().unwrap_or_default())
                    .map_err(bad)?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amount_rule_only_tightens_accept() {
        let mut s = Settings {
            amount_rule: Some(AmountRule {
                above_cents: 100_000,
                t_accept: 0.95,
            }),
            ..Default::default()
        };
        let t = |s: &Settings, account: Option<&str>, amount: Option<i64>| {
            s.decision_policy()
                .unwrap()
                .thresholds_for(account, amount)
                .0
        };
        assert_eq!(t(&s, None, Some(50_000)).accept, 0.8);
        assert_eq!(t(&s, None, Some(200_000)).accept, 0.95);
        s.account_overrides.insert(
            "A1".into(),
            Thresholds {
                accept: 0.99,
                reject: 0.4,
            },
        );
        assert_eq!(t(&s, Some("A1"), Some(200_000)).accept, 0.99);
        assert_eq!(t(&s, Some("A1"), None).reject, 0.4);
    }
}
