//! Calibrate (supervisor): evaluate the model on a labelled folder in the background, look at the score
//! distributions and curves, move the thresholds and watch FAR/FRR change, then save with a reason.

use egui::{Color32, RichText};
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints, VLine};

use super::app::{PickKind, Shared};
use super::backend::{EvalSummary, Role};
use super::widgets;
use super::worker::{Event, Job, TaskKind};
use crate::scoring::Thresholds;

pub struct CalibrateState {
    pub folder: String,
    pub running: bool,
    pub progress: Option<(f32, String)>,
    pub summary: Option<EvalSummary>,
    pub accept: f64,
    pub reject: f64,
    pub target_far: String,
    /// Genuine signatures per writer used as references (as `countersign calibrate --references`).
    pub references: usize,
    pub reason: String,
    pub save_open: bool,
    /// The calibration request's form and reason (a change of its own, apart from thresholds).
    pub calibration_open: bool,
    pub calibration_reason: String,
    pub saving: bool,
    pub saved: Option<String>,
}

impl Default for CalibrateState {
    fn default() -> Self {
        Self {
            folder: String::new(),
            running: false,
            progress: None,
            summary: None,
            accept: 0.5,
            reject: 0.2,
            target_far: format!("{}", 100.0 * crate::assess::DEFAULT_TARGET_FAR),
            references: crate::scoring::EvalConfig::default().references,
            reason: String::new(),
            save_open: false,
            calibration_open: false,
            calibration_reason: String::new(),
            saving: false,
            saved: None,
        }
    }
}

/// Error rates at a pair of thresholds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    /// Forgeries accepted.
    pub far: f64,
    /// FRR, as everywhere in Countersign (`calibrate`, `evaluate`): genuine signatures not ACCEPTED,
    /// whether rejected or referred.
    pub frr: f64,
    /// Genuine signatures rejected outright (part of the FRR).
    pub genuine_rejected: f64,
    /// Forgeries referred to a supervisor.
    pub forgery_referred: f64,
}

/// Below this many genuine or forged signatures the screen warns that the rates mean little.
pub const SMALL_SAMPLE: usize = 30;

/// The Wilson score interval (95 %) of a proportion `p` observed on `n` trials.
pub fn wilson_interval(p: f64, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let n = n as f64;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

fn ci_text(p: f64, n: usize) -> String {
    let (lo, hi) = wilson_interval(p, n);
    format!("{} to {}, n = {n}", widgets::pct(lo), widgets::pct(hi))
}

/// FAR and FRR of the two-threshold rule on labelled probabilities.
pub fn rates(genuine: &[f64], forgery: &[f64], t: Thresholds) -> Rates {
    let frac = |xs: &[f64], f: &dyn Fn(f64) -> bool| {
        if xs.is_empty() {
            0.0
        } else {
            xs.iter().filter(|&&x| f(x)).count() as f64 / xs.len() as f64
        }
    };
    Rates {
        far: frac(forgery, &|p| p >= t.accept),
        frr: frac(genuine, &|p| p < t.accept),
        genuine_rejected: frac(genuine, &|p| p < t.reject),
        forgery_referred: frac(forgery, &|p| p >= t.reject && p < t.accept),
    }
}

/// What a calibration does at the thresholds in force, on the labelled scores of an evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CalibrationEffect {
    /// The highest probability any genuine signature of the evaluation gets.
    pub max_genuine: f64,
    /// The highest probability the model's scores can reach at all (cosine 1), when bounded.
    pub ceiling: Option<f64>,
    /// FAR, FRR and referrals at the thresholds in force.
    pub rates: Rates,
}

/// The effect of `calibration` on the operating point `thresholds`; `None` without a calibration
/// (then no probability exists and every cheque is referred).
pub fn calibration_effect(
    calibration: Option<crate::scoring::Calibration>,
    s: &EvalSummary,
    thresholds: Thresholds,
) -> Option<CalibrationEffect> {
    let c = calibration?;
    let genuine: Vec<f64> = s
        .genuine_scores()
        .iter()
        .map(|&x| c.probability(x))
        .collect();
    let forgery: Vec<f64> = s
        .forgery_scores()
        .iter()
        .map(|&x| c.probability(x))
        .collect();
    Some(CalibrationEffect {
        max_genuine: genuine.iter().copied().fold(0.0, f64::max),
        ceiling: s.score_ceiling.map(|x| c.probability(x)),
        rates: rates(&genuine, &forgery, thresholds),
    })
}

