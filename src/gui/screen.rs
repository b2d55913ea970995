//! What every screen does for the app, so that each owns its state and the app only routes: draw
//! itself, take the worker's events meant for it, say whether it waits for work, stop waiting when a
//! long task ends, and refresh when it is opened.

use super::app::Shared;
use super::worker::{Event, Job, TaskKind};
use super::{audit, batch, calibrate, queue, sign_in, train, verify};

/// One screen of the app (the [`super::Screen`] enum names them in tab order).
pub trait ScreenState {
    /// Draws the screen.
    fn show(&mut self, ui: &mut egui::Ui, shared: &mut Shared);
    /// Takes `event` when it is meant for this screen; gives it back otherwise.
    fn on_event(&mut self, ctx: &egui::Context, shared: &mut Shared, event: Event)
    -> Option<Event>;
    /// True while the screen waits for the worker (the app keeps repainting so spinners move).
    fn busy(&self) -> bool;
    /// A long task failed, was stopped or finished its export: stop waiting for it.
    fn on_task_end(&mut self, _task: TaskKind) {}
    /// The screen was opened.
    fn on_enter(&mut self, _shared: &Shared) {}
}

impl ScreenState for sign_in::SignInState {
    fn show(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        sign_in::SignInState::show(self, ui, shared)
    }

    /// Signing in changes the whole app (the operator, the screen): the app handles those events.
    fn on_event(&mut self, _: &egui::Context, _: &mut Shared, event: Event) -> Option<Event> {
        Some(event)
    }

    fn busy(&self) -> bool {
        self.busy
    }
}

impl ScreenState for verify::VerifyState {
    fn show(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        verify::VerifyState::show(self, ui, shared)
    }

    fn on_event(
        &mut self,
        ctx: &egui::Context,
        shared: &mut Shared,
        event: Event,
    ) -> Option<Event> {
        match event {
            Event::ImageLoaded(_)
            | Event::ImageFailed { .. }
            | Event::AccountLoaded { .. }
            | Event::AccountFailed(_)
            | Event::Verified(_)
            | Event::VerifyFailed(_)
            | Event::Recorded(_)
            | Event::RecordFailed(_)
            | Event::Recent(_) => {
                verify::VerifyState::on_event(self, ctx, shared, event);
                None
            }
            other => Some(other),
        }
    }

    fn busy(&self) -> bool {
        verify::VerifyState::busy(self)
    }

    fn on_enter(&mut self, shared: &Shared) {
        shared.send(Job::Recent);
    }
}

impl ScreenState for batch::BatchState {
    fn show(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        batch::BatchState::show(self, ui, shared)
    }

    fn on_event(&mut self, _: &egui::Context, shared: &mut Shared, event: Event) -> Option<Event> {
        match event {
            Event::BatchRows { .. } | Event::BatchDone(_) => {
                batch::BatchState::on_event(self, shared, event);
                None
            }
            other => Some(other),
        }
    }

    fn busy(&self) -> bool {
        self.running
    }

    fn on_task_end(&mut self, task: TaskKind) {
        match task {
            // A failed export of the results is reported as a Batch task too.
            TaskKind::Batch => {
                self.running = false;
                self.exporting = false;
            }
            TaskKind::Export => self.exporting = false,
            _ => {}
        }
    }
}

impl ScreenState for queue::QueueState {
    fn show(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        queue::QueueState::show(self, ui, shared)
    }

    fn on_event(&mut self, _: &egui::Context, shared: &mut Shared, event: Event) -> Option<Event> {
        match event {
            Event::Queue(e) => {
                queue::QueueState::on_event(self, shared, e);
                None
            }
            other => Some(other),
        }
    }

    fn busy(&self) -> bool {
        self.loading || self.busy
    }

    fn on_enter(&mut self, shared: &Shared) {
        self.refresh(shared);
    }
}

impl ScreenState for calibrate::CalibrateState {
    fn show(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        calibrate::CalibrateState::show(self, ui, shared)
    }

    fn on_event(&mut self, _: &egui::Context, shared: &mut Shared, event: Event) -> Option<Event> {
        match event {
            Event::Progress {
                task: TaskKind::Evaluate,
                fraction,
                message,
            } => {
                self.progress = Some((fraction, message));
                None
            }
            Event::Evaluated(_) | Event::ThresholdsSaved(_) => {
                calibrate::CalibrateState::on_event(self, shared, event);
                None
            }
            other => Some(other),
        }
    }

    fn busy(&self) -> bool {
        self.running
    }

    fn on_task_end(&mut self, task: TaskKind) {
        // A refused threshold change is reported as an Evaluate task too.
        if task == TaskKind::Evaluate {
            self.on_failed();
        }
    }
}

impl ScreenState for audit::AuditState {
    fn show(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        audit::AuditState::show(self, ui, shared)
    }

    fn on_event(
        &mut self,
        ctx: &egui::Context,
        shared: &mut Shared,
        event: Event,
    ) -> Option<Event> {
        match event {
            Event::AuditCount { .. }
            | Event::AuditPage { .. }
            | Event::AuditDetail(_)
            | Event::Chain(_) => audit::AuditState::on_event(self, ctx, shared, event),
            Event::AuditEvents { kinds, rows } => self.events.on_loaded(kinds, rows),
            Event::AuditFailed(e) => {
                self.loading = false;
                shared.error(e);
            }
            Event::Progress {
                task: TaskKind::Chain,
                ..
            } => self.chain_running = true,
            other => return Some(other),
        }
        None
    }

    fn busy(&self) -> bool {
        self.loading || self.chain_running || self.exporting
    }

    fn on_task_end(&mut self, task: TaskKind) {
        match task {
            TaskKind::Export => self.exporting = false,
            TaskKind::Chain => self.chain_running = false,
            _ => {}
        }
    }

    fn on_enter(&mut self, shared: &Shared) {
        self.refresh(shared);
    }
}

impl ScreenState for train::TrainState {
    fn show(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        train::TrainState::show(self, ui, shared)
    }

    fn on_event(&mut self, _: &egui::Context, shared: &mut Shared, event: Event) -> Option<Event> {
        match event {
            Event::Train(_) | Event::ModelActivated(_) => {
                train::TrainState::on_event(self, shared, event);
                None
            }
            other => Some(other),
        }
    }

    fn busy(&self) -> bool {
        self.running
    }

    fn on_task_end(&mut self, task: TaskKind) {
        // A refused activation is reported as a Train task too: free its button.
        if task == TaskKind::Train {
            self.running = false;
            self.activating = false;
        }
    }
}
