//! Calibration fitting, threshold choice and decisions.

use std::collections::BTreeMap;

use countersign::scoring::{
    AmountRule, Calibration, CalibrationModel, Decision, DecisionPolicy, ISOTONIC_MIN_PAIRS,
    ScoringError, Thresholds, choose_thresholds, decide, far_frr, fit_isotonic, fit_platt,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Scores uniform in [lo, hi], labels drawn from sigmoid(a s + b).
fn simulate(a: f64, b: f64, n: usize, lo: f64, hi: f64, seed: u64) -> (Vec<f64>, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let s = rng.random_range(lo..hi);
            let p = 1.0 / (1.0 + (-(a * s + b)).exp());
            (s, rng.random_bool(p))
        })
        .unzip()
}

#[test]
fn platt_recovers_known_parameters() {
    for (a, b, lo, hi, seed) in [(6.0, -1.0, -1.0, 1.0, 1), (12.0, -8.0, 0.0, 1.0, 2)] {
        let (s, l) = simulate(a, b, 20_000, lo, hi, seed);
        let c = fit_platt(&s, &l).unwrap();
        // Standard errors with 20k samples are ~0.1 for a; the tolerance is several of them.
        assert!((c.a - a).abs() < 0.06 * a, "a = {} (true {a})", c.a);
        assert!(
            (c.b - b).abs() < 0.06 * b.abs().max(1.0),
            "b = {} (true {b})",
            c.b
        );
    }
}

#[test]
fn platt_on_two_symmetric_points_matches_hand_solution() {
    // One genuine at +1, one forgery at -1: smoothed targets 2/3 and 1/3. By symmetry b = 0 and
    // sigmoid(a) = 2/3, so a = ln 2.
    let c = fit_platt(&[1.0, -1.0], &[true, false]).unwrap();
    assert!((c.a - std::f64::consts::LN_2).abs() < 1e-4, "{c:?}");
    assert!(c.b.abs() < 1e-4, "{c:?}");
    assert!((c.probability(1.0) - 2.0 / 3.0).abs() < 1e-4);
}

#[test]
fn platt_stays_finite_on_separable_data() {
    let s = [0.95, 0.9, 0.85, 0.8, 0.3, 0.2, 0.1, 0.05];
    let l = [true, true, true, true, false, false, false, false];
    let c = fit_platt(&s, &l).unwrap();
    assert!(c.a.is_finite() && c.b.is_finite() && c.a > 0.0, "{c:?}");
    assert!(c.probability(0.9) > 0.5 && c.probability(0.1) < 0.5);
    // Smoothed targets (5/6 and 1/6) keep the fit from claiming certainty.
    assert!(c.probability(0.95) < 0.999, "{}", c.probability(0.95));
    // The inverse maps the probability back to the score.
    let s_half = c.score_for_probability(0.5).unwrap();
    assert!((c.probability(s_half) - 0.5).abs() < 1e-9);
    assert!(c.score_for_probability(1.0).is_none());
}

#[test]
fn platt_rejects_bad_input() {
    assert!(matches!(
        fit_platt(&[0.1, 0.2], &[true, true]),
        Err(ScoringError::EmptyClass {
            class: "forgery",
            ..
        })
    ));
    assert!(matches!(
        fit_platt(&[0.1, f64::INFINITY], &[true, false]),
        Err(ScoringError::NonFinite { index: 1, .. })
    ));
    assert!(matches!(
        fit_platt(&[0.1], &[true, false]),
        Err(ScoringError::LengthMismatch { .. })
    ));
}

#[test]
fn probability_is_stable_at_extremes() {
    let c = Calibration { a: 50.0, b: -10.0 };
    assert_eq!(c.probability(1e6), 1.0);
    assert_eq!(c.probability(-1e6), 0.0);
    assert!(c.probability(f64::NAN).is_nan());
}