impl CalibrateState {
    pub fn start(&mut self, shared: &mut Shared) {
        let folder = self.folder.trim();
        if folder.is_empty() {
            shared.error(super::backend::UserError::new(
                "Choose a labelled folder first.",
                "It holds one folder per writer (NNN/) with genuine signatures and NNN_forg/ with forgeries.",
            ));
            return;
        }
        self.running = true;
        self.progress = Some((0.0, "Starting".into()));
        self.saved = None;
        shared.send(Job::Evaluate {
            folder: folder.into(),
            references: self.references,
        });
    }

    pub fn on_failed(&mut self) {
        self.running = false;
        self.saving = false;
        self.progress = None;
    }

    pub fn on_event(&mut self, shared: &mut Shared, event: Event) {
        match event {
            Event::Evaluated(summary) => {
                self.running = false;
                self.progress = None;
                // The thresholds in force, else those `countersign calibrate` proposes on this data.
                if let Some(t) = summary.current.or(summary.proposed.map(|c| c.thresholds)) {
                    self.accept = t.accept;
                    self.reject = t.reject.min(t.accept);
                }
                self.summary = Some(*summary);
            }
            Event::ThresholdsSaved(msg) => {
                self.saving = false;
                self.save_open = false;
                self.calibration_open = false;
                self.reason.clear();
                self.calibration_reason.clear();
                shared.notice(msg.clone());
                self.saved = Some(msg);
            }
            _ => {}
        }
    }

    /// The screen scrolls: after a run, the results (plots, model card) push the lower sections below
    /// the fold of a laptop-sized window.
    pub fn show(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        egui::ScrollArea::vertical()
            .id_salt("calibrate-scroll")
            .auto_shrink(false)
            .show(ui, |ui| self.show_contents(ui, shared));
    }

    fn show_contents(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.heading("Calibrate thresholds");
        ui.label("Measure the model on labelled signatures, then choose how strict ACCEPT and REJECT are.");
        ui.horizontal(|ui| {
            let l = ui.label("Labelled folder");
            ui.add(
                egui::TextEdit::singleline(&mut self.folder)
                    .hint_text("folder with NNN/ and NNN_forg/")
                    .desired_width(380.0),
            )
            .labelled_by(l.id);
            if ui.button("Choose folder...").clicked() {
                shared.pick("calibrate-folder", PickKind::Folder);
            }
            let l = ui.label("References per writer");
            ui.add_enabled(
                !self.running,
                egui::DragValue::new(&mut self.references).range(1..=20),
            )
            .labelled_by(l.id);
            if self.running {
                if ui.button("Stop").clicked() {
                    shared.send(Job::Stop(TaskKind::Evaluate));
                }
            } else if ui.button(RichText::new("Evaluate").strong()).clicked() {
                self.start(shared);
            }
        });
        if let Some((f, msg)) = &self.progress {
            ui.add(
                egui::ProgressBar::new(*f)
                    .show_percentage()
                    .animate(true)
                    .text(msg.as_str()),
            );
        }
        let Some(summary) = self.summary.clone() else {
            if !self.running {
                widgets::caption(ui, "No evaluation yet. Choose a folder and press Evaluate.");
            }
            return;
        };
        ui.separator();
        self.controls(ui, shared, &summary);
        ui.separator();
        self.plots(ui, &summary);
    }

