//! The integration suite: one test binary for every layer (one link of libtorch instead of thirty),
//! run end to end against real SQLite files, real libtorch, real images and the real binary.
//! `hardening_alloc` stays a binary of its own because it installs a counting global allocator.

// Fixtures shared by several modules.
mod hardening_common;
mod pipeline_fixture;
mod store_common;
mod train_shapes;

// One module per area, named as the README and docs/HARDENING.md refer to them.
mod accuracy_protocol;
mod assess_cli;
mod audit_integrity;
mod batch_output_safety;
mod batch_pipeline;
mod controls_cli;
mod controls_kind;
mod controls_store;
mod decision_record;
mod decision_rows;
mod ensemble_tta;
mod gui_app;
mod gui_controls;
mod gui_screens;
mod gui_seams;
mod hardening_imaging;
mod hardening_load;
mod hardening_model;
mod hardening_regressions;
mod hardening_roles;
mod hardening_store;
mod hardening_tamper;
mod imaging_cheque;
mod imaging_decode;
mod layering;
mod model_load;
mod per_account_stage;
mod scoring_calibration;
mod scoring_cohort;
mod scoring_evaluation;
mod scoring_metrics;
mod store_chain;
mod store_cli;
mod store_crash;
mod store_export;
mod store_faults;
mod store_final_decision;
mod store_roles;
mod synth;
mod train_dataset;
mod train_run;
mod verify_pipeline;
mod x9_batch;
mod x9_finder;
mod x9_reader;

/// The name libtest gives `function` in the module whose `module_path!()` is `module`, for tests that
/// re-run this binary to make a child process (`suite::store_crash` -> `store_crash::crash_child`).
fn test_name(module: &str, function: &str) -> String {
    let within_crate = module.split_once("::").map_or("", |(_, rest)| rest);
    format!("{within_crate}::{function}")
}