#[test]
fn isotonic_pools_violators_as_computed_by_hand() {
    // 400 genuine at score 0, 400 forgeries at 1, 400 genuine at 2. Smoothed targets:
    // hi = 801/802, lo = 1/402. Blocks 0 (mean hi) and 1 (mean lo) violate monotonicity and pool
    // into one block at mean score 0.5 with mean (hi + lo) / 2; block 2 stays at hi.
    let mut s = Vec::new();
    let mut l = Vec::new();
    for (score, label) in [(0.0, true), (1.0, false), (2.0, true)] {
        s.extend(std::iter::repeat_n(score, 400));
        l.extend(std::iter::repeat_n(label, 400));
    }
    let iso = fit_isotonic(&s, &l).unwrap();
    let (hi, lo) = (801.0 / 802.0, 1.0 / 402.0);
    assert_eq!(iso.scores, vec![0.5, 2.0]);
    assert!((iso.probabilities[0] - (hi + lo) / 2.0).abs() < 1e-12);
    assert!((iso.probabilities[1] - hi).abs() < 1e-12);
    // Interpolated between the knots, constant outside.
    let mid = iso.probability(1.25);
    assert!((mid - ((hi + lo) / 2.0 + hi) / 2.0).abs() < 1e-12);
    assert_eq!(iso.probability(-5.0), iso.probabilities[0]);
    assert!((iso.probability(9.0) - hi).abs() < 1e-12);
    let model = CalibrationModel::Isotonic(iso);
    assert!((model.probability(9.0) - hi).abs() < 1e-12);
    let json = serde_json::to_string(&model).unwrap();
    // serde_json without `float_roundtrip` may move the last bit of an f64; compare with a tolerance.
    match (
        serde_json::from_str::<CalibrationModel>(&json).unwrap(),
        &model,
    ) {
        (CalibrationModel::Isotonic(back), CalibrationModel::Isotonic(orig)) => {
            assert_eq!(back.scores, orig.scores);
            for (x, y) in back.probabilities.iter().zip(&orig.probabilities) {
                assert!((x - y).abs() < 1e-15);
            }
        }
        other => panic!("wrong kind after round trip: {other:?}"),
    }
}

#[test]
fn isotonic_is_monotone_and_close_to_the_true_curve() {
    let (s, l) = simulate(8.0, -4.0, 5000, 0.0, 1.0, 3);
    let iso = fit_isotonic(&s, &l).unwrap();
    assert!(iso.probabilities.windows(2).all(|w| w[0] <= w[1]));
    for x in [0.2f64, 0.5, 0.8] {
        let truth = 1.0 / (1.0 + (-(8.0 * x - 4.0)).exp());
        assert!((iso.probability(x) - truth).abs() < 0.1, "x {x}");
    }
}

#[test]
fn isotonic_refuses_small_data() {
    let (s, l) = simulate(8.0, -4.0, ISOTONIC_MIN_PAIRS - 1, 0.0, 1.0, 4);
    assert!(matches!(
        fit_isotonic(&s, &l),
        Err(ScoringError::NotEnoughData(_))
    ));
    // Enough pairs but one class barely present.
    let mut s: Vec<f64> = (0..2000).map(|i| f64::from(i) / 2000.0).collect();
    let mut l = vec![true; 2000];
    for x in l.iter_mut().take(50) {
        *x = false;
    }
    s.push(0.0);
    l.push(false);
    assert!(matches!(
        fit_isotonic(&s, &l),
        Err(ScoringError::NotEnoughData(_))
    ));
}

#[test]
fn chosen_thresholds_match_hand_computation() {
    // genuine 0.9, 0.8, 0.6; forgeries 0.7, 0.5, 0.4; calibration increasing.
    let s = [0.9, 0.8, 0.6, 0.7, 0.5, 0.4];
    let l = [true, true, true, false, false, false];
    let c = Calibration { a: 10.0, b: -6.5 };
    let ch = choose_thresholds(&s, &l, &c, 0.0, 0.0).unwrap();
    // FAR 0: accept probabilities down to p(0.8), halfway to p(0.7).
    let accept = (c.probability(0.8) + c.probability(0.7)) / 2.0;
    assert!((ch.thresholds.accept - accept).abs() < 1e-12);
    // No genuine may be rejected: reject at the lowest genuine probability p(0.6).
    assert_eq!(ch.thresholds.reject, c.probability(0.6));
    assert_eq!((ch.far, ch.genuine_rejected), (0.0, 0.0));
    assert!((ch.frr - 1.0 / 3.0).abs() < 1e-12);
    // Referred: 0.7 (forgery) and 0.6 (genuine): 2 of 6.
    assert!((ch.refer_rate - 2.0 / 6.0).abs() < 1e-12);
}

