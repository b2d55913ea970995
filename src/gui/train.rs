//! Train (supervisor): pick a dataset folder and a few options, start and stop a training run on a
//! background thread, watch the loss and validation EER, read the model card, and activate the model.

use std::path::PathBuf;

use egui::RichText;
use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::app::{PickKind, Shared};
use super::backend::{TrainOptions, TrainUpdate, UserError};
use super::widgets;
use super::worker::{Event, Job, TaskKind};

pub struct TrainState {
    pub data: String,
    pub out: String,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub synthetic_writers: usize,
    pub triplet: bool,
    pub seed: u64,
    /// Fine-tune (`--init`) from the weights in `init` instead of training a fresh network.
    pub fine_tune: bool,
    /// Weights to fine-tune from (`--init`); used only when `fine_tune` is chosen.
    pub init: String,
    pub running: bool,
    /// After a stopped run: what was kept (the run wrote no model).
    pub kept: Vec<String>,
    pub progress: f32,
    pub status: String,
    /// (global step, loss) and (epoch, validation EER).
    pub losses: Vec<[f64; 2]>,
    pub val_eer: Vec<[f64; 2]>,
    pub card: Vec<(String, String)>,
    pub model_path: Option<PathBuf>,
    pub activate_path: String,
    pub activate_reason: String,
    pub activating: bool,
}

impl Default for TrainState {
    fn default() -> Self {
        Self {
            data: String::new(),
            out: std::env::temp_dir()
                .join("countersign-trained.safetensors")
                .display()
                .to_string(),
            epochs: 5,
            batch_size: 64,
            learning_rate: 1e-3,
            synthetic_writers: 0,
            triplet: true,
            seed: 2026,
            fine_tune: false,
            init: String::new(),
            running: false,
            kept: Vec::new(),
            progress: 0.0,
            status: String::new(),
            losses: Vec::new(),
            val_eer: Vec::new(),
            card: Vec::new(),
            model_path: None,
            activate_path: String::new(),
            activate_reason: String::new(),
            activating: false,
        }
    }
}

impl TrainState {
    pub fn on_event(&mut self, shared: &mut Shared, event: Event) {
        match event {
            Event::Train(TrainUpdate::Step { x, fraction, loss }) => {
                self.losses.push([x, loss]);
                self.progress = fraction;
                self.status = format!("Epoch {:.2} of {}, loss {loss:.4}", x, self.epochs);
            }
            Event::Train(TrainUpdate::Epoch {
                epoch,
                train_loss,
                val_eer,
            }) => {
                self.val_eer.push([epoch as f64, val_eer]);
                self.status = format!(
                    "Epoch {epoch} done: loss {train_loss:.4}, validation EER {}",
                    widgets::pct(val_eer)
                );
            }
            Event::Train(TrainUpdate::Message(m)) => {
                if m.starts_with("Model written") {
                    self.running = false;
                    self.progress = 1.0;
                }
                self.status = m;
            }
            Event::Train(TrainUpdate::Stopped {
                epochs_completed,
                epochs,
                checkpoint,
                best,
            }) => {
                // The bar stays where the run stopped: nothing was completed past it.
                self.running = false;
                self.model_path = None;
                self.status = format!(
                    "Stopped after {epochs_completed} of {epochs} epochs: no model was written."
                );
                self.kept = vec![format!(
                    "Kept: the checkpoint {} (press Start training with the same \"Save model as\" to continue from it).",
                    checkpoint.display()
                )];
                if let Some(b) = best {
                    self.kept.push(format!(
                        "Kept: the best epoch so far, {} (it can be activated below, or fine-tuned).",
                        b.display()
                    ));
                }
            }
            Event::Train(TrainUpdate::Finished { model_path, card }) => {
                self.running = false;
                self.progress = 1.0;
                self.activate_path = model_path.display().to_string();
                self.model_path = Some(model_path);
                self.card = card;
            }
            Event::ModelActivated(msg) => {
                self.activating = false;
                self.activate_reason.clear();
                shared.notice(msg);
            }
            _ => {}
        }
    }

