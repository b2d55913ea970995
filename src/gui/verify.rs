//! Verify: reference signature(s) and a cheque in, ACCEPT / REFER / REJECT out, confirmed or overridden
//! by the clerk and logged.
//!
//! Files arrive through [`VerifyState::begin_load`] whatever the route (drop, dialog, typed path); the
//! worker decodes them and finds the signature box, which the clerk can drag and resize on the cheque.
//! Verification starts by itself once a cheque and a reference are loaded, and again after the box moves.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use egui::{Color32, Pos2, Rect, RichText, Sense, Stroke, TextureHandle, Vec2};

use super::app::{PickKind, Shared};
use super::backend::{
    DecisionRow, FinalAction, LoadedImage, PixelBox, Role, Slot, UserError, VerifyOutcome,
    shown_time,
};
use super::widgets;
use super::worker::{Event, Job};
use crate::scoring::Decision;

/// How many reference slots the screen offers for files (an account may have more; they load
/// through the account and are all shown).
pub const REFERENCE_SLOTS: usize = 3;

/// The smallest signature box a drag may leave, in screen points.
pub const MIN_BOX: Vec2 = Vec2::new(24.0, 12.0);

/// How long a result must have been on screen before the keyboard may confirm it, in seconds: a
/// double key press or a scanner's carriage return must not confirm a result nobody has seen.
pub const CONFIRM_AFTER_S: f64 = 0.8;

/// A loaded image and its texture.
pub struct SlotView {
    pub info: LoadedImage,
    pub texture: Option<TextureHandle>,
}

/// A verification result with its textures.
pub struct OutcomeView {
    pub outcome: VerifyOutcome,
    pub questioned: Option<TextureHandle>,
    pub references: Vec<TextureHandle>,
    pub overlay: Option<TextureHandle>,
}

#[derive(Default)]
pub struct VerifyState {
    pub references: HashMap<usize, SlotView>,
    pub cheque: Option<SlotView>,
    pub loading: HashSet<Slot>,
    pub slot_errors: HashMap<Slot, UserError>,
    pub paths: HashMap<Slot, String>,
    pub account: String,
    /// The cheque's amount as typed; amount rules (stricter thresholds above a limit) use it.
    pub amount: String,
    pub account_loaded: Option<String>,
    /// The holder's name of the account whose references are loaded.
    pub account_holder: Option<String>,
    pub account_loading: bool,
    /// The box the clerk set by hand, in cheque pixels; `None` uses the detected box.
    pub crop: Option<PixelBox>,
    /// What the cheque slot's image is: auto (by its height), a cheque, or a bare signature; the
    /// same rule as `verify --kind` and the batch manifest's `kind` column.
    pub cheque_kind: crate::verify::InputKind,
    pub outcome: Option<OutcomeView>,
    pub verify_error: Option<UserError>,
    pub recording: bool,
    pub recorded: Option<DecisionRow>,
    pub override_open: bool,
    pub override_decision: Option<Decision>,
    pub override_reason: String,
    pub recent: Vec<DecisionRow>,
    /// When (egui time) the current result appeared; the keyboard confirms only a while after.
    pub shown_at: Option<f64>,
    /// A shown result that was withdrawn before a decision; logged as `abandoned` at once.
    abandoned: Option<Box<super::backend::VerifyOutcome>>,
    generation: u64,
    sent_generation: Option<u64>,
    outstanding: usize,
    failed_generation: Option<u64>,
    /// Screen rectangles of the drop zones from the last frame, to route drops by pointer position.
    zones: Vec<(Slot, Rect)>,
    drag: Option<DragMode>,
    /// The box (screen points) and the pointer where the current drag began.
    drag_origin: Option<(Rect, Pos2)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum DragMode {
    Move,
    /// A corner: 0 top left, 1 top right, 2 bottom right, 3 bottom left.
    Corner(usize),
    /// A new box drawn from the point where the drag began.
    Draw,
}

/// The smallest box, no larger than `bounds`, grown from `r` and moved inside `bounds`.
fn at_least_min(r: Rect, bounds: Rect) -> Rect {
    let min = MIN_BOX.min(bounds.size());
    let mut r = r;
    if r.width() < min.x {
        r.max.x = r.min.x + min.x;
    }
    if r.height() < min.y {
        r.max.y = r.min.y + min.y;
    }
    let dx = (bounds.max.x - r.max.x).min(0.0) + (bounds.min.x - r.min.x).max(0.0);
    let dy = (bounds.max.y - r.max.y).min(0.0) + (bounds.min.y - r.min.y).max(0.0);
    r.translate(egui::vec2(dx, dy))
}

/// `v` within `[lo, hi]`; `lo` wins when the range is empty (never panics, unlike `f32::clamp`).
fn clamp_to(v: f32, lo: f32, hi: f32) -> f32 {
    v.min(hi).max(lo)
}

/// Where a drag leaves the signature box, in screen points: `start` is the box when the drag began
/// and `moved` how far the pointer has gone since. The box stays on the cheque (`bounds`) and never
/// gets smaller than [`MIN_BOX`]: a corner dragged past the opposite one stops short of it, and the
/// opposite corner stays where it was.
fn dragged_box(start: Rect, mode: DragMode, moved: Vec2, bounds: Rect) -> Rect {
    let min = MIN_BOX.min(bounds.size());
    match mode {
        DragMode::Move => {
            let s = at_least_min(start, bounds);
            let dx = clamp_to(moved.x, bounds.min.x - s.min.x, bounds.max.x - s.max.x);
            let dy = clamp_to(moved.y, bounds.min.y - s.min.y, bounds.max.y - s.max.y);
            s.translate(egui::vec2(dx, dy))
        }
        DragMode::Corner(i) => {
            let s = at_least_min(start, bounds);
            let mut r = s;
            if matches!(i, 0 | 3) {
                r.min.x = clamp_to(s.min.x + moved.x, bounds.min.x, s.max.x - min.x);
            } else {
                r.max.x = clamp_to(s.max.x + moved.x, s.min.x + min.x, bounds.max.x);
            }
            if matches!(i, 0 | 1) {
                r.min.y = clamp_to(s.min.y + moved.y, bounds.min.y, s.max.y - min.y);
            } else {
                r.max.y = clamp_to(s.max.y + moved.y, s.min.y + min.y, bounds.max.y);
            }
            r
        }
        DragMode::Draw => {
            // From the point where the drag began to the pointer, either way round.
            let anchor = bounds.clamp(start.min);
            let to = bounds.clamp(anchor + moved);
            at_least_min(Rect::from_two_pos(anchor, to), bounds)
        }
    }
}

impl VerifyState {
    pub fn busy(&self) -> bool {
        !self.loading.is_empty() || self.outstanding > 0 || self.recording || self.account_loading
    }

