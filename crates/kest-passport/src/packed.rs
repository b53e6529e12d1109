//! The dense form in which a passport holds its entries.
//!
//! A held entry keeps its JWS exactly, but not as text: the header's base64 (shared with
//! the entry before it when the signer is the same), and the payload and signature as
//! bytes. In the payload, which is canonical JSON, every member name an entry has is
//! written as one byte, and every 64-digit lowercase hex string (a hash) and every
//! hyphenated lowercase UUID as its bytes. The JWS comes back byte for byte:
//!
//! - base64url without padding has one encoding per byte string, and only the canonical
//!   one parses ([`kest_canon::b64url_decode_unpadded`] rejects stray trailing bits);
//! - canonical JSON never holds a byte below `0x20` (control characters are escaped), so
//!   those bytes are free to stand for the replaced text; a payload that did hold one
//!   would be kept as it is;
//! - a replacement is only made where writing its bytes back gives the same text.
//!
//! An entry of about 990 bytes of JWS is held in about 300.

use std::sync::Arc;

use uuid::Uuid;

/// The member names of an entry payload, quoted and followed by `:` as canonical JSON
/// writes them. Byte `i + 1` stands for `NAMES[i]`.
const NAMES: [&[u8]; 27] = [
    b"\"added_taints\":",
    b"\"classification\":",
    b"\"content_hash\":",
    b"\"entry_id\":",
    b"\"environment\":",
    b"\"input_hash\":",
    b"\"labels\":",
    b"\"metadata\":",
    b"\"operation\":",
    b"\"otel_context\":",
    b"\"parent_ids\":",
    b"\"policy_context\":",
    b"\"app_policies\":",
    b"\"deviations\":",
    b"\"enterprise_policies\":",
    b"\"function_policies\":",
    b"\"platform_policies\":",
    b"\"removed_taints\":",
    b"\"runtime\":",
    b"\"name\":",
    b"\"version\":",
    b"\"schema_version\":",
    b"\"taints\":",
    b"\"timestamp_ms\":",
    b"\"trust_score\":",
    b"\"principal\":",
    b"\"output_hash\":",
];

/// Stands for `"` + 64 lowercase hex digits + `"`; the 32 bytes follow.
const HEX32: u8 = 0x1E;
/// Stands for `"` + a hyphenated lowercase UUID + `"`; the 16 bytes follow.
const UUID: u8 = 0x1F;

/// The quoted text of a hash: `"` + 64 hex digits + `"`.
const HEX32_TEXT: usize = 66;
/// The quoted text of a UUID: `"` + 36 characters + `"`.
const UUID_TEXT: usize = 38;

/// A JWS held densely. See the module documentation.
#[derive(Clone)]
pub(crate) struct Packed {
    /// The header's base64url, as it was in the JWS.
    header: Arc<str>,
    /// The packed payload, then the signature.
    body: Box<[u8]>,
    /// Length of the payload as signed (before packing).
    payload_len: u32,
    /// Length of the signature at the end of `body`.
    signature_len: u16,
    /// Whether the payload in `body` is packed, or kept as it was (it held a byte below
    /// `0x20`, which canonical JSON never does).
    payload_packed: bool,
}

impl Packed {
    /// Packs a JWS from its parts: the header's base64url, the payload bytes and the
    /// signature bytes. `header` is shared as it is given.
    pub(crate) fn new(header: Arc<str>, payload: &[u8], signature: &[u8]) -> Option<Self> {
        let signature_len = u16::try_from(signature.len()).ok()?;
        let payload_len = u32::try_from(payload.len()).ok()?;
        let mut body = Vec::with_capacity(payload.len() / 2 + signature.len());
        let payload_packed = pack_into(payload, &mut body);
        if !payload_packed {
            body.clear();
            body.extend_from_slice(payload);
        }
        body.extend_from_slice(signature);
        Some(Self {
            header,
            body: body.into_boxed_slice(),
            payload_len,
            signature_len,
            payload_packed,
        })
    }

    /// The header's base64url.
    pub(crate) fn header(&self) -> &Arc<str> {
        &self.header
    }

    /// The payload and the signature, as bytes.
    fn split(&self) -> (&[u8], &[u8]) {
        let at = self
            .body
            .len()
            .saturating_sub(usize::from(self.signature_len));
        self.body.split_at_checked(at).unwrap_or((&[], &[]))
    }

