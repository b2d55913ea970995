//! The X9.37 / X9.100-187 reader on files written byte by byte: both framings, both encodings, the
//! control totals, and hostile files (truncation at every record boundary, random length prefixes, a
//! 2 GB prefix, image lengths that disagree, an EBCDIC file read as ASCII).

#![allow(clippy::unwrap_used)]

use countersign::x9::writer::{ItemOut, WriterOptions, X9Writer};
use countersign::x9::{Encoding, Framing, X9Error, X9Item, scan_reader};
use image::{GrayImage, Luma};
use proptest::prelude::*;

/// A small bitonal G4 TIFF whose pixels depend on `seed`.
fn tiff(seed: u32) -> Vec<u8> {
    let img = GrayImage::from_fn(96, 40, |x, y| {
        Luma([if (x * 7 + y * 3 + seed * 11) % 23 < 4 {
            0
        } else {
            255
        }])
    });
    countersign::x9::synth::g4_tiff(&img).unwrap()
}

struct Spec {
    seq: u64,
    on_us: String,
    amount: u64,
}

fn specs(n: u64) -> Vec<Spec> {
    (0..n)
        .map(|i| Spec {
            seq: 500 + i,
            on_us: format!("{}/{:04}", 7_000_000 + i * 13, i),
            amount: 1234 + i * 100_001,
        })
        .collect()
}

fn file(n: u64, encoding: Encoding, prefixed: bool, bundle_items: u32) -> Vec<u8> {
    let opts = WriterOptions {
        encoding,
        length_prefixed: prefixed,
        bundle_items,
        ..WriterOptions::default()
    };
    let mut w = X9Writer::new(Vec::new(), opts).unwrap();
    for (i, s) in specs(n).iter().enumerate() {
        let front = tiff(i as u32);
        let back = tiff(1000 + i as u32);
        w.item(&ItemOut {
            sequence: s.seq,
            routing: "021000021",
            on_us: &s.on_us,
            amount_cents: s.amount,
            front: &front,
            front_format: ("00", "00"),
            back: &back,
        })
        .unwrap();
    }
    w.finish().unwrap()
}

fn items(bytes: &[u8], force: Option<Encoding>) -> Result<Vec<X9Item>, X9Error> {
    let mut r = countersign::x9::ItemReader::new(std::io::Cursor::new(bytes), true, force)?;
    let mut out = Vec::new();
    while let Some(i) = r.next_item()? {
        out.push(i);
    }
    Ok(out)
}

/// Record start offsets of a length-prefixed file.
fn boundaries(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut p = 0;
    while p + 4 <= bytes.len() {
        out.push(p);
        let len = u32::from_be_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
        p += 4 + len;
    }
    out
}

/// Record start offsets of a one-record-per-line ASCII file (52 records hold binary data, so the
/// records are found with the reader's own rule: by the image length field).
fn line_records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut p = 0;
    while p < bytes.len() {
        let start = p;
        if &bytes[p..p + 2] == b"52" {
            let lid: usize = std::str::from_utf8(&bytes[p + 110..p + 117])
                .unwrap()
                .parse()
                .unwrap();
            p += 117 + lid;
        } else {
            while bytes[p] != b'\r' {
                p += 1;
            }
        }
        out.push(bytes[start..p].to_vec());
        p += 2; // CR LF
    }
    out
}

fn join_lines(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(r);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[test]
fn every_framing_and_encoding_reads_back_the_written_items() {
    let expected = specs(7);
    for (encoding, prefixed) in [
        (Encoding::Ascii, true),
        (Encoding::Ebcdic, true),
        (Encoding::Ascii, false),
        (Encoding::Ebcdic, false),
    ] {
        let bytes = file(7, encoding, prefixed, 3);
        let got = items(&bytes, None).unwrap();
        assert_eq!(got.len(), 7, "{encoding:?} prefixed={prefixed}");
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g.sequence, format!("{:015}", e.seq));
            assert_eq!(g.routing, "021000021");
            assert_eq!(g.on_us, e.on_us);
            assert_eq!(g.amount_cents, e.amount as i64);
            assert_eq!(g.front.as_deref(), Some(&tiff(i as u32)[..]));
            assert_eq!(g.front_format.as_deref(), Some("TIFF CCITT G4"));
            assert!(g.back);
            assert_eq!(g.problem, None);
        }
        let s = scan_reader(std::io::Cursor::new(&bytes), None).unwrap();
        assert_eq!(s.encoding, encoding);
        assert_eq!(
            s.framing,
            if prefixed {
                Framing::LengthPrefixed
            } else {
                Framing::Lines
            }
        );
        assert_eq!(s.items, 7);
        assert_eq!(s.bundles, 3);
        assert_eq!(s.images, 14);
        assert_eq!(
            s.total_cents,
            expected.iter().map(|e| e.amount).sum::<u64>()
        );
        assert_eq!(s.bytes, bytes.len() as u64);
        assert_eq!(s.sha256, countersign::digest::sha256_hex(&bytes));
        assert_eq!(s.header.as_ref().unwrap().standard_level, "35");
    }
}

