//! Kest lineage entries, the hash-linked passport that carries them, and its verifier.
//!
//! Each protected call in a Kest system leaves an [`Entry`]: who ran what, on data of
//! which trust and taints, under which policies. The entry is canonicalized (RFC 8785),
//! signed as a JWS and linked to its parents by their SHA-256. The ordered entries form
//! the [`Passport`], which travels with the work and which anyone holding the right public
//! keys can check offline with a [`Verifier`].
//!
//! ```
//! use kest_crypto::{KeySigner, SigningKey, StaticKeyResolver};
//! use kest_passport::{EntryBuilder, Passport, Verifier};
//! use kest_trust::{OriginMap, WeakestLink};
//!
//! let key = SigningKey::generate_ed25519()?;
//! let resolver = StaticKeyResolver::new()
//!     .with_key("spiffe://example.org/agent", key.verifying_key().clone());
//! let signer = KeySigner::new(key, "spiffe://example.org/agent");
//! let origins = OriginMap::new();
//!
//! let mut passport = Passport::new();
//! passport.append(
//!     EntryBuilder::new("read_ticket")
//!         .principal("spiffe://example.org/agent")
//!         .origin_score(origins.score("user_input")?)
//!         .added_taints(["pii"]),
//!     &signer,
//!     &WeakestLink,
//! )?;
//! passport.append(
//!     EntryBuilder::new("redact")
//!         .principal("spiffe://example.org/agent")
//!         .removed_taints(["pii"]),
//!     &signer,
//!     &WeakestLink,
//! )?;
//! assert!(passport.current_taints().is_empty());
//!
//! let wire = passport.to_json();
//! let report = Verifier::new(&resolver).expect_tip(passport.tip_hash().unwrap()).verify_json(&wire)?;
//! assert_eq!(report.len(), 2);
//! assert_eq!(report.findings().len(), 1); // the auditor sees who removed `pii`
//!
//! // Tamper with the second entry's payload and verification fails, naming the entry.
//! let mut entries: Vec<String> = serde_json::from_str(&wire)?;
//! entries[1] = entries[1].replacen(".ey", ".eZ", 1);
//! let tampered = serde_json::to_string(&entries)?;
//! let error = Verifier::new(&resolver).verify_json(&tampered).unwrap_err();
//! assert!(error.to_string().starts_with("entry 1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What the verifier rejects
//!
//! Everything the Python package's verifier wrongly accepts in its own tampered vectors:
//! unknown principals, keys that are not the principal's, `alg: none`, duplicated entries,
//! a second root spliced in, forged last entries and (with the tip pinned) truncation.
//! See [`Verifier`] for the full list.

mod builder;
mod cache;
mod chain;
mod entry;
mod error;
mod head;
mod limits;
pub mod metrics;
mod packed;
mod passport;
mod read;
pub mod render;
mod signed;
mod unverified;
mod verify;
mod wire;

pub use builder::EntryBuilder;
pub use cache::{DEFAULT_VERIFIED_ENTRIES, VerifiedEntries};
pub use entry::{
    Deviation, Entry, LABEL_IDENTITY, LABEL_PRINCIPAL, LABEL_RESOURCE_ATTR, LABEL_TRACE_ID,
    LABEL_TRUST_OVERRIDE, Parents, PolicyContext, RUNTIME_NAME, RUNTIME_VERSION, Runtime,
    SCHEMA_VERSION,
};
pub use error::{EntryFault, PassportError, TipText};
pub use head::Head;
pub use limits::Limits;
pub use passport::Passport;
pub use signed::{EntryHash, SignedEntry, UnsignedEntry, UnverifiedEntry};
pub use unverified::{ExaminedEntry, UnverifiedPassport, examine};
pub use verify::{Finding, FindingKind, Strictness, VerificationReport, Verifier};
pub use wire::parse_entry_list;
