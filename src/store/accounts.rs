//! Accounts, their reference signatures (image bytes in the database) and the embedding cache.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::json;

use super::chain::{Entry, append};
use super::operators::check_name;
use super::{Operator, Permission, Store, StoreError, now_utc};

/// Largest reference image accepted, in bytes.
pub const MAX_REFERENCE_BYTES: usize = 32 * 1024 * 1024;

/// An account as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Account {
    pub id: String,
    pub holder: String,
    pub created_at: String,
    pub created_by: String,
    /// Active (not retired) references.
    pub active_references: i64,
}

/// A reference signature's metadata (the bytes come from [`Store::reference_image`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reference {
    pub id: i64,
    pub account: String,
    pub sha256: String,
    pub width: u32,
    pub height: u32,
    pub bytes: i64,
    pub enrolled_at: String,
    pub enrolled_by: String,
    pub retired: bool,
}

/// SHA-256 of bytes, lowercase hex.
pub use crate::digest::sha256_hex;

/// Reads an image's dimensions after a full, bounded decode, so nothing undecodable is enrolled.
fn image_dimensions(bytes: &[u8]) -> Result<(u32, u32), StoreError> {
    let bad = |e: &dyn std::fmt::Display| {
        StoreError::Invalid(format!("the reference image cannot be decoded: {e}"))
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(&e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(20_000);
    limits.max_image_height = Some(20_000);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| bad(&e))?;
    Ok((img.width(), img.height()))
}

impl Store {
    /// Creates an account (clerk or supervisor).
    pub fn add_account(
        &mut self,
        by: &Operator,
        id: &str,
        holder: &str,
    ) -> Result<Account, StoreError> {
        self.require(by, Permission::ManageAccounts)?;
        check_name("an account id", id)?;
        if holder.trim().is_empty() || holder.len() > 200 || holder.chars().any(char::is_control) {
            return Err(StoreError::Invalid(
                "the holder name must be 1 to 200 characters".into(),
            ));
        }
        let m = self.mapper();
        let tx = self.write_tx()?;
        let now = now_utc();
        let n = tx
            .execute(
                "INSERT OR IGNORE INTO accounts (id, holder, created_at, created_by) VALUES (?1, ?2, ?3, ?4)",
                params![id, holder, now, by.name()],
            )
            .map_err(&m)?;
        if n == 0 {
            return Err(StoreError::AlreadyExists {
                what: "account",
                id: id.to_string(),
            });
        }
        let mut e = Entry::event(
            "account",
            by.name(),
            json!({"event": "account_added", "holder": holder}),
        );
        e.account = Some(id.to_string());
        append(&tx, &[e]).map_err(&m)?;
        tx.commit().map_err(&m)?;
        Ok(Account {
            id: id.into(),
            holder: holder.into(),
            created_at: now,
            created_by: by.name().into(),
            active_references: 0,
        })
    }

    /// One account, if it exists.
    pub fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        self.accounts_where("WHERE a.id = ?1", params![id])
            .map(|mut v| v.pop())
    }

    /// All accounts, by id.
    pub fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.accounts_where("", params![])
    }

    fn accounts_where(
        &self,
        clause: &str,
        p: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<Account>, StoreError> {
        let m = self.mapper();
        let sql = format!(
            "SELECT a.id, a.holder, a.created_at, a.created_by, \
             (SELECT count(*) FROM reference_signatures r WHERE r.account = a.id AND r.retired = 0) \
             FROM accounts a {clause} ORDER BY a.id"
        );
        let mut stmt = self.conn().prepare(&sql).map_err(&m)?;
        let rows = stmt
            .query_map(p, |r| {
                Ok(Account {
                    id: r.get(0)?,
                    holder: r.get(1)?,
                    created_at: r.get(2)?,
                    created_by: r.get(3)?,
                    active_references: r.get(4)?,
                })
            })
            .map_err(&m)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(&m)
    }

    /// Enrols a reference signature: checks the bytes decode, stores them with their SHA-256 and
    /// size, and logs the enrolment. Enrolling the same image twice for one account is refused.
    pub fn enrol_reference(
        &mut self,
        by: &Operator,
        account: &str,
        image: &[u8],
    ) -> Result<Reference, StoreError> {
        self.require(by, Permission::EnrolReference)?;
        if image.len() > MAX_REFERENCE_BYTES {
            return Err(StoreError::Invalid(format!(
                "the reference image is {} bytes; the limit is {MAX_REFERENCE_BYTES}",
                image.len()
            )));
        }
        let (width, height) = image_dimensions(image)?;
        let sha = sha256_hex(image);
        let m = self.mapper();
        let tx = self.write_tx()?;
        let exists: Option<i64> = tx
            .query_row(
                "SELECT 1 FROM accounts WHERE id = ?1",
                params![account],
                |r| r.get(0),
            )
            .optional()
            .map_err(&m)?;
        if exists.is_none() {
            return Err(StoreError::NotFound {
                what: "account",
                id: account.to_string(),
            });
        }
        let now = now_utc();
        let n = tx
            .execute(
                "INSERT OR IGNORE INTO reference_signatures (account, image, sha256, width, height, enrolled_at, \
                 enrolled_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![account, image, sha, width, height, now, by.name()],
            )
            .map_err(&m)?;
        if n == 0 {
            return Err(StoreError::AlreadyExists {
                what: "reference (same image) for account",
                id: account.into(),
            });
        }
        let id = tx.last_insert_rowid();
        let mut e = Entry::event(
            "account",
            by.name(),
            json!({"event": "reference_enrolled", "reference_id": id, "sha256": sha, "width": width, "height": height}),
        );
        e.account = Some(account.to_string());
        e.ref_id = Some(id);
        append(&tx, &[e]).map_err(&m)?;
        tx.commit().map_err(&m)?;
        Ok(Reference {
            id,
            account: account.into(),
            sha256: sha,
            width,
            height,
            bytes: image.len() as i64,
            enrolled_at: now,
            enrolled_by: by.name().into(),
            retired: false,
        })
    }

    /// An account's references, oldest first; retired ones only when asked.
    pub fn references(
        &self,
        account: &str,
        include_retired: bool,
    ) -> Result<Vec<Reference>, StoreError> {
        let m = self.mapper();
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT id, account, sha256, width, height, length(image), enrolled_at, enrolled_by, retired \
                 FROM reference_signatures WHERE account = ?1 AND (?2 OR retired = 0) ORDER BY id",
            )
            .map_err(&m)?;
        let rows = stmt
            .query_map(params![account, include_retired], |r| {
                Ok(Reference {
                    id: r.get(0)?,
                    account: r.get(1)?,
                    sha256: r.get(2)?,
                    width: r.get(3)?,
                    height: r.get(4)?,
                    bytes: r.get(5)?,
                    enrolled_at: r.get(6)?,
                    enrolled_by: r.get(7)?,
                    retired: r.get(8)?,
                })
            })
            .map_err(&m)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(&m)
    }

    /// The stored image bytes of a reference.
    pub fn reference_image(&self, reference_id: i64) -> Result<Vec<u8>, StoreError> {
        self.conn()
            .query_row(
                "SELECT image FROM reference_signatures WHERE id = ?1",
                params![reference_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.map(e))?
            .ok_or_else(|| StoreError::NotFound {
                what: "reference",
                id: reference_id.to_string(),
            })
    }

    /// Retires a reference (supervisor): it stays stored for the record but is no longer compared.
    pub fn retire_reference(
        &mut self,
        by: &Operator,
        reference_id: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.require(by, Permission::RetireReference)?;
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid(
                "retiring a reference needs a reason".into(),
            ));
        }
        let m = self.mapper();
        let tx = self.write_tx()?;
        let account: Option<String> = tx
            .query_row(
                "SELECT account FROM reference_signatures WHERE id = ?1 AND retired = 0",
                params![reference_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(&m)?;
        let Some(account) = account else {
            return Err(StoreError::NotFound {
                what: "active reference",
                id: reference_id.to_string(),
            });
        };
        let now = now_utc();
        tx.execute(
            "UPDATE reference_signatures SET retired = 1, retired_at = ?2, retired_by = ?3, retired_reason = ?4 \
             WHERE id = ?1",
            params![reference_id, now, by.name(), reason],
        )
        .map_err(&m)?;
        let mut e = Entry::event(
            "account",
            by.name(),
            json!({"event": "reference_retired", "reference_id": reference_id}),
        );
        e.account = Some(account);
        e.ref_id = Some(reference_id);
        e.reason = Some(reason.to_string());
        append(&tx, &[e]).map_err(&m)?;
        tx.commit().map_err(&m)
    }

    /// Caches an embedding for (reference image, model), replacing an older one. Stored as
    /// little-endian f32 under the image's SHA-256 and the model id, with a chained `embedding` row
    /// holding the vector's SHA-256, so a vector edited in the table is found on its next use.
    pub fn cache_embedding(
        &mut self,
        reference_id: i64,
        model_id: &str,
        embedding: &[f32],
    ) -> Result<(), StoreError> {
        if embedding.iter().any(|v| !v.is_finite()) {
            return Err(StoreError::Invalid("an embedding must be finite".into()));
        }
        bounded_model_id(model_id)?;
        let image_sha = self.reference_sha(reference_id)?;
        let blob: Vec<u8> = embedding.iter().flat_map(|v| v.to_le_bytes()).collect();
        let m = self.mapper();
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT OR REPLACE INTO reference_embeddings (image_sha256, model_id, dim, vector, computed_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![image_sha, model_id, embedding.len() as i64, blob, now_utc()],
        )
        .map_err(&m)?;
        let mut e = Entry::event(
            "embedding",
            SYSTEM_OPERATOR,
            json!({"event": "embedding_cached", "reference_id": reference_id, "dim": embedding.len(),
                "vector_sha256": sha256_hex(&blob)}),
        );
        e.cheque_sha256 = Some(image_sha);
        e.model_id = Some(model_id.to_string());
        append(&tx, &[e]).map_err(&m)?;
        tx.commit().map_err(&m)
    }

    /// The cached embedding for (reference image, model), if any, checked against the digest chained
    /// when it was cached. A vector that does not match its chained digest (or has none) was written
    /// outside Countersign: [`StoreError::Tampered`].
    pub fn cached_embedding(
        &self,
        reference_id: i64,
        model_id: &str,
    ) -> Result<Option<Vec<f32>>, StoreError> {
        let image_sha = self.reference_sha(reference_id)?;
        let blob: Option<(i64, Vec<u8>)> = self
            .conn()
            .query_row(
                "SELECT dim, vector FROM reference_embeddings WHERE image_sha256 = ?1 AND model_id = ?2",
                params![image_sha, model_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.map(e))?;
        let Some((dim, b)) = blob else {
            return Ok(None);
        };
        if let Some(why) = self.embedding_problem(&image_sha, model_id, dim, &b)? {
            return Err(StoreError::Tampered {
                detail: format!(
                    "the cached embedding of reference #{reference_id} (image {image_sha}) for model {model_id} {why}"
                ),
            });
        }
        Ok(Some(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ))
    }

    /// Why a cached vector cannot be trusted, or `None` when it matches its chained digest.
    fn embedding_problem(
        &self,
        image_sha: &str,
        model_id: &str,
        dim: i64,
        blob: &[u8],
    ) -> Result<Option<String>, StoreError> {
        let chained: Option<String> = self
            .conn()
            .query_row(
                "SELECT payload FROM ledger WHERE kind = 'embedding' AND cheque_sha256 = ?1 AND model_id = ?2 \
                 ORDER BY id DESC LIMIT 1",
                params![image_sha, model_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.map(e))?;
        let Some(payload) = chained else {
            return Ok(Some(
                "has no row in the audit chain: it was written outside Countersign".into(),
            ));
        };
        let expected = serde_json::from_str::<serde_json::Value>(&payload)
            .ok()
            .and_then(|v| v.get("vector_sha256")?.as_str().map(str::to_string));
        if usize::try_from(dim).ok().map(|d| d * 4) != Some(blob.len())
            || expected.as_deref() != Some(sha256_hex(blob).as_str())
        {
            return Ok(Some(
                "does not match the SHA-256 chained when it was cached: it was edited outside Countersign"
                    .into(),
            ));
        }
        Ok(None)
    }

    /// The stored SHA-256 of a reference (any state).
    fn reference_sha(&self, reference_id: i64) -> Result<String, StoreError> {
        self.conn()
            .query_row(
                "SELECT sha256 FROM reference_signatures WHERE id = ?1",
                params![reference_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.map(e))?
            .ok_or_else(|| StoreError::NotFound {
                what: "reference",
                id: reference_id.to_string(),
            })
    }

    /// What the chain says about a reference: (account, SHA-256 enrolled, retired).
    fn chained_reference(
        &self,
        reference_id: i64,
    ) -> Result<Option<(String, String, bool)>, StoreError> {
        let m = self.mapper();
        let mut stmt = self
            .conn()
            .prepare_cached(
                "SELECT account, payload FROM ledger WHERE kind = 'account' AND ref_id = ?1 ORDER BY id",
            )
            .map_err(&m)?;
        let rows = stmt
            .query_map(params![reference_id], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, Option<String>>(1)?,
                ))
            })
            .map_err(&m)?;
        let mut out: Option<(String, String, bool)> = None;
        for row in rows {
            let (account, payload) = row.map_err(&m)?;
            let v: serde_json::Value = payload
                .and_then(|p| serde_json::from_str(&p).ok())
                .unwrap_or_default();
            match v.get("event").and_then(|e| e.as_str()) {
                Some("reference_enrolled") => {
                    let sha = v
                        .get("sha256")
                        .and_then(|s| s.as_str())
                        .unwrap_or_default()
                        .to_string();
                    out = Some((account.unwrap_or_default(), sha, false));
                }
                Some("reference_retired") => {
                    if let Some(o) = out.as_mut() {
                        o.2 = true;
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// Why a stored reference cannot be trusted, or `None`: its image must hash to the SHA-256 stored
    /// with it and chained at enrolment, for the same account, and a reference the chain retired
    /// must not be active.
    fn reference_problem(&self, r: &Reference, image: &[u8]) -> Result<Option<String>, StoreError> {
        let actual = sha256_hex(image);
        let Some((account, chained_sha, chained_retired)) = self.chained_reference(r.id)? else {
            return Ok(Some(format!(
                "reference #{} of account {} has no enrolment row in the audit chain: it was inserted outside Countersign",
                r.id, r.account
            )));
        };
        if account != r.account {
            return Ok(Some(format!(
                "reference #{} is stored under account {} but was enrolled for account {account}",
                r.id, r.account
            )));
        }
        if actual != chained_sha || r.sha256 != chained_sha {
            return Ok(Some(format!(
                "reference #{} of account {}: the stored image has SHA-256 {actual}, but SHA-256 {chained_sha} was \
                 chained at enrolment: the image was replaced outside Countersign",
                r.id, r.account
            )));
        }
        if chained_retired && !r.retired {
            return Ok(Some(format!(
                "reference #{} of account {} was retired (in the audit chain) but is marked active: it was \
                 reactivated outside Countersign",
                r.id, r.account
            )));
        }
        Ok(None)
    }

    /// An account's active references with their images, each checked against the audit chain
    /// before use (see [`Store::reference_problem`]); a reference that fails is
    /// [`StoreError::Tampered`], so no decision is made on it.
    pub fn checked_references(
        &self,
        account: &str,
    ) -> Result<Vec<(Reference, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for r in self.references(account, false)? {
            let image = self.reference_image(r.id)?;
            if let Some(detail) = self.reference_problem(&r, &image)? {
                return Err(StoreError::Tampered { detail });
            }
            out.push((r, image));
        }
        Ok(out)
    }

    /// Every problem with the tables beside the chain that decisions depend on: reference images,
    /// cached embeddings, logged signature images, and the triggers that protect them. Empty when
    /// all match the chain. Used by `audit verify`.
    pub fn side_table_problems(&self) -> Result<Vec<String>, StoreError> {
        let m = self.mapper();
        let mut problems = Vec::new();
        // Triggers: a missing one was dropped, most likely to edit the table it protects.
        let present: std::collections::HashSet<String> = {
            let mut stmt = self
                .conn()
                .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                .map_err(&m)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(&m)?;
            rows.collect::<Result<_, _>>().map_err(&m)?
        };
        for t in super::migrations::PROTECTING_TRIGGERS {
            if !present.contains(*t) {
                problems.push(format!(
                    "the trigger {t} is missing: it was dropped outside Countersign (the table it protects may have been edited)"
                ));
            }
        }
        // Reference images, every one (retired too: past decisions name them).
        let ids: Vec<String> = {
            let mut stmt = self
                .conn()
                .prepare("SELECT DISTINCT account FROM reference_signatures ORDER BY account")
                .map_err(&m)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(&m)?;
            rows.collect::<Result<_, _>>().map_err(&m)?
        };
        for account in ids {
            for r in self.references(&account, true)? {
                let image = self.reference_image(r.id)?;
                if let Some(p) = self.reference_problem(&r, &image)? {
                    problems.push(p);
                }
            }
        }
        // Enrolments in the chain whose reference row is gone.
        {
            let mut stmt = self
                .conn()
                .prepare(
                    "SELECT l.ref_id FROM ledger l WHERE l.kind = 'account' AND l.ref_id IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM reference_signatures r WHERE r.id = l.ref_id)",
                )
                .map_err(&m)?;
            let rows = stmt.query_map([], |r| r.get::<_, i64>(0)).map_err(&m)?;
            for id in rows {
                let id = id.map_err(&m)?;
                problems.push(format!(
                    "reference #{id} is enrolled in the audit chain but missing from the database: it was deleted"
                ));
            }
        }
        // Cached embeddings.
        let cached: Vec<(String, String, i64, Vec<u8>)> = {
            let mut stmt = self
                .conn()
                .prepare("SELECT image_sha256, model_id, dim, vector FROM reference_embeddings")
                .map_err(&m)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(&m)?;
            rows.collect::<Result<_, _>>().map_err(&m)?
        };
        for (sha, model, dim, blob) in cached {
            if let Some(why) = self.embedding_problem(&sha, &model, dim, &blob)? {
                problems.push(format!(
                    "the cached embedding of image {sha} for model {model} {why}"
                ));
            }
        }
        // Logged signature images against the SHA-256 in their decision rows.
        problems.extend(self.signature_problems()?);
        Ok(problems)
    }
}

/// The name under which Countersign itself appends rows nobody typed (cached embeddings).
pub const SYSTEM_OPERATOR: &str = "countersign";

fn bounded_model_id(model_id: &str) -> Result<(), StoreError> {
    if model_id.is_empty() || model_id.len() > 200 || model_id.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "a model id must be 1 to 200 printable characters".into(),
        ));
    }
    Ok(())
}