#[test]
fn field_positions_match_the_standard() {
    // A check detail built by hand from the X9.100-187 layout (positions in the comments), not by
    // the project's writer: the reader must find each field where the standard puts it.
    let mut rec = String::new();
    rec.push_str("25"); // 1-2
    rec.push_str("000000000012345"); // 3-17 auxiliary on-us
    rec.push('1'); // 18 EPC
    rec.push_str("02100002"); // 19-26 routing
    rec.push('1'); // 27 check digit
    rec.push_str("  987654321/0042    "); // 28-47 on-us
    rec.push_str("0000150075"); // 48-57 amount
    rec.push_str("000000000777001"); // 58-72 item sequence number
    rec.push_str("G01Y030B"); // 73-80
    assert_eq!(rec.len(), 80);
    let f = countersign::x9::records::Fields {
        text: &rec,
        rtype: 25,
        record: 3,
    };
    let d = countersign::x9::records::CheckDetail::parse(&f).unwrap();
    assert_eq!(d.aux_on_us, "000000000012345");
    assert_eq!(d.epc, "1");
    assert_eq!(d.routing, "021000021");
    assert_eq!(d.on_us, "987654321/0042");
    assert_eq!(d.amount_cents, 150_075);
    assert_eq!(d.sequence, "000000000777001");
    assert_eq!(d.micr_valid, "1");
    assert_eq!(d.addendum_count, Some(3));
    // Trailing spaces stripped by a producer read as spaces.
    let short = rec[..72].to_string();
    let f = countersign::x9::records::Fields {
        text: &short,
        rtype: 25,
        record: 3,
    };
    assert_eq!(
        countersign::x9::records::CheckDetail::parse(&f)
            .unwrap()
            .sequence,
        "000000000777001"
    );
}

#[test]
fn control_totals_and_amounts_are_checked() {
    let good = line_records(&file(4, Encoding::Ascii, false, 10));
    // One item's amount changed: the bundle control no longer adds up, and the file is rejected.
    let mut recs = good.clone();
    let i = recs.iter().position(|r| r.starts_with(b"25")).unwrap();
    recs[i][47..57].copy_from_slice(b"0000000001");
    let err = items(&join_lines(&recs), None).unwrap_err();
    assert!(
        matches!(err, X9Error::Control { rtype: 70, what, .. } if what.contains("amount")),
        "{err}"
    );
    assert!(err.to_string().contains("rejected"), "{err}");

    // A non-digit amount is refused with its record and positions.
    let mut recs = good.clone();
    recs[i][47..57].copy_from_slice(b"00000O1234");
    let err = items(&join_lines(&recs), None).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("item amount") && msg.contains("48-57"),
        "{msg}"
    );

    // The file control's item count is checked too.
    let mut recs = good.clone();
    let last = recs.len() - 1;
    recs[last][16..24].copy_from_slice(b"00000005");
    let err = items(&join_lines(&recs), None).unwrap_err();
    assert!(
        matches!(
            err,
            X9Error::Control {
                rtype: 99,
                what: "total item count",
                ..
            }
        ),
        "{err}"
    );

    // A missing bundle control: the cash letter control comes where items or a 70 were expected.
    let recs: Vec<Vec<u8>> = good
        .iter()
        .filter(|r| !r.starts_with(b"70"))
        .cloned()
        .collect();
    let err = items(&join_lines(&recs), None).unwrap_err();
    assert!(
        matches!(err, X9Error::Structure { .. }) && err.to_string().contains("missing"),
        "{err}"
    );
}

