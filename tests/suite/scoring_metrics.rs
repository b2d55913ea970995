//! Metric and similarity functions against hand-computed cases, plus property tests.

use countersign::scoring::{
    Aggregation, MIN_REFERENCE_STD, ReferenceStats, ScoredPair, ScoringError, WriterEerBasis, auc,
    cosine_similarity, det_points, downsample, eer, far_frr, histogram, inverse_normal_cdf,
    l2_normalise, normalise_score, per_writer_eer, roc_points, score_against_references,
    threshold_for_far,
};
use proptest::prelude::*;

const TOL: f64 = 1e-12;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Case A, no ties. genuine = [0.9, 0.8, 0.6], forgeries = [0.7, 0.5, 0.4].
/// Descending: 0.9 G, 0.8 G, 0.7 F, 0.6 G, 0.5 F, 0.4 F.
fn case_a() -> (Vec<f64>, Vec<bool>) {
    (
        vec![0.9, 0.8, 0.6, 0.7, 0.5, 0.4],
        vec![true, true, true, false, false, false],
    )
}

/// Case B, a genuine and a forgery tied at 0.5. genuine = [0.8, 0.5], forgeries = [0.5, 0.2].
fn case_b() -> (Vec<f64>, Vec<bool>) {
    (vec![0.8, 0.5, 0.5, 0.2], vec![true, true, false, false])
}

#[test]
fn roc_without_ties_matches_hand_computation() {
    let (s, l) = case_a();
    let roc = roc_points(&s, &l).unwrap();
    // (threshold, FPR, TPR) by hand: one point per distinct score, starting above the top score.
    let expected = [
        (0.9f64.next_up(), 0.0, 0.0),
        (0.9, 0.0, 1.0 / 3.0),
        (0.8, 0.0, 2.0 / 3.0),
        (0.7, 1.0 / 3.0, 2.0 / 3.0),
        (0.6, 1.0 / 3.0, 1.0),
        (0.5, 2.0 / 3.0, 1.0),
        (0.4, 1.0, 1.0),
    ];
    assert_eq!(roc.len(), expected.len());
    for (p, (t, fpr, tpr)) in roc.iter().zip(expected) {
        assert_eq!(p.threshold, t);
        assert!(close(p.fpr, fpr) && close(p.tpr, tpr), "{p:?}");
    }
}

#[test]
fn auc_and_eer_without_ties_match_hand_computation() {
    let (s, l) = case_a();
    // 9 (genuine, forgery) pairs; the genuine wins in 3 + 3 + 2 = 8 of them.
    assert!(close(auc(&s, &l).unwrap(), 8.0 / 9.0));
    // At t = 0.7: accepted {0.9, 0.8, 0.7}: FAR = 1/3 (0.7), FRR = 1/3 (0.6). FAR = FRR exactly.
    let e = eer(&s, &l).unwrap();
    assert!(close(e.eer, 1.0 / 3.0), "{e:?}");
    assert_eq!(e.threshold, 0.7);
    assert!(close(e.far, 1.0 / 3.0) && close(e.frr, 1.0 / 3.0));
}

#[test]
fn far_frr_at_thresholds_match_hand_computation() {
    let (s, l) = case_a();
    let r = far_frr(&s, &l, 0.65).unwrap();
    assert!(close(r.far, 1.0 / 3.0) && close(r.frr, 1.0 / 3.0));
    let r = far_frr(&s, &l, 0.85).unwrap();
    assert!(close(r.far, 0.0) && close(r.frr, 2.0 / 3.0));
    // A score equal to the threshold is accepted.
    let r = far_frr(&s, &l, 0.7).unwrap();
    assert!(close(r.far, 1.0 / 3.0));
    let r = far_frr(&s, &l, 0.0).unwrap();
    assert!(close(r.far, 1.0) && close(r.frr, 0.0));
}