    /// Starts loading a file into a slot (all routes end here).
    pub fn begin_load(&mut self, shared: &mut Shared, slot: Slot, path: &Path) {
        self.paths.insert(slot, path.display().to_string());
        self.slot_errors.remove(&slot);
        self.loading.insert(slot);
        // Withdraw the result first: an undecided one is logged as abandoned.
        self.invalidate();
        if slot == Slot::Cheque {
            self.crop = None;
            self.recorded = None;
        }
        // References never mix people: a file replaces an account's references (the worker drops
        // them too).
        if matches!(slot, Slot::Reference(_)) && self.account_loaded.is_some() {
            self.account_loaded = None;
            self.account_holder = None;
            self.references.clear();
        }
        self.invalidate();
        self.flush_abandoned(shared);
        if slot == Slot::Cheque {
            // The worker classifies the cheque with the kind chosen here (a no-op when it has it).
            shared.send(Job::SetChequeKind(self.cheque_kind));
        }
        shared.send(Job::LoadImage {
            slot,
            path: path.to_path_buf(),
        });
    }

    /// Changes what the cheque slot's image is taken to be; a loaded cheque is classified again
    /// (and its result withdrawn: an undecided one is logged as abandoned).
    pub fn set_cheque_kind(&mut self, shared: &mut Shared, kind: crate::verify::InputKind) {
        if kind == self.cheque_kind || self.recorded.is_some() {
            return;
        }
        self.cheque_kind = kind;
        if self.cheque.is_some() {
            self.loading.insert(Slot::Cheque);
            self.crop = None;
            self.invalidate();
            self.flush_abandoned(shared);
        }
        shared.send(Job::SetChequeKind(kind));
    }

    fn invalidate(&mut self) {
        self.generation += 1;
        if let Some(view) = self.outcome.take()
            && self.recorded.is_none()
            && !self.recording
        {
            // Every result shown is logged: one withdrawn undecided is an `abandoned` row.
            self.abandoned = Some(Box::new(view.outcome));
        }
        self.shown_at = None;
        self.verify_error = None;
        self.override_open = false;
    }

    /// Logs a withdrawn result as `abandoned` (before any job that changes the worker's images).
    pub fn flush_abandoned(&mut self, shared: &mut Shared) {
        if let Some(outcome) = self.abandoned.take() {
            shared.send(Job::Record {
                outcome,
                action: FinalAction::Abandoned,
            });
        }
    }

    /// Withdraws a shown, undecided result (sign-out, clear all) and logs it as abandoned.
    pub fn abandon(&mut self, shared: &mut Shared) {
        self.invalidate();
        self.flush_abandoned(shared);
    }

    /// Empties every slot, the account, the amount and the result ("Clear all").
    pub fn clear_all(&mut self, shared: &mut Shared) {
        if self.recording {
            return;
        }
        self.abandon(shared);
        for i in self.references.keys().copied().collect::<Vec<_>>() {
            shared.send(Job::ClearSlot(Slot::Reference(i)));
        }
        shared.send(Job::ClearSlot(Slot::Cheque));
        self.references.clear();
        self.cheque = None;
        self.crop = None;
        self.account.clear();
        self.account_loaded = None;
        self.account_holder = None;
        self.amount.clear();
        self.recorded = None;
        self.override_reason.clear();
        self.slot_errors.clear();
        self.paths.clear();
    }

    /// Drops the account's references when the account field no longer names that account.
    fn forget_account_if_changed(&mut self, shared: &mut Shared) {
        if let Some(loaded) = &self.account_loaded
            && loaded != self.account.trim()
        {
            for i in self.references.keys().copied().collect::<Vec<_>>() {
                shared.send(Job::ClearSlot(Slot::Reference(i)));
            }
            self.references.clear();
            self.account_loaded = None;
            self.account_holder = None;
        }
    }

    /// The slot whose drop zone contains `pos`.
    pub fn slot_at(&self, pos: Pos2) -> Option<Slot> {
        self.zones
            .iter()
            .find(|(_, r)| r.contains(pos))
            .map(|(s, _)| *s)
    }

