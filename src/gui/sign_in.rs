//! Sign-in: operator name and PIN, checked by the store on the worker (argon2 takes a moment).

use egui::RichText;

use super::app::Shared;
use super::backend::UserError;
use super::widgets;
use super::worker::Job;

#[derive(Default)]
pub struct SignInState {
    pub name: String,
    pub pin: String,
    pub busy: bool,
    pub error: Option<UserError>,
}

impl SignInState {
    pub fn submit(&mut self, shared: &mut Shared) {
        if self.name.trim().is_empty() || self.pin.is_empty() {
            self.error = Some(UserError::new(
                "Enter your operator name and PIN.",
                "Both fields are needed.",
            ));
            return;
        }
        self.busy = true;
        self.error = None;
        shared.send(Job::SignIn {
            name: self.name.trim().to_string(),
            pin: self.pin.clone(),
        });
    }

    pub fn show(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.add_space(60.0);
        ui.vertical_centered(|ui| {
            ui.heading("Sign in to Countersign");
            ui.label("Every decision is logged under your name.");
            ui.add_space(20.0);
        });
        let width = 340.0;
        let left = ((ui.available_width() - width - 48.0) / 2.0).max(0.0);
        ui.horizontal(|ui| {
            ui.add_space(left);
            egui::Frame::new()
                .fill(egui::Color32::WHITE)
                .stroke(egui::Stroke::new(1.0, egui::Color32::from_gray(200)))
                .corner_radius(8.0)
                .inner_margin(24.0)
                .show(ui, |ui| {
                    // The frame sits in a horizontal row (to centre it); its own contents stack.
                    ui.vertical(|ui| {
                    ui.set_width(width);
                    let l = ui.label("Operator");
                    let name = ui
                        .add(
                            egui::TextEdit::singleline(&mut self.name)
                                .hint_text("your operator name")
                                .desired_width(width),
                        )
                        .labelled_by(l.id);
                    let l = ui.label("PIN");
                    let pin = ui
                        .add(
                            egui::TextEdit::singleline(&mut self.pin)
                                .password(true)
                                .hint_text("PIN")
                                .desired_width(width),
                        )
                        .labelled_by(l.id);
                    let enter = (name.lost_focus() || pin.lost_focus())
                        && ui.input(|i| i.key_pressed(egui::Key::Enter));
                    ui.add_space(8.0);
                    ui.horizontal(|ui| {
                        let clicked = ui
                            .add_enabled(
                                !self.busy,
                                egui::Button::new(RichText::new("Sign in").size(17.0)),
                            )
                            .clicked();
                        if self.busy {
                            ui.spinner();
                            ui.label("Checking...");
                        }
                        if (clicked || enter) && !self.busy {
                            self.submit(shared);
                        }
                    });
                    if let Some(e) = &self.error {
                        ui.add_space(8.0);
                        ui.colored_label(widgets::RED, &e.what);
                        if !e.todo.is_empty() {
                            ui.label(&e.todo);
                        }
                    }
                    ui.add_space(16.0);
                    widgets::caption(ui, format!("Database: {}", shared.config.db_path.display()));
                    if shared.config.db_path.to_string_lossy().contains("target/demo/") {
                        widgets::caption(
                            ui,
                            "Demo database (make run): supervisor / 246810, clerk / 135791, auditor / 975310",
                        );
                    }
                    });
                });
        });
    }
}
