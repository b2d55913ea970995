//! The desktop application (eframe/egui).

use crate::cli::GlobalOpts;

/// Starts the GUI, or explains how to use the CLI when there is no display.
pub fn run(_global: &GlobalOpts) -> anyhow::Result<()> {
    if !has_display() {
        return Err(
            crate::cli::ExitError::new(crate::cli::exit::NO_DISPLAY, NO_DISPLAY_MESSAGE).into(),
        );
    }
    anyhow::bail!("the desktop application is not built yet")
}

/// Shown when no X11 or Wayland display is available.
pub const NO_DISPLAY_MESSAGE: &str = "No display found (neither DISPLAY nor WAYLAND_DISPLAY is set), so the \
desktop application cannot open a window. Everything it does is also available from the command line: \
`countersign verify --reference REF.png --cheque CHEQUE.png` checks one cheque, `countersign batch \
--manifest cheques.csv` checks many, `countersign evaluate` and `countersign calibrate` measure and set \
thresholds, `countersign audit verify|export` inspect the audit log, `countersign train` trains a model \
and `countersign info` shows the set-up. Run `countersign --help` for the full list, or start the \
application under a display (for example `xvfb-run countersign`).";

/// True when an X11 or Wayland display is configured.
pub fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}
