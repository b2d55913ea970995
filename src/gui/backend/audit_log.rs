//! Audit queries: the operator's recent decisions, the Audit screen's filtered pages and details,
//! the chain check and the export.

use std::path::Path;

use super::advice::{UserError, store_error};
use super::raster::preview;
use super::session::REFERENCE_PREVIEW;
use super::view::{AuditFilter, ChainReport, DecisionDetail, DecisionRow, Gray, Slot};
use super::{Backend, BackendConfig, open_store};

/// A number with four decimals, or what its absence means.
fn fmt_opt(v: Option<f64>, none: &str) -> String {
    v.map_or_else(|| none.to_string(), |v| format!("{v:.4}"))
}

/// A date field of the Audit screen, read by the same rule as `countersign audit --from/--to`.
fn parse_day(s: &str, what: &str) -> Result<Option<time::OffsetDateTime>, UserError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    crate::store::parse_time(s).map(Some).map_err(|_| {
        UserError::new(
            format!("{what} date \"{s}\" is not a date."),
            "Write dates as YYYY-MM-DD, e.g. 2026-11-28.",
        )
    })
}

/// The store's filter for the Audit screen's fields (`to` is inclusive: the whole day).
pub fn store_filter(f: &AuditFilter) -> Result<crate::store::DecisionFilter, UserError> {
    let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    Ok(crate::store::DecisionFilter {
        from: parse_day(&f.from, "From")?,
        to: parse_day(&f.to, "To")?.map(|d| d + time::Duration::days(1)),
        decision: f.decision,
        operator: text(&f.operator),
        account: text(&f.account),
        cheque_id: None,
        final_decision: f.final_decision,
        action: f.action,
        open_referrals: f.open_referrals,
        hand_drawn: f.hand_drawn,
    })
}

/// Long tasks run on their own threads with their own database connection, so the worker stays free
/// for the clerk's verifications.
pub fn verify_chain(config: &BackendConfig) -> Result<ChainReport, UserError> {
    let store = open_store(config)?;
    let r = store
        .verify_chain()
        .map_err(|e| store_error("The chain could not be checked", e))?;
    let message = match &r.first_bad {
        None => match &r.head {
            Some(h) => format!(
                "Head row {} hash {}...",
                h.row_id,
                h.hash.chars().take(16).collect::<String>()
            ),
            None => "The log is empty.".into(),
        },
        Some((id, why)) => format!(
            "First bad row {id}: {why}. Keep this database as evidence and tell your supervisor."
        ),
    };
    let differing = store
        .operators_differing_from_chain()
        .map_err(|e| store_error("The operators could not be checked", e))?;
    if r.is_intact() && !differing.is_empty() {
        let list: Vec<String> = differing.into_iter().map(|(_, why)| why).collect();
        return Ok(ChainReport {
            ok: false,
            rows_checked: r.rows_checked,
            message: format!(
                "The chain is intact, but the operators table was changed outside Countersign: {}. \
                 Keep this database as evidence and tell your supervisor.",
                list.join("; ")
            ),
        });
    }
    // The same checks as `audit verify` beside the chain: reference images, cached embeddings,
    // logged signatures and the protecting triggers.
    let side = store
        .side_table_problems()
        .map_err(|e| store_error("The stored images could not be checked", e))?;
    if r.is_intact() && !side.is_empty() {
        return Ok(ChainReport {
            ok: false,
            rows_checked: r.rows_checked,
            message: format!(
                "The chain is intact, but {} problem(s) were found beside it: {}. Keep this database as evidence \
                 and tell your supervisor.",
                side.len(),
                side.join("; ")
            ),
        });
    }
    Ok(ChainReport {
        ok: r.is_intact(),
        rows_checked: r.rows_checked,
        message,
    })
}