#[test]
fn unknown_records_are_skipped_with_a_note_and_trailing_spaces_are_tolerated() {
    let good = line_records(&file(3, Encoding::Ascii, false, 10));
    let mut recs = Vec::new();
    for r in good {
        let is_52 = r.starts_with(b"52");
        let is_25 = r.starts_with(b"25");
        let mut r = r;
        if !is_52 {
            // Producers that strip trailing spaces.
            while r.last() == Some(&b' ') {
                r.pop();
            }
        }
        recs.push(r);
        if is_25 {
            recs.push(b"68USER RECORD OF SOME BANK".to_vec());
        }
    }
    // The file control counts every record, the three inserted ones too.
    let last = recs.len() - 1;
    let count = format!("{:08}", recs.len());
    recs[last][8..16].copy_from_slice(count.as_bytes());
    let bytes = join_lines(&recs);
    let got = items(&bytes, None).unwrap();
    assert_eq!(got.len(), 3);
    let s = scan_reader(std::io::Cursor::new(&bytes), None).unwrap();
    assert!(
        s.notes.iter().any(|n| n.contains("type 68")),
        "{:?}",
        s.notes
    );
}

#[test]
fn a_two_gigabyte_length_prefix_is_an_error_not_an_allocation() {
    let bytes = file(2, Encoding::Ascii, true, 10);
    let b = boundaries(&bytes);
    for huge in [0x8000_0000u32, 0xFFFF_FFFF, 10_200_000] {
        let mut bad = bytes.clone();
        bad[b[3]..b[3] + 4].copy_from_slice(&huge.to_be_bytes());
        let err = scan_reader(std::io::Cursor::new(&bad), None).unwrap_err();
        assert!(
            matches!(err, X9Error::RecordTooLong { record: 4, length, .. } if length == u64::from(huge)),
            "{err}"
        );
    }
}

#[test]
fn an_image_length_that_disagrees_marks_the_item_or_rejects_an_unprefixed_file() {
    // With length prefixes the record's end is known: the item is an ERROR, the others are fine.
    let bytes = file(3, Encoding::Ascii, true, 10);
    let b = boundaries(&bytes);
    let fifty_twos: Vec<usize> = b
        .iter()
        .copied()
        .filter(|&p| &bytes[p + 4..p + 6] == b"52")
        .collect();
    // The front image of the second item (each item has a front and a back).
    let p = fifty_twos[2] + 4;
    let mut bad = bytes.clone();
    let declared: u64 = std::str::from_utf8(&bad[p + 110..p + 117])
        .unwrap()
        .parse()
        .unwrap();
    bad[p + 110..p + 117].copy_from_slice(format!("{:07}", declared + 5).as_bytes());
    let got = items(&bad, None).unwrap();
    assert_eq!(got.len(), 3);
    assert!(got[0].problem.is_none() && got[2].problem.is_none());
    let problem = got[1].problem.as_deref().unwrap();
    assert!(
        problem.contains(&format!("{}", declared + 5)) && problem.contains(&format!("{declared}")),
        "{problem}"
    );
    assert!(got[1].front.is_none());

    // Without prefixes the record's end is lost: the file is rejected, not misread.
    let bytes = file(3, Encoding::Ascii, false, 10);
    let mut recs = line_records(&bytes);
    let i = recs.iter().position(|r| r.starts_with(b"52")).unwrap();
    let declared: u64 = std::str::from_utf8(&recs[i][110..117])
        .unwrap()
        .parse()
        .unwrap();
    recs[i][110..117].copy_from_slice(format!("{:07}", declared - 3).as_bytes());
    let err = items(&join_lines(&recs), None).unwrap_err();
    assert!(
        matches!(err, X9Error::Structure { .. } | X9Error::Truncated { .. }),
        "{err}"
    );
}

#[test]
fn truncation_at_every_record_boundary_is_an_error() {
    for encoding in [Encoding::Ascii, Encoding::Ebcdic] {
        let bytes = file(3, encoding, true, 2);
        let b = boundaries(&bytes);
        assert_eq!(*b.last().unwrap() + 84, bytes.len());
        for &cut in &b {
            for c in [cut, cut + 1, cut + 5, cut + 40] {
                let err = scan_reader(std::io::Cursor::new(&bytes[..c.min(bytes.len() - 1)]), None)
                    .unwrap_err();
                assert!(
                    matches!(
                        err,
                        X9Error::Truncated { .. }
                            | X9Error::NotX9 { .. }
                            | X9Error::Structure { .. }
                    ),
                    "cut at {c}: {err}"
                );
            }
        }
    }
    // The same for the unprefixed variant, cut after each whole line.
    let recs = line_records(&file(3, Encoding::Ascii, false, 2));
    for n in 1..recs.len() {
        let err = items(&join_lines(&recs[..n]), None).unwrap_err();
        assert!(
            matches!(err, X9Error::Truncated { .. }),
            "{n} records: {err}"
        );
    }
}

