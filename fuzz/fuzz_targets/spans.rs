//! Fuzz target: `kest audit`'s reader of span exports (Kest's JSON lines, OTLP JSON), and
//! of passports, header values and JWS. Any text is read without a panic, and span
//! passports are kept by what their text holds: no passport audited is the first entries
//! of another one audited beside it, and none is kept twice.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &str| {
    let Ok(found) = kest_cli::commands::audit::fuzz_read(data) else {
        return;
    };
    let limits = kest_passport::Limits::default();
    let lists: Vec<Vec<String>> = found
        .iter()
        .filter_map(|text| kest_passport::parse_entry_list(text, &limits).ok())
        .filter(|list| !list.is_empty())
        .collect();
    // Only a span export can hold several passports, and it keeps no prefix of another.
    if data.trim_start().starts_with('{') {
        for (i, a) in lists.iter().enumerate() {
            for (j, b) in lists.iter().enumerate() {
                if i != j {
                    assert!(
                        !(b.len() >= a.len() && b[..a.len()] == a[..]),
                        "passport {i} is the first entries of passport {j}"
                    );
                }
            }
        }
    }
});