    /// Where an unaimed file goes: the first empty reference, then the cheque.
    pub fn next_empty_slot(&self) -> Slot {
        if self.references.is_empty()
            && self.account_loaded.is_none()
            && !self.loading.contains(&Slot::Reference(0))
        {
            Slot::Reference(0)
        } else {
            Slot::Cheque
        }
    }

    pub fn on_event(&mut self, ctx: &egui::Context, shared: &mut Shared, event: Event) {
        match event {
            Event::ImageLoaded(img) => {
                let slot = img.slot;
                self.loading.remove(&slot);
                let texture = widgets::gray_texture(ctx, &format!("slot-{slot:?}"), &img.preview);
                let view = SlotView {
                    info: *img,
                    texture,
                };
                match slot {
                    Slot::Reference(i) => {
                        self.references.insert(i, view);
                    }
                    Slot::Cheque => self.cheque = Some(view),
                }
                self.invalidate();
            }
            Event::ImageFailed { slot, error } => {
                self.loading.remove(&slot);
                match slot {
                    Slot::Reference(i) => {
                        self.references.remove(&i);
                    }
                    Slot::Cheque => self.cheque = None,
                }
                self.slot_errors.insert(slot, error);
                self.invalidate();
            }
            Event::AccountLoaded {
                account,
                holder,
                images,
            } => {
                self.account_loading = false;
                self.references.clear();
                self.account_holder = Some(holder);
                for img in images {
                    if let Slot::Reference(i) = img.slot {
                        let texture =
                            widgets::gray_texture(ctx, &format!("account-ref-{i}"), &img.preview);
                        self.references.insert(i, SlotView { info: img, texture });
                    }
                }
                self.account_loaded = Some(account);
                self.invalidate();
            }
            Event::AccountFailed(e) => {
                self.account_loading = false;
                shared.error(e);
            }
            Event::Verified(outcome) => {
                self.outstanding = self.outstanding.saturating_sub(1);
                if self.outstanding == 0 && self.sent_generation == Some(self.generation) {
                    let questioned = widgets::gray_texture(ctx, "questioned", &outcome.questioned);
                    let references = outcome
                        .references
                        .iter()
                        .enumerate()
                        .filter_map(|(i, g)| {
                            widgets::gray_texture(ctx, &format!("norm-ref-{i}"), g)
                        })
                        .collect();
                    let overlay = widgets::rgba_texture(ctx, "overlay", &outcome.overlay);
                    self.override_decision = None;
                    self.shown_at = Some(ctx.input(|i| i.time));
                    self.outcome = Some(OutcomeView {
                        outcome: *outcome,
                        questioned,
                        references,
                        overlay,
                    });
                }
            }
            Event::VerifyFailed(e) => {
                self.outstanding = self.outstanding.saturating_sub(1);
                if self.outstanding == 0 {
                    self.failed_generation = Some(self.generation);
                    self.verify_error = Some(e);
                }
            }
            // Logged quietly (the recent list shows it): a banner here would move the field the
            // clerk is typing in.
            Event::Recorded(row)
                if row.effective_action() == crate::store::FinalAction::Abandoned => {}
            Event::Recorded(row) => {
                self.recording = false;
                self.override_open = false;
                shared.notice(format!(
                    "Logged as decision #{}: {} ({}). Press N for the next cheque.",
                    row.id,
                    row.final_decision,
                    row.effective_action().as_str()
                ));
                self.recorded = Some(*row);
            }
            Event::RecordFailed(e) => {
                self.recording = false;
                shared.error(e);
            }
            Event::Recent(rows) => self.recent = rows,
            _ => {}
        }
        self.flush_abandoned(shared);
    }

    /// The typed amount in cents: `Ok(None)` when the field is empty, `Err` with the reason when it
    /// is not an amount (no verification runs until it is fixed or cleared).
    pub fn amount_cents(&self) -> Result<Option<i64>, String> {
        let t = self.amount.trim();
        if t.is_empty() {
            return Ok(None);
        }
        crate::verify::parse_amount(t).map(Some)
    }

    /// Starts a verification when the inputs are complete and nothing newer is pending.
    fn maybe_verify(&mut self, shared: &mut Shared) {
        let ready = self.cheque.is_some()
            && (!self.references.is_empty())
            && self.loading.is_empty()
            && !self.account_loading
            && self.outcome.is_none()
            && self.drag.is_none()
            && self.amount_cents().is_ok();
        let already = self.sent_generation == Some(self.generation)
            || self.failed_generation == Some(self.generation);
        if ready && !already {
            self.sent_generation = Some(self.generation);
            self.outstanding += 1;
            let account =
                (!self.account.trim().is_empty()).then(|| self.account.trim().to_string());
            shared.send(Job::Verify {
                crop: self.crop,
                account,
                amount_cents: self.amount_cents().unwrap_or(None),
            });
        }
    }

    /// Whether the keyboard may confirm now: a result is shown, undecided, and has been on screen for
    /// [`CONFIRM_AFTER_S`].
    pub fn keyboard_may_confirm(&self, now: f64) -> bool {
        self.outcome.is_some()
            && self.recorded.is_none()
            && self.shown_at.is_some_and(|t| now - t >= CONFIRM_AFTER_S)
    }

    /// Confirms the shown decision (the button, or Ctrl+Enter). A REFER is confirmed as referred: it
    /// goes to the supervisors' referral queue.
    pub fn confirm(&mut self, shared: &mut Shared) {
        if let Some(o) = &self.outcome
            && self.recorded.is_none()
            && !self.recording
        {
            self.recording = true;
            shared.send(Job::Record {
                outcome: Box::new(o.outcome.clone()),
                action: FinalAction::Confirm,
            });
        }
    }

