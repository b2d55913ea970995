//! Batch: verify a manifest of cheques in the background, with progress, a results table and export.

use std::path::PathBuf;

use egui::RichText;

use super::app::{PickKind, Shared};
use super::backend::{BatchRow, UserError};
use super::widgets;
use super::worker::{Event, Job, TaskKind};
use crate::scoring::Decision;

#[derive(Default)]
pub struct BatchState {
    pub manifest: String,
    pub running: bool,
    pub done: u64,
    pub total: u64,
    pub rows: Vec<BatchRow>,
    pub exporting: bool,
    pub finished: bool,
    /// Where "Export results" writes, typed (no file dialog needed).
    pub export_path: String,
    /// The row whose detail is shown (index into `rows`).
    pub selected: Option<usize>,
}

impl BatchState {
    pub fn start(&mut self, shared: &mut Shared) {
        if self.manifest.trim().is_empty() {
            shared.error(UserError::new(
                "Choose a manifest first.",
                "A CSV with columns cheque_id, cheque (image path), account or reference, and optionally amount.",
            ));
            return;
        }
        self.running = true;
        self.finished = false;
        self.done = 0;
        self.total = 0;
        self.rows.clear();
        self.selected = None;
        shared.send(Job::Batch {
            manifest: PathBuf::from(self.manifest.trim()),
        });
    }

    pub fn export_to(&mut self, shared: &mut Shared, path: PathBuf) {
        self.exporting = true;
        shared.send(Job::BatchExport {
            rows: self.rows.clone(),
            path,
        });
    }

    pub fn on_event(&mut self, shared: &mut Shared, event: Event) {
        match event {
            Event::BatchRows { done, total, rows } => {
                self.done = done;
                self.total = total;
                self.rows.extend(rows);
            }
            Event::BatchDone(rows) => {
                // The status carries the X9 account rule; a supervisor may have changed it.
                shared.send(Job::Status);
                self.running = false;
                self.finished = true;
                self.done = rows.len() as u64;
                self.total = self.total.max(self.done);
                self.rows = rows;
            }
            _ => {}
        }
    }

    pub fn show(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.heading("Batch verification");
        ui.label(
            "Verify a night's cheques from a manifest (CSV) or an X9.37 / X9.100-187 image cash letter; \
             every cheque gets an audit row.",
        );
        ui.label(format!(
            "X9 account rule (which part of the on-us field is the account): {}",
            shared.status.x9_account_rule
        ))
        .on_hover_text(
            "A regular expression; its group `account` is the account number. Set by a supervisor with \
             `countersign settings x9-account-rule`.",
        );
        ui.horizontal(|ui| {
            let l = ui.label("Manifest");
            ui.add(
                egui::TextEdit::singleline(&mut self.manifest)
                    .hint_text("cheques.csv or cashletter.x937")
                    .desired_width(380.0),
            )
            .labelled_by(l.id);
            if ui.button("Choose manifest...").clicked() {
                shared.pick("batch-manifest", PickKind::Any);
            }
            if self.running {
                if ui.button("Stop").clicked() {
                    shared.send(Job::Stop(TaskKind::Batch));
                }
            } else if ui.button(RichText::new("Run batch").strong()).clicked() {
                self.start(shared);
            }
            let can_export = !self.rows.is_empty() && !self.running && !self.exporting;
            if ui
                .add_enabled(can_export, egui::Button::new("Export results..."))
                .clicked()
            {
                shared.pick(
                    "batch-export",
                    PickKind::Save("countersign-batch-results.csv"),
                );
            }
        });
        if self.running || self.finished {
            let f = if self.total > 0 {
                self.done as f32 / self.total as f32
            } else {
                0.0
            };
            let text = if self.total > 0 {
                format!("{} of {} cheques", self.done, self.total)
            } else {
                "Reading manifest...".into()
            };
            ui.add(egui::ProgressBar::new(f).text(text).animate(self.running));
        }
        if !self.rows.is_empty() {
            let count = |o: &str| self.rows.iter().filter(|r| r.outcome == o).count();
            ui.horizontal(|ui| {
                for d in [Decision::Accept, Decision::Refer, Decision::Reject] {
                    ui.label(
                        RichText::new(format!("{} {}", count(d.as_str()), d.as_str()))
                            .color(widgets::decision_color(d))
                            .strong(),
                    );
                }
                ui.label(RichText::new(format!("{} ERROR", count("ERROR"))).color(widgets::RED));
            });
        }
        self.export_path_row(ui, shared);
        self.row_detail(ui);
        ui.separator();
        let widths = [160.0, 110.0, 80.0, 80.0, 80.0];
        ui.horizontal(|ui| {
            for (h, w) in ["Cheque", "Account", "Outcome", "Prob.", "Score"]
                .iter()
                .zip(widths)
            {
                ui.add_sized([w, 20.0], egui::Label::new(RichText::new(*h).strong()));
            }
            ui.label(RichText::new("Why").strong());
        });
        let mut clicked = None;
        egui::ScrollArea::vertical()
            .id_salt("batch-rows")
            .auto_shrink([false, false])
            .show_rows(ui, 20.0, self.rows.len(), |ui, range| {
                let first = range.start;
                for (k, r) in self.rows[range].iter().enumerate() {
                    let row = ui.horizontal(|ui| {
                        let color = match r.outcome.as_str() {
                            "ACCEPT" => widgets::GREEN,
                            "REFER" => widgets::AMBER,
                            _ => widgets::RED,
                        };
                        ui.add_sized([widths[0], 20.0], egui::Label::new(&r.cheque_id).truncate());
                        ui.add_sized([widths[1], 20.0], egui::Label::new(&r.account).truncate());
                        ui.add_sized(
                            [widths[2], 20.0],
                            egui::Label::new(RichText::new(&r.outcome).color(color).strong()),
                        );
                        let p = r.probability.map(|p| format!("{p:.3}")).unwrap_or_default();
                        ui.add_sized([widths[3], 20.0], egui::Label::new(p));
                        let s = r.score.map(|s| format!("{s:.3}")).unwrap_or_default();
                        ui.add_sized([widths[4], 20.0], egui::Label::new(s));
                        let why = if r.error.is_empty() {
                            &r.reason
                        } else {
                            &r.error
                        };
                        ui.add(egui::Label::new(why).truncate());
                    });
                    let i = first + k;
                    let resp = ui.interact(
                        row.response.rect,
                        ui.make_persistent_id(("batch-row", i)),
                        egui::Sense::click(),
                    );
                    if self.selected == Some(i) {
                        ui.painter().rect_filled(
                            row.response.rect,
                            2.0,
                            egui::Color32::from_rgba_unmultiplied(31, 95, 191, 40),
                        );
                    }
                    if resp.clicked() {
                        clicked = Some(i);
                    }
                }
            });
        if clicked.is_some() {
            self.selected = clicked;
        }
    }

