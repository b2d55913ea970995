//! Queue: the supervisor's screen for what waits on a second person. The referral queue (cheques
//! whose decision in force is REFER, from the Verify screen, the CLI or a batch) is resolved here to
//! ACCEPT or REJECT with a reason; settings changes (thresholds, calibration, model) asked for by one
//! supervisor take effect only when another approves them here (four eyes). The rules live in the
//! store ([`crate::store::Store::resolve_referral`], [`crate::store::Store::approve_settings_change`]);
//! this screen only calls them.

use egui::{Color32, RichText, Stroke};

use super::app::Shared;
use super::backend::{DecisionRow, UserError, action_label, shown_time};
use super::widgets;
use super::worker::Job;
use crate::scoring::Decision;

/// A settings change waiting for a second supervisor, as the screen shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestView {
    pub id: i64,
    pub time: String,
    pub operator: String,
    pub reason: String,
    /// Before -> after, in words.
    pub what: String,
}

/// Work for the worker from this screen.
#[derive(Clone, Debug)]
pub enum QueueJob {
    Refresh,
    Resolve {
        id: i64,
        to: Decision,
        reason: String,
    },
    Approve {
        id: i64,
        note: String,
    },
    Decline {
        id: i64,
        reason: String,
    },
}

impl QueueJob {
    /// Whether the job may change the settings in force (the status bar is refreshed after it).
    pub fn changes_settings(&self) -> bool {
        matches!(self, QueueJob::Approve { .. })
    }
}

/// What the worker sends back.
#[derive(Clone, Debug)]
pub enum QueueEvent {
    Listed {
        referrals: Vec<DecisionRow>,
        requests: Vec<RequestView>,
    },
    /// An action succeeded: what to tell the supervisor, then the fresh lists.
    Done {
        message: String,
        referrals: Vec<DecisionRow>,
        requests: Vec<RequestView>,
    },
    Failed(UserError),
}

#[derive(Default)]
pub struct QueueState {
    pub referrals: Vec<DecisionRow>,
    pub requests: Vec<RequestView>,
    pub loading: bool,
    pub busy: bool,
    /// The referral being resolved.
    pub selected: Option<i64>,
    pub resolve_reason: String,
    /// The settings request being approved or declined, and the text for it.
    pub selected_request: Option<i64>,
    pub note: String,
    /// Open the first referral and the first change once the lists arrive (screenshot mode).
    pub select_first: bool,
}

impl QueueState {
    pub fn refresh(&mut self, shared: &Shared) {
        self.loading = true;
        shared.send(Job::Queue(QueueJob::Refresh));
    }

    pub fn on_event(&mut self, shared: &mut Shared, event: QueueEvent) {
        self.loading = false;
        self.busy = false;
        match event {
            QueueEvent::Listed {
                referrals,
                requests,
            } => {
                if self.select_first {
                    self.select_first = false;
                    self.selected = referrals.first().map(|r| r.id);
                    self.selected_request = requests.first().map(|r| r.id);
                }
                self.referrals = referrals;
                self.requests = requests;
            }
            QueueEvent::Done {
                message,
                referrals,
                requests,
            } => {
                shared.notice(message);
                self.referrals = referrals;
                self.requests = requests;
                self.resolve_reason.clear();
                self.note.clear();
                self.selected = None;
                self.selected_request = None;
            }
            QueueEvent::Failed(e) => shared.error(e),
        }
        if self
            .selected
            .is_some_and(|id| !self.referrals.iter().any(|r| r.id == id))
        {
            self.selected = None;
        }
    }

    fn send(&mut self, shared: &Shared, job: QueueJob) {
        self.busy = true;
        shared.send(Job::Queue(job));
    }

