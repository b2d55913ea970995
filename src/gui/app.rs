//! The application: screens, the signed-in operator, the worker handle, and the frame loop.
//!
//! [`CountersignApp`] is plain state plus `show(ui)`, so egui_kittest can drive it without a window;
//! the eframe `App` impl only forwards to it. Events from the worker are drained at the start of each
//! frame; UI code never blocks.

use std::path::{Path, PathBuf};
use std::time::Instant;

use egui::{Color32, RichText};

use super::backend::{BackendConfig, Operator, Role, Slot, StatusInfo, UserError};
use super::screen::ScreenState;
use super::worker::{Event, Job, Notifier, TaskKind, WorkerHandle};
use super::{audit, batch, calibrate, queue, sign_in, train, verify, widgets};

/// The screens, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Screen {
    SignIn,
    Verify,
    Batch,
    Calibrate,
    Audit,
    Train,
    /// The supervisors' queue: referrals to resolve and settings changes to approve.
    Queue,
}

impl Screen {
    pub const TABS: [Screen; 6] = [
        Screen::Verify,
        Screen::Batch,
        Screen::Queue,
        Screen::Calibrate,
        Screen::Audit,
        Screen::Train,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Screen::SignIn => "Sign in",
            Screen::Verify => "Verify",
            Screen::Batch => "Batch",
            Screen::Calibrate => "Calibrate",
            Screen::Audit => "Audit",
            Screen::Train => "Train",
            Screen::Queue => "Queue",
        }
    }

    /// Parses a screen name (for the screenshot mode).
    pub fn from_name(name: &str) -> Option<Screen> {
        [
            Screen::SignIn,
            Screen::Verify,
            Screen::Batch,
            Screen::Calibrate,
            Screen::Audit,
            Screen::Train,
            Screen::Queue,
        ]
        .into_iter()
        .find(|s| {
            s.title()
                .replace(' ', "")
                .eq_ignore_ascii_case(&name.replace(['-', '_', ' '], ""))
        })
    }
}

/// Which screens a role may open: clerks verify cheques (one by one or in batches), auditors read the
/// log, supervisors do everything.
pub fn allowed(role: Role, screen: Screen) -> bool {
    matches!(
        (role, screen),
        (_, Screen::SignIn)
            | (Role::Supervisor, _)
            | (Role::Clerk, Screen::Verify | Screen::Batch)
            | (Role::Auditor, Screen::Audit)
    )
}

/// The role a screen asks for, in words, for the refusal message.
fn required_roles(screen: Screen) -> &'static str {
    match screen {
        Screen::Verify | Screen::Batch => "a clerk or supervisor",
        Screen::Audit => "an auditor or supervisor",
        Screen::Calibrate | Screen::Train | Screen::Queue => "a supervisor",
        Screen::SignIn => "anyone",
    }
}

/// A message at the top of the window: an error with what to do, or a notice.
#[derive(Clone, Debug)]
pub struct Banner {
    pub error: UserError,
    pub is_error: bool,
}

/// State every screen shares: the worker, the operator, the status bar and the banners.
pub struct Shared {
    pub worker: WorkerHandle,
    pub operator: Option<Operator>,
    pub status: StatusInfo,
    pub banners: Vec<Banner>,
    pub config: BackendConfig,
}

impl Shared {
    pub fn send(&self, job: Job) {
        self.worker.send(job);
    }

    pub fn error(&mut self, error: UserError) {
        // The same message twice in a row adds nothing.
        if self.banners.last().is_some_and(|b| b.error == error) {
            return;
        }
        self.banners.push(Banner {
            error,
            is_error: true,
        });
        if self.banners.len() > 4 {
            self.banners.remove(0);
        }
    }

    pub fn notice(&mut self, text: impl Into<String>) {
        // A new notice replaces the older ones, so confirmations do not stack and push the page
        // down; errors stay until dismissed.
        self.banners.retain(|b| b.is_error);
        self.banners.push(Banner {
            error: UserError::new(text, ""),
            is_error: false,
        });
        if self.banners.len() > 4 {
            self.banners.remove(0);
        }
    }

    pub fn role(&self) -> Option<Role> {
        self.operator.as_ref().map(|o| o.role)
    }

