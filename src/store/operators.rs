//! Operators, roles, PINs (argon2id) and permission checks.
//!
//! PINs are stored only as argon2id PHC strings; the clear PIN is never written or logged. A PIN has
//! at least [`MIN_PIN_CHARS`] characters (six digits, or a passphrase): anyone who can read the
//! database file can try PINs offline at argon2's pace, and a 4-digit PIN falls in minutes. Wrong PINs
//! are counted per operator in the database: after [`FREE_FAILURES`] consecutive failures the operator
//! is locked out until a supervisor unlocks them (no lockout expires by itself, so online guessing
//! stops at [`FREE_FAILURES`] tries). Every failed or refused sign-in and every refused action is a
//! chained ledger row.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;

use super::chain::{Entry, append};
use super::{Store, StoreError, format_time, now_utc};

/// Consecutive wrong PINs that lock an operator out until a supervisor unlocks them.
pub const FREE_FAILURES: i64 = 5;
/// The shortest PIN or passphrase, in characters.
pub const MIN_PIN_CHARS: usize = 6;

/// A role decides what an operator may do (see [`Permission::roles`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Clerk,
    Supervisor,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Clerk => "clerk",
            Role::Supervisor => "supervisor",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "clerk" => Some(Role::Clerk),
            "supervisor" => Some(Role::Supervisor),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action that needs a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Run a verification and record its decision.
    Verify,
    /// Confirm a decision.
    Confirm,
    /// Override an ACCEPT or REFER.
    Override,
    /// Override a REJECT.
    OverrideReject,
    /// Create accounts.
    ManageAccounts,
    /// Enrol reference signatures.
    EnrolReference,
    /// Retire a reference signature.
    RetireReference,
    /// Change thresholds, calibration, amount rules, per-account overrides.
    ChangeSettings,
    /// Change the active model.
    ChangeModel,
    /// Add operators, reset PINs, unlock operators.
    ManageOperators,
    /// Read the decision log.
    ReadAudit,
    /// Export the decision log or write a checkpoint.
    ExportAudit,
    /// Resolve a referred decision to ACCEPT or REJECT (the referral queue).
    ResolveReferral,
}

impl Permission {
    /// The roles that hold this permission.
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Permission::Verify
            | Permission::Confirm
            | Permission::Override
            | Permission::ManageAccounts
            | Permission::EnrolReference => &[Clerk, Supervisor],
            Permission::OverrideReject
            | Permission::RetireReference
            | Permission::ChangeSettings
            | Permission::ChangeModel
            | Permission::ManageOperators
            | Permission::ResolveReferral => &[Supervisor],
            Permission::ReadAudit | Permission::ExportAudit => &[Auditor, Supervisor],
        }
    }

    /// What the permission allows, in words for error messages.
    pub fn action(self) -> &'static str {
        match self {
            Permission::Verify => "record verification decisions",
            Permission::Confirm => "confirm a decision",
            Permission::Override => "override a decision",
            Permission::OverrideReject => "override a REJECT",
            Permission::ManageAccounts => "create accounts",
            Permission::EnrolReference => "enrol reference signatures",
            Permission::RetireReference => "retire a reference signature",
            Permission::ChangeSettings => "change thresholds or calibration",
            Permission::ChangeModel => "change the active model",
            Permission::ManageOperators => "manage operators",
            Permission::ReadAudit => "read the audit log",
            Permission::ExportAudit => "export the audit log",
            Permission::ResolveReferral => "resolve a referred cheque",
        }
    }

    fn needed(self) -> String {
        self.roles()
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

/// An authenticated operator. Only the store creates one (by [`Store::authenticate`] or when the
/// first supervisor is created), so holding one means the PIN was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    name: String,
    role: Role,
}

impl Operator {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether this operator's role holds the permission.
    pub fn can(&self, p: Permission) -> bool {
        p.roles().contains(&self.role)
    }