    fn start(&mut self, shared: &mut Shared) {
        if self.data.trim().is_empty() && self.synthetic_writers == 0 {
            shared.error(UserError::new(
                "Choose a dataset folder, or ask for synthetic writers.",
                "A folder holds NNN/ (genuine) and NNN_forg/ (forgeries) per writer, or a CEDAR layout.",
            ));
            return;
        }
        let init = self.init.trim();
        if self.fine_tune && init.is_empty() {
            shared.error(UserError::new(
                "Choose the model to fine-tune from.",
                "Give its .safetensors file (with its .json card beside it), or choose a fresh network.",
            ));
            return;
        }
        self.running = true;
        self.kept.clear();
        self.model_path = None;
        self.losses.clear();
        self.val_eer.clear();
        self.card.clear();
        self.progress = 0.0;
        self.status = "Starting...".into();
        shared.send(Job::Train {
            options: TrainOptions {
                data: PathBuf::from(self.data.trim()),
                out: PathBuf::from(self.out.trim()),
                epochs: self.epochs,
                batch_size: self.batch_size,
                learning_rate: self.learning_rate,
                synthetic_writers: self.synthetic_writers,
                triplet: self.triplet,
                seed: self.seed,
                init: self.fine_tune.then(|| PathBuf::from(init)),
            },
        });
    }

    /// The screen scrolls: after a run, the results (plots, model card) push the lower sections below
    /// the fold of a laptop-sized window.
    pub fn show(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        egui::ScrollArea::vertical()
            .id_salt("train-scroll")
            .auto_shrink(false)
            .show(ui, |ui| self.show_contents(ui, shared));
    }

