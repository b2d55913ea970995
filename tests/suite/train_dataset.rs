//! Dataset layouts: detection, scanning and every error, on real PNG trees in temporary folders.

use crate::train_shapes as shapes;

use std::path::Path;

use countersign::train::TrainError;
use countersign::train::dataset::{Layout, detect, read_writer_list, scan};

fn png(path: &Path) {
    shapes::save(&shapes::sample(1, 1, true), path);
}

fn problem(result: Result<countersign::train::Dataset, TrainError>) -> String {
    match result {
        Err(e @ TrainError::Dataset { .. }) => e.to_string(),
        Err(other) => panic!("expected a dataset error, got {other:?}"),
        Ok(ds) => panic!("expected a dataset error, got {} samples", ds.samples.len()),
    }
}

#[test]
fn writer_folders_are_detected_and_scanned() {
    let dir = tempfile::tempdir().expect("tempdir");
    shapes::write_folders(dir.path(), 3, 3, 2);
    // A folder of non-images (e.g. JSON ground truth) and a stray file are ignored.
    std::fs::create_dir_all(dir.path().join("notes")).expect("mkdir");
    std::fs::write(dir.path().join("notes").join("a.json"), "{}").expect("write");
    std::fs::write(dir.path().join("README.md"), "hello").expect("write");
    assert_eq!(detect(dir.path()).expect("detect"), Layout::Folders);
    let ds = scan(dir.path(), Layout::Auto).expect("scan");
    assert_eq!(ds.layout, Layout::Folders);
    assert_eq!(ds.writers(), vec!["w00", "w01", "w02"]);
    assert_eq!(ds.genuine_count(), 9);
    assert_eq!(ds.forgery_count(), 6);
    let forged = ds.samples.iter().find(|s| !s.genuine).expect("a forgery");
    assert!(
        forged
            .path
            .parent()
            .expect("parent")
            .ends_with(format!("{}_forg", forged.writer))
    );
    ds.require_forgeries().expect("has forgeries");
}

#[test]
fn cedar_layout_is_detected_and_scanned() {
    let dir = tempfile::tempdir().expect("tempdir");
    for w in 1..=2 {
        for n in 1..=3 {
            png(&dir
                .path()
                .join("full_org")
                .join(format!("original_{w}_{n}.png")));
        }
        png(&dir
            .path()
            .join("full_forg")
            .join(format!("forgeries_{w}_1.png")));
    }
    std::fs::write(dir.path().join("full_org").join("Thumbs.db"), "x").expect("write");
    assert_eq!(detect(dir.path()).expect("detect"), Layout::Cedar);
    let ds = scan(dir.path(), Layout::Auto).expect("scan");
    assert_eq!(ds.writers(), vec!["1", "2"]);
    assert_eq!((ds.genuine_count(), ds.forgery_count()), (6, 2));
    assert!(
        ds.samples
            .iter()
            .filter(|s| !s.genuine)
            .all(|s| s.path.to_string_lossy().contains("forgeries_"))
    );
}

#[test]
fn cedar_file_with_another_name_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    for n in 1..=2 {
        png(&dir
            .path()
            .join("full_org")
            .join(format!("original_1_{n}.png")));
    }
    png(&dir.path().join("full_org").join("scan0001.png"));
    let msg = problem(scan(dir.path(), Layout::Cedar));
    assert!(
        msg.contains("scan0001.png") && msg.contains("original_"),
        "{msg}"
    );
}

#[test]
fn manifest_is_detected_and_paths_are_relative_to_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut csv = String::from("path,writer,label\n");
    for w in ["alice", "bob"] {
        for n in 0..2 {
            let rel = format!("imgs/{w}_{n}.png");
            png(&dir.path().join(&rel));
            csv += &format!("{rel},{w},genuine\n");
        }
    }
    png(&dir.path().join("imgs/forged.png"));
    csv += "imgs/forged.png,alice,forgery\n";
    std::fs::write(dir.path().join("manifest.csv"), &csv).expect("write");
    // A folder with manifest.csv is a manifest even though it also has image folders.
    assert_eq!(detect(dir.path()).expect("detect"), Layout::Manifest);
    let ds = scan(dir.path(), Layout::Auto).expect("scan folder");
    assert_eq!((ds.genuine_count(), ds.forgery_count()), (4, 1));
    // The CSV file itself works too.
    let ds2 = scan(&dir.path().join("manifest.csv"), Layout::Auto).expect("scan csv");
    assert_eq!(ds.samples, ds2.samples);
}

