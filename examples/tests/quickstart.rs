//! The quickstart runs, verifies its chain and catches all three forms of tampering.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[test]
fn quickstart_detects_every_tampering() {
    let mut out = Vec::new();
    kest_examples::quickstart(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("Built a passport of 3 signed entries"),
        "{text}"
    );
    assert!(text.contains("Verified offline: 3 entries"), "{text}");
    assert_eq!(text.matches("-> rejected:").count(), 3, "{text}");
    assert!(!text.contains("NOT detected"), "{text}");
    assert!(text.contains("signature does not verify"));
    assert!(text.contains("is not an earlier entry"));
    assert!(text.contains("truncated"));
}