    fn show_contents(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.heading("Train a model");
        ui.label(
            "Train or fine-tune the signature network on the bank's own archive, on this machine.",
        );
        egui::Grid::new("train-options")
            .num_columns(2)
            .spacing([12.0, 6.0])
            .show(ui, |ui| {
                let l = ui.label("Dataset folder");
                ui.horizontal(|ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut self.data)
                            .hint_text("writer folders or CEDAR layout")
                            .desired_width(360.0),
                    )
                    .labelled_by(l.id);
                    if ui.button("Choose dataset...").clicked() {
                        shared.pick("train-data", PickKind::Folder);
                    }
                });
                ui.end_row();
                let l = ui.label("Save model as");
                ui.horizontal(|ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut self.out)
                            .hint_text("model.safetensors")
                            .desired_width(360.0),
                    )
                    .labelled_by(l.id);
                    if ui.button("Choose file...").clicked() {
                        shared.pick(
                            "train-out",
                            PickKind::Save("countersign-trained.safetensors"),
                        );
                    }
                });
                ui.end_row();
                ui.label("Start from");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut self.fine_tune, false, "a fresh network");
                    ui.radio_value(&mut self.fine_tune, true, "an existing model (fine-tune)");
                });
                ui.end_row();
                let l = ui.label("Fine-tune from");
                ui.add_enabled_ui(self.fine_tune, |ui| {
                    ui.horizontal(|ui| {
                        ui.add(
                            egui::TextEdit::singleline(&mut self.init)
                                .hint_text("model.safetensors (its .json card beside it)")
                                .desired_width(360.0),
                        )
                        .labelled_by(l.id);
                        if ui.button("Choose model...").clicked() {
                            shared.pick("train-init", PickKind::Any);
                        }
                    });
                });
                ui.end_row();
                let l = ui.label("Epochs");
                ui.add(egui::DragValue::new(&mut self.epochs).range(1..=500))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Batch size");
                ui.add(egui::DragValue::new(&mut self.batch_size).range(4..=1024))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Learning rate");
                ui.add(
                    egui::DragValue::new(&mut self.learning_rate)
                        .range(1e-6..=1.0)
                        .speed(1e-4)
                        .max_decimals(6),
                )
                .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Synthetic writers added");
                ui.add(egui::DragValue::new(&mut self.synthetic_writers).range(0..=100_000))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Seed");
                ui.add(egui::DragValue::new(&mut self.seed))
                    .labelled_by(l.id);
                ui.end_row();
                ui.label("Loss");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut self.triplet, true, "triplet (hard mining)");
                    ui.radio_value(&mut self.triplet, false, "contrastive");
                });
                ui.end_row();
            });
        ui.horizontal(|ui| {
            if self.running {
                if ui.button(RichText::new("Stop").size(16.0)).clicked() {
                    shared.send(Job::Stop(TaskKind::Train));
                    self.status =
                        "Stopping after the current step (a checkpoint is written)...".into();
                }
                ui.spinner();
            } else {
                let text = if self.fine_tune {
                    "Start fine-tuning"
                } else {
                    "Start training"
                };
                if ui.button(RichText::new(text).size(16.0).strong()).clicked() {
                    self.start(shared);
                }
            }
            ui.label(&self.status);
        });
        if self.running || self.progress > 0.0 {
            let bar = egui::ProgressBar::new(self.progress.clamp(0.0, 1.0));
            // A stopped run's bar says so, rather than a bare percentage that reads as progress.
            let bar = if self.kept.is_empty() {
                bar.show_percentage()
            } else {
                bar.text(format!("stopped at {:.0}%", self.progress * 100.0))
            };
            ui.add(bar);
        }
        for line in &self.kept {
            ui.colored_label(widgets::AMBER, line);
        }
        ui.separator();
        let w = ui.available_width();
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.label(RichText::new("Training loss").strong());
                let pts = self.losses.clone();
                Plot::new("train-loss")
                    .width(w * 0.32)
                    .height(200.0)
                    .allow_scroll(false)
                    .x_axis_label("epoch")
                    .show(ui, |p| {
                        p.line(Line::new("loss", PlotPoints::new(pts)).color(widgets::BLUE));
                    });
            });
            ui.vertical(|ui| {
                ui.label(RichText::new("Validation EER").strong());
                let pts = self.val_eer.clone();
                Plot::new("train-eer")
                    .width(w * 0.32)
                    .height(200.0)
                    .allow_scroll(false)
                    .legend(Legend::default())
                    .x_axis_label("epoch")
                    .include_y(0.0)
                    .show(ui, |p| {
                        p.line(Line::new("EER", PlotPoints::new(pts.clone())).color(widgets::RED));
                        p.points(
                            egui_plot::Points::new("epochs", pts)
                                .radius(3.0)
                                .color(widgets::RED),
                        );
                    });
            });
            ui.vertical(|ui| {
                ui.label(RichText::new("Model card").strong());
                if self.card.is_empty() {
                    widgets::caption(ui, "Appears when training finishes.");
                }
                egui::Grid::new("train-card")
                    .num_columns(2)
                    .striped(true)
                    .show(ui, |ui| {
                        for (k, v) in &self.card {
                            ui.label(k);
                            ui.add(egui::Label::new(v).truncate());
                            ui.end_row();
                        }
                    });
            });
        });
        ui.separator();
        ui.label(RichText::new("Activate a model").strong());
        widgets::caption(
            ui,
            "Verifications use the active model from now on; the change is logged with your reason.",
        );
        ui.horizontal(|ui| {
            let l = ui.label("Model file");
            ui.add(
                egui::TextEdit::singleline(&mut self.activate_path)
                    .hint_text("path to .safetensors")
                    .desired_width(330.0),
            )
            .labelled_by(l.id);
            if ui.button("Choose model...").clicked() {
                shared.pick("train-activate", PickKind::Any);
            }
        });
        ui.horizontal(|ui| {
            let l = ui.label("Reason");
            ui.add(
                egui::TextEdit::singleline(&mut self.activate_reason)
                    .hint_text("why this model")
                    .desired_width(330.0),
            )
            .labelled_by(l.id);
            let ok = !self.activate_path.trim().is_empty()
                && !self.activate_reason.trim().is_empty()
                && !self.activating;
            if ui
                .add_enabled(ok, egui::Button::new("Activate model"))
                .clicked()
            {
                self.activating = true;
                shared.send(Job::ActivateModel {
                    path: PathBuf::from(self.activate_path.trim()),
                    reason: self.activate_reason.trim().to_string(),
                });
            }
            if self.activating {
                ui.spinner();
            }
        });
    }
}