    /// Opens a native file dialog on a helper thread (the portal call blocks); the answer comes back
    /// as [`Event::Picked`] with `purpose`.
    pub fn pick(&self, purpose: &str, kind: PickKind) {
        let notifier: Notifier = self.worker.notifier();
        let purpose = purpose.to_string();
        let spawned = std::thread::Builder::new()
            .name("countersign-dialog".into())
            .spawn(move || {
                let dialog = rfd::FileDialog::new();
                let path = match kind {
                    PickKind::Image => dialog
                        .add_filter("Images", &["png", "jpg", "jpeg", "tif", "tiff", "bmp"])
                        .add_filter("All files", &["*"])
                        .pick_file(),
                    PickKind::Folder => dialog.pick_folder(),
                    PickKind::Any => dialog.pick_file(),
                    PickKind::Save(name) => dialog.set_file_name(name).save_file(),
                };
                notifier.send(Event::Picked { purpose, path });
            });
        if spawned.is_err() {
            self.worker.notifier().send(Event::Picked {
                purpose: "error".into(),
                path: None,
            });
        }
    }
}

/// What a file dialog asks for.
#[derive(Clone, Copy, Debug)]
pub enum PickKind {
    Image,
    Folder,
    Any,
    Save(&'static str),
}

/// Start-up timing, for the log line and the report.
#[derive(Clone, Debug)]
pub struct Timing {
    pub created: Instant,
    pub first_frame: Option<std::time::Duration>,
    /// Seconds from process start to `App::new`, where /proc tells us.
    pub process_to_new: Option<f64>,
}

/// The whole application.
pub struct CountersignApp {
    pub shared: Shared,
    pub screen: Screen,
    pub sign_in: sign_in::SignInState,
    pub verify: verify::VerifyState,
    pub calibrate: calibrate::CalibrateState,
    pub audit: audit::AuditState,
    pub train: train::TrainState,
    pub batch: batch::BatchState,
    pub queue: queue::QueueState,
    pub timing: Timing,
    /// Screenshot mode (see [`super::autopilot`]); inert in normal use.
    pub screenshot: super::autopilot::ScreenshotMode,
    frames: u64,
}

impl CountersignApp {
    /// Builds the app and starts its worker. `db_path` and `model_path` are what the worker opens;
    /// tests pass a temporary database here.
    pub fn new(
        db_path: PathBuf,
        model_path: Option<PathBuf>,
        device: crate::device::DeviceChoice,
    ) -> Self {
        let created = Instant::now();
        let config = BackendConfig {
            db_path,
            model_path,
            device,
        };
        let worker = WorkerHandle::spawn(config.clone());
        worker.send(Job::Status);
        Self {
            shared: Shared {
                worker,
                operator: None,
                status: StatusInfo::default(),
                banners: Vec::new(),
                config,
            },
            screen: Screen::SignIn,
            sign_in: sign_in::SignInState::default(),
            verify: verify::VerifyState::default(),
            calibrate: calibrate::CalibrateState::default(),
            audit: audit::AuditState::default(),
            train: train::TrainState::default(),
            batch: batch::BatchState::default(),
            queue: queue::QueueState::default(),
            timing: Timing {
                created,
                first_frame: None,
                process_to_new: super::seconds_since_process_start(),
            },
            screenshot: Default::default(),
            frames: 0,
        }
    }

    /// The operator, once signed in.
    pub fn operator(&self) -> Option<&Operator> {
        self.shared.operator.as_ref()
    }

    /// Loads a file into a Verify slot. A file dialog pick, a typed path and a drag-and-drop all come
    /// here, so tests exercise exactly what the clerk does.
    pub fn load_file(&mut self, slot: Slot, path: &Path) {
        self.verify.begin_load(&mut self.shared, slot, path);
    }

    /// Opens a screen if the operator's role allows it; otherwise says why not.
    pub fn open(&mut self, screen: Screen) -> bool {
        let Some(role) = self.shared.role() else {
            self.screen = Screen::SignIn;
            return screen == Screen::SignIn;
        };
        if !allowed(role, screen) {
            self.shared.error(UserError::new(
                format!(
                    "{} is for {}; you are signed in as a {}.",
                    screen.title(),
                    required_roles(screen),
                    role.label()
                ),
                "Ask a colleague with that role, or sign in with another account.",
            ));
            return false;
        }
        if self.screen != screen {
            self.screen = screen;
            self.on_enter(screen);
        }
        true
    }

