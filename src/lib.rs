//! Countersign verifies handwritten signatures on cheques, offline.
//!
//! One verification, as data: cheque bytes -> [`imaging`] (bounded decode, signature found on the cheque,
//! ink cropped, centred and resized) -> [`model`] (a Siamese CNN embedding, libtorch via `tch`) ->
//! [`scoring`] (similarity to the account's references, calibrated probability, ACCEPT / REFER /
//! REJECT against a supervisor's thresholds) -> [`store`] (an append-only, hash-chained audit row).
//!
//! The same library serves the GUI ([`gui`]), the command line ([`cli`]) and the tests. Nothing in
//! `imaging`, `scoring` or `store` knows about egui, and the GUI never runs tch or SQL on its UI thread.

pub mod assess;
pub mod batch;
pub mod cli;
pub mod device;
pub mod digest;
pub mod gui;
pub mod imaging;
pub mod math;
pub mod model;
pub mod output;
pub mod paths;
pub mod scoring;
pub mod store;
pub mod synth;
pub mod train;
pub mod verify;
pub mod x9;