#[test]
fn tied_scores_move_together_and_count_half() {
    let (s, l) = case_b();
    let roc = roc_points(&s, &l).unwrap();
    // The tie at 0.5 is one diagonal step from (0, 1/2) to (1/2, 1).
    let pts: Vec<(f64, f64, f64)> = roc.iter().map(|p| (p.threshold, p.fpr, p.tpr)).collect();
    assert_eq!(
        pts,
        vec![
            (0.8f64.next_up(), 0.0, 0.0),
            (0.8, 0.0, 0.5),
            (0.5, 0.5, 1.0),
            (0.2, 1.0, 1.0)
        ]
    );
    // Pairs: (0.8,0.5)=1, (0.8,0.2)=1, (0.5,0.5)=1/2, (0.5,0.2)=1 -> 3.5 / 4.
    assert!(close(auc(&s, &l).unwrap(), 0.875));
    // Segment (FAR 0, FRR 1/2) -> (FAR 1/2, FRR 0): the rates meet halfway, at 1/4. Both ends are
    // 1/2 away from equality, so the stricter threshold 0.8 is reported.
    let e = eer(&s, &l).unwrap();
    assert!(close(e.eer, 0.25), "{e:?}");
    assert_eq!(e.threshold, 0.8);
    assert!(close(e.far, 0.0) && close(e.frr, 0.5));
}

#[test]
fn all_equal_scores_give_chance_level() {
    let s = vec![0.42; 6];
    let l = vec![true, false, true, false, false, true];
    let roc = roc_points(&s, &l).unwrap();
    assert_eq!(roc.len(), 2);
    assert!(close(auc(&s, &l).unwrap(), 0.5));
    assert!(close(eer(&s, &l).unwrap().eer, 0.5));
}

#[test]
fn perfect_and_inverted_separation() {
    let s = vec![0.9, 0.8, 0.2, 0.1];
    let l = vec![true, true, false, false];
    assert!(close(auc(&s, &l).unwrap(), 1.0));
    let e = eer(&s, &l).unwrap();
    assert!(close(e.eer, 0.0));
    // Threshold 0.8 accepts both genuine and no forgery.
    assert_eq!(e.threshold, 0.8);
    let inverted: Vec<bool> = l.iter().map(|x| !x).collect();
    assert!(close(auc(&s, &inverted).unwrap(), 0.0));
    assert!(close(eer(&s, &inverted).unwrap().eer, 1.0));
}

#[test]
fn bad_input_gives_typed_errors() {
    let empty_forgery = eer(&[0.1, 0.2], &[true, true]).unwrap_err();
    assert!(matches!(
        empty_forgery,
        ScoringError::EmptyClass {
            class: "forgery",
            ..
        }
    ));
    assert!(empty_forgery.to_string().contains("no forgery scores"));
    assert!(matches!(
        auc(&[0.1, 0.2], &[false, false]),
        Err(ScoringError::EmptyClass {
            class: "genuine",
            ..
        })
    ));
    assert!(matches!(
        roc_points(&[], &[]),
        Err(ScoringError::EmptyClass { .. })
    ));
    let nan = auc(&[0.1, f64::NAN], &[true, false]).unwrap_err();
    assert!(
        matches!(nan, ScoringError::NonFinite { index: 1, .. }),
        "{nan}"
    );
    assert!(matches!(
        far_frr(&[0.1, 0.2, 0.3], &[true, false], 0.5),
        Err(ScoringError::LengthMismatch {
            left: 3,
            right: 2,
            ..
        })
    ));
    assert!(far_frr(&[0.1, 0.2], &[true, false], f64::NAN).is_err());
    assert!(threshold_for_far(&[0.1, 0.2], &[true, false], 1.5).is_err());
    assert!(threshold_for_far(&[0.1, 0.2], &[true, false], f64::NAN).is_err());
    assert!(histogram(&[0.1], 0.0, 1.0, 0).is_err());
    assert!(histogram(&[0.1], 1.0, 1.0, 4).is_err());
    assert!(histogram(&[f64::INFINITY], 0.0, 1.0, 4).is_err());
}