    fn on_enter(&mut self, screen: Screen) {
        let (state, shared) = self.screen_state(screen);
        state.on_enter(shared);
    }

    /// A screen's state, with the state every screen shares.
    fn screen_state(&mut self, screen: Screen) -> (&mut dyn ScreenState, &mut Shared) {
        let state: &mut dyn ScreenState = match screen {
            Screen::SignIn => &mut self.sign_in,
            Screen::Verify => &mut self.verify,
            Screen::Batch => &mut self.batch,
            Screen::Calibrate => &mut self.calibrate,
            Screen::Audit => &mut self.audit,
            Screen::Train => &mut self.train,
            Screen::Queue => &mut self.queue,
        };
        (state, &mut self.shared)
    }

    /// Every screen's state, with the state they share.
    fn screen_states(&mut self) -> ([&mut dyn ScreenState; 7], &mut Shared) {
        (
            [
                &mut self.sign_in,
                &mut self.verify,
                &mut self.batch,
                &mut self.queue,
                &mut self.calibrate,
                &mut self.audit,
                &mut self.train,
            ],
            &mut self.shared,
        )
    }

    /// A long task ended (failed, stopped, or an export finished): every screen stops waiting for it.
    fn task_ended(&mut self, task: TaskKind) {
        for state in self.screen_states().0 {
            state.on_task_end(task);
        }
    }

    /// The first screen for a role.
    fn home(role: Role) -> Screen {
        match role {
            Role::Auditor => Screen::Audit,
            _ => Screen::Verify,
        }
    }

    pub fn sign_out(&mut self) {
        // A result still on screen is logged as abandoned before the operator leaves.
        self.verify.abandon(&mut self.shared);
        self.shared.send(Job::SignOut);
        self.shared.operator = None;
        self.screen = Screen::SignIn;
        self.verify = verify::VerifyState::default();
        self.audit = audit::AuditState::default();
        self.queue = queue::QueueState::default();
        self.sign_in = sign_in::SignInState::default();
    }

    /// Applies every event that has arrived since the last frame.
    pub fn poll_events(&mut self, ctx: &egui::Context) {
        while let Ok(event) = self.shared.worker.events.try_recv() {
            self.handle_event(ctx, event);
        }
    }

    fn handle_event(&mut self, ctx: &egui::Context, event: Event) {
        match event {
            Event::Status(s) => self.shared.status = s,
            Event::SignedIn(op) => {
                self.sign_in.busy = false;
                self.sign_in.error = None;
                self.sign_in.pin.clear();
                let role = op.role;
                self.shared.operator = Some(op);
                // Load the model now, while the operator looks at the screen, so the first
                // verification does not wait for it.
                self.shared.send(Job::Warmup);
                self.shared.banners.clear();
                let target = match &self.screenshot.pilot {
                    Some(a) if allowed(role, a.screen) => a.screen,
                    _ => Self::home(role),
                };
                self.screen = Screen::SignIn;
                self.open(target);
            }
            Event::SignInFailed(e) => {
                // A wrong PIN is never left in the field for the next try.
                self.sign_in.pin.clear();
                // In screenshot mode a failed sign-in ends the autopilot so the error is captured.
                self.screenshot.pilot = None;
                self.sign_in.busy = false;
                self.sign_in.error = Some(e);
            }
            Event::Picked { purpose, path } => self.on_picked(&purpose, path),
            Event::Exported(msg) => {
                self.task_ended(TaskKind::Export);
                self.shared.notice(msg);
            }
            Event::TaskFailed { task, error } => {
                self.task_ended(task);
                self.shared.error(error);
            }
            Event::TaskStopped(task) => {
                self.task_ended(task);
                self.shared.notice(format!("{task:?} stopped."));
            }
            Event::Failed(error) => self.shared.error(error),
            // Everything else is a screen's: the first that takes it keeps it.
            event => {
                let (states, shared) = self.screen_states();
                let mut event = Some(event);
                for state in states {
                    match event.take() {
                        Some(e) => event = state.on_event(ctx, shared, e),
                        None => break,
                    }
                }
            }
        }
    }

