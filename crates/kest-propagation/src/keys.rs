//! The `baggage` keys Kest reads and writes.

/// An inline passport (its JSON).
pub const PASSPORT: &str = "kest.passport";
/// A compressed passport (padded base64url of zlib).
pub const PASSPORT_Z: &str = "kest.passport_z";
/// A claim-check id.
pub const CLAIM_CHECK: &str = "kest.claim_check";
/// The chain tip (hash of the last entry).
pub const CHAIN_TIP: &str = "kest.chain_tip";
/// The end user.
pub const USER: &str = "kest.user";
/// The agent.
pub const AGENT: &str = "kest.agent";
/// The task.
pub const TASK: &str = "kest.task";
/// The bearer token.
pub const JWT: &str = "kest.jwt";
/// Every key Kest writes. The outbound side removes them all before writing, so stale
/// members never pile up.
pub const ALL: [&str; 8] = [
    PASSPORT,
    PASSPORT_Z,
    CLAIM_CHECK,
    CHAIN_TIP,
    USER,
    AGENT,
    TASK,
    JWT,
];
/// Prefix of claim-check keys in the store: `kest.claim.<id>`.
pub const CLAIM_PREFIX: &str = "kest.claim.";