    fn controls(&mut self, ui: &mut egui::Ui, shared: &mut Shared, s: &EvalSummary) {
        ui.horizontal(|ui| {
            ui.label(
                RichText::new(format!("EER {}", widgets::pct(s.eer)))
                    .size(18.0)
                    .strong(),
            );
            ui.label(format!(
                "at threshold {:.3}   {} genuine, {} forgeries, {} writers, model {}",
                s.eer_threshold,
                s.genuine.len(),
                s.forgery.len(),
                s.writers,
                s.model_id
            ));
        });
        ui.add_space(4.0);
        ui.spacing_mut().slider_width = (ui.available_width() * 0.45).clamp(200.0, 600.0);
        egui::Grid::new("calibrate-sliders")
            .num_columns(2)
            .show(ui, |ui| {
                threshold_slider(ui, "Accept threshold", widgets::GREEN, &mut self.accept);
                threshold_slider(ui, "Reject threshold", widgets::RED, &mut self.reject);
            });
        if self.reject > self.accept {
            self.reject = self.accept;
        }
        ui.horizontal(|ui| {
            let l = ui.label("Target FAR (%)");
            let r = ui
                .add(
                    egui::TextEdit::singleline(&mut self.target_far)
                        .hint_text("e.g. 1.0")
                        .desired_width(70.0),
                )
                .labelled_by(l.id);
            let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.button("Set thresholds for target FAR").clicked() || enter {
                match self.target_far.trim().trim_end_matches('%').parse::<f64>() {
                    // The rule of `countersign calibrate --target-far`, on the same pairs.
                    Ok(v) if (0.0..100.0).contains(&v) => match s.thresholds_for(v / 100.0) {
                        Ok(c) => {
                            self.accept = c.thresholds.accept;
                            self.reject = c.thresholds.reject.min(self.accept);
                        }
                        Err(e) => shared.error(super::backend::UserError::new(
                            format!("No thresholds for a FAR of {v}%: {e}"),
                            "Evaluate a folder with genuine signatures and forgeries.",
                        )),
                    },
                    _ => shared.error(super::backend::UserError::new(
                        format!("\"{}\" is not a percentage below 100.", self.target_far),
                        "Type a number from 0 to below 100, for example 1 for 1%.",
                    )),
                }
            }
            if ui.button("Use EER threshold").clicked() {
                self.accept = s.eer_threshold;
                self.reject = self.reject.min(self.accept);
            }
        });
        let r = rates(
            &s.genuine,
            &s.forgery,
            Thresholds {
                accept: self.accept,
                reject: self.reject,
            },
        );
        egui::Grid::new("calibrate-rates")
            .num_columns(2)
            .show(ui, |ui| {
                ui.label(
                    RichText::new(format!("FAR {}", widgets::pct(r.far)))
                        .size(17.0)
                        .strong()
                        .color(widgets::RED),
                );
                ui.label(format!(
                    "forgeries that would be ACCEPTED (95% CI {})",
                    ci_text(r.far, s.forgery.len())
                ));
                ui.end_row();
                ui.label(
                    RichText::new(format!("FRR {}", widgets::pct(r.frr)))
                        .size(17.0)
                        .strong()
                        .color(widgets::AMBER),
                );
                ui.label(format!(
                    "genuine signatures NOT ACCEPTED (95% CI {}); {} rejected outright",
                    ci_text(r.frr, s.genuine.len()),
                    widgets::pct(r.genuine_rejected)
                ));
                ui.end_row();
                ui.label(format!(
                    "Referred {}",
                    widgets::pct(r.frr - r.genuine_rejected)
                ));
                ui.label(format!(
                    "genuine signatures sent to a supervisor (and {} of forgeries)",
                    widgets::pct(r.forgery_referred)
                ));
                ui.end_row();
            });
        if s.genuine.len() < SMALL_SAMPLE || s.forgery.len() < SMALL_SAMPLE {
            ui.colored_label(
                widgets::AMBER,
                format!(
                    "Small sample: {} genuine and {} forged signatures. The EER and these rates could be far \
                     off (see the confidence intervals); calibrate on at least {SMALL_SAMPLE} of each, better hundreds.",
                    s.genuine.len(),
                    s.forgery.len()
                ),
            );
        }
        // The status is refreshed after every approval; the evaluation's copy may be older.
        if let Some(cur) = shared.status.thresholds_in_force.or(s.current) {
            widgets::caption(
                ui,
                format!(
                    "In force now: accept {:.3}, reject {:.3}.",
                    cur.accept, cur.reject
                ),
            );
        }
        let supervisor = shared.role() == Some(Role::Supervisor);
        let in_force = shared.status.thresholds_in_force.or(s.current);
        ui.add_space(6.0);
        // Approvals happen on the Queue screen after the evaluation: the status is read again then.
        let cal_now = shared
            .status
            .calibration_in_force
            .or(s.calibration_in_force);
        self.calibration_table(ui, s, in_force, cal_now);
        ui.add_space(6.0);
        ui.horizontal_wrapped(|ui| {
            if ui
                .add_enabled(
                    supervisor && !self.saving,
                    egui::Button::new("Request threshold change..."),
                )
                .clicked()
            {
                self.save_open = true;
                self.calibration_open = false;
            }
            if ui
                .add_enabled(
                    supervisor && !self.saving && s.calibration.is_some(),
                    egui::Button::new("Request calibration change..."),
                )
                .clicked()
            {
                self.calibration_open = true;
                self.save_open = false;
            }
            if !supervisor {
                widgets::caption(ui, "Only a supervisor may request a change.");
            }
            if self.saving {
                ui.spinner();
            }
        });
        if self.save_open {
            self.threshold_form(ui, shared, s, cal_now);
        }
        if self.calibration_open
            && let Some(c) = s.calibration
        {
            self.calibration_form(ui, shared, s, c, in_force, cal_now);
        }
    }

