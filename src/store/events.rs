//! Every ledger row that is not a decision (settings requests and changes, approvals, sign-ins,
//! refusals, account changes, exports, actions on decisions), newest first and filterable by kind,
//! so the Audit screen shows the whole chain and its row numbers have no unexplained gaps.

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError};

/// One non-decision ledger row, as the Audit screen lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LedgerEvent {
    pub id: i64,
    pub kind: String,
    pub time: String,
    pub operator: String,
    /// The `event` of a JSON payload, the action of an action row, or the kind of change.
    pub what: String,
    pub reason: Option<String>,
    /// The row this one refers to (a decision, a settings request).
    pub ref_id: Option<i64>,
}

impl Store {
    /// The kinds of non-decision rows in the ledger, sorted.
    pub fn event_kinds(&self) -> Result<Vec<String>, StoreError> {
        let m = self.mapper();
        let mut stmt = self
            .conn()
            .prepare("SELECT DISTINCT kind FROM ledger WHERE kind <> 'decision' ORDER BY kind")
            .map_err(&m)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(&m)?;
        rows.collect::<Result<Vec<String>, _>>().map_err(&m)
    }

    /// The newest `limit` non-decision rows (of one kind when given), newest first.
    pub fn ledger_events(
        &self,
        kind: Option<&str>,
        limit: u64,
    ) -> Result<Vec<LedgerEvent>, StoreError> {
        let m = self.mapper();
        let mut stmt = self
            .conn()
            .prepare(
                "SELECT id, kind, time, operator, COALESCE(json_extract(payload, '$.event'), \
                 json_extract(payload, '$.change.change'), final_action, ''), reason, ref_id \
                 FROM ledger WHERE kind <> 'decision' AND (?1 IS NULL OR kind = ?1) \
                 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(&m)?;
        let rows = stmt
            .query_map(
                params![kind, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| {
                    Ok(LedgerEvent {
                        id: r.get(0)?,
                        kind: r.get(1)?,
                        time: r.get(2)?,
                        operator: r.get(3)?,
                        what: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                        reason: r.get(5)?,
                        ref_id: r.get(6)?,
                    })
                },
            )
            .map_err(&m)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(&m)
    }
}
