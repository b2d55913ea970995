//! Audit: a filterable decision log that stays smooth at a million rows because only the visible page
//! is fetched from the worker (`ScrollArea::show_rows` tells us which rows are on screen), a detail view
//! with both images, the hash-chain check, and export.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use egui::{Color32, RichText, Sense};

use super::app::{PickKind, Shared};
use super::backend::{
    AuditFilter, ChainReport, DecisionDetail, DecisionRow, action_label, shown_time,
};
use super::widgets;
use super::worker::{Event, Job};
use crate::scoring::Decision;

/// Rows per page fetched from the worker.
pub const PAGE: u64 = 100;
/// Pages kept in memory; the ones farthest from the view are dropped first.
const MAX_PAGES: usize = 24;
const ROW_HEIGHT: f32 = 22.0;

#[derive(Default)]
pub struct AuditState {
    /// The filter being edited, and the one the table shows.
    pub filter: AuditFilter,
    pub applied: AuditFilter,
    pub generation: u64,
    pub count: Option<u64>,
    pub pages: HashMap<u64, Vec<DecisionRow>>,
    pub requested: HashSet<u64>,
    pub loading: bool,
    pub selected: Option<i64>,
    pub detail: Option<DecisionDetail>,
    detail_textures: Vec<(String, egui::TextureHandle)>,
    pub chain: Option<ChainReport>,
    pub chain_running: bool,
    pub exporting: bool,
    /// Open the newest decision's detail once the first page arrives (screenshot mode).
    pub select_first: bool,
    /// Page fetches sent since the filter was applied (the 1,000,000-row test counts these).
    pub fetches: u64,
    /// Why the filter cannot be applied (a bad date), shown instead of the count.
    pub filter_error: Option<super::backend::UserError>,
    /// Where "Export" writes, typed (no file dialog needed).
    pub export_path: String,
    /// Every other ledger row, filterable by kind.
    pub events: super::audit_events::EventsView,
}

impl AuditState {
    /// Applies the filter and reloads the count; pages load as they come into view.
    pub fn refresh(&mut self, shared: &Shared) {
        // A filter that cannot be read (a bad date) says so instead of counting forever.
        if let Err(e) = super::backend::store_filter(&self.filter) {
            self.filter_error = Some(e);
            self.loading = false;
            return;
        }
        self.filter_error = None;
        self.applied = self.filter.clone();
        self.generation += 1;
        self.count = None;
        self.pages.clear();
        self.requested.clear();
        self.fetches = 0;
        self.loading = true;
        shared.send(Job::AuditCount {
            filter: self.applied.clone(),
            generation: self.generation,
        });
    }

    pub fn export_to(&mut self, shared: &mut Shared, path: PathBuf) {
        self.exporting = true;
        shared.send(Job::AuditExport {
            filter: self.applied.clone(),
            path,
        });
    }

    pub fn on_event(&mut self, ctx: &egui::Context, shared: &mut Shared, event: Event) {
        match event {
            Event::AuditCount { count, generation } if generation == self.generation => {
                self.count = Some(count);
                self.loading = false;
            }
            Event::AuditPage {
                offset,
                rows,
                generation,
            } if generation == self.generation => {
                let page = offset / PAGE;
                if self.select_first
                    && page == 0
                    && let Some(r) = rows.first()
                {
                    self.select_first = false;
                    self.selected = Some(r.id);
                    shared.send(Job::AuditDetail { id: r.id });
                }
                self.pages.insert(page, rows);
                self.loading = !self.requested.iter().all(|p| self.pages.contains_key(p));
            }
            Event::AuditDetail(d) => {
                self.detail_textures.clear();
                if let Some(g) = &d.signature
                    && let Some(t) = widgets::gray_texture(ctx, "audit-signature", g)
                {
                    self.detail_textures
                        .push(("Signature as scored (logged)".into(), t));
                }
                if let Some(g) = &d.cheque
                    && let Some(t) = widgets::gray_texture(ctx, "audit-cheque", g)
                {
                    self.detail_textures.push(("Cheque signature".into(), t));
                }
                if let Some(g) = &d.reference
                    && let Some(t) = widgets::gray_texture(ctx, "audit-reference", g)
                {
                    self.detail_textures.push(("Reference".into(), t));
                }
                self.detail = Some(*d);
            }
            Event::Chain(report) => {
                self.chain_running = false;
                self.chain = Some(report);
            }
            _ => {}
        }
    }

