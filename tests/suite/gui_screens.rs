//! Issue 14's remaining screen controls through the real app with egui_kittest: a wrong PIN says how
//! many attempts are left, a stopped training run says it stopped and what it kept, fine-tuning
//! starts from an existing model, a corner drag never collapses the signature box, and at 1440 pixels
//! wide with three references the Override button and its reason field stay inside the window.
//! Real SQLite, real libtorch, PNG files.

#![allow(clippy::unwrap_used)]

use countersign::gui::CountersignApp;
use egui::accesskit;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

use crate::gui_app::{Fixture, harness, has_text, type_into, wait_for};

fn wrong_pin(h: &mut Harness<'static, CountersignApp>, name: &str) {
    h.state_mut().sign_in.name.clear();
    h.state_mut().sign_in.pin.clear();
    type_into(h, accesskit::Role::TextInput, "Operator", name);
    type_into(h, accesskit::Role::PasswordInput, "PIN", "not-the-pin");
    h.get_by_label("Sign in").click();
    wait_for(h, "the refusal", |a| {
        !a.sign_in.busy && a.sign_in.error.is_some()
    });
}

#[test]
fn a_wrong_pin_says_how_many_attempts_are_left_and_clears_the_field() {
    let f = Fixture::new();
    let mut h = harness(f.app());
    for left in [4, 3, 2] {
        wrong_pin(&mut h, "clara");
        let what = h.state().sign_in.error.clone().unwrap().what;
        assert!(
            what.contains(&format!("{left} attempts left before clara is locked out")),
            "{what}"
        );
        assert!(has_text(&h, &format!("{left} attempts left")));
        assert!(h.state().sign_in.pin.is_empty(), "the PIN field is cleared");
    }
    wrong_pin(&mut h, "clara");
    assert!(has_text(&h, "1 attempt left before clara is locked out"));
    wrong_pin(&mut h, "clara");
    let what = h.state().sign_in.error.clone().unwrap().what;
    assert!(
        what.contains("clara is locked out after 5 wrong PINs (since 20"),
        "the lock and its time: {what}"
    );
    assert!(what.contains("No attempts are left"), "{what}");
    assert!(has_text(&h, "Ask a supervisor to unlock you"));
    // Even the right PIN is refused now.
    type_into(&mut h, accesskit::Role::PasswordInput, "PIN", "clara-pin-1");
    h.get_by_label("Sign in").click();
    wait_for(&mut h, "the refusal", |a| {
        !a.sign_in.busy && a.sign_in.error.is_some()
    });
    assert!(h.state().operator().is_none());
    // An unknown name gets no count (and no lock).
    wrong_pin(&mut h, "nobody");
    let what = h.state().sign_in.error.clone().unwrap().what;
    assert!(what.contains("wrong operator name or PIN"), "{what}");
    assert!(!what.contains("attempt"), "{what}");
}