    /// The signature bytes.
    pub(crate) fn signature(&self) -> &[u8] {
        self.split().1
    }

    /// The payload bytes, as signed.
    #[cfg(test)]
    pub(crate) fn payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.payload_into(&mut out);
        out
    }

    /// Writes the payload bytes over `out`.
    fn payload_into(&self, out: &mut Vec<u8>) {
        out.clear();
        out.reserve(self.payload_len());
        let (payload, _) = self.split();
        if self.payload_packed {
            unpack(payload, out);
        } else {
            out.extend_from_slice(payload);
        }
    }

    /// The payload's length as signed (a `u32` always fits a `usize` here).
    fn payload_len(&self) -> usize {
        usize::try_from(self.payload_len).unwrap_or_default()
    }

    /// The length of the compact JWS, without writing it.
    pub(crate) fn jws_len(&self) -> usize {
        self.header.len()
            + 1
            + b64_len(self.payload_len())
            + 1
            + b64_len(usize::from(self.signature_len))
    }

    /// The signing input, `header "." b64(payload)`.
    pub(crate) fn signing_input(&self) -> String {
        let mut text = String::with_capacity(self.jws_len());
        self.write_signing_input(&mut text, &mut Vec::new());
        text
    }

    fn write_signing_input(&self, out: &mut String, scratch: &mut Vec<u8>) {
        out.push_str(&self.header);
        out.push('.');
        self.payload_into(scratch);
        kest_canon::b64url_encode_to(scratch, out);
    }

    /// Appends the compact JWS, byte for byte as it was, to `out`. `scratch` is working
    /// space, kept by a caller that writes many entries.
    pub(crate) fn write_jws(&self, out: &mut String, scratch: &mut Vec<u8>) {
        self.write_signing_input(out, scratch);
        out.push('.');
        kest_canon::b64url_encode_to(self.signature(), out);
    }

    /// The compact JWS, byte for byte as it was.
    pub(crate) fn jws(&self) -> String {
        let mut text = String::with_capacity(self.jws_len());
        self.write_jws(&mut text, &mut Vec::new());
        text
    }

    /// Bytes this form holds beyond its fixed size (the header is shared, not counted).
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        self.body.len()
    }
}

/// The length of the unpadded base64 of `len` bytes.
const fn b64_len(len: usize) -> usize {
    len / 3 * 4 + (len % 3 * 4).div_ceil(3)
}

/// Writes the packed form of `payload` to `out`; `false` (with `out` partly written)
/// when `payload` holds a byte below `0x20`, which only non-canonical JSON can.
fn pack_into(payload: &[u8], out: &mut Vec<u8>) -> bool {
    let mut at = 0;
    while let Some(&byte) = payload.get(at) {
        if byte < 0x20 {
            return false;
        }
        let rest = payload.get(at..).unwrap_or_default();
        let taken = if byte == b'"' {
            pack_name(rest, out)
                .or_else(|| pack_hex32(rest, out))
                .or_else(|| pack_uuid(rest, out))
        } else {
            None
        };
        match taken {
            Some(len) => at += len,
            None => {
                out.push(byte);
                at += 1;
            }
        }
    }
    true
}

/// A member name at the start of `rest`: its byte, and the length it replaced.
fn pack_name(rest: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let close = rest.get(1..)?.iter().position(|&b| b == b'"')? + 1;
    if rest.get(close + 1) != Some(&b':') {
        return None;
    }
    let name = rest.get(..close + 2)?;
    let index = NAMES.iter().position(|known| *known == name)?;
    out.push(u8::try_from(index + 1).ok()?);
    Some(name.len())
}

/// A quoted 64-digit lowercase hex string at the start of `rest`.
fn pack_hex32(rest: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let text = rest.get(..HEX32_TEXT)?;
    if text.last() != Some(&b'"') {
        return None;
    }
    let digits = text.get(1..HEX32_TEXT - 1)?;
    if !digits
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return None;
    }
    let mut bytes = [0_u8; 32];
    hex::decode_to_slice(digits, &mut bytes).ok()?;
    out.push(HEX32);
    out.extend_from_slice(&bytes);
    Some(HEX32_TEXT)
}