#[test]
fn an_ebcdic_file_read_as_ascii_is_refused_clearly() {
    let ebcdic = file(2, Encoding::Ebcdic, true, 10);
    let err = scan_reader(std::io::Cursor::new(&ebcdic), Some(Encoding::Ascii)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, X9Error::Structure { record: 1, .. }), "{msg}");
    assert!(msg.contains("ASCII"), "{msg}");
    let ascii = file(2, Encoding::Ascii, false, 10);
    let err = scan_reader(std::io::Cursor::new(&ascii), Some(Encoding::Ebcdic)).unwrap_err();
    assert!(matches!(err, X9Error::Structure { .. }), "{err}");
    // Not an X9 file at all.
    let err = scan_reader(
        std::io::Cursor::new(b"cheque_id,cheque_path\n1,a.png\n"),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, X9Error::NotX9 { .. }), "{err}");
}

#[test]
fn little_endian_prefixes_are_read_with_a_note() {
    let be = file(2, Encoding::Ascii, true, 10);
    let mut le = be.clone();
    for p in boundaries(&be) {
        le[p..p + 4].reverse();
    }
    let got = items(&le, None).unwrap();
    assert_eq!(got.len(), 2);
    let s = scan_reader(std::io::Cursor::new(&le), None).unwrap();
    assert_eq!(s.framing, Framing::LengthPrefixedLittleEndian);
    assert!(s.notes.iter().any(|n| n.contains("little-endian")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any record's length prefix replaced by any value: a typed error or a file that still adds up,
    /// never a panic (and never an allocation past the standard's largest record).
    #[test]
    fn random_length_prefixes_never_panic(which in 0usize..64, value in any::<u32>()) {
        let bytes = file(3, Encoding::Ascii, true, 2);
        let b = boundaries(&bytes);
        let p = b[which % b.len()];
        let mut bad = bytes.clone();
        bad[p..p + 4].copy_from_slice(&value.to_be_bytes());
        match items(&bad, None) {
            Ok(got) => prop_assert!(got.len() <= 3),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Random bytes overwritten anywhere: a typed error or items, never a panic.
    #[test]
    fn corrupted_files_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        prefixed in any::<bool>(),
    ) {
        let mut bytes = file(2, Encoding::Ebcdic, prefixed, 10);
        for (pos, v) in edits {
            let i = pos % bytes.len();
            bytes[i] = v;
        }
        let _ = items(&bytes, None);
        let _ = scan_reader(std::io::Cursor::new(&bytes), None);
    }
}

#[test]
fn the_account_rule_is_a_supervisors_audited_setting() {
    use countersign::store::{KdfCost, Role, SettingsChange, Store, StoreError};
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("audit.sqlite3")).unwrap();
    store.set_kdf_cost(KdfCost::Test);
    let sup = store
        .add_operator(None, "sam", Role::Supervisor, "sam-pin-1")
        .unwrap();
    let clerk = store
        .add_operator(Some(&sup), "clara", Role::Clerk, "clara-pin-1")
        .unwrap();
    let change = |p: &str| SettingsChange::X9AccountRule {
        pattern: Some(p.to_string()),
    };
    // A clerk cannot change which digits are the account.
    let err = store
        .request_settings_change(&clerk, &change(r"(?P<account>\d+)"), "mine")
        .unwrap_err();
    assert!(matches!(err, StoreError::PermissionDenied { .. }), "{err}");
    // A rule that is not a regular expression is refused.
    let err = store
        .request_settings_change(&sup, &change("(unclosed"), "typo")
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    // The supervisor's rule is in force and in the history, with who and why.
    let rule = r"^(?P<account>\d{6})";
    // Four eyes: the rule is policy, so it applies once a second supervisor approves.
    crate::store_common::change_settings(&mut store, &sup, &change(rule), "six-digit accounts")
        .unwrap();
    let s = store.current_settings().unwrap();
    assert_eq!(s.x9_account_rule.as_deref(), Some(rule));
    let r = countersign::x9::AccountRule::from_settings(&s).unwrap();
    assert_eq!(r.account("12345678/01").unwrap(), "123456");
    let h = store.settings_history().unwrap();
    let last = h.last().unwrap();
    // Four eyes: the row in force names the approving supervisor and keeps the asker's reason.
    assert_eq!(last.operator, crate::store_common::SECOND_SUPERVISOR.0);
    assert_eq!(last.reason, "six-digit accounts");
    assert!(store.verify_chain().unwrap().is_intact());
}