#[test]
fn manifest_errors_name_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    png(&dir.path().join("a.png"));
    let csv = dir.path().join("m.csv");
    std::fs::write(&csv, "path,writer,label\na.png,x,genuine\na.png,x,maybe\n").expect("write");
    let msg = problem(scan(&csv, Layout::Manifest));
    assert!(msg.contains("line 3") && msg.contains("maybe"), "{msg}");

    std::fs::write(
        &csv,
        "path,writer,label\na.png,x,genuine\nmissing.png,x,genuine\n",
    )
    .expect("write");
    let msg = problem(scan(&csv, Layout::Manifest));
    assert!(
        msg.contains("line 3") && msg.contains("missing.png"),
        "{msg}"
    );

    std::fs::write(&csv, "file,who\na.png,x\n").expect("write");
    let msg = problem(scan(&csv, Layout::Manifest));
    assert!(msg.contains("path,writer,label"), "{msg}");
}

#[test]
fn a_folder_matching_no_layout_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.txt"), "nothing here").expect("write");
    std::fs::create_dir_all(dir.path().join("empty")).expect("mkdir");
    let msg = problem(scan(dir.path(), Layout::Auto));
    assert!(msg.contains("matches no known layout"), "{msg}");
    let missing = dir.path().join("nope");
    assert!(problem(scan(&missing, Layout::Auto)).contains("does not exist"));
    assert!(
        problem(scan(&dir.path().join("notes.txt"), Layout::Auto))
            .contains("not another kind of file")
    );
    // An explicit layout that finds nothing says so.
    assert!(problem(scan(dir.path(), Layout::Folders)).contains("no signature images"));
}

#[test]
fn a_writer_with_one_genuine_signature_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    shapes::write_folders(dir.path(), 2, 3, 0);
    png(&dir.path().join("lonely").join("only.png"));
    let msg = problem(scan(dir.path(), Layout::Auto));
    assert!(
        msg.contains("writer lonely") && msg.contains("only 1 genuine"),
        "{msg}"
    );
}

#[test]
fn forgeries_without_genuine_and_single_class_sets_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    shapes::write_folders(dir.path(), 2, 2, 0);
    png(&dir.path().join("ghost_forg").join("f.png"));
    let msg = problem(scan(dir.path(), Layout::Auto));
    assert!(
        msg.contains("writer ghost") && msg.contains("no genuine"),
        "{msg}"
    );

    let one = tempfile::tempdir().expect("tempdir");
    shapes::write_folders(one.path(), 1, 3, 0);
    let msg = problem(scan(one.path(), Layout::Auto));
    assert!(msg.contains("one class"), "{msg}");

    // Two writers without forgeries can train (other writers are negatives) but cannot be used where
    // skilled forgeries are required.
    let two = tempfile::tempdir().expect("tempdir");
    shapes::write_folders(two.path(), 2, 2, 0);
    let ds = scan(two.path(), Layout::Auto).expect("scan");
    match ds.require_forgeries() {
        Err(e @ TrainError::Dataset { .. }) => {
            assert!(e.to_string().contains("no skilled forgeries"))
        }
        other => panic!("expected a dataset error, got {other:?}"),
    }
}

#[test]
fn writer_lists_skip_comments_and_blanks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("holdout.txt");
    std::fs::write(&f, "# held out\n001\n\n 002  # second\n").expect("write");
    assert_eq!(read_writer_list(&f).expect("read"), vec!["001", "002"]);
}