    fn submit_override(&mut self, shared: &mut Shared) {
        let (Some(o), Some(d)) = (&self.outcome, self.override_decision) else {
            return;
        };
        let reason = self.override_reason.trim().to_string();
        if reason.is_empty() || self.recorded.is_some() || self.recording {
            return;
        }
        self.recording = true;
        shared.send(Job::Record {
            outcome: Box::new(o.outcome.clone()),
            action: FinalAction::Override {
                decision: d,
                reason,
            },
        });
    }

    /// Clears the cheque and the result, keeping the references (N). A result not yet decided is
    /// logged as abandoned first.
    pub fn next_cheque(&mut self, shared: &mut Shared) {
        if self.recording {
            return;
        }
        self.abandon(shared);
        self.cheque = None;
        self.crop = None;
        self.amount.clear();
        self.recorded = None;
        self.override_reason.clear();
        self.slot_errors.remove(&Slot::Cheque);
        self.paths.remove(&Slot::Cheque);
        self.invalidate();
        shared.send(Job::ClearSlot(Slot::Cheque));
    }

    pub fn show(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        self.flush_abandoned(shared);
        self.maybe_verify(shared);
        self.zones.clear();
        let total = ui.available_width();
        let left_w = (total * 0.52).max(420.0).min(total);
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_width(left_w - 12.0);
                // Both ways: whatever the inputs need, the left column never grows past its share
                // and pushes the result (the Override button, the reason box) out of the window.
                egui::ScrollArea::both()
                    .id_salt("verify-left")
                    .max_width(left_w - 12.0)
                    .show(ui, |ui| {
                        self.inputs(ui, shared);
                    });
            });
            ui.separator();
            ui.vertical(|ui| {
                egui::ScrollArea::vertical()
                    .id_salt("verify-right")
                    .show(ui, |ui| {
                        self.result(ui, shared);
                        ui.add_space(12.0);
                        self.recent_list(ui);
                    });
            });
        });
    }

    fn inputs(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.heading("1  Reference signature");
        ui.horizontal(|ui| {
            let l = ui.label("Account");
            // Fixed once the decision is logged: the row must match what was decided.
            let open = self.recorded.is_none();
            let edited = ui
                .add_enabled(
                    open,
                    egui::TextEdit::singleline(&mut self.account)
                        .hint_text("account number")
                        .desired_width(150.0),
                )
                .labelled_by(l.id)
                .changed();
            // Per-account thresholds depend on it, and the audit row records it: decide again.
            if edited {
                self.invalidate();
                self.forget_account_if_changed(shared);
                self.flush_abandoned(shared);
            }
            let can = !self.account.trim().is_empty() && !self.account_loading;
            if ui
                .add_enabled(can, egui::Button::new("Use enrolled references"))
                .clicked()
            {
                self.account_loading = true;
                shared.send(Job::LoadAccount {
                    account: self.account.trim().to_string(),
                });
            }
            if self.account_loading {
                ui.spinner();
            }
            if ui
                .add_enabled(!self.recording, egui::Button::new("Clear all"))
                .on_hover_text("Empty the references, the cheque, the account and the amount.")
                .clicked()
            {
                self.clear_all(shared);
            }
        });
        if let Some(a) = &self.account_loaded {
            let holder = self.account_holder.as_deref().unwrap_or("?");
            ui.label(
                RichText::new(format!("Account {a}: {holder}"))
                    .strong()
                    .size(16.0),
            );
            widgets::caption(
                ui,
                format!(
                    "{} reference(s) of account {a} loaded from the store. Loading a file replaces them all.",
                    self.references.len()
                ),
            );
        } else {
            widgets::caption(
                ui,
                "Or drop / choose reference images below (several improve accuracy).",
            );
        }
        // An account shows every reference it has; files fill up to REFERENCE_SLOTS.
        let shown_refs = if self.account_loaded.is_some() {
            self.references.len().max(1)
        } else {
            (self.references.keys().max().map(|m| m + 2).unwrap_or(1)).clamp(1, REFERENCE_SLOTS)
        };
        // One width for every zone, from the row's width less the gaps between zones.
        let gaps = ui.spacing().item_spacing.x * (shown_refs as f32 - 1.0);
        let w = ((ui.available_width() - gaps - 4.0) / shown_refs as f32).max(150.0);
        ui.horizontal_wrapped(|ui| {
            for i in 0..shown_refs {
                ui.vertical(|ui| {
                    ui.set_width(w);
                    self.drop_zone(ui, shared, Slot::Reference(i), egui::vec2(w, 110.0));
                });
            }
        });
        ui.add_space(10.0);
        ui.heading("2  Cheque");
        ui.horizontal_wrapped(|ui| {
            use crate::verify::InputKind;
            ui.label("The image is");
            let open = self.recorded.is_none();
            let mut kind = self.cheque_kind;
            for (k, text) in [
                (InputKind::Auto, "auto (by its size)"),
                (InputKind::Cheque, "a cheque"),
                (InputKind::Signature, "a bare signature"),
            ] {
                ui.add_enabled_ui(open, |ui| ui.radio_value(&mut kind, k, text));
            }
            self.set_cheque_kind(shared, kind);
        });
        let w = ui.available_width();
        self.drop_zone(
            ui,
            shared,
            Slot::Cheque,
            egui::vec2(w, (w * 0.47).clamp(160.0, 420.0)),
        );
        if let Some(c) = &self.cheque {
            match (&c.info.detected, self.crop) {
                (_, Some(_)) => {
                    ui.horizontal(|ui| {
                        widgets::caption(ui, "Box set by hand (logged with the decision).");
                        if ui.small_button("Reset box").clicked() {
                            self.crop = None;
                            self.invalidate();
                        }
                    });
                }
                (Some((_, conf)), None) => widgets::caption(
                    ui,
                    format!(
                        "Signature found (confidence {:.0}%). Drag the box or its corners to correct it.",
                        conf * 100.0
                    ),
                ),
                (None, None) => {
                    let note = c
                        .info
                        .detection_note
                        .clone()
                        .unwrap_or_else(|| "No signature box was found.".into());
                    if note.starts_with("Taken as a bare signature") {
                        widgets::caption(ui, note);
                        return;
                    }
                    ui.colored_label(
                        widgets::AMBER,
                        format!("{note} Drag on the cheque to draw the box."),
                    );
                }
            }
        }
        ui.horizontal(|ui| {
            let l = ui.label("Amount");
            let open = self.recorded.is_none();
            let edited = ui
                .add_enabled(
                    open,
                    egui::TextEdit::singleline(&mut self.amount)
                        .hint_text("e.g. 22,509.14")
                        .desired_width(130.0),
                )
                .labelled_by(l.id)
                .changed();
            if edited {
                self.invalidate();
            }
            match self.amount_cents() {
                Ok(Some(c)) => widgets::caption(
                    ui,
                    format!(
                        "Read as {}; amount rules apply.",
                        crate::verify::format_amount(c)
                    ),
                ),
                Ok(None) => widgets::caption(ui, "Optional; large amounts may need a surer match."),
                Err(why) => {
                    ui.colored_label(widgets::AMBER, why);
                }
            }
        });
        ui.add_space(6.0);
        widgets::caption(
            ui,
            "Keys: Ctrl+O open a file, Ctrl+Enter confirm (once the result has been shown), N next cheque.",
        );
    }

    /// A drop zone: the image (or an invitation), a Choose button and a path field.
    fn drop_zone(&mut self, ui: &mut egui::Ui, shared: &mut Shared, slot: Slot, size: Vec2) {
        let hovering_files = ui.ctx().input(|i| !i.raw.hovered_files.is_empty());
        let stroke_color = if hovering_files {
            widgets::BLUE
        } else {
            Color32::from_gray(170)
        };
        let frame = egui::Frame::new()
            .fill(Color32::from_gray(250))
            .stroke(Stroke::new(
                if hovering_files { 2.0 } else { 1.0 },
                stroke_color,
            ))
            .corner_radius(6.0)
            .inner_margin(6.0);
        let resp = frame.show(ui, |ui| {
            ui.set_min_size(size - egui::vec2(12.0, 12.0));
            let loading = self.loading.contains(&slot);
            let has_image = match slot {
                Slot::Reference(i) => self.references.contains_key(&i),
                Slot::Cheque => self.cheque.is_some(),
            };
            ui.horizontal_wrapped(|ui| {
                ui.label(RichText::new(slot.label()).strong());
                if loading {
                    ui.spinner();
                    ui.label("Loading...");
                }
                if ui
                    .small_button(format!("Choose {}...", slot.label().to_lowercase()))
                    .clicked()
                {
                    let purpose = match slot {
                        Slot::Reference(i) => format!("ref{i}"),
                        Slot::Cheque => "cheque".into(),
                    };
                    shared.pick(&purpose, PickKind::Image);
                }
            });
            if has_image {
                match slot {
                    Slot::Cheque => self.cheque_editor(ui, size.x - 12.0, size.y - 70.0),
                    Slot::Reference(i) => {
                        if let Some(tex) = self.references.get(&i).and_then(|v| v.texture.as_ref())
                        {
                            widgets::fit_image(ui, tex, egui::vec2(size.x - 20.0, size.y - 60.0));
                        }
                    }
                }
            } else if !loading {
                ui.add_space(6.0);
                let what = match slot {
                    Slot::Cheque => "Drop the cheque scan here",
                    Slot::Reference(_) => "Drop a reference signature here",
                };
                ui.label(RichText::new(what).color(Color32::from_gray(110)));
            }
            if let Some(e) = self.slot_errors.get(&slot) {
                ui.colored_label(widgets::RED, &e.what);
                ui.label(&e.todo);
            }
            let path = self.paths.entry(slot).or_default();
            let mut load = false;
            // The Load button first, from the right, and the field fills what is left: the zone
            // keeps its width whatever the button's text.
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                load |= ui
                    .small_button(format!("Load {}", slot.label().to_lowercase()))
                    .clicked();
                let r = ui.add(
                    egui::TextEdit::singleline(path)
                        .hint_text(format!("{} file path", slot.label()))
                        .desired_width(ui.available_width().max(60.0)),
                );
                load |= r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            });
            if load && !path.trim().is_empty() {
                let p = std::path::PathBuf::from(path.trim());
                self.begin_load(shared, slot, &p);
            }
        });
        self.zones.push((slot, resp.response.rect));
    }

    /// The cheque with its signature box, which the clerk can move (drag inside) or resize (corners),
    /// or draw anew (drag outside it).
    fn cheque_editor(&mut self, ui: &mut egui::Ui, max_w: f32, max_h: f32) {
        let Some(view) = &self.cheque else { return };
        let Some(tex) = view.texture.clone() else {
            return;
        };
        let (iw, ih) = (
            view.info.width.max(1) as f32,
            view.info.height.max(1) as f32,
        );
        let scale = (max_w / iw).min(max_h.max(80.0) / ih);
        let shown = egui::vec2(iw * scale, ih * scale);
        let (resp, painter) = ui.allocate_painter(shown, Sense::click_and_drag());
        resp.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::Image, true, "Cheque with the signature box")
        });
        let rect = resp.rect;
        painter.image(
            tex.id(),
            rect,
            Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)),
            Color32::WHITE,
        );
        let detected = view.info.detected.map(|(b, _)| b);
        let current = self.crop.or(detected);
        let to_screen = |b: PixelBox| {
            Rect::from_min_size(
                rect.min + egui::vec2(b.x as f32 * scale, b.y as f32 * scale),
                egui::vec2(b.width as f32 * scale, b.height as f32 * scale),
            )
        };
        let to_pixels = |r: Rect| {
            let r = r.intersect(rect);
            let x0 = ((r.min.x - rect.min.x) / scale).clamp(0.0, iw);
            let y0 = ((r.min.y - rect.min.y) / scale).clamp(0.0, ih);
            let x1 = ((r.max.x - rect.min.x) / scale).clamp(0.0, iw);
            let y1 = ((r.max.y - rect.min.y) / scale).clamp(0.0, ih);
            PixelBox {
                x: x0 as u32,
                y: y0 as u32,
                width: ((x1 - x0) as u32).max(1),
                height: ((y1 - y0) as u32).max(1),
            }
        };
        let handle = 7.0;
        // Where the button went down: a drag is recognised only after the pointer has moved a little.
        let origin = ui
            .input(|i| i.pointer.press_origin())
            .or(resp.interact_pointer_pos());
        if resp.drag_started()
            && let Some(p) = origin
        {
            let (mode, start) = match current.map(to_screen) {
                Some(b) => {
                    let corners = [
                        b.left_top(),
                        b.right_top(),
                        b.right_bottom(),
                        b.left_bottom(),
                    ];
                    // The nearest corner within reach: on a small box two corners can be in reach.
                    let nearest = (0..4)
                        .filter(|&i| corners[i].distance(p) <= handle * 1.8)
                        .min_by(|&i, &j| corners[i].distance(p).total_cmp(&corners[j].distance(p)));
                    match nearest {
                        Some(i) => (DragMode::Corner(i), b),
                        None if b.contains(p) => (DragMode::Move, b),
                        // A drag outside the box draws a new one from this point.
                        None => (DragMode::Draw, Rect::from_min_size(p, Vec2::ZERO)),
                    }
                }
                None => (DragMode::Draw, Rect::from_min_size(p, Vec2::ZERO)),
            };
            self.drag = Some(mode);
            self.drag_origin = Some((start, p));
        }
        if let (Some(mode), Some((start, from)), true) =
            (self.drag, self.drag_origin, resp.dragged())
            && let Some(now) = resp.interact_pointer_pos()
        {
            // From the box where the drag began, so a corner follows the pointer back after it was
            // held at the smallest size.
            self.crop = Some(to_pixels(dragged_box(start, mode, now - from, rect)));
        }
        if resp.drag_stopped() {
            self.drag = None;
            self.drag_origin = None;
            self.invalidate();
        }
        if let Some(b) = self.crop.or(detected).map(to_screen) {
            let color = if self.crop.is_some() {
                widgets::BLUE
            } else {
                widgets::GREEN
            };
            painter.rect_stroke(b, 2.0, Stroke::new(2.5, color), egui::StrokeKind::Outside);
            for c in [
                b.left_top(),
                b.right_top(),
                b.right_bottom(),
                b.left_bottom(),
            ] {
                painter.rect_filled(
                    Rect::from_center_size(c, egui::vec2(handle, handle) * 1.4),
                    1.0,
                    color,
                );
            }
            painter.text(
                b.left_top() - egui::vec2(0.0, 3.0),
                egui::Align2::LEFT_BOTTOM,
                "signature",
                egui::FontId::proportional(12.0),
                color,
            );
        }
    }

    fn result(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.heading("3  Result");
        if self.outstanding > 0 {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Verifying...");
            });
        }
        if let Some(e) = &self.verify_error {
            egui::Frame::new()
                .fill(widgets::ERROR_FILL)
                .inner_margin(8.0)
                .corner_radius(4.0)
                .show(ui, |ui| {
                    ui.label(RichText::new(&e.what).color(Color32::BLACK).strong());
                    ui.label(
                        RichText::new(format!("What to do: {}", e.todo)).color(Color32::BLACK),
                    );
                });
        }
        let Some(view) = &self.outcome else {
            if self.outstanding == 0 && self.verify_error.is_none() {
                let missing = match (self.references.is_empty(), self.cheque.is_none()) {
                    (true, true) => "Load a reference signature (or an account) and a cheque.",
                    (true, false) => {
                        "Load a reference signature, or use an account's enrolled references."
                    }
                    (false, true) => "Load the cheque scan.",
                    (false, false) => "",
                };
                ui.label(missing);
            }
            return;
        };
        let o = &view.outcome;
        let recorded_final = self.recorded.as_ref().map(|r| r.final_decision);
        ui.horizontal(|ui| {
            // Once logged, the badge shows the decision in force (an override's), not the model's.
            widgets::decision_badge(ui, recorded_final.unwrap_or(o.decision));
            if let Some(f) = recorded_final
                && f != o.decision
            {
                ui.label(
                    RichText::new(format!(
                        "Overridden; the model said {}",
                        o.decision.as_str()
                    ))
                    .color(widgets::AMBER)
                    .strong(),
                );
            }
            ui.vertical(|ui| {
                ui.label(
                    RichText::new(widgets::decision_advice(o.decision))
                        .size(16.0)
                        .strong(),
                );
                if let Some(line) = score_line(o.score, o.probability) {
                    ui.label(line);
                }
                if let Some(cents) = o.amount_cents {
                    ui.label(format!("Amount {}", crate::verify::format_amount(cents)));
                }
                ui.label(format!(
                    "Thresholds: ACCEPT at {:.0}% or more, REJECT below {:.0}%",
                    o.thresholds.accept * 100.0,
                    o.thresholds.reject * 100.0
                ));
                widgets::caption(ui, &o.reason);
                if !o.signature_found {
                    ui.colored_label(
                        widgets::AMBER,
                        "No signature was found with confidence: REFER.",
                    );
                }
                widgets::caption(
                    ui,
                    format!("Model {}   answered in {:.0} ms", o.model_id, o.latency_ms),
                );
            });
        });
        ui.add_space(8.0);
        // Cheque crop, each reference and the overlay share the row; size them so all fit.
        let columns = (view.references.len() + 2) as f32;
        let tw = ((ui.available_width() - 12.0 * columns) / columns).clamp(90.0, 240.0);
        let thumb = egui::vec2(tw, tw * 0.5);
        ui.horizontal_wrapped(|ui| {
            ui.vertical(|ui| {
                ui.label("On the cheque");
                if let Some(t) = &view.questioned {
                    widgets::fit_image(ui, t, thumb);
                }
            });
            for (i, t) in view.references.iter().enumerate() {
                ui.vertical(|ui| {
                    ui.label(format!("Reference {}", i + 1));
                    widgets::fit_image(ui, t, thumb);
                });
            }
            ui.vertical(|ui| {
                ui.label("Overlay");
                if let Some(t) = &view.overlay {
                    widgets::fit_image(ui, t, thumb);
                }
                ui.horizontal(|ui| {
                    ui.colored_label(widgets::RED, "cheque");
                    ui.colored_label(widgets::BLUE, "reference");
                });
            });
        });
        ui.add_space(8.0);
        if let Some(row) = &self.recorded {
            ui.label(
                RichText::new(format!(
                    "Logged as decision #{} ({}, {}).",
                    row.id,
                    row.final_decision,
                    row.effective_action().as_str()
                ))
                .color(widgets::GREEN)
                .strong(),
            );
            if ui
                .button(RichText::new("Next cheque (N)").size(17.0))
                .clicked()
            {
                self.next_cheque(shared);
            }
            return;
        }
        let decision = o.decision;
        let role = shared.role().unwrap_or(Role::Clerk);
        let targets = crate::store::override_targets(store_role(role), decision);
        // Wrapped: at 1440 pixels with three references the right column is narrow, and a plain row
        // pushed the Override button past the window's edge.
        ui.horizontal_wrapped(|ui| {
            let text = if decision == Decision::Refer {
                "Confirm REFER: send to a supervisor (Ctrl+Enter)".to_string()
            } else {
                format!("Confirm {decision} (Ctrl+Enter)")
            };
            let confirm = egui::Button::new(RichText::new(text).size(17.0).color(Color32::WHITE))
                .fill(widgets::decision_color(decision));
            if ui.add_enabled(!self.recording, confirm).clicked() {
                self.confirm(shared);
            }
            if ui
                .add_enabled(
                    !self.recording,
                    egui::Button::new(RichText::new("Override...").size(17.0)),
                )
                .clicked()
            {
                self.override_open = !self.override_open;
            }
            if self.recording {
                ui.spinner();
            }
        });
        if self.override_open {
            egui::Frame::new()
                .stroke(Stroke::new(1.0, Color32::from_gray(180)))
                .inner_margin(8.0)
                .show(ui, |ui| {
                    ui.set_max_width(ui.available_width());
                    if targets.is_empty() {
                        let why = match decision {
                            Decision::Refer => {
                                "A clerk confirms a REFER as referred; a supervisor resolves it from the referral queue."
                            }
                            _ => "Only a supervisor may change a REJECT; a clerk's override only makes a decision stricter.",
                        };
                        ui.colored_label(widgets::RED, why);
                        return;
                    }
                    ui.label("Change the decision to:");
                    ui.horizontal(|ui| {
                        for d in targets.iter().copied() {
                            {
                                let text = RichText::new(d.as_str())
                                    .color(widgets::decision_color(d))
                                    .strong();
                                if ui
                                    .selectable_label(self.override_decision == Some(d), text)
                                    .clicked()
                                {
                                    self.override_decision = Some(d);
                                }
                            }
                        }
                    });
                    let l = ui.label("Reason (required)");
                    ui.add(
                        egui::TextEdit::multiline(&mut self.override_reason)
                            .hint_text("why the decision is changed")
                            .desired_rows(2)
                            .desired_width(f32::INFINITY),
                    )
                    .labelled_by(l.id);
                    let ok =
                        self.override_decision.is_some() && !self.override_reason.trim().is_empty();
                    if !ok {
                        widgets::caption(
                            ui,
                            "Choose the new decision and write the reason to log the override.",
                        );
                    }
                    if ui
                        .add_enabled(ok && !self.recording, egui::Button::new("Log override"))
                        .clicked()
                    {
                        self.submit_override(shared);
                    }
                });
        }
    }

    fn recent_list(&self, ui: &mut egui::Ui) {
        ui.heading("Recent decisions");
        if self.recent.is_empty() {
            widgets::caption(ui, "None yet.");
            return;
        }
        egui::Grid::new("recent-decisions")
            .striped(true)
            .num_columns(6)
            .show(ui, |ui| {
                for h in [
                    "#",
                    "Time (UTC)",
                    "Account",
                    "Decision",
                    "Action",
                    "Operator",
                ] {
                    ui.label(RichText::new(h).strong());
                }
                ui.end_row();
                for r in self.recent.iter().take(12) {
                    ui.label(r.id.to_string());
                    ui.label(shown_time(r.record.time));
                    ui.label(r.record.account.as_deref().unwrap_or_default());
                    ui.label(
                        RichText::new(r.final_decision.as_str())
                            .color(widgets::decision_color(r.final_decision))
                            .strong(),
                    );
                    ui.label(r.effective_action().as_str());
                    ui.label(&r.record.operator);
                    ui.end_row();
                }
            });
    }
}