#[test]
fn chosen_thresholds_respect_the_targets_on_simulated_data() {
    let (s, l) = simulate(10.0, -5.0, 4000, 0.0, 1.0, 5);
    let c = fit_platt(&s, &l).unwrap();
    for (target, band) in [(0.01, 0.02), (0.001, 0.0), (0.1, 0.3), (0.05, 1.0)] {
        let ch = choose_thresholds(&s, &l, &c, target, band).unwrap();
        let t = ch.thresholds;
        t.validate().unwrap();
        assert!(t.reject <= t.accept);
        let probs: Vec<f64> = s.iter().map(|&x| c.probability(x)).collect();
        let at_accept = far_frr(&probs, &l, t.accept).unwrap();
        let at_reject = far_frr(&probs, &l, t.reject).unwrap();
        assert!(at_accept.far <= target, "FAR {} > {target}", at_accept.far);
        assert!(
            at_reject.frr <= band,
            "genuine rejected {} > {band}",
            at_reject.frr
        );
        assert_eq!(
            (ch.far, ch.genuine_rejected),
            (at_accept.far, at_reject.frr)
        );
    }
}

#[test]
fn choose_thresholds_rejects_bad_parameters() {
    let s = [0.9, 0.1];
    let l = [true, false];
    let c = Calibration { a: 5.0, b: 0.0 };
    assert!(choose_thresholds(&s, &l, &c, 1.5, 0.1).is_err());
    assert!(choose_thresholds(&s, &l, &c, 0.01, -0.1).is_err());
    assert!(choose_thresholds(&s, &l, &Calibration { a: -1.0, b: 0.0 }, 0.01, 0.1).is_err());
    assert!(choose_thresholds(&s, &[true, true], &c, 0.01, 0.1).is_err());
}

fn policy() -> DecisionPolicy {
    let mut per_account = BTreeMap::new();
    per_account.insert(
        "ACC-STRICT".to_string(),
        Thresholds {
            accept: 0.95,
            reject: 0.5,
        },
    );
    DecisionPolicy {
        thresholds: Thresholds {
            accept: 0.8,
            reject: 0.3,
        },
        amount_rule: Some(AmountRule {
            above_cents: 1_000_000,
            accept: 0.9,
        }),
        per_account,
    }
}

#[test]
fn decide_covers_every_branch() {
    let p = policy();
    p.validate().unwrap();
    let d = |prob, acc, amt| decide(prob, acc, amt, &p);
    // Global thresholds: accept >= 0.8 (inclusive), reject < 0.3, refer between.
    assert_eq!(d(Some(0.8), None, None).decision, Decision::Accept);
    assert_eq!(d(Some(0.79), None, None).decision, Decision::Refer);
    assert_eq!(d(Some(0.3), None, None).decision, Decision::Refer);
    assert_eq!(d(Some(0.29), None, None).decision, Decision::Reject);
    // No signature found.
    let none = d(None, None, Some(100));
    assert_eq!(none.decision, Decision::Refer);
    assert!(none.reason.contains("no signature"));
    // Amount rule: strictly above 10 000.00 the accept threshold rises to 0.9.
    assert_eq!(
        d(Some(0.85), None, Some(1_000_000)).decision,
        Decision::Accept
    );
    let big = d(Some(0.85), None, Some(1_000_001));
    assert_eq!(big.decision, Decision::Refer);
    assert_eq!(
        big.thresholds_used,
        Thresholds {
            accept: 0.9,
            reject: 0.3
        }
    );
    assert!(big.reason.contains("10000.00"), "{}", big.reason);
    // Per-account override, and the amount rule never loosens a stricter account.
    let strict = d(Some(0.9), Some("ACC-STRICT"), None);
    assert_eq!(strict.decision, Decision::Refer);
    assert_eq!(
        strict.thresholds_used,
        Thresholds {
            accept: 0.95,
            reject: 0.5
        }
    );
    assert!(strict.reason.contains("ACC-STRICT"));
    assert_eq!(
        d(Some(0.45), Some("ACC-STRICT"), None).decision,
        Decision::Reject
    );
    assert_eq!(
        d(Some(0.96), Some("ACC-STRICT"), Some(5_000_000))
            .thresholds_used
            .accept,
        0.95
    );
    // Unknown accounts use the global thresholds.
    assert_eq!(
        d(Some(0.85), Some("OTHER"), None).decision,
        Decision::Accept
    );
    // Doubtful input is referred, never accepted.
    for bad in [f64::NAN, 1.5, -0.1, f64::INFINITY] {
        assert_eq!(d(Some(bad), None, None).decision, Decision::Refer);
    }
    assert_eq!(d(Some(0.99), None, Some(-5)).decision, Decision::Refer);
}