    pub fn show(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        egui::ScrollArea::vertical()
            .id_salt("queue")
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.heading("Referral queue");
                    if ui.button("Refresh").clicked() {
                        self.refresh(shared);
                    }
                    if self.loading || self.busy {
                        ui.spinner();
                    }
                });
                self.referrals_table(ui, shared);
                ui.add_space(16.0);
                ui.heading("Settings changes waiting for a second supervisor");
                self.requests_table(ui, shared);
            });
    }

    fn referrals_table(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        if self.referrals.is_empty() {
            widgets::caption(ui, "No cheque waits for a supervisor.");
            return;
        }
        widgets::caption(
            ui,
            format!(
                "{} cheque(s) decided REFER wait here, oldest first. Select one, write the reason, and accept or reject it.",
                self.referrals.len()
            ),
        );
        egui::Grid::new("referrals")
            .striped(true)
            .num_columns(8)
            .show(ui, |ui| {
                for h in [
                    "#",
                    "Time (UTC)",
                    "Account",
                    "Cheque",
                    "Amount",
                    "Probability",
                    "Action",
                    "Operator",
                ] {
                    ui.label(RichText::new(h).strong());
                }
                ui.end_row();
                for r in &self.referrals {
                    let selected = self.selected == Some(r.id);
                    if ui.selectable_label(selected, r.id.to_string()).clicked() {
                        self.selected = Some(r.id);
                    }
                    let d = &r.record;
                    ui.label(shown_time(d.time));
                    ui.label(d.account.as_deref().unwrap_or_default());
                    ui.label(d.cheque_id.as_deref().unwrap_or_default());
                    ui.label(
                        d.amount_cents
                            .map(crate::verify::format_amount)
                            .unwrap_or_else(|| "-".into()),
                    );
                    ui.label(
                        d.probability
                            .map(|p| format!("{:.1}%", p * 100.0))
                            .unwrap_or_else(|| "-".into()),
                    );
                    ui.label(action_label(r));
                    ui.label(&d.operator);
                    ui.end_row();
                }
            });
        let Some(id) = self.selected else { return };
        ui.add_space(8.0);
        egui::Frame::new()
            .stroke(Stroke::new(1.0, Color32::from_gray(180)))
            .inner_margin(8.0)
            .show(ui, |ui| {
                ui.label(RichText::new(format!("Resolve referral #{id}")).strong());
                let l = ui.label("Resolution reason");
                ui.add(
                    egui::TextEdit::multiline(&mut self.resolve_reason)
                        .hint_text("why the cheque is accepted or rejected")
                        .desired_rows(2)
                        .desired_width(f32::INFINITY),
                )
                .labelled_by(l.id);
                let ok = !self.resolve_reason.trim().is_empty() && !self.busy;
                ui.horizontal(|ui| {
                    for to in [Decision::Accept, Decision::Reject] {
                        let b = egui::Button::new(
                            RichText::new(format!("Resolve to {}", to.as_str()))
                                .color(Color32::WHITE),
                        )
                        .fill(widgets::decision_color(to));
                        if ui.add_enabled(ok, b).clicked() {
                            let reason = self.resolve_reason.trim().to_string();
                            self.send(shared, QueueJob::Resolve { id, to, reason });
                        }
                    }
                });
                if self.resolve_reason.trim().is_empty() {
                    widgets::caption(ui, "A reason is required.");
                }
            });
    }

    fn requests_table(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        if self.requests.is_empty() {
            widgets::caption(ui, "No settings change waits for approval.");
            return;
        }
        widgets::caption(
            ui,
            "A change asked for by one supervisor takes effect only when another approves it. Both are in the audit chain.",
        );
        let me = shared.operator.as_ref().map(|o| o.name.clone());
        for r in self.requests.clone() {
            egui::Frame::new()
                .stroke(Stroke::new(1.0, Color32::from_gray(180)))
                .inner_margin(8.0)
                .show(ui, |ui| {
                    ui.set_width(ui.available_width());
                    ui.label(RichText::new(format!("Change #{}: {}", r.id, r.what)).strong());
                    widgets::caption(
                        ui,
                        format!("Asked by {} at {}. Reason: {}", r.operator, r.time, r.reason),
                    );
                    let own = me.as_deref() == Some(r.operator.as_str());
                    if own {
                        ui.colored_label(
                            widgets::AMBER,
                            "You asked for this change: another supervisor must approve it. You may withdraw it.",
                        );
                    }
                    let selected = self.selected_request == Some(r.id);
                    if !selected {
                        if ui.button(format!("Review change #{}", r.id)).clicked() {
                            self.selected_request = Some(r.id);
                            self.note.clear();
                        }
                        return;
                    }
                    let l = ui.label("Note or reason");
                    ui.add(
                        egui::TextEdit::singleline(&mut self.note)
                            .hint_text("recorded with the approval; required to decline")
                            .desired_width(f32::INFINITY),
                    )
                    .labelled_by(l.id);
                    ui.horizontal(|ui| {
                        if ui
                            .add_enabled(!own && !self.busy, egui::Button::new("Approve change"))
                            .clicked()
                        {
                            let note = self.note.trim().to_string();
                            self.send(shared, QueueJob::Approve { id: r.id, note });
                        }
                        let decline = if own { "Withdraw change" } else { "Decline change" };
                        if ui
                            .add_enabled(
                                !self.busy && !self.note.trim().is_empty(),
                                egui::Button::new(decline),
                            )
                            .clicked()
                        {
                            let reason = self.note.trim().to_string();
                            self.send(shared, QueueJob::Decline { id: r.id, reason });
                        }
                    });
                });
            ui.add_space(6.0);
        }
    }
}
