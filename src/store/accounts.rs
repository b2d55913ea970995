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

    /// Caches an embedding for (reference, model), replacing an older one. Stored as little-endian f32.
    pub fn cache_embedding(
        &mut self,
        reference_id: i64,
        model_id: &str,
        embedding: &[f32],
    ) -> Result<(), StoreError> {
        if embedding.iter().any(|v| !v.is_finite()) {
            return Err(StoreError::Invalid("an embedding must be finite".into()));
        }
        let blob: Vec<u8> = embedding.iter().flat_map(|v| v.to_le_bytes()).collect();
        let m = self.mapper();
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO embeddings (reference_id, model_id, dim, vector, computed_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![reference_id, model_id, embedding.len() as i64, blob, now_utc()],
            )
            .map_err(&m)?;
        Ok(())
    }

    /// The cached embedding for (reference, model), if any and well-formed.
    pub fn cached_embedding(
        &self,
        reference_id: i64,
        model_id: &str,
    ) -> Result<Option<Vec<f32>>, StoreError> {
        let blob: Option<(i64, Vec<u8>)> = self
            .conn()
            .query_row(
                "SELECT dim, vector FROM embeddings WHERE reference_id = ?1 AND model_id = ?2",
                params![reference_id, model_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.map(e))?;
        Ok(blob.and_then(|(dim, b)| {
            // A malformed cache entry is treated as missing: callers recompute it.
            (b.len() == dim as usize * 4).then(|| {
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            })
        }))
    }
}
