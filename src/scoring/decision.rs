//! Decisions: a calibrated probability and the supervisor's policy give ACCEPT, REFER or REJECT.
//!
//! The rule, on the probability `p` that the signature is genuine, with the thresholds that apply to
//! this cheque (see [`DecisionPolicy::thresholds_for`]):
//!
//! - no signature found on the cheque (`p = None`): REFER;
//! - `p >= accept`: ACCEPT;
//! - `p < reject`: REJECT;
//! - otherwise (`reject <= p < accept`): REFER to a supervisor.
//!
//! [`decide`] never fails and never accepts on doubtful input: a probability that is NaN or outside
//! [0, 1], a negative cheque amount, or an invalid policy all give REFER with the reason spelled out.
//! Policies are validated when they are loaded or saved ([`DecisionPolicy::validate`]), so in
//! practice those REFERs only guard against bugs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Decision, ScoringError, Thresholds};

impl Thresholds {
    /// Builds validated thresholds (see [`Thresholds::validate`]).
    pub fn new(accept: f64, reject: f64) -> Result<Thresholds, ScoringError> {
        let t = Thresholds { accept, reject };
        t.validate()?;
        Ok(t)
    }

    /// Both thresholds must be finite, in [0, 1], and `reject <= accept` (when they are equal there
    /// is no REFER band).
    pub fn validate(&self) -> Result<(), ScoringError> {
        for (name, v) in [("accept", self.accept), ("reject", self.reject)] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return Err(ScoringError::InvalidThresholds(format!(
                    "{name} threshold {v} is not a probability in [0, 1]"
                )));
            }
        }
        if self.reject > self.accept {
            return Err(ScoringError::InvalidThresholds(format!(
                "reject threshold {} is above accept threshold {}",
                self.reject, self.accept
            )));
        }
        Ok(())
    }
}

/// A stricter accept threshold for large cheques: when the amount is strictly above `above_cents`,
/// the accept threshold becomes `max(accept of the account, self.accept)`. The rule can only make
/// accepting harder, never easier.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AmountRule {
    /// Amounts strictly greater than this (in cents) trigger the rule.
    pub above_cents: i64,
    /// The accept threshold for those amounts (a probability in [0, 1]).
    pub accept: f64,
}

/// The supervisor's decision policy: global thresholds, an optional amount rule and per-account
/// overrides. Serialisable for the settings store and the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionPolicy {
    /// Thresholds for every account without an override.
    pub thresholds: Thresholds,
    /// Optional stricter accept threshold for large amounts (applies to overridden accounts too).
    #[serde(default)]
    pub amount_rule: Option<AmountRule>,
    /// Per-account thresholds that replace the global ones for that account.
    #[serde(default)]
    pub per_account: BTreeMap<String, Thresholds>,
}

impl DecisionPolicy {
    /// A policy with only global thresholds, validated.
    pub fn new(thresholds: Thresholds) -> Result<DecisionPolicy, ScoringError> {
        let p = DecisionPolicy {
            thresholds,
            amount_rule: None,
            per_account: BTreeMap::new(),
        };
        p.validate()?;
        Ok(p)
    }

    /// Checks every threshold set (global and per account) and the amount rule.
    pub fn validate(&self) -> Result<(), ScoringError> {
        self.thresholds.validate()?;
        for (account, t) in &self.per_account {
            t.validate().map_err(|e| {
                ScoringError::InvalidThresholds(format!("account '{account}': {e}"))
            })?;
        }
        if let Some(rule) = &self.amount_rule {
            if !(rule.accept.is_finite() && (0.0..=1.0).contains(&rule.accept)) {
                return Err(ScoringError::InvalidThresholds(format!(
                    "amount rule accept threshold {} is not a probability in [0, 1]",
                    rule.accept
                )));
            }
            if rule.above_cents < 0 {
                return Err(ScoringError::InvalidThresholds(format!(
                    "amount rule limit {} cents is negative",
                    rule.above_cents
                )));
            }
        }
        Ok(())
    }

    /// The thresholds that apply to one cheque: the account's override if there is one (else the
    /// global thresholds), with the accept threshold raised by the amount rule when the amount is
    /// above its limit. Also returns a short description of where they came from.
    pub fn thresholds_for(
        &self,
        account: Option<&str>,
        amount_cents: Option<i64>,
    ) -> (Thresholds, String) {
        let (mut t, mut source) =
            match account.and_then(|a| self.per_account.get(a).map(|t| (a, t))) {
                Some((a, t)) => (*t, format!("account '{a}' override")),
                None => (self.thresholds, "global thresholds".to_string()),
            };
        if let (Some(rule), Some(amount)) = (&self.amount_rule, amount_cents)
            && amount > rule.above_cents
            && rule.accept > t.accept
        {
            t.accept = rule.accept;
            source.push_str(&format!(
                ", accept raised to {:.4} for amounts above {}",
                rule.accept,
                format_cents(rule.above_cents)
            ));
        }
        (t, source)
    }
}

/// Formats cents as `1234.56`.
fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// The decision for one verification, the thresholds it was taken against and why, in words (for
/// the clerk's screen and the audit row).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionOutcome {
    pub decision: Decision,
    pub thresholds_used: Thresholds,
    pub reason: String,
}

/// Decides ACCEPT / REFER / REJECT for one cheque (see the module documentation for the rule).
///
/// `probability` is the calibrated probability of a genuine signature, `None` when no signature was
/// found on the cheque. `account` selects a per-account override; `amount_cents` triggers the amount
/// rule. Never fails: doubtful input gives REFER with the reason.
pub fn decide(
    probability: Option<f64>,
    account: Option<&str>,
    amount_cents: Option<i64>,
    policy: &DecisionPolicy,
) -> DecisionOutcome {
    let (t, source) = policy.thresholds_for(account, amount_cents);
    let refer = |reason: String| DecisionOutcome {
        decision: Decision::Refer,
        thresholds_used: t,
        reason,
    };
    if let Err(e) = policy.validate() {
        return refer(format!(
            "decision policy is invalid ({e}); referred to a supervisor"
        ));
    }
    if let Some(amount) = amount_cents
        && amount < 0
    {
        return refer(format!(
            "cheque amount {} is negative; referred to a supervisor",
            format_cents(amount)
        ));
    }
    let p = match probability {
        None => return refer("no signature was found on the cheque".to_string()),
        Some(p) if !(p.is_finite() && (0.0..=1.0).contains(&p)) => {
            return refer(format!(
                "probability {p} is not a valid probability; referred to a supervisor"
            ));
        }
        Some(p) => p,
    };
    let (decision, reason) = if p >= t.accept {
        (
            Decision::Accept,
            format!(
                "probability {p:.4} >= accept threshold {:.4} ({source})",
                t.accept
            ),
        )
    } else if p < t.reject {
        (
            Decision::Reject,
            format!(
                "probability {p:.4} < reject threshold {:.4} ({source})",
                t.reject
            ),
        )
    } else {
        (
            Decision::Refer,
            format!(
                "probability {p:.4} is between reject {:.4} and accept {:.4} ({source})",
                t.reject, t.accept
            ),
        )
    };
    DecisionOutcome {
        decision,
        thresholds_used: t,
        reason,
    }
}
