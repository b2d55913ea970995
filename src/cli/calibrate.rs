//! `countersign calibrate`: fit the score-to-probability calibration on labelled data, choose thresholds
//! for a target false-accept rate, and (only when asked) save them as an audited settings change.

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::GlobalOpts;
use crate::cli::assess_args::{DataArgs, embed_with_progress, load_model};
use crate::store::SettingsChange;

#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The false-accept rate (skilled and random forgeries accepted) the accept threshold may give.
    #[arg(long, default_value_t = crate::assess::DEFAULT_TARGET_FAR)]
    pub target_far: f64,
    /// The share of genuine signatures that may be rejected outright; the rest of the doubtful ones are referred.
    #[arg(long, default_value_t = crate::assess::DEFAULT_REFER_BAND)]
    pub refer_band: f64,
    /// Save calibration and thresholds in the audit store (supervisor only; needs --reason).
    #[arg(long)]
    pub save: bool,
    /// Why the thresholds change (recorded in the audit log).
    #[arg(long)]
    pub reason: Option<String>,
    /// Also write calibration and thresholds into the model card beside the weights (supervisor only,
    /// needs --reason; recorded in the audit chain, since the card's thresholds are the policy until
    /// settings are saved).
    #[arg(long)]
    pub write_card: bool,
    /// Write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(global: &GlobalOpts, args: &CalibrateArgs) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&args.target_far) || !(0.0..1.0).contains(&args.refer_band) {
        anyhow::bail!("--target-far and --refer-band must be in [0, 1)");
    }
    if (args.save || args.write_card) && args.reason.as_deref().is_none_or(|r| r.trim().is_empty())
    {
        anyhow::bail!(
            "--save and --write-card need --reason \"...\": threshold changes are audited"
        );
    }
    // Output files are checked before any work: never the audit database, by any name.
    if let Some(p) = &args.json {
        global.protected().check(p)?;
    }
    let model = load_model(global)?;
    let ds = args.data.dataset()?;
    let set = embed_with_progress(&model, &ds)?;
    let cfg = crate::assess::protocol_for(&model, args.data.eval_config());
    let stage = if cfg.znorm {
        crate::scoring::ScoreNormalisation::ReferenceZnorm
    } else {
        crate::scoring::ScoreNormalisation::None
    };
    if stage != model.card().score_normalisation && !args.write_card {
        // A calibration saved in the store is applied to the model's own scores, so it must be fitted
        // on them; a new per-account stage goes into the card, together with its calibration.
        anyhow::bail!(
            "this model's decisions use score normalisation \"{}\"; --znorm would fit a calibration they \
             cannot use (record a new stage in the model card with --write-card)",
            model.card().score_normalisation.label()
        );
    }
    // With several collections the thresholds are the strictest any collection needs.
    let names = args.data.collection_names();
    let (result, _) = crate::assess::calibrate_collections(
        &set.samples,
        &names,
        &cfg,
        args.target_far,
        args.refer_band,
    )?;
    let c = &result.choice;
    crate::outln!(
        "model {}  data {} ({}), {} pairs ({} genuine, {} forgery)",
        model.id(),
        args.data
            .data
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" + "),
        ds.layout,
        result.pairs,
        result.genuine_pairs,
        result.forgery_pairs
    );
    crate::outln!(
        "calibration  P(genuine) = sigmoid({:.4} * score + {:.4}), score normalisation: {}",
        result.calibration.a,
        result.calibration.b,
        stage.label()
    );
    crate::outln!(
        "thresholds   {}",
        crate::assess::describe_thresholds(&c.thresholds)
    );
    crate::outln!(
        "on this data FAR {:.2}% (target {:.2}%), FRR {:.2}%, genuine rejected {:.2}%, referred {:.2}%",
        100.0 * c.far,
        100.0 * args.target_far,
        100.0 * c.frr,
        100.0 * c.genuine_rejected,
        100.0 * c.refer_rate
    );
    if names.len() > 1 {
        // Each collection at the chosen operating point: the figure a bank with writers like these
        // would see.
        let op = crate::scoring::OperatingPoint {
            calibration: result.calibration,
            thresholds: c.thresholds,
            znorm: cfg.znorm,
        };
        let with_op = crate::scoring::EvalConfig {
            operating: Some(op),
            ..cfg.clone()
        };
        let mut rows = Vec::new();
        for name in &names {
            let samples = crate::scoring::collection_samples(&set.samples, name);
            rows.push(crate::scoring::collection_figures(
                name, &samples, &with_op,
            )?);
        }
        crate::out!("{}", crate::scoring::figures_table(&rows));
    }
    if let Some(path) = &args.json {
        global.write_output(path, serde_json::to_string_pretty(&result)?.as_bytes())?;
    }
    if args.write_card {
        let weights = global.model_path()?.0;
        let card_file = crate::model::card_path(&weights);
        let mut card = model.card().clone();
        let old = serde_json::json!({
            "score_normalisation": card.score_normalisation,
            "calibration": card.calibration,
            "thresholds": card.thresholds,
        });
        card.set_score_normalisation(stage);
        card.calibration = Some(result.calibration);
        card.thresholds = Some(c.thresholds);
        let new = serde_json::json!({
            "score_normalisation": card.score_normalisation,
            "calibration": card.calibration,
            "thresholds": card.thresholds,
        });
        // The new card goes to a temporary file beside it first; it replaces the card only once the
        // change is in the audit chain, so no card changes without its row. Dropped on an error, the
        // temporary file goes and the card stays as it was.
        let mut staged = crate::output::create(&card_file, &global.protected())?;
        std::io::Write::write_all(&mut staged, serde_json::to_string_pretty(&card)?.as_bytes())
            .with_context(|| format!("writing {}", card_file.display()))?;
        let logged = (|| -> anyhow::Result<i64> {
            let mut store = super::operator::open_store(global)?;
            let op = super::operator::sign_in(&mut store, global)?;
            Ok(store.log_model_card_change(
                &op,
                &card_file.display().to_string(),
                &card.weights_sha256,
                old,
                new,
                args.reason.as_deref().unwrap_or_default(),
            )?)
        })();
        let row = logged.map_err(|e| e.context("the model card was not changed"))?;
        staged
            .commit()
            .with_context(|| format!("replacing {}", card_file.display()))?;
        crate::outln!(
            "written into the model card {} (audit row {row})",
            card_file.display()
        );
    }
    if args.save {
        let mut store = super::operator::open_store(global)?;
        let op = super::operator::sign_in(&mut store, global)?;
        let reason = args.reason.as_deref().unwrap_or_default();
        // Two named changes, each waiting for a second supervisor (four eyes).
        let cal = store.request_settings_change(
            &op,
            &SettingsChange::Calibration(result.calibration),
            reason,
        )?;
        let thr = store.request_settings_change(
            &op,
            &SettingsChange::Thresholds(c.thresholds),
            reason,
        )?;
        crate::outln!(
            "requested by {}: calibration change {} (a {:.4} -> {:.4}, b {:.4} -> {:.4}) and threshold change {} \
             (ACCEPT {:.3} -> {:.3}, REJECT {:.3} -> {:.3}); they take effect when a second supervisor runs \
             `countersign settings approve {}` and `countersign settings approve {}`",
            op.name(),
            cal.id,
            cal.old.calibration.a,
            cal.new.calibration.a,
            cal.old.calibration.b,
            cal.new.calibration.b,
            thr.id,
            thr.old.thresholds.accept,
            thr.new.thresholds.accept,
            thr.old.thresholds.reject,
            thr.new.thresholds.reject,
            cal.id,
            thr.id
        );
    } else {
        crate::outln!("not saved: add --save --reason \"...\" to put these thresholds into use");
    }
    Ok(())
}