    /// Asks for a page unless it is loaded or on its way, and trims the cache around `near`.
    fn want_page(&mut self, shared: &Shared, page: u64) {
        if self.pages.contains_key(&page) || self.requested.contains(&page) {
            return;
        }
        self.requested.insert(page);
        self.fetches += 1;
        self.loading = true;
        shared.send(Job::AuditPage {
            filter: self.applied.clone(),
            offset: page * PAGE,
            limit: PAGE as usize,
            generation: self.generation,
        });
        if self.pages.len() > MAX_PAGES {
            let mut keys: Vec<u64> = self.pages.keys().copied().collect();
            keys.sort_by_key(|k| std::cmp::Reverse(k.abs_diff(page)));
            for k in keys.into_iter().take(self.pages.len() - MAX_PAGES) {
                self.pages.remove(&k);
                self.requested.remove(&k);
            }
        }
    }

    pub fn show(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.heading("Audit log");
        self.filter_bar(ui, shared);
        self.tools(ui, shared);
        self.events.show(ui, shared);
        ui.separator();
        if self.detail.is_some() {
            egui::Panel::right("audit-detail")
                .default_size(360.0)
                .resizable(true)
                .show(ui, |ui| {
                    self.detail_view(ui);
                });
        }
        self.table(ui, shared);
    }