    fn on_picked(&mut self, purpose: &str, path: Option<PathBuf>) {
        let Some(path) = path else {
            self.shared.notice(
                "No file was chosen. If no dialog appeared, this desktop has no file chooser: type the path into the field instead.",
            );
            return;
        };
        match purpose {
            "ref0" => self.load_file(Slot::Reference(0), &path),
            "ref1" => self.load_file(Slot::Reference(1), &path),
            "ref2" => self.load_file(Slot::Reference(2), &path),
            "cheque" => self.load_file(Slot::Cheque, &path),
            "calibrate-folder" => self.calibrate.folder = path.display().to_string(),
            "train-data" => self.train.data = path.display().to_string(),
            "train-out" => self.train.out = path.display().to_string(),
            "train-init" => self.train.init = path.display().to_string(),
            "train-activate" => self.train.activate_path = path.display().to_string(),
            "batch-manifest" => self.batch.manifest = path.display().to_string(),
            "batch-export" => self.batch.export_to(&mut self.shared, path),
            "audit-export" => self.audit.export_to(&mut self.shared, path),
            _ => {}
        }
    }

    /// Draws one frame. Everything the user sees comes from here.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        if self.frames == 0 {
            self.shared.worker.waker.set(&ctx);
            widgets::install_style(&ctx);
        }
        self.frames += 1;
        self.poll_events(&ctx);
        self.run_autopilot();
        self.run_seed();
        self.handle_dropped_files(&ctx);
        self.handle_shortcuts(&ctx);

        egui::Panel::top("countersign-top").show(ui, |ui| self.top_bar(ui));
        egui::Panel::bottom("countersign-status").show(ui, |ui| self.status_bar(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            self.banners(ui);
            // The screen's widgets get ids under a fixed parent, so a banner appearing above them
            // never moves keyboard focus out of the field being typed in.
            ui.push_id(("screen", self.screen.title()), |ui| {
                let (state, shared) = self.screen_state(self.screen);
                state.show(ui, shared);
            });
        });
        self.hover_overlay(&ctx);

        self.signal_screenshot_ready(&ctx);

        // Keep repainting while something runs so spinners move.
        if self.busy() {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
        if self.timing.first_frame.is_none() {
            let since_new = self.timing.created.elapsed();
            self.timing.first_frame = Some(since_new);
            let process = self
                .timing
                .process_to_new
                .map(|p| p + since_new.as_secs_f64());
            eprintln!(
                "countersign: first frame {} ms after App::new{}",
                since_new.as_millis(),
                process
                    .map(|p| format!(", {:.0} ms after process start", p * 1000.0))
                    .unwrap_or_default()
            );
        }
    }