    /// A pure check, without logging. Prefer [`Store::require`], which also writes the refusal to
    /// the chain.
    pub fn require(&self, p: Permission) -> Result<(), StoreError> {
        if self.can(p) {
            Ok(())
        } else {
            Err(StoreError::PermissionDenied {
                operator: self.name.clone(),
                action: p.action().to_string(),
                needed: p.needed(),
            })
        }
    }
}

/// Argon2id cost for new PIN hashes. Verification always uses the parameters stored in the hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KdfCost {
    /// 32 MiB, 2 passes: about 50-100 ms per check on a desktop CPU.
    Production,
    /// Minimal cost so tests stay fast. Never use for real operators.
    Test,
}

impl KdfCost {
    fn argon2(self) -> Result<Argon2<'static>, StoreError> {
        let params = match self {
            KdfCost::Production => Params::new(32 * 1024, 2, 1, None),
            KdfCost::Test => Params::new(64, 1, 1, None),
        }
        .map_err(|e| StoreError::Invalid(format!("argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Hashes a PIN to a PHC string.
/// The SHA-256 of a stored PIN hash, recorded in the audit chain so that a swapped hash is noticed
/// (the argon2 hash itself stays out of the chain and its exports).
fn pin_digest(pin_hash: &str) -> String {
    crate::digest::sha256_hex(pin_hash.as_bytes())
}

pub fn hash_pin(pin: &str, cost: KdfCost) -> Result<String, StoreError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| StoreError::Invalid(format!("salt: {e}")))?;
    let hash = cost
        .argon2()?
        .hash_password(pin.as_bytes(), &salt)
        .map_err(|e| StoreError::Invalid(format!("could not hash the PIN: {e}")))?;
    Ok(hash.to_string())
}

fn verify_pin(pin: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(pin.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Checks an operator name: what a person can type, bounded.
pub(crate) fn check_name(what: &str, s: &str) -> Result<(), StoreError> {
    if s.trim().is_empty() || s.len() > 64 || s.chars().any(char::is_control) || s.trim() != s {
        return Err(StoreError::Invalid(format!(
            "{what} must be 1 to 64 characters, without control characters or surrounding spaces"
        )));
    }
    Ok(())
}

fn check_pin(pin: &str) -> Result<(), StoreError> {
    if pin.chars().count() < MIN_PIN_CHARS || pin.len() > 128 {
        return Err(StoreError::Invalid(format!(
            "a PIN must be {MIN_PIN_CHARS} to 128 characters (at least {MIN_PIN_CHARS} digits, or a passphrase): \
             a shorter one is guessed offline in minutes by anyone who can read the database file"
        )));
    }
    Ok(())
}

/// One operator as listed (no PIN hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OperatorInfo {
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub created_by: String,
    pub failed_attempts: i64,
    pub locked_until: Option<String>,
}

/// Truncates attacker-supplied text before it goes into the ledger.
fn bounded(s: &str) -> String {
    s.chars().take(64).collect()
}

impl Store {
    /// Number of operators in the database.
    pub fn operator_count(&self) -> Result<i64, StoreError> {
        self.conn()
            .query_row("SELECT count(*) FROM operators", [], |r| r.get(0))
            .map_err(|e| self.map(e))
    }

    /// How many more wrong PINs operator `name` may enter before being locked out (`None` for a
    /// name that is not an operator; 0 once locked). A sign-in screen shows it after a wrong PIN.
    pub fn pin_attempts_left(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.conn()
            .query_row(
                "SELECT failed_attempts FROM operators WHERE name = ?1",
                params![name],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|f| f.map(|f| (FREE_FAILURES - f).max(0)))
            .map_err(|e| self.map(e))
    }

    /// Lists operators (names, roles, lockout state).
    pub fn list_operators(&self) -> Result<Vec<OperatorInfo>, StoreError> {
        let m = self.mapper();
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT name, role, created_at, created_by, failed_attempts, locked_until FROM operators ORDER BY name",
            )
            .map_err(&m)?;
        let rows = stmt
            .query_map([], |r| {
                let role: String = r.get(1)?;
                Ok(OperatorInfo {
                    name: r.get(0)?,
                    role: Role::parse(&role).unwrap_or(Role::Clerk),
                    created_at: r.get(2)?,
                    created_by: r.get(3)?,
                    failed_attempts: r.get(4)?,
                    locked_until: r.get(5)?,
                })
            })
            .map_err(&m)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(&m)
    }

    /// Adds an operator. With no operators in the database, `by` may be `None` and the new operator
    /// must be a supervisor (the bootstrap); afterwards `by` must be a supervisor. Returns the new
    /// operator, authenticated (useful for the bootstrap).
    pub fn add_operator(
        &mut self,
        by: Option<&Operator>,
        name: &str,
        role: Role,
        pin: &str,
    ) -> Result<Operator, StoreError> {
        check_name("an operator name", name)?;
        check_pin(pin)?;
        if let Some(by) = by {
            self.require(by, Permission::ManageOperators)?;
        }
        let pin_hash = hash_pin(pin, self.kdf)?;
        let m = self.mapper();
        let tx = self.write_tx()?;
        let count: i64 = tx
            .query_row("SELECT count(*) FROM operators", [], |r| r.get(0))
            .map_err(&m)?;
        let creator = match (count, by) {
            (0, _) if role != Role::Supervisor => {
                return Err(StoreError::Invalid(
                    "the first operator must be a supervisor".into(),
                ));
            }
            (0, _) => name.to_string(),
            (_, None) => return Err(StoreError::MissingCredentials),
            (_, Some(by)) => by.name.clone(),
        };
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM operators WHERE name = ?1",
                params![name],
                |_| Ok(true),
            )
            .optional()
            .map_err(&m)?
            .unwrap_or(false);
        if exists {
            return Err(StoreError::AlreadyExists {
                what: "operator",
                id: name.to_string(),
            });
        }
        let now = now_utc();
        tx.execute(
            "INSERT INTO operators (name, role, pin_hash, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, role.as_str(), pin_hash, now, creator],
        )
        .map_err(&m)?;
        let event = json!({"event": "operator_added", "name": name, "role": role.as_str(), "bootstrap": count == 0,
            "pin_sha256": pin_digest(&pin_hash)});
        append(&tx, &[Entry::event("security", &creator, event)]).map_err(&m)?;
        tx.commit().map_err(&m)?;
        Ok(Operator {
            name: name.to_string(),
            role,
        })
    }

    /// Checks a PIN. Failures are counted and logged; repeated failures lock the operator out for a
    /// growing window ([`StoreError::LockedOut`] says until when). On a read-only store nothing can
    /// be counted or logged, so only the PIN is checked.
    pub fn authenticate(&mut self, name: &str, pin: &str) -> Result<Operator, StoreError> {
        let m = self.mapper();
        let row: Option<(String, String, i64, Option<String>)> = self
            .conn()
            .query_row(
                "SELECT role, pin_hash, failed_attempts, locked_until FROM operators WHERE name = ?1",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(&m)?;
        let Some((role, pin_hash, failures, locked_until)) = row else {
            if self.operator_count()? == 0 {
                return Err(StoreError::NoOperators);
            }
            // Spend the same time as a real check so timing does not reveal which names exist.
            let _ = verify_pin(pin, &hash_pin("countersign-dummy", self.kdf)?);
            self.log_security(
                name,
                json!({"event": "sign_in_failed", "cause": "unknown operator"}),
            )?;
            return Err(StoreError::AuthFailed);
        };
        let role = Role::parse(&role).ok_or_else(|| {
            StoreError::Invalid(format!("operator {name} has an unknown role {role:?}"))
        })?;
        if let Some(detail) = self.credentials_differ_from_chain(name, role, &pin_hash)? {
            self.log_security(
                name,
                json!({"event": "sign_in_refused", "cause": "credentials differ from the chain", "detail": detail}),
            )?;
            return Err(StoreError::CredentialsTampered {
                operator: name.to_string(),
                detail,
            });
        }
        let now = OffsetDateTime::now_utc();
        // Locked until a supervisor unlocks: the lock never expires by itself. (`locked_until` holds
        // when the lock began; older files kept an end time there, which no longer matters.)
        if failures >= FREE_FAILURES {
            self.log_security(
                name,
                json!({"event": "sign_in_refused", "cause": "locked out", "since": locked_until}),
            )?;
            return Err(StoreError::LockedOut {
                operator: name.to_string(),
                failures,
                since: locked_until.unwrap_or_default(),
            });
        }
        if verify_pin(pin, &pin_hash) {
            if failures > 0 && !self.read_only {
                self.conn()
                    .execute(
                        "UPDATE operators SET failed_attempts = 0, locked_until = NULL WHERE name = ?1",
                        params![name],
                    )
                    .map_err(&m)?;
            }
            return Ok(Operator {
                name: name.to_string(),
                role,
            });
        }
        if self.read_only {
            return Err(StoreError::AuthFailed);
        }
        let tx = self.write_tx()?;
        // Count inside the write lock so concurrent wrong PINs are all counted.
        let failures: i64 = tx
            .query_row(
                "UPDATE operators SET failed_attempts = failed_attempts + 1 WHERE name = ?1 RETURNING failed_attempts",
                params![name],
                |r| r.get(0),
            )
            .map_err(&m)?;
        let locked = failures >= FREE_FAILURES;
        let since = locked.then(|| format_time(now));
        if locked {
            tx.execute(
                "UPDATE operators SET locked_until = ?2 WHERE name = ?1 AND locked_until IS NULL",
                params![name, since],
            )
            .map_err(&m)?;
        }
        let event = json!({"event": "sign_in_failed", "cause": "wrong PIN", "failures": failures, "locked": locked});
        append(&tx, &[Entry::event("security", &bounded(name), event)]).map_err(&m)?;
        tx.commit().map_err(&m)?;
        match since {
            Some(since) => Err(StoreError::LockedOut {
                operator: name.to_string(),
                failures,
                since,
            }),
            None => Err(StoreError::AuthFailed),
        }
    }

    /// Checks a permission; a refusal is written to the chain before the error is returned.
    pub fn require(&mut self, op: &Operator, p: Permission) -> Result<(), StoreError> {
        match op.require(p) {
            Ok(()) => Ok(()),
            Err(denied) => {
                let event = json!({"event": "permission_denied", "action": p, "role": op.role.as_str(),
                    "needed": p.needed()});
                // The refusal stands even if it cannot be logged (read-only file); say both.
                match (self.log_security(&op.name, event), denied) {
                    (
                        Err(log_err),
                        StoreError::PermissionDenied {
                            operator,
                            action,
                            needed,
                        },
                    ) => Err(StoreError::PermissionDenied {
                        operator,
                        action: format!(
                            "{action} (and the refusal could not be logged: {log_err})"
                        ),
                        needed,
                    }),
                    (_, denied) => Err(denied),
                }
            }
        }
    }

    /// Sets a new PIN: an operator for themself, or a supervisor for anyone. Clears any lockout.
    pub fn set_pin(&mut self, by: &Operator, name: &str, new_pin: &str) -> Result<(), StoreError> {
        check_pin(new_pin)?;
        if by.name != name {
            self.require(by, Permission::ManageOperators)?;
        }
        let pin_hash = hash_pin(new_pin, self.kdf)?;
        let m = self.mapper();
        let tx = self.write_tx()?;
        let n = tx
            .execute(
                "UPDATE operators SET pin_hash = ?2, failed_attempts = 0, locked_until = NULL WHERE name = ?1",
                params![name, pin_hash],
            )
            .map_err(&m)?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "operator",
                id: name.to_string(),
            });
        }
        append(
            &tx,
            &[Entry::event(
                "security",
                &by.name,
                json!({"event": "pin_changed", "name": name, "pin_sha256": pin_digest(&pin_hash)}),
            )],
        )
        .map_err(&m)?;
        tx.commit().map_err(&m)
    }

    /// Clears an operator's failure count and lockout (supervisor only).
    pub fn unlock_operator(&mut self, by: &Operator, name: &str) -> Result<(), StoreError> {
        self.require(by, Permission::ManageOperators)?;
        let m = self.mapper();
        let tx = self.write_tx()?;
        let n = tx
            .execute(
                "UPDATE operators SET failed_attempts = 0, locked_until = NULL WHERE name = ?1",
                params![name],
            )
            .map_err(&m)?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "operator",
                id: name.to_string(),
            });
        }
        append(
            &tx,
            &[Entry::event(
                "security",
                &by.name,
                json!({"event": "operator_unlocked", "name": name}),
            )],
        )
        .map_err(&m)?;
        tx.commit().map_err(&m)
    }

    /// Compares an operator's row with what the audit chain recorded when it was added and when its
    /// PIN last changed. `Some(why)` when they differ: a role raised or a PIN hash swapped by editing
    /// the file directly. A PIN change logged before PIN digests were recorded leaves the PIN unchecked.
    fn credentials_differ_from_chain(
        &self,
        name: &str,
        role: Role,
        pin_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        let m = self.mapper();
        let mut stmt = self
            .conn()
            .prepare_cached(
                "SELECT json_extract(payload, '$.event'), json_extract(payload, '$.role'), \
                 json_extract(payload, '$.pin_sha256') FROM ledger \
                 WHERE kind = 'security' AND json_valid(payload) \
                 AND json_extract(payload, '$.name') = ?1 \
                 AND json_extract(payload, '$.event') IN ('operator_added', 'pin_changed') ORDER BY id",
            )
            .map_err(&m)?;
        let events = stmt
            .query_map(params![name], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })
            .map_err(&m)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&m)?;
        let mut added_as = None;
        let mut pin = None;
        for (event, logged_role, digest) in events {
            if event == "operator_added" {
                added_as = logged_role;
            }
            pin = digest;
        }
        let Some(added_as) = added_as else {
            return Ok(Some(format!(
                "the audit chain has no record of operator {name} being added"
            )));
        };
        if added_as != role.as_str() {
            return Ok(Some(format!(
                "the operators table gives the role {}, but the audit chain added {name} as {added_as}",
                role.as_str()
            )));
        }
        if let Some(digest) = pin
            && digest != pin_digest(pin_hash)
        {
            return Ok(Some(format!(
                "the PIN hash of {name} is not the one the audit chain recorded at its last PIN change"
            )));
        }
        Ok(None)
    }

    /// Every operator whose row differs from the audit chain, with why (see `audit verify`).
    pub fn operators_differing_from_chain(&self) -> Result<Vec<(String, String)>, StoreError> {
        let m = self.mapper();
        let rows = self
            .conn()
            .prepare("SELECT name, role, pin_hash FROM operators ORDER BY name")
            .map_err(&m)?
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(&m)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&m)?;
        let mut out = Vec::new();
        for (name, role, pin_hash) in rows {
            let why = match Role::parse(&role) {
                None => Some(format!("operator {name} has an unknown role {role:?}")),
                Some(role) => self.credentials_differ_from_chain(&name, role, &pin_hash)?,
            };
            if let Some(why) = why {
                out.push((name, why));
            }
        }
        Ok(out)
    }

    fn log_security(&mut self, operator: &str, event: serde_json::Value) -> Result<(), StoreError> {
        if self.read_only {
            return Ok(());
        }
        self.append_event(Entry::event("security", &bounded(operator), event))
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_hash_is_phc_and_verifies() {
        let h = hash_pin("4821", KdfCost::Test).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("4821"));
        assert!(verify_pin("4821", &h));
        assert!(!verify_pin("4822", &h));
    }
}