    /// An output path field for the export, so that it works where no file dialog opens.
    fn export_path_row(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        if self.rows.is_empty() {
            return;
        }
        ui.horizontal(|ui| {
            let l = ui.label("Export to");
            ui.add(
                egui::TextEdit::singleline(&mut self.export_path)
                    .hint_text("results.csv")
                    .desired_width(380.0),
            )
            .labelled_by(l.id);
            let ok = !self.export_path.trim().is_empty() && !self.running && !self.exporting;
            if ui.add_enabled(ok, egui::Button::new("Export")).clicked() {
                let path = PathBuf::from(self.export_path.trim());
                self.export_to(shared, path);
            }
            if self.exporting {
                ui.spinner();
            }
        });
    }

    /// The selected row in full: every field, wrapped.
    fn row_detail(&mut self, ui: &mut egui::Ui) {
        let Some(r) = self.selected.and_then(|i| self.rows.get(i)) else {
            return;
        };
        let mut close = false;
        egui::Frame::new()
            .stroke(egui::Stroke::new(1.0, egui::Color32::from_gray(180)))
            .inner_margin(8.0)
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.label(RichText::new(format!("Cheque {}", r.cheque_id)).strong());
                    close = ui.button("Close").clicked();
                });
                egui::Grid::new("batch-row-detail")
                    .num_columns(2)
                    .show(ui, |ui| {
                        let opt =
                            |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.4}"));
                        for (k, v) in [
                            ("Account", r.account.clone()),
                            ("Outcome", r.outcome.clone()),
                            ("Probability", opt(r.probability)),
                            ("Score", opt(r.score)),
                            ("Why", r.reason.clone()),
                            ("Error", r.error.clone()),
                        ] {
                            if v.is_empty() {
                                continue;
                            }
                            ui.label(RichText::new(k).strong());
                            ui.add(egui::Label::new(v).wrap());
                            ui.end_row();
                        }
                    });
                if r.outcome == "REFER" {
                    widgets::caption(ui, "Referred: it waits on the supervisors' Queue screen.");
                }
            });
        if close {
            self.selected = None;
        }
    }
}
