//! Fuzzes the X9.37 / X9.100-187 reader: arbitrary bytes must give items or a typed `X9Error`,
//! never a panic, and never an allocation past the largest record the standard allows.
//!   cargo +nightly fuzz run x9 -- -max_total_time=600 -rss_limit_mb=512
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = countersign::x9::scan_reader(std::io::Cursor::new(data), None);
    if let Ok(mut items) = countersign::x9::ItemReader::new(std::io::Cursor::new(data), true, None) {
        while let Ok(Some(item)) = items.next_item() {
            assert!(item.front.as_ref().is_none_or(|f| f.len() <= 10_000_000));
        }
    }
});