/// Exports the filtered decisions: CSV, or JSON Lines when the file name ends in `.jsonl`/`.json`.
pub fn export_audit(
    config: &BackendConfig,
    operator: &crate::store::Operator,
    filter: &AuditFilter,
    out: &Path,
) -> Result<String, UserError> {
    let f = store_filter(filter)?;
    let format = match out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("jsonl" | "json" | "ndjson") => crate::store::ExportFormat::Jsonl,
        _ => crate::store::ExportFormat::Csv,
    };
    let mut store = open_store(config)?;
    let summary = store
        .export_decisions(operator, &f, format, out, &mut |_| {})
        .map_err(|e| store_error("The export failed", e))?;
    Ok(format!(
        "Exported {} decisions to {} (SHA-256 in {}; the export is logged).",
        summary.rows,
        out.display(),
        summary.sha256_path.display()
    ))
}

impl Backend {
    /// The signed-in operator's latest decisions.
    pub fn recent(&mut self, limit: usize) -> Result<Vec<DecisionRow>, UserError> {
        let Some(op) = self.operator.clone() else {
            return Ok(Vec::new());
        };
        let filter = crate::store::DecisionFilter {
            operator: Some(op.name().to_string()),
            ..Default::default()
        };
        let rows = self
            .store()?
            .query_decisions(&filter, 0, limit as u64)
            .map_err(|e| store_error("Could not read recent decisions", e))?;
        Ok(rows)
    }

    fn require_audit(&self) -> Result<(), UserError> {
        let op = self.require_operator()?;
        op.require(crate::store::Permission::ReadAudit)
            .map_err(|e| store_error("The audit log is closed to you", e))
    }

    pub fn count_decisions(&mut self, filter: &AuditFilter) -> Result<u64, UserError> {
        self.require_audit()?;
        let f = store_filter(filter)?;
        self.store()?
            .count_decisions(&f)
            .map_err(|e| store_error("Could not count decisions", e))
    }