    fn filter_bar(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.horizontal_wrapped(|ui| {
            let field = |ui: &mut egui::Ui, label: &str, v: &mut String, hint: &str, w: f32| {
                let l = ui.label(label);
                ui.add(
                    egui::TextEdit::singleline(v)
                        .hint_text(hint.to_string())
                        .desired_width(w),
                )
                .labelled_by(l.id)
            };
            let mut enter = false;
            for (label, hint, w) in [("From", "YYYY-MM-DD", 125.0), ("To", "YYYY-MM-DD", 125.0)] {
                let v = if label == "From" {
                    &mut self.filter.from
                } else {
                    &mut self.filter.to
                };
                let r = field(ui, label, v, hint, w);
                enter |= r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            }
            let r = field(ui, "Operator", &mut self.filter.operator, "any", 100.0);
            enter |= r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let r = field(ui, "Account", &mut self.filter.account, "any", 100.0);
            enter |= r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            let l = ui.label("Model said");
            let current = self.filter.decision.map(|d| d.as_str()).unwrap_or("any");
            egui::ComboBox::from_id_salt("audit-decision")
                .selected_text(current)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.filter.decision, None, "any");
                    for d in [Decision::Accept, Decision::Refer, Decision::Reject] {
                        ui.selectable_value(&mut self.filter.decision, Some(d), d.as_str());
                    }
                })
                .response
                .labelled_by(l.id);
            let l = ui.label("Final");
            let current = self
                .filter
                .final_decision
                .map(|d| d.as_str())
                .unwrap_or("any");
            egui::ComboBox::from_id_salt("audit-final")
                .selected_text(current)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.filter.final_decision, None, "any");
                    for d in [Decision::Accept, Decision::Refer, Decision::Reject] {
                        ui.selectable_value(&mut self.filter.final_decision, Some(d), d.as_str());
                    }
                })
                .response
                .labelled_by(l.id);
            let l = ui.label("Action");
            let current = self.filter.action.map(|a| a.as_str()).unwrap_or("any");
            egui::ComboBox::from_id_salt("audit-action")
                .selected_text(current)
                .show_ui(ui, |ui| {
                    use crate::store::FinalAction as A;
                    ui.selectable_value(&mut self.filter.action, None, "any");
                    for a in [
                        A::Confirm,
                        A::Override,
                        A::Pending,
                        A::Resolve,
                        A::Abandoned,
                    ] {
                        ui.selectable_value(&mut self.filter.action, Some(a), a.as_str());
                    }
                })
                .response
                .labelled_by(l.id);
            ui.checkbox(&mut self.filter.open_referrals, "Referred, waiting");
            ui.checkbox(&mut self.filter.hand_drawn, "Box drawn by hand");
            if ui.button("Apply filter").clicked() || enter {
                self.refresh(shared);
            }
            if ui.button("Clear").clicked() {
                self.filter = AuditFilter::default();
                self.refresh(shared);
            }
        });
    }

    fn tools(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.horizontal(|ui| {
            match (&self.filter_error, self.count) {
                (Some(e), _) => {
                    ui.colored_label(widgets::RED, format!("{} {}", e.what, e.todo));
                }
                (None, Some(n)) => {
                    ui.label(RichText::new(format!("{n} decisions")).strong());
                }
                (None, None) => {
                    ui.label("Counting...");
                }
            };
            if self.loading {
                ui.spinner();
            }
            ui.separator();
            if ui
                .add_enabled(!self.chain_running, egui::Button::new("Verify chain"))
                .clicked()
            {
                self.chain_running = true;
                self.chain = None;
                shared.send(Job::VerifyChain);
            }
            if self.chain_running {
                ui.spinner();
                ui.label("Checking every row's hash...");
            }
            if let Some(c) = &self.chain {
                let (color, head) = if c.ok {
                    (widgets::GREEN, "Chain intact")
                } else {
                    (widgets::RED, "Chain BROKEN")
                };
                ui.label(
                    RichText::new(format!(
                        "{head}: {} rows checked. {}",
                        c.rows_checked, c.message
                    ))
                    .color(color)
                    .strong(),
                );
            }
            ui.separator();
            if ui
                .add_enabled(!self.exporting, egui::Button::new("Export..."))
                .clicked()
            {
                shared.pick("audit-export", PickKind::Save("countersign-audit.csv"));
            }
            if self.exporting {
                ui.spinner();
                ui.label("Exporting...");
            }
        });
        self.export_path_row(ui, shared);
    }

    /// An output path field for the export, so that it works where no file dialog opens.
    fn export_path_row(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.horizontal(|ui| {
            let l = ui.label("Export to");
            ui.add(
                egui::TextEdit::singleline(&mut self.export_path)
                    .hint_text("audit.csv or audit.jsonl")
                    .desired_width(320.0),
            )
            .labelled_by(l.id);
            let ok = !self.export_path.trim().is_empty() && !self.exporting;
            if ui
                .add_enabled(ok, egui::Button::new("Export filtered rows"))
                .clicked()
            {
                let path = PathBuf::from(self.export_path.trim());
                self.export_to(shared, path);
            }
        });
    }

    fn table(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        const COLS: [(&str, f32); 9] = [
            ("#", 70.0),
            ("Time (UTC)", 150.0),
            ("Operator", 120.0),
            ("Account", 100.0),
            ("Model said", 90.0),
            ("Final", 80.0),
            ("Action", 130.0),
            ("Prob.", 60.0),
            ("Model", 170.0),
        ];
        ui.horizontal(|ui| {
            for (h, w) in COLS {
                ui.add_sized([w, ROW_HEIGHT], egui::Label::new(RichText::new(h).strong()));
            }
        });
        let total = self.count.unwrap_or(0) as usize;
        if total == 0 {
            if self.count.is_some() {
                widgets::caption(ui, "No decisions match the filter.");
            }
            return;
        }
        let mut wanted = Vec::new();
        let mut clicked = None;
        egui::ScrollArea::vertical()
            .id_salt("audit-table")
            .auto_shrink([false, false])
            .show_rows(ui, ROW_HEIGHT, total, |ui, range| {
                for i in range {
                    let page = i as u64 / PAGE;
                    let row = self.pages.get(&page).and_then(|p| p.get(i % PAGE as usize));
                    let Some(r) = row else {
                        wanted.push(page);
                        ui.add_sized(
                            [200.0, ROW_HEIGHT],
                            egui::Label::new(RichText::new("loading...").weak()),
                        );
                        continue;
                    };
                    let selected = self.selected == Some(r.id);
                    let resp = ui
                        .horizontal(|ui| {
                            let cell = |ui: &mut egui::Ui, t: RichText, w: f32| {
                                ui.add_sized([w, ROW_HEIGHT], egui::Label::new(t).truncate());
                            };
                            cell(ui, RichText::new(r.id.to_string()), COLS[0].1);
                            let d = &r.record;
                            cell(ui, RichText::new(shown_time(d.time)), COLS[1].1);
                            cell(ui, RichText::new(&d.operator), COLS[2].1);
                            cell(
                                ui,
                                RichText::new(d.account.as_deref().unwrap_or_default()),
                                COLS[3].1,
                            );
                            cell(
                                ui,
                                RichText::new(d.decision.as_str())
                                    .color(widgets::decision_color(d.decision)),
                                COLS[4].1,
                            );
                            cell(
                                ui,
                                RichText::new(r.final_decision.as_str())
                                    .color(widgets::decision_color(r.final_decision))
                                    .strong(),
                                COLS[5].1,
                            );
                            cell(ui, RichText::new(action_label(r)), COLS[6].1);
                            cell(
                                ui,
                                RichText::new(
                                    d.probability.map_or("-".into(), |p| format!("{p:.3}")),
                                ),
                                COLS[7].1,
                            );
                            cell(ui, RichText::new(&d.model_id), COLS[8].1);
                        })
                        .response;
                    let resp = ui.interact(
                        resp.rect,
                        ui.make_persistent_id(("audit-row", r.id)),
                        Sense::click(),
                    );
                    if selected {
                        ui.painter().rect_filled(
                            resp.rect,
                            2.0,
                            Color32::from_rgba_unmultiplied(31, 95, 191, 40),
                        );
                    }
                    if resp.clicked() {
                        clicked = Some(r.id);
                    }
                }
            });
        wanted.dedup();
        for p in wanted {
            self.want_page(shared, p);
        }
        if let Some(id) = clicked {
            self.selected = Some(id);
            shared.send(Job::AuditDetail { id });
        }
    }

    fn detail_view(&mut self, ui: &mut egui::Ui) {
        let Some(id) = self.detail.as_ref().map(|d| d.row.id) else {
            return;
        };
        ui.horizontal(|ui| {
            ui.heading(format!("Decision #{id}"));
            if ui.button("Close").clicked() {
                self.selected = None;
                self.detail = None;
            }
        });
        let Some(d) = &self.detail else { return };
        egui::ScrollArea::vertical().id_salt("audit-detail-scroll").show(ui, |ui| {
            for (label, tex) in &self.detail_textures {
                ui.label(RichText::new(label).strong());
                widgets::fit_image(ui, tex, egui::vec2(ui.available_width() - 10.0, 140.0));
            }
            if let Some(note) = &d.signature_note {
                ui.colored_label(widgets::AMBER, note);
            }
            if d.cheque.is_none() {
                widgets::caption(
                    ui,
                    "The cheque scan itself is not kept in the database (only its SHA-256); load it on \
                     the Verify screen to see it here.",
                );
            }
            egui::Grid::new("audit-detail-grid").num_columns(2).striped(true).show(ui, |ui| {
                for (k, v) in &d.fields {
                    ui.label(RichText::new(k).strong());
                    ui.add(egui::Label::new(v).wrap());
                    ui.end_row();
                }
            });
        });
    }
}
