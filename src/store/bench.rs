//! Store benchmarks: batched insert rate, export rate and file size at 1,000,000 decisions, chain
//! verify rate, paged queries, open-time integrity check, PIN hashing. Figures only; nothing here
//! asserts a time.

use std::path::Path;
use std::time::Instant;

use super::{
    DecisionFilter, DecisionRecord, ExportFormat, FinalAction, KdfCost, OpenOptions, Role, Source,
    Store,
};
use crate::scoring::Decision;

/// Runs the store benchmarks on 1,000,000 decisions in a database under `dir`.
pub fn bench(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    bench_with(dir, 1_000_000)
}

fn sha(i: u64, salt: u8) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update([salt]);
    h.update(i.to_le_bytes());
    hex::encode(h.finalize())
}

/// [`bench`] with a chosen number of decisions.
pub fn bench_with(dir: &Path, rows: u64) -> anyhow::Result<Vec<(String, String)>> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("bench-audit.sqlite3");
    for suffix in ["", "-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if p.exists() {
            std::fs::remove_file(&p)?;
        }
    }
    let mut out = Vec::new();

    let t = Instant::now();
    let pin_hash = super::operators::hash_pin("482100", KdfCost::Production)?;
    out.push((
        "argon2id PIN hash (production cost)".into(),
        format!("{:.0} ms", t.elapsed().as_secs_f64() * 1e3),
    ));
    drop(pin_hash);

    let opts = OpenOptions {
        kdf: KdfCost::Test,
        ..Default::default()
    };
    let mut store = Store::open_with(&path, &opts)?;
    let op = store.add_operator(None, "bench", Role::Supervisor, "482100")?;
    let base = time::OffsetDateTime::now_utc() - time::Duration::days(365);
    let batch = 1000u64;
    let t = Instant::now();
    let mut i = 0u64;
    while i < rows {
        let n = batch.min(rows - i);
        let ds: Vec<DecisionRecord> = (i..i + n)
            .map(|k| DecisionRecord {
                time: base + time::Duration::seconds(k as i64 * 30),
                operator: "bench".into(),
                account: Some(format!("ACC-{:05}", k % 20_000)),
                cheque_id: Some(format!("CHQ-{k:09}")),
                amount_cents: Some((k % 100_000) as i64 * 100),
                cheque_sha256: sha(k, 1),
                reference_sha256s: vec![sha(k % 20_000, 2), sha(k % 20_000, 3)],
                crop: Some(super::CropBox {
                    x: 1200,
                    y: 640,
                    w: 520,
                    h: 160,
                }),
                raw_score: Some((k % 1000) as f64 / 1000.0),
                probability: Some((k % 997) as f64 / 997.0),
                t_accept: 0.8,
                t_reject: 0.3,
                decision: [Decision::Accept, Decision::Refer, Decision::Reject][(k % 3) as usize],
                final_action: FinalAction::Pending,
                reason: None,
                final_decision: None,
                hand_drawn_box: false,
                image_kind: None,
                model_id: "countersign-default@0123456789abcdef".into(),
                device: "cpu".into(),
                latency_ms: 14.25,
                source: Source::Batch,
                // Rows without the signature image: this measures the ledger itself.
                signature_png: None,
            })
            .collect();
        store.insert_decisions(&op, &ds)?;
        i += n;
    }
    let secs = t.elapsed().as_secs_f64();
    out.push((
        format!("insert {rows} decisions (batches of {batch})"),
        format!("{:.0} rows/s ({secs:.1} s)", rows as f64 / secs),
    ));

    store.checkpoint_wal()?;
    let size = std::fs::metadata(&path)?.len() as f64;
    out.push((
        "file size per 1,000,000 decisions".into(),
        format!("{:.0} MB", size / rows as f64 * 1e6 / 1e6),
    ));

    let t = Instant::now();
    let report = store.verify_chain()?;
    let secs = t.elapsed().as_secs_f64();
    let verify_secs = secs;
    out.push((
        "verify chain".into(),
        format!(
            "{:.0} rows/s ({} rows, {secs:.1} s, intact: {})",
            report.rows_checked as f64 / secs,
            report.rows_checked,
            report.is_intact()
        ),
    ));

    // The keyed chain's cost (issue 17, item 9): one HMAC-SHA-256 per row appended and per row
    // verified, measured apart from SQLite so the figure holds whatever the disk.
    let key = [0x5au8; 32];
    let t = Instant::now();
    let mut acc = 0u8;
    for i in 0..rows {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&i.to_le_bytes());
        acc ^= super::chain::row_mac(&key, &h).as_bytes()[0];
    }
    let secs = t.elapsed().as_secs_f64();
    out.push((
        "keyed chain: HMAC-SHA-256 per row".into(),
        format!(
            "{:.2} us/row ({:.1} s over {rows} rows, {:.0}% of the time to verify the chain; check {acc})",
            secs / rows as f64 * 1e6,
            secs,
            100.0 * secs / verify_secs.max(1e-9)
        ),
    ));

    let all = DecisionFilter::default();
    let t = Instant::now();
    let n = store.count_decisions(&all)?;
    out.push((
        "count all decisions".into(),
        format!("{:.1} ms ({n})", t.elapsed().as_secs_f64() * 1e3),
    ));
    let t = Instant::now();
    let page = store.query_decisions(&all, 0, 50)?;
    out.push((
        "first page of 50".into(),
        format!(
            "{:.2} ms ({} rows)",
            t.elapsed().as_secs_f64() * 1e3,
            page.len()
        ),
    ));
    let deep = rows.saturating_mul(9) / 10;
    let t = Instant::now();
    let page = store.query_decisions(&all, deep, 50)?;
    out.push((
        format!("page of 50 at offset {deep}"),
        format!(
            "{:.1} ms ({} rows)",
            t.elapsed().as_secs_f64() * 1e3,
            page.len()
        ),
    ));
    let f = DecisionFilter {
        account: Some("ACC-00042".into()),
        ..Default::default()
    };
    let t = Instant::now();
    let n = store.count_decisions(&f)?;
    let page = store.query_decisions(&f, 0, 50)?;
    out.push((
        "one account: count + first page".into(),
        format!(
            "{:.1} ms ({n} rows, page {})",
            t.elapsed().as_secs_f64() * 1e3,
            page.len()
        ),
    ));
    let f = DecisionFilter {
        from: Some(base + time::Duration::days(10)),
        to: Some(base + time::Duration::days(11)),
        decision: Some(Decision::Reject),
        ..Default::default()
    };
    let t = Instant::now();
    let n = store.count_decisions(&f)?;
    let page = store.query_decisions(&f, 0, 50)?;
    out.push((
        "one day, REJECT only: count + first page".into(),
        format!(
            "{:.1} ms ({n} rows, page {})",
            t.elapsed().as_secs_f64() * 1e3,
            page.len()
        ),
    ));

    let csv = dir.join("bench-export.csv");
    let t = Instant::now();
    let s = store.export_decisions(&op, &all, ExportFormat::Csv, &csv, &mut |_| {})?;
    let secs = t.elapsed().as_secs_f64();
    out.push((
        format!("export {} decisions to CSV", s.rows),
        format!(
            "{:.0} rows/s ({secs:.1} s, {:.0} MB)",
            s.rows as f64 / secs,
            std::fs::metadata(&csv)?.len() as f64 / 1e6
        ),
    ));
    std::fs::remove_file(&csv).ok();
    std::fs::remove_file(&s.sha256_path).ok();
    std::fs::remove_file(&s.anchor_path).ok();
    drop(store);

    let t = Instant::now();
    let store = Store::open_with(&path, &opts)?;
    out.push((
        "open with quick_check".into(),
        format!("{:.2} s", t.elapsed().as_secs_f64()),
    ));
    drop(store);
    Ok(out)
}