    /// The calibration in force and the one fitted here, side by side, and what each does at the
    /// thresholds in force: a new calibration moves every probability, so the same thresholds can
    /// accept nothing afterwards.
    fn calibration_table(
        &self,
        ui: &mut egui::Ui,
        s: &EvalSummary,
        in_force: Option<Thresholds>,
        cal_now: Option<crate::scoring::Calibration>,
    ) {
        ui.label(RichText::new("Probability calibration: in force now and fitted here").strong());
        let cal_text = |c: Option<crate::scoring::Calibration>| {
            c.map_or_else(
                || "none (every cheque is referred)".to_string(),
                |c| format!("a {:.4}, b {:.4}", c.a, c.b),
            )
        };
        let Some(t) = in_force else {
            widgets::caption(
                ui,
                "No thresholds are in force yet, so no operating point to compare.",
            );
            return;
        };
        let before = calibration_effect(cal_now, s, t);
        let after = calibration_effect(s.calibration, s, t);
        let cell = |e: Option<CalibrationEffect>, f: &dyn Fn(CalibrationEffect) -> String| {
            e.map_or_else(|| "-".to_string(), f)
        };
        egui::Grid::new("calibrate-before-after")
            .num_columns(3)
            .striped(true)
            .show(ui, |ui| {
                ui.label("");
                ui.label(RichText::new("In force now").strong());
                ui.label(RichText::new("Fitted here (new)").strong());
                ui.end_row();
                ui.label("Calibration");
                ui.label(cal_text(cal_now));
                ui.label(cal_text(s.calibration));
                ui.end_row();
                ui.label("Highest probability of a genuine signature here");
                ui.label(cell(before, &|e| widgets::pct(e.max_genuine)));
                ui.label(cell(after, &|e| widgets::pct(e.max_genuine)));
                ui.end_row();
                if s.score_ceiling.is_some() {
                    ui.label("Highest probability any signature can reach");
                    ui.label(cell(before, &|e| {
                        e.ceiling.map_or("-".into(), widgets::pct)
                    }));
                    ui.label(cell(after, &|e| e.ceiling.map_or("-".into(), widgets::pct)));
                    ui.end_row();
                }
                ui.label(format!(
                    "At the thresholds in force (ACCEPT {:.3}, REJECT {:.3}): FAR",
                    t.accept, t.reject
                ));
                ui.label(cell(before, &|e| widgets::pct(e.rates.far)));
                ui.label(cell(after, &|e| widgets::pct(e.rates.far)));
                ui.end_row();
                ui.label("FRR (genuine not ACCEPTED)");
                ui.label(cell(before, &|e| widgets::pct(e.rates.frr)));
                ui.label(cell(after, &|e| widgets::pct(e.rates.frr)));
                ui.end_row();
            });
        if let Some(a) = after
            && a.ceiling.unwrap_or(a.max_genuine).max(a.max_genuine) < t.accept
        {
            ui.colored_label(
                widgets::RED,
                format!(
                    "With the calibration fitted here no signature would reach the ACCEPT threshold in force ({:.3}): \
                     every cheque would be referred or rejected until the thresholds change too.",
                    t.accept
                ),
            );
        }
    }

