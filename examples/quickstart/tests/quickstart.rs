//! The quickstart runs: one denial before the guarded action ran, one allowed call after
//! sanitizing, a verified passport, and three forgeries caught.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test fails by panicking: unwrapping and indexing are how it asserts"
)]

#[tokio::test]
async fn quickstart_denies_then_allows_and_catches_every_forgery() {
    let mut out = Vec::new();
    kest_quickstart::quickstart(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("issue_refund    DENIED before it ran (ran: false)"),
        "{text}"
    );
    assert!(
        text.contains("refund/trusted-and-verified") || text.contains("no policy permits"),
        "{text}"
    );
    assert!(
        text.contains("issue_refund    ALLOWED: refund #77 issued"),
        "{text}"
    );
    assert!(text.contains("The passport (4 signed entries):"), "{text}");
    for step in [
        "ingest_ticket [trust 40; unverified]",
        "lookup_order [trust 40; unverified]",
        "verify_customer [trust 90]",
        "issue_refund [trust 90]",
    ] {
        assert!(text.contains(step), "missing `{step}`:\n{text}");
    }
    assert!(text.contains("Verified offline: 4 entries"), "{text}");
    assert_eq!(text.matches("-> rejected:").count(), 3, "{text}");
    assert!(!text.contains("NOT detected"), "{text}");
    assert!(text.contains("signature does not verify"), "{text}");
    assert!(text.contains("truncated"), "{text}");
}