/// The store's role for the GUI's.
fn store_role(r: Role) -> crate::store::Role {
    match r {
        Role::Clerk => crate::store::Role::Clerk,
        Role::Supervisor => crate::store::Role::Supervisor,
        Role::Auditor => crate::store::Role::Auditor,
    }
}

#[cfg(test)]
mod drag_tests {
    use super::*;

    fn bounds() -> Rect {
        Rect::from_min_size(Pos2::new(100.0, 50.0), egui::vec2(800.0, 400.0))
    }

    #[test]
    fn a_corner_dragged_past_the_opposite_one_stops_at_the_smallest_box() {
        let b = Rect::from_min_size(Pos2::new(500.0, 300.0), egui::vec2(200.0, 60.0));
        // Bottom right dragged far up and left: the top-left corner stays, the box keeps MIN_BOX.
        let r = dragged_box(b, DragMode::Corner(2), egui::vec2(-900.0, -700.0), bounds());
        assert_eq!(r.min, b.min);
        assert_eq!(r.size(), MIN_BOX);
        // Top left dragged far down and right: the bottom-right corner stays.
        let r = dragged_box(b, DragMode::Corner(0), egui::vec2(900.0, 700.0), bounds());
        assert_eq!(r.max, b.max);
        assert_eq!(r.size(), MIN_BOX);
        // Out of the cheque: clamped to its edge.
        let r = dragged_box(b, DragMode::Corner(1), egui::vec2(900.0, -900.0), bounds());
        assert_eq!((r.max.x, r.min.y), (bounds().max.x, bounds().min.y));
        assert_eq!((r.min.x, r.max.y), (b.min.x, b.max.y));
    }