#[test]
fn threshold_for_target_far_matches_hand_computation() {
    let (s, l) = case_a();
    // FAR 0: accept down to 0.8 (0.7 is a forgery); the threshold sits halfway to 0.7.
    let r = threshold_for_far(&s, &l, 0.0).unwrap();
    assert!(close(r.threshold, 0.75) && close(r.far, 0.0) && close(r.frr, 1.0 / 3.0));
    // FAR 1/3 (and anything below 2/3): accept down to 0.6; halfway to 0.5.
    for target in [1.0 / 3.0, 0.5] {
        let r = threshold_for_far(&s, &l, target).unwrap();
        assert!(close(r.threshold, 0.55) && close(r.far, 1.0 / 3.0) && close(r.frr, 0.0));
    }
    // FAR 1: everything accepted; the threshold is the lowest score.
    let r = threshold_for_far(&s, &l, 1.0).unwrap();
    assert_eq!(r.threshold, 0.4);
    // The top forgery is the top score: FAR 0 means accepting nothing.
    let r = threshold_for_far(&[0.9, 0.5], &[false, true], 0.0).unwrap();
    assert!(r.threshold > 0.9 && close(r.far, 0.0) && close(r.frr, 1.0));
}

#[test]
fn probit_matches_known_quantiles() {
    // Standard normal quantiles from tables.
    let cases = [
        (0.5, 0.0),
        (0.975, 1.959_963_984_540_054),
        (0.025, -1.959_963_984_540_054),
        (0.841_344_746_068_542_9, 1.0),
        (0.001, -3.090_232_306_167_813),
        (0.999_9, 3.719_016_485_455_709),
        (0.1, -1.281_551_565_544_601),
    ];
    for (p, z) in cases {
        let got = inverse_normal_cdf(p);
        assert!(
            (got - z).abs() < 1e-8 * z.abs().max(1.0),
            "probit({p}) = {got}, want {z}"
        );
    }
    assert_eq!(inverse_normal_cdf(0.0), f64::NEG_INFINITY);
    assert_eq!(inverse_normal_cdf(1.0), f64::INFINITY);
    assert!(inverse_normal_cdf(1.5).is_nan() && inverse_normal_cdf(f64::NAN).is_nan());
}

#[test]
fn det_points_are_probits_of_clamped_rates() {
    let (s, l) = case_a();
    let det = det_points(&s, &l).unwrap();
    let roc = roc_points(&s, &l).unwrap();
    assert_eq!(det.len(), roc.len());
    // First point: FAR 0 -> clamped to 0.5/3, FRR 1 -> clamped to 1 - 0.5/3.
    assert!(close(det[0].far_probit, inverse_normal_cdf(1.0 / 6.0)));
    assert!(close(det[0].frr_probit, inverse_normal_cdf(5.0 / 6.0)));
    // The EER point (1/3, 1/3) lies on the diagonal.
    assert!(close(det[3].far_probit, det[3].frr_probit));
    assert!(
        det.iter()
            .all(|d| d.far_probit.is_finite() && d.frr_probit.is_finite())
    );
}

#[test]
fn histogram_bins_match_hand_computation() {
    // Bins of width 0.25 over [0, 1]; -3 and 7 fall into the edge bins, 1.0 into the last.
    let h = histogram(&[0.0, 0.1, 0.25, 0.5, 0.99, 1.0, -3.0, 7.0], 0.0, 1.0, 4).unwrap();
    assert_eq!(h.counts, vec![3, 1, 1, 3]);
    assert_eq!(h.bin_edges(1), (0.25, 0.5));
    assert_eq!(h.counts.iter().sum::<usize>(), 8);
}

fn pair(writer: &str, score: f64, genuine: bool, skilled: bool) -> ScoredPair {
    ScoredPair {
        writer: writer.into(),
        questioned_writer: writer.into(),
        sample_id: format!("{score}"),
        score,
        genuine,
        skilled,
    }
}