    /// True while any job the user waits for is running.
    pub fn busy(&self) -> bool {
        let states: [&dyn ScreenState; 7] = [
            &self.sign_in,
            &self.verify,
            &self.batch,
            &self.queue,
            &self.calibrate,
            &self.audit,
            &self.train,
        ];
        states.iter().any(|s| s.busy())
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(
                RichText::new("Countersign")
                    .strong()
                    .size(20.0)
                    .color(widgets::BRAND),
            );
            ui.add_space(16.0);
            let role = self.shared.role();
            for screen in Screen::TABS {
                let enabled = role.is_some_and(|r| allowed(r, screen));
                let selected = self.screen == screen;
                let text = RichText::new(screen.title()).size(16.0);
                let resp = ui.add_enabled(enabled, egui::Button::selectable(selected, text));
                let resp = if enabled {
                    resp
                } else {
                    resp.on_disabled_hover_text(format!(
                        "{} is for {}.",
                        screen.title(),
                        required_roles(screen)
                    ))
                };
                if resp.clicked() {
                    self.open(screen);
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if self.shared.operator.is_some() && ui.button("Sign out").clicked() {
                    self.sign_out();
                }
            });
        });
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        let s = &self.shared.status;
        ui.horizontal_wrapped(|ui| {
            let dim = ui.visuals().weak_text_color();
            let item = |ui: &mut egui::Ui, k: &str, v: &str| {
                ui.label(RichText::new(k).color(dim));
                ui.label(v);
                ui.add_space(12.0);
            };
            item(
                ui,
                "Device:",
                if s.device.is_empty() {
                    "..."
                } else {
                    &s.device
                },
            );
            item(
                ui,
                "Model:",
                if s.model.is_empty() { "..." } else { &s.model },
            );
            item(
                ui,
                "Database:",
                if s.database.is_empty() {
                    "..."
                } else {
                    &s.database
                },
            );
            let op = match &self.shared.operator {
                Some(o) => format!("{} ({})", o.name, o.role.label()),
                None => "not signed in".into(),
            };
            item(ui, "Signed in:", &op);
        });
    }

    fn banners(&mut self, ui: &mut egui::Ui) {
        let mut dismiss = None;
        for (i, b) in self.shared.banners.iter().enumerate() {
            let (fill, stroke) = if b.is_error {
                (widgets::ERROR_FILL, widgets::RED)
            } else {
                (widgets::NOTICE_FILL, widgets::BLUE)
            };
            egui::Frame::new()
                .fill(fill)
                .stroke(egui::Stroke::new(1.0, stroke))
                .corner_radius(4.0)
                .inner_margin(8.0)
                .show(ui, |ui| {
                    ui.set_width(ui.available_width());
                    ui.horizontal(|ui| {
                        ui.vertical(|ui| {
                            ui.label(RichText::new(&b.error.what).color(Color32::BLACK).strong());
                            if !b.error.todo.is_empty() {
                                ui.label(
                                    RichText::new(format!("What to do: {}", b.error.todo))
                                        .color(Color32::BLACK),
                                );
                            }
                        });
                        ui.with_layout(egui::Layout::right_to_left(egui::Align::Min), |ui| {
                            if ui.button("Dismiss").clicked() {
                                dismiss = Some(i);
                            }
                        });
                    });
                });
            ui.add_space(4.0);
        }
        if let Some(i) = dismiss {
            self.shared.banners.remove(i);
        }
    }

    /// Dropped files go to the drop zone under the pointer, else to the first empty slot.
    fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if dropped.is_empty() {
            return;
        }
        if self.screen != Screen::Verify {
            if self
                .shared
                .role()
                .is_some_and(|r| allowed(r, Screen::Verify))
            {
                self.open(Screen::Verify);
            } else {
                self.shared
                    .notice("Files can be dropped on the Verify screen.");
                return;
            }
        }
        let pointer = ctx.input(|i| i.pointer.hover_pos());
        for path in dropped {
            let slot = pointer
                .and_then(|p| self.verify.slot_at(p))
                .unwrap_or_else(|| self.verify.next_empty_slot());
            self.load_file(slot, &path);
        }
    }

    fn hover_overlay(&self, ctx: &egui::Context) {
        let hovering = ctx.input(|i| !i.raw.hovered_files.is_empty());
        if !hovering {
            return;
        }
        let painter = ctx.layer_painter(egui::LayerId::new(
            egui::Order::Foreground,
            egui::Id::unique("drop-overlay"),
        ));
        let rect = ctx.content_rect();
        painter.rect_filled(rect, 0.0, Color32::from_black_alpha(140));
        painter.text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "Drop on a reference or the cheque",
            egui::FontId::proportional(28.0),
            Color32::WHITE,
        );
    }

    fn handle_shortcuts(&mut self, ctx: &egui::Context) {
        if self.screen != Screen::Verify {
            return;
        }
        let typing = ctx.egui_wants_keyboard_input();
        // Confirming takes Ctrl+Enter, which typing into a field or a scanner's carriage return never
        // sends, and only once the result has been on screen a moment: a double Enter confirms nothing.
        let now = ctx.input(|i| i.time);
        let (open, enter, next) = ctx.input_mut(|i| {
            (
                i.consume_key(egui::Modifiers::COMMAND, egui::Key::O),
                !typing
                    && i.consume_key(egui::Modifiers::COMMAND, egui::Key::Enter)
                    && self.verify.keyboard_may_confirm(now),
                !typing && i.key_pressed(egui::Key::N) && i.modifiers.is_none(),
            )
        });
        if open {
            let slot = self.verify.next_empty_slot();
            let purpose = match slot {
                Slot::Reference(i) => format!("ref{i}"),
                Slot::Cheque => "cheque".into(),
            };
            self.shared.pick(&purpose, PickKind::Image);
        }
        if enter {
            self.verify.confirm(&mut self.shared);
        }
        if next {
            self.verify.next_cheque(&mut self.shared);
        }
    }
}

impl eframe::App for CountersignApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }
}