/// A quoted hyphenated lowercase UUID at the start of `rest`.
fn pack_uuid(rest: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let text = rest.get(..UUID_TEXT)?;
    if text.last() != Some(&b'"') {
        return None;
    }
    let digits = text.get(1..UUID_TEXT - 1)?;
    let uuid = Uuid::try_parse_ascii(digits).ok()?;
    // The parser also takes upper case: only the exact text it writes back is replaced.
    let mut written = [0_u8; uuid::fmt::Hyphenated::LENGTH];
    if uuid.hyphenated().encode_lower(&mut written).as_bytes() != digits {
        return None;
    }
    out.push(UUID);
    out.extend_from_slice(uuid.as_bytes());
    Some(UUID_TEXT)
}

/// Appends the payload `packed` stands for to `out`. Total: a token cut short at the end
/// (which [`pack_into`] never writes) ends the output there.
fn unpack(packed: &[u8], out: &mut Vec<u8>) {
    let mut at = 0;
    while let Some(&byte) = packed.get(at) {
        match byte {
            HEX32 => {
                let Some(bytes) = packed.get(at + 1..at + 33) else {
                    break;
                };
                let mut digits = [0_u8; 64];
                if hex::encode_to_slice(bytes, &mut digits).is_err() {
                    break;
                }
                out.push(b'"');
                out.extend_from_slice(&digits);
                out.push(b'"');
                at += 33;
            }
            UUID => {
                let Some(uuid) = packed
                    .get(at + 1..at + 17)
                    .and_then(|bytes| Uuid::from_slice(bytes).ok())
                else {
                    break;
                };
                let mut written = [0_u8; uuid::fmt::Hyphenated::LENGTH];
                out.push(b'"');
                out.extend_from_slice(uuid.hyphenated().encode_lower(&mut written).as_bytes());
                out.push(b'"');
                at += 17;
            }
            name @ 1..0x20 => {
                if let Some(text) = NAMES.get(usize::from(name) - 1) {
                    out.extend_from_slice(text);
                }
                at += 1;
            }
            _ => {
                // A run of literal bytes, copied at once.
                let run = packed.get(at..).unwrap_or_default();
                let len = run.iter().position(|&b| b < 0x20).unwrap_or(run.len());
                out.extend_from_slice(run.get(..len).unwrap_or_default());
                at += len.max(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::sync::Arc;

    use proptest::prelude::*;

    use super::{NAMES, Packed};

    fn unpack(packed: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        super::unpack(packed, &mut out);
        out
    }

    fn round_trip(payload: &[u8]) -> Packed {
        let packed = Packed::new(Arc::from("aGVhZGVy"), payload, &[7; 64]).unwrap();
        assert_eq!(packed.payload(), payload);
        assert_eq!(packed.signature(), &[7; 64]);
        packed
    }

    #[test]
    fn an_entry_payload_is_held_in_a_third_of_its_bytes() {
        let payload = br#"{"added_taints":[],"classification":"system","content_hash":"","entry_id":"01a22d1e-d422-75b0-8997-4735a9d7fe71","environment":{},"input_hash":"","labels":{"principal":"spiffe://kest.bench/rss"},"metadata":null,"operation":"step","otel_context":{},"parent_ids":["9d3c44e57006ceb88ba7e8af2d37e947a72efd6de251a33a82f3c7718951882b"],"policy_context":{"app_policies":[],"deviations":[],"enterprise_policies":[],"function_policies":["invoke"],"platform_policies":[]},"removed_taints":[],"runtime":{"name":"kest-rust","version":"0.1.0"},"schema_version":"0.3.0","taints":[],"timestamp_ms":1796053324834,"trust_score":100}"#;
        let packed = round_trip(payload);
        assert!(packed.payload_packed);
        assert!(
            packed.held_bytes() - 64 < payload.len() / 3 + 20,
            "{} bytes",
            packed.held_bytes()
        );
    }

    #[test]
    fn text_that_only_looks_replaceable_is_kept() {
        for text in [
            // Upper-case hex and UUIDs: the replacement would write them back in lower case.
            &br#"["9D3C44E57006CEB88BA7E8AF2D37E947A72EFD6DE251A33A82F3C7718951882B"]"#[..],
            br#"["01A22D1E-D422-75B0-8997-4735A9D7FE71"]"#,
            // A UUID the parser reads in other shapes.
            br#"["01a22d1ed42275b089974735a9d7fe71"]"#,
            br#"["{01a22d1e-d422-75b0-8997-4735a9d7fe7}"]"#,
            br#"["urn:uuid:01a22d1e-d422-75b0-8997-4735a9d7fe71"]"#,
            // 63 and 65 digits; a name without its colon; a name as a value.
            br#"["9d3c44e57006ceb88ba7e8af2d37e947a72efd6de251a33a82f3c7718951882"]"#,
            br#"["9d3c44e57006ceb88ba7e8af2d37e947a72efd6de251a33a82f3c7718951882b0"]"#,
            br#"{"taints" :[],"x":"taints","y":"\"taints\":"}"#,
            // Names and hashes cut short at the end.
            br#""entry_id""#,
            br#""9d3c44e57006ceb88ba7e8af2d37e947a72efd6de251a33a82f3c77189518"#,
            b"",
            b"\"",
        ] {
            round_trip(text);
        }
    }

    #[test]
    fn a_payload_with_a_control_byte_is_kept_as_it_is() {
        let payload = b"{\"taints\":\"\x01\x1e\x1f\"}";
        let packed = round_trip(payload);
        assert!(!packed.payload_packed);
        assert_eq!(packed.held_bytes(), payload.len() + 64);
    }

    /// Every byte from the space up is text, kept as it is between replacements.
    #[test]
    fn printable_text_packs_around_it() {
        let mut payload: Vec<u8> = (b' '..=b'~').collect();
        payload.extend_from_slice(br#""taints":"#);
        let packed = round_trip(&payload);
        assert!(packed.payload_packed);
        assert_eq!(packed.held_bytes(), (b' '..=b'~').count() + 1 + 64);
    }

    #[test]
    fn every_name_packs_to_one_byte() {
        for name in NAMES {
            let packed = round_trip(name);
            assert_eq!(
                packed.held_bytes(),
                1 + 64,
                "{}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn a_cut_token_ends_the_payload_without_a_panic() {
        assert_eq!(unpack(&[b'a', 0x1E, 1, 2]), b"a");
        assert_eq!(unpack(&[b'a', 0x1F, 1, 2]), b"a");
        assert_eq!(unpack(&[0x1C]), b"");
        assert_eq!(unpack(&[0x1B]), NAMES[26]);
    }

    #[test]
    fn the_jws_comes_back_byte_for_byte() {
        let payload = br#"{"entry_id":"01a22d1e-d422-75b0-8997-4735a9d7fe71"}"#;
        let signature: Vec<u8> = (0..64).collect();
        let header = "eyJhbGciOiJFZERTQSJ9";
        let jws = format!(
            "{header}.{}.{}",
            kest_canon::b64url_encode(payload),
            kest_canon::b64url_encode(&signature)
        );
        let packed = Packed::new(Arc::from(header), payload, &signature).unwrap();
        assert_eq!(packed.jws(), jws);
        assert_eq!(packed.jws_len(), jws.len());
        assert_eq!(packed.signing_input(), jws.rsplit_once('.').unwrap().0,);
    }

    fn json_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            prop::sample::select(NAMES.to_vec()).prop_map(<[u8]>::to_vec),
            "\"[0-9a-fA-F]{62,66}\"".prop_map(String::into_bytes),
            "\"[0-9a-fA-F-]{34,38}\"".prop_map(String::into_bytes),
            any::<u128>().prop_map(|u| format!("\"{}\"", uuid::Uuid::from_u128(u)).into_bytes()),
            any::<[u8; 32]>().prop_map(|h| format!("\"{}\"", hex::encode(h)).into_bytes()),
            "[ -~]{0,12}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..4),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn any_payload_comes_back_unchanged(payload in json_like()) {
            let packed = Packed::new(Arc::from("h"), &payload, b"sig").unwrap();
            prop_assert_eq!(packed.jws().len(), packed.jws_len());
            prop_assert_eq!(packed.payload(), payload);
            prop_assert_eq!(packed.signature(), b"sig");
        }
    }
}