    #[test]
    fn a_move_keeps_the_size_and_a_new_box_is_never_a_dot() {
        let b = Rect::from_min_size(Pos2::new(500.0, 300.0), egui::vec2(200.0, 60.0));
        let r = dragged_box(b, DragMode::Move, egui::vec2(5000.0, 5000.0), bounds());
        assert_eq!(r.size(), b.size());
        assert_eq!(r.max, bounds().max);
        // A click-drag of nothing draws the smallest box; drawn up and left it still has area.
        let p = Rect::from_min_size(Pos2::new(300.0, 200.0), Vec2::ZERO);
        let r = dragged_box(p, DragMode::Draw, Vec2::ZERO, bounds());
        assert_eq!(r.size(), MIN_BOX);
        let r = dragged_box(p, DragMode::Draw, egui::vec2(-100.0, -40.0), bounds());
        assert_eq!(
            r,
            Rect::from_min_max(Pos2::new(200.0, 160.0), Pos2::new(300.0, 200.0))
        );
        // A degenerate start box (a dot left by an older version) grows to MIN_BOX.
        let dot = Rect::from_min_size(Pos2::new(890.0, 445.0), egui::vec2(1.0, 1.0));
        let r = dragged_box(dot, DragMode::Corner(2), Vec2::ZERO, bounds());
        assert!(r.width() >= MIN_BOX.x && r.height() >= MIN_BOX.y);
        assert!(bounds().contains_rect(r));
    }
}

/// The result's score line: the probability with the score, or the score alone ("no probability"),
/// with "—" for a missing score; `None` when nothing was scored or calibrated (the screen says why).
fn score_line(score: Option<f64>, probability: Option<f64>) -> Option<String> {
    let score_text = score.map_or_else(|| "—".to_string(), |s| format!("{s:.3}"));
    match (probability, score) {
        (Some(p), _) => Some(format!(
            "Probability genuine {:.1}%   (score {score_text})",
            p * 100.0
        )),
        (None, Some(_)) => Some(format!("Score {score_text} (no probability)")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod score_line_tests {
    use super::score_line;

    #[test]
    fn a_missing_value_is_a_dash_or_no_line_never_nan() {
        assert_eq!(
            score_line(Some(0.5), Some(0.25)).as_deref(),
            Some("Probability genuine 25.0%   (score 0.500)")
        );
        assert_eq!(
            score_line(Some(0.5), None).as_deref(),
            Some("Score 0.500 (no probability)")
        );
        assert_eq!(
            score_line(None, Some(0.25)).as_deref(),
            Some("Probability genuine 25.0%   (score —)")
        );
        assert_eq!(score_line(None, None), None);
    }
}