#[test]
fn per_writer_eer_uses_skilled_then_random() {
    let pairs = vec![
        // w1: separable against its skilled forgeries (EER 0); the random one is ignored.
        pair("w1", 0.9, true, false),
        pair("w1", 0.8, true, false),
        pair("w1", 0.3, false, true),
        pair("w1", 0.95, false, false),
        // w2: no skilled forgeries; genuine 0.6 vs random {0.7, 0.1}: case with EER 1/2.
        // ROC: (0,1) -> t=0.7 (1/2, 1) -> t=0.6 (1/2, 0) -> crossing at 1/2.
        pair("w2", 0.6, true, false),
        pair("w2", 0.7, false, false),
        pair("w2", 0.1, false, false),
        // w3: no questioned genuine: left out.
        pair("w3", 0.2, false, true),
    ];
    let per = per_writer_eer(&pairs).unwrap();
    assert_eq!(per.len(), 2);
    assert_eq!(per[0].writer, "w1");
    assert_eq!(per[0].basis, WriterEerBasis::Skilled);
    assert!(close(per[0].eer, 0.0));
    assert_eq!((per[0].genuine, per[0].forgeries), (2, 1));
    assert_eq!(per[1].basis, WriterEerBasis::Random);
    assert!(close(per[1].eer, 0.5), "{:?}", per[1]);
}

#[test]
fn downsample_keeps_ends_and_bounds_length() {
    let pts: Vec<usize> = (0..1000).collect();
    let d = downsample(&pts, 200);
    assert_eq!(d.len(), 200);
    assert_eq!((d[0], d[199]), (0, 999));
    assert!(d.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(downsample(&pts[..10], 200).len(), 10);
    assert_eq!(downsample(&pts, 1), vec![0]);
}

#[test]
fn cosine_and_aggregations_match_hand_computation() {
    assert!(cosine_similarity(&[1.0, 0.0], &[0.0, 2.0]).unwrap().abs() < TOL);
    assert!(close(
        cosine_similarity(&[1.0, 1.0], &[3.0, 0.0]).unwrap(),
        std::f64::consts::FRAC_1_SQRT_2
    ));
    let n = l2_normalise(&[3.0, 4.0]).unwrap();
    assert!((n[0] - 0.6).abs() < 1e-6 && (n[1] - 0.8).abs() < 1e-6);
    // Similarities to the three references: 1, 0, -1.
    let q = vec![1.0, 0.0];
    let refs = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![-1.0, 0.0]];
    let score = |agg| score_against_references(&q, &refs, agg).unwrap();
    assert!(close(score(Aggregation::Max), 1.0));
    assert!(close(score(Aggregation::Mean), 0.0));
    assert!(close(score(Aggregation::TopKMean(2)), 0.5));
    assert!(close(score(Aggregation::TopKMean(10)), 0.0));
    assert_eq!(Aggregation::default(), Aggregation::TopKMean(3));
    assert_eq!(
        "top3_mean".parse::<Aggregation>().unwrap(),
        Aggregation::TopKMean(3)
    );
    assert_eq!("MAX".parse::<Aggregation>().unwrap(), Aggregation::Max);
    assert!("top0".parse::<Aggregation>().is_err() && "median".parse::<Aggregation>().is_err());
}

#[test]
fn similarity_errors_are_typed() {
    assert!(matches!(
        cosine_similarity(&[1.0, 0.0], &[1.0]),
        Err(ScoringError::DimensionMismatch {
            expected: 2,
            found: 1
        })
    ));
    assert!(matches!(
        cosine_similarity(&[0.0, 0.0], &[1.0, 0.0]),
        Err(ScoringError::ZeroEmbedding)
    ));
    assert!(matches!(
        cosine_similarity(&[f32::NAN, 0.0], &[1.0, 0.0]),
        Err(ScoringError::NonFinite { .. })
    ));
    assert!(cosine_similarity(&[], &[]).is_err());
    assert!(score_against_references(&vec![1.0], &[], Aggregation::Mean).is_err());
    let q = vec![1.0, 0.0];
    let score = |r: Vec<f32>| score_against_references(&q, &[vec![1.0, 0.0], r], Aggregation::Max);
    assert!(matches!(
        score(vec![f32::NAN, 0.0]),
        Err(ScoringError::NonFinite { .. })
    ));
    assert!(matches!(
        score(vec![0.0, 0.0]),
        Err(ScoringError::ZeroEmbedding)
    ));
    assert!(matches!(
        score(vec![1.0]),
        Err(ScoringError::DimensionMismatch { .. })
    ));
    assert!(score_against_references(&vec![1.0], &[vec![1.0]], Aggregation::TopKMean(0)).is_err());
}