    fn threshold_form(
        &mut self,
        ui: &mut egui::Ui,
        shared: &mut Shared,
        s: &EvalSummary,
        cal_now: Option<crate::scoring::Calibration>,
    ) {
        let t = Thresholds {
            accept: self.accept,
            reject: self.reject,
        };
        egui::Frame::new().stroke(egui::Stroke::new(1.0, Color32::from_gray(180))).inner_margin(8.0).show(ui, |ui| {
            ui.label(RichText::new("Threshold change").strong());
            ui.label(format!(
                "New thresholds: ACCEPT at {:.3} or more, REJECT below {:.3}. The probability calibration is not \
                 part of this change.",
                self.accept, self.reject
            ));
            // Thresholds are probabilities: what they do depends on the calibration they meet.
            let now = calibration_effect(cal_now, s, t);
            let new = calibration_effect(s.calibration, s, t);
            for (name, e) in [("the calibration in force", now), ("the calibration fitted here", new)] {
                match e {
                    Some(e) => ui.label(format!(
                        "With {name}: FAR {}, FRR {} (genuine not ACCEPTED).",
                        widgets::pct(e.rates.far),
                        widgets::pct(e.rates.frr)
                    )),
                    None => ui.label(format!("With {name}: no probability, every cheque is referred.")),
                };
            }
            ui.colored_label(
                widgets::AMBER,
                "Four eyes: nothing changes until a second supervisor approves on the Queue screen.",
            );
            let l = ui.label("Reason for the threshold change");
            ui.add(
                egui::TextEdit::singleline(&mut self.reason)
                    .hint_text("e.g. quarterly recalibration on 2026 Q4 archive")
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(l.id);
            ui.horizontal(|ui| {
                let ok = !self.reason.trim().is_empty();
                if ui.add_enabled(ok && !self.saving, egui::Button::new("Ask for approval of the thresholds")).clicked() {
                    self.saving = true;
                    shared.send(Job::SaveThresholds {
                        thresholds: t,
                        calibration: None,
                        reason: self.reason.trim().to_string(),
                    });
                }
                if ui.button("Cancel").clicked() {
                    self.save_open = false;
                }
            });
        });
    }

    fn calibration_form(
        &mut self,
        ui: &mut egui::Ui,
        shared: &mut Shared,
        s: &EvalSummary,
        c: crate::scoring::Calibration,
        in_force: Option<Thresholds>,
        cal_now: Option<crate::scoring::Calibration>,
    ) {
        egui::Frame::new().stroke(egui::Stroke::new(1.0, Color32::from_gray(180))).inner_margin(8.0).show(ui, |ui| {
            ui.label(RichText::new("Calibration change").strong());
            ui.label(format!(
                "New probability calibration: a {:.4}, b {:.4} (in force now: {}). The thresholds are not part of \
                 this change.",
                c.a,
                c.b,
                cal_now
                    .map_or_else(|| "none".to_string(), |o| format!("a {:.4}, b {:.4}", o.a, o.b))
            ));
            if let Some(t) = in_force
                && let Some(e) = calibration_effect(Some(c), s, t)
            {
                ui.label(format!(
                    "At the thresholds in force (ACCEPT {:.3}, REJECT {:.3}) it gives FAR {}, FRR {}; the highest \
                     probability of a genuine signature here becomes {}.",
                    t.accept,
                    t.reject,
                    widgets::pct(e.rates.far),
                    widgets::pct(e.rates.frr),
                    widgets::pct(e.max_genuine)
                ));
            }
            ui.colored_label(
                widgets::AMBER,
                "Four eyes: nothing changes until a second supervisor approves on the Queue screen.",
            );
            let l = ui.label("Reason for the calibration change");
            ui.add(
                egui::TextEdit::singleline(&mut self.calibration_reason)
                    .hint_text("e.g. refitted on the 2026 Q4 archive")
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(l.id);
            ui.horizontal(|ui| {
                let ok = !self.calibration_reason.trim().is_empty();
                if ui.add_enabled(ok && !self.saving, egui::Button::new("Ask for approval of the calibration")).clicked() {
                    self.saving = true;
                    shared.send(Job::SaveCalibration {
                        calibration: c,
                        reason: self.calibration_reason.trim().to_string(),
                    });
                }
                if ui.button("Cancel").clicked() {
                    self.calibration_open = false;
                }
            });
        });
    }

    fn plots(&self, ui: &mut egui::Ui, s: &EvalSummary) {
        let w = (ui.available_width() - 24.0) / 3.0;
        let h = (ui.available_height() - 40.0).clamp(160.0, 320.0);
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.label(RichText::new("Scores: genuine (green) and forgeries (red)").strong());
                let bins = 25;
                let hist = |xs: &[f64]| {
                    let mut counts = vec![0usize; bins];
                    for &x in xs {
                        let i = (x.clamp(0.0, 1.0) * bins as f64).floor() as usize;
                        counts[i.min(bins - 1)] += 1;
                    }
                    let n = xs.len().max(1) as f64;
                    counts
                        .into_iter()
                        .enumerate()
                        .map(move |(i, c)| ((i as f64 + 0.5) / bins as f64, c as f64 / n))
                };
                let bar = |(x, y): (f64, f64)| Bar::new(x, y).width(0.9 / bins as f64);
                let genuine: Vec<Bar> = hist(&s.genuine).map(bar).collect();
                let forgery: Vec<Bar> = hist(&s.forgery).map(bar).collect();
                Plot::new("calibrate-hist")
                    .width(w)
                    .height(h)
                    .legend(Legend::default())
                    .allow_scroll(false)
                    .x_axis_label("probability genuine")
                    .y_axis_label("share")
                    .include_x(0.0)
                    .include_x(1.0)
                    .show(ui, |p| {
                        p.bar_chart(BarChart::new("genuine", genuine).color(widgets::GREEN));
                        p.bar_chart(BarChart::new("forgeries", forgery).color(widgets::RED));
                        p.vline(
                            VLine::new("accept threshold", self.accept)
                                .color(widgets::GREEN)
                                .width(2.5),
                        );
                        p.vline(
                            VLine::new("reject threshold", self.reject)
                                .color(widgets::RED)
                                .width(2.5),
                        );
                    });
            });
            let r = rates(
                &s.genuine,
                &s.forgery,
                Thresholds {
                    accept: self.accept,
                    reject: self.accept,
                },
            );
            ui.vertical(|ui| {
                ui.label(RichText::new("ROC: genuine accepted vs forgeries accepted").strong());
                let roc: Vec<[f64; 2]> = s.roc.iter().map(|&(a, b)| [a, b]).collect();
                Plot::new("calibrate-roc")
                    .width(w)
                    .height(h)
                    .allow_scroll(false)
                    .x_axis_label("FAR")
                    .y_axis_label("genuine accepted")
                    .include_x(0.0)
                    .include_x(1.0)
                    .include_y(0.0)
                    .include_y(1.0)
                    .show(ui, |p| {
                        p.line(
                            Line::new("ROC", PlotPoints::new(roc))
                                .color(widgets::BLUE)
                                .width(2.0)
                                .allow_band(false),
                        );
                        p.points(
                            egui_plot::Points::new("accept threshold", vec![[r.far, 1.0 - r.frr]])
                                .radius(5.0)
                                .color(widgets::GREEN),
                        );
                    });
            });
            ui.vertical(|ui| {
                ui.label(RichText::new("DET: FRR vs FAR (normal deviate scale)").strong());
                // A DET plot draws both error rates on the normal-deviate (probit) scale, where
                // normally distributed scores give straight lines; rates are clamped away from 0 and 1.
                let probit = |v: f64| crate::scoring::inverse_normal_cdf(v.clamp(1e-3, 1.0 - 1e-3));
                let det: Vec<[f64; 2]> =
                    s.det.iter().map(|&(a, b)| [probit(a), probit(b)]).collect();
                let pct_axis = |m: egui_plot::GridMark, _r: &std::ops::RangeInclusive<f64>| {
                    let p = crate::math::normal_cdf(m.value) * 100.0;
                    if p < 1.0 {
                        format!("{p:.2}%")
                    } else {
                        format!("{p:.0}%")
                    }
                };
                Plot::new("calibrate-det")
                    .width(w)
                    .height(h)
                    .allow_scroll(false)
                    .x_axis_label("FAR")
                    .y_axis_label("FRR")
                    .x_axis_formatter(pct_axis)
                    .y_axis_formatter(pct_axis)
                    .include_x(probit(0.001))
                    .include_x(probit(0.5))
                    .include_y(probit(0.001))
                    .include_y(probit(0.5))
                    .show(ui, |p| {
                        p.line(
                            Line::new("DET", PlotPoints::new(det))
                                .color(widgets::AMBER)
                                .width(2.0)
                                .allow_band(false),
                        );
                        p.line(
                            Line::new(
                                "EER",
                                PlotPoints::new(vec![
                                    [probit(0.001), probit(0.001)],
                                    [probit(0.999), probit(0.999)],
                                ]),
                            )
                            .color(Color32::GRAY)
                            .style(egui_plot::LineStyle::dashed_dense())
                            .allow_band(false),
                        );
                        p.points(
                            egui_plot::Points::new(
                                "accept threshold",
                                vec![[probit(r.far), probit(r.frr)]],
                            )
                            .radius(5.0)
                            .color(widgets::GREEN),
                        );
                    });
            });
        });
    }
}