#[test]
fn invalid_policies_are_refused_and_never_accept() {
    assert!(Thresholds::new(0.5, 0.6).is_err());
    assert!(Thresholds::new(1.2, 0.1).is_err());
    assert!(Thresholds::new(0.5, f64::NAN).is_err());
    assert!(Thresholds::new(0.5, 0.5).is_ok());
    let mut p = policy();
    p.per_account.insert(
        "BAD".into(),
        Thresholds {
            accept: 0.2,
            reject: 0.4,
        },
    );
    let err = p.validate().unwrap_err();
    assert!(err.to_string().contains("BAD"), "{err}");
    let out = decide(Some(0.99), None, None, &p);
    assert_eq!(out.decision, Decision::Refer);
    assert!(out.reason.contains("invalid"));
    let mut p = policy();
    p.amount_rule = Some(AmountRule {
        above_cents: 10,
        accept: 2.0,
    });
    assert!(p.validate().is_err());
    assert!(
        DecisionPolicy::new(Thresholds {
            accept: 0.1,
            reject: 0.9
        })
        .is_err()
    );
}

#[test]
fn policy_round_trips_through_json() {
    let p = policy();
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<DecisionPolicy>(&json).unwrap(), p);
    // Optional parts may be omitted in stored settings.
    let minimal: DecisionPolicy =
        serde_json::from_str(r#"{"thresholds":{"accept":0.9,"reject":0.2}}"#).unwrap();
    assert!(minimal.amount_rule.is_none() && minimal.per_account.is_empty());
    let out = decide(Some(0.5), Some("x"), Some(1), &minimal);
    assert_eq!(out.decision, Decision::Refer);
    assert_eq!(serde_json::to_string(&out.decision).unwrap(), "\"REFER\"");
}

#[test]
fn platt_on_constant_scores_gives_the_base_rate() {
    // No information in the score: the fit must stay finite and predict the (smoothed) base rate.
    let s = [0.5; 10];
    let l = [
        true, true, true, false, false, false, false, false, false, false,
    ];
    let c = fit_platt(&s, &l).unwrap();
    assert!(c.a.is_finite() && c.b.is_finite(), "{c:?}");
    // Mean smoothed target: (3 * 4/5 + 7 * 1/9) / 10.
    let base = (3.0 * 4.0 / 5.0 + 7.0 / 9.0) / 10.0;
    assert!(
        (c.probability(0.5) - base).abs() < 1e-3,
        "{}",
        c.probability(0.5)
    );
}

#[test]
fn saturated_forgeries_make_the_target_unreachable() {
    // Both a genuine and a forgery reach probability exactly 1: no threshold in [0, 1] separates
    // them, so a FAR of 0 cannot be promised and the choice is refused rather than stored.
    let c = Calibration { a: 100.0, b: 0.0 };
    let s = [11.0, 10.0, -1.0];
    let l = [true, false, false];
    assert!(matches!(
        choose_thresholds(&s, &l, &c, 0.0, 0.1),
        Err(ScoringError::NotEnoughData(_))
    ));
    // A FAR of 1/2 is reachable.
    assert!(choose_thresholds(&s, &l, &c, 0.5, 0.1).is_ok());
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]

        #[test]
        fn chosen_thresholds_always_meet_their_targets(
            v in prop::collection::vec((0u8..30, any::<bool>()), 1..80),
            target in 0.0f64..=1.0,
            band in 0.0f64..=1.0,
        ) {
            let mut s: Vec<f64> = v.iter().map(|(x, _)| f64::from(*x) / 29.0).collect();
            let mut l: Vec<bool> = v.iter().map(|(_, b)| *b).collect();
            s.extend([0.3, 0.7]);
            l.extend([false, true]);
            let c = fit_platt(&s, &l).unwrap();
            prop_assume!(c.a > 0.0);
            let ch = choose_thresholds(&s, &l, &c, target, band).unwrap();
            prop_assert!(ch.thresholds.validate().is_ok());
            prop_assert!(ch.far <= target && ch.genuine_rejected <= band);
            prop_assert!((0.0..=1.0).contains(&ch.refer_rate));
        }
    }
}