    pub fn query_decisions(
        &mut self,
        filter: &AuditFilter,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<DecisionRow>, UserError> {
        self.require_audit()?;
        let f = store_filter(filter)?;
        let rows = self
            .store()?
            .query_decisions(&f, offset, limit as u64)
            .map_err(|e| store_error("Could not read decisions", e))?;
        Ok(rows)
    }

    pub fn decision_detail(&mut self, id: i64) -> Result<DecisionDetail, UserError> {
        self.require_audit()?;
        let store = self.store()?;
        let row = store
            .decision(id)
            .map_err(|e| store_error("Could not read the decision", e))?
            .ok_or_else(|| {
                UserError::new(
                    format!("Decision {id} does not exist."),
                    "Refresh the list.",
                )
            })?;
        let r = &row.record;
        // The store keeps reference images (not cheques); find the compared one by its hash.
        let mut reference = None;
        if let Some(acct) = &r.account
            && let Ok(refs) = store.references(acct, true)
            && let Some(found) = refs
                .iter()
                .find(|x| r.reference_sha256s.contains(&x.sha256))
            && let Ok(bytes) = store.reference_image(found.id)
            && let Ok(g) = crate::imaging::decode::decode_bytes(
                &bytes,
                "reference",
                &crate::imaging::decode::DecodeLimits::default(),
            )
        {
            reference = Some(preview(&g, REFERENCE_PREVIEW.0, REFERENCE_PREVIEW.1).0);
        }
        // The signature as scored, from the store, checked against the hash in the chained row.
        let (signature, signature_note) = match store.decision_signature(id) {
            Ok(Some(png)) => match crate::imaging::decode::decode_bytes(
                &png,
                "logged signature",
                &crate::imaging::decode::DecodeLimits::default(),
            ) {
                Ok(g) => (
                    Some(Gray {
                        width: g.width() as usize,
                        height: g.height() as usize,
                        pixels: g.into_raw(),
                    }),
                    None,
                ),
                Err(e) => (None, Some(format!("The logged signature could not be read: {e}"))),
            },
            Ok(None) => (
                None,
                Some("No signature image is logged with this decision (none was found on the cheque).".into()),
            ),
            Err(e) => (None, Some(e.to_string())),
        };
        // A cheque still loaded on the Verify screen with the same hash can be shown too.
        let cheque = self
            .images
            .get(&Slot::Cheque)
            .filter(|d| d.sha256 == r.cheque_sha256)
            .map(|d| preview(&d.gray, REFERENCE_PREVIEW.0, REFERENCE_PREVIEW.1).0);
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let mut fields = vec![
            ("Time (UTC)".to_string(), crate::store::format_time(r.time)),
            ("Operator".into(), r.operator.clone()),
            ("Account".into(), opt(&r.account)),
            ("Cheque id".into(), opt(&r.cheque_id)),
            ("Model decision".into(), r.decision.as_str().into()),
            (
                "Score".into(),
                fmt_opt(r.raw_score, "none (no signature scored)"),
            ),
            (
                "Probability".into(),
                fmt_opt(r.probability, "none (not calibrated)"),
            ),
            (
                "Thresholds".into(),
                format!("accept {:.3}, reject {:.3}", r.t_accept, r.t_reject),
            ),
            ("Final decision".into(), row.final_decision.as_str().into()),
            ("Action".into(), row.effective_action().as_str().into()),
            (
                "Signature box".into(),
                if r.hand_drawn_box {
                    "drawn by hand by the operator".into()
                } else {
                    "as found".into()
                },
            ),
            ("Image".into(), image_kind_text(r.image_kind.as_ref())),
        ];
        if row.in_referral() {
            fields.push((
                "Referral".into(),
                "waiting for a supervisor (Queue screen)".into(),
            ));
        }
        if let Some(a) = &row.action {
            fields.push(("Action by".into(), format!("{} at {}", a.operator, a.time)));
        }
        if let Some(reason) = row.effective_reason().filter(|s| !s.is_empty()) {
            fields.push(("Reason".into(), reason.to_string()));
        }
        fields.extend([
            (
                "Crop box".into(),
                r.crop
                    .map(|c| format!("x {} y {} w {} h {}", c.x, c.y, c.w, c.h))
                    .unwrap_or_else(|| "-".into()),
            ),
            ("Model".into(), r.model_id.clone()),
            ("Device".into(), r.device.clone()),
            ("Latency".into(), format!("{:.1} ms", r.latency_ms)),
            ("Source".into(), r.source.as_str().into()),
            ("Cheque SHA-256".into(), r.cheque_sha256.clone()),
            ("Reference SHA-256".into(), r.reference_sha256s.join("\n")),
            ("Row hash".into(), row.hash.clone()),
        ]);
        Ok(DecisionDetail {
            row,
            signature,
            signature_note,
            cheque,
            reference,
            fields,
        })
    }
}

impl Backend {
    /// The Audit screen's other ledger rows: the kinds present and the newest rows of `kind` (all
    /// kinds when `None`), at most [`crate::gui::audit_events::EVENTS_LIMIT`].
    pub fn ledger_events(
        &mut self,
        kind: Option<&str>,
    ) -> Result<(Vec<String>, Vec<crate::store::events::LedgerEvent>), UserError> {
        let op = self.require_operator()?;
        op.require(crate::store::Permission::ReadAudit)
            .map_err(|e| store_error("The audit log is closed to you", e))?;
        let store = self.store()?;
        let kinds = store
            .event_kinds()
            .map_err(|e| store_error("Could not read the ledger", e))?;
        let rows = store
            .ledger_events(kind, crate::gui::audit_events::EVENTS_LIMIT)
            .map_err(|e| store_error("Could not read the ledger", e))?;
        Ok((kinds, rows))
    }
}

/// The Audit screen's words for what the operator said the image is and what it was taken as.
pub(crate) fn image_kind_text(k: Option<&crate::store::ImageKind>) -> String {
    let Some(k) = k else {
        return "—  (not recorded)".into();
    };
    let taken = match k.resolved.as_str() {
        "signature" => "a bare signature",
        "cheque" => "a cheque",
        other => other,
    };
    if k.chosen == "auto" {
        format!("taken as {taken} (kind left to the image's size)")
    } else {
        format!("taken as {taken}, as the operator chose")
    }
}