#[test]
fn reference_stats_and_znorm_match_hand_computation() {
    let h = std::f32::consts::FRAC_1_SQRT_2;
    let refs = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![h, h]];
    // Pairwise cosines: 0, 1/sqrt2, 1/sqrt2.
    let st = ReferenceStats::from_refs(&refs).unwrap();
    let s2 = std::f64::consts::FRAC_1_SQRT_2;
    let mean = 2.0 * s2 / 3.0;
    let std = ((mean * mean + 2.0 * (s2 - mean) * (s2 - mean)) / 3.0).sqrt();
    assert!((st.mean - mean).abs() < 1e-6 && (st.std - std).abs() < 1e-6);
    assert_eq!(st.references, 3);
    assert!((normalise_score(0.9, &st) - (0.9 - st.mean) / st.std).abs() < 1e-9);
    // Two references: one pair, std 0, so the floor applies.
    let st2 = ReferenceStats::from_refs(&refs[..2]).unwrap();
    assert_eq!(st2.std, 0.0);
    assert!(close(normalise_score(0.1, &st2), 0.1 / MIN_REFERENCE_STD));
    // One reference has no pair.
    assert!(matches!(
        ReferenceStats::from_refs(&refs[..1]),
        Err(ScoringError::NotEnoughData(_))
    ));
}

/// Scores on a coarse grid (so ties are common) with labels, both classes present.
fn labelled_scores() -> impl Strategy<Value = (Vec<f64>, Vec<bool>)> {
    prop::collection::vec((0u8..20, any::<bool>()), 2..60).prop_map(|v| {
        let mut s: Vec<f64> = v.iter().map(|(x, _)| f64::from(*x) / 19.0).collect();
        let mut l: Vec<bool> = v.iter().map(|(_, b)| *b).collect();
        // Force both classes.
        s.push(0.5);
        l.push(true);
        s.push(0.5);
        l.push(false);
        (s, l)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn eer_and_auc_stay_in_range_and_agree_with_the_roc((s, l) in labelled_scores()) {
        let a = auc(&s, &l).unwrap();
        let e = eer(&s, &l).unwrap();
        prop_assert!((0.0..=1.0).contains(&a));
        prop_assert!((0.0..=1.0).contains(&e.eer));
        let roc = roc_points(&s, &l).unwrap();
        // Mann-Whitney AUC equals the trapezoidal area under the ROC with tied scores together.
        let trap: f64 = roc.windows(2).map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) / 2.0).sum();
        prop_assert!((a - trap).abs() < 1e-9);
        // The EER lies between the best "min" and the best "max" of (FAR, FRR) over the ROC.
        let lo = roc.iter().map(|p| p.far().min(p.frr())).fold(0.0, f64::max);
        let hi = roc.iter().map(|p| p.far().max(p.frr())).fold(1.0, f64::min);
        prop_assert!(e.eer >= lo - 1e-9 && e.eer <= hi + 1e-9, "{} not in [{}, {}]", e.eer, lo, hi);
    }

    #[test]
    fn far_falls_and_frr_rises_with_the_threshold((s, l) in labelled_scores(), t1 in -0.1f64..1.1, t2 in -0.1f64..1.1) {
        let (lo, hi) = if t1 <= t2 { (t1, t2) } else { (t2, t1) };
        let a = far_frr(&s, &l, lo).unwrap();
        let b = far_frr(&s, &l, hi).unwrap();
        prop_assert!(a.far >= b.far && a.frr <= b.frr);
    }

    #[test]
    fn threshold_for_far_never_exceeds_the_target((s, l) in labelled_scores(), target in 0.0f64..=1.0) {
        let r = threshold_for_far(&s, &l, target).unwrap();
        let check = far_frr(&s, &l, r.threshold).unwrap();
        prop_assert!(check.far <= target + 1e-12);
        prop_assert!((check.far - r.far).abs() < 1e-12 && (check.frr - r.frr).abs() < 1e-12);
    }
}