/// One labelled, coloured threshold slider on the probability scale, as a row of the sliders grid.
fn threshold_slider(ui: &mut egui::Ui, label: &str, colour: egui::Color32, value: &mut f64) {
    let l = ui.label(RichText::new(label).color(colour).strong());
    ui.add(
        egui::Slider::new(value, 0.0..=1.0)
            .step_by(0.001)
            .fixed_decimals(3),
    )
    .labelled_by(l.id);
    ui.end_row();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_intervals_are_wide_on_tiny_samples() {
        // 0 of 4: the interval still reaches about 49 %.
        let (lo, hi) = wilson_interval(0.0, 4);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.4899).abs() < 1e-3, "{hi}");
        // 10 of 100: about 5.5 % to 17.4 %.
        let (lo, hi) = wilson_interval(0.1, 100);
        assert!(
            (lo - 0.0552).abs() < 1e-3 && (hi - 0.1744).abs() < 1e-3,
            "{lo} {hi}"
        );
    }

    #[test]
    fn rates_count_each_side_of_the_thresholds() {
        let genuine = [0.1, 0.4, 0.6, 0.9];
        let forgery = [0.05, 0.3, 0.7];
        let r = rates(
            &genuine,
            &forgery,
            Thresholds {
                accept: 0.5,
                reject: 0.2,
            },
        );
        // Forgeries at or above 0.5: 0.7 -> 1 of 3.
        assert!((r.far - 1.0 / 3.0).abs() < 1e-12);
        // Genuine below 0.2: 0.1 -> 1 of 4 rejected.
        assert!((r.genuine_rejected - 0.25).abs() < 1e-12);
        // Genuine below 0.5: 0.1 and 0.4 -> 2 of 4.
        assert!((r.frr - 0.5).abs() < 1e-12);
        // Forgeries in [0.2, 0.5): 0.3 -> 1 of 3.
        assert!((r.forgery_referred - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn moving_the_accept_threshold_up_never_raises_far() {
        let genuine: Vec<f64> = (0..50).map(|i| 0.5 + i as f64 / 100.0).collect();
        let forgery: Vec<f64> = (0..50).map(|i| i as f64 / 80.0).collect();
        let mut last = f64::INFINITY;
        for k in 0..=20 {
            let t = k as f64 / 20.0;
            let r = rates(
                &genuine,
                &forgery,
                Thresholds {
                    accept: t,
                    reject: 0.0,
                },
            );
            assert!(r.far <= last);
            last = r.far;
        }
    }
}
