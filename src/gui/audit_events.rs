//! The Audit screen's list of every other ledger row (settings requests, approvals, sign-ins,
//! refusals, actions on decisions, exports), filterable by kind: together with the decisions it
//! accounts for every row number in the chain.

use egui::RichText;

use super::app::Shared;

use super::widgets;
use super::worker::Job;
use crate::store::events::LedgerEvent;

/// How many rows the list shows (newest first).
pub const EVENTS_LIMIT: u64 = 300;

/// The list's state.
#[derive(Default)]
pub struct EventsView {
    pub open: bool,
    pub kind: Option<String>,
    pub kinds: Vec<String>,
    pub rows: Vec<LedgerEvent>,
    pub loading: bool,
}

impl EventsView {
    pub fn refresh(&mut self, shared: &Shared) {
        self.loading = true;
        shared.send(Job::AuditEvents {
            kind: self.kind.clone(),
        });
    }

    pub fn on_loaded(&mut self, kinds: Vec<String>, rows: Vec<LedgerEvent>) {
        self.loading = false;
        self.kinds = kinds;
        self.rows = rows;
    }

    pub fn show(&mut self, ui: &mut egui::Ui, shared: &Shared) {
        let resp = egui::CollapsingHeader::new(
            "Other ledger rows: settings, approvals, sign-ins, refusals, actions",
        )
        .id_salt("audit-events")
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                let l = ui.label("Kind");
                let before = self.kind.clone();
                egui::ComboBox::from_id_salt("audit-event-kind")
                    .selected_text(self.kind.as_deref().unwrap_or("any"))
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut self.kind, None, "any");
                        for k in self.kinds.clone() {
                            ui.selectable_value(&mut self.kind, Some(k.clone()), k);
                        }
                    })
                    .response
                    .labelled_by(l.id);
                if before != self.kind || ui.button("Refresh rows").clicked() {
                    self.refresh(shared);
                }
                if self.loading {
                    ui.spinner();
                }
            });
            if self.rows.is_empty() && !self.loading {
                widgets::caption(ui, "No such rows.");
                return;
            }
            egui::ScrollArea::vertical()
                .id_salt("audit-events-scroll")
                .max_height(220.0)
                .show(ui, |ui| {
                    egui::Grid::new("audit-events-grid")
                        .striped(true)
                        .num_columns(6)
                        .show(ui, |ui| {
                            for h in ["#", "Time (UTC)", "Kind", "Operator", "What", "Reason"] {
                                ui.label(RichText::new(h).strong());
                            }
                            ui.end_row();
                            for r in &self.rows {
                                ui.label(r.id.to_string());
                                ui.label(r.time.replace('T', " ").trim_end_matches('Z'));
                                ui.label(&r.kind);
                                ui.label(&r.operator);
                                let what = match r.ref_id {
                                    Some(id) => format!("{} (row {id})", r.what),
                                    None => r.what.clone(),
                                };
                                ui.label(what);
                                ui.add(
                                    egui::Label::new(r.reason.clone().unwrap_or_default())
                                        .truncate(),
                                );
                                ui.end_row();
                            }
                        });
                });
        });
        // Load once when the section is first opened.
        let open = resp.body_returned.is_some();
        if open && !self.open {
            self.refresh(shared);
        }
        self.open = open;
    }
}
