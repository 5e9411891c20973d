//! Keyed pseudonyms (HMAC-SHA-256) for PII columns, and masks for text that must not show
//! PII (quarantined rows' raw text).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `ps_` and the first 128 bits of HMAC-SHA-256(key, value) in hex. The same key and value
/// always give the same pseudonym, so joins across tables still work; without the key the
/// value cannot be recovered or confirmed by guessing.
pub fn pseudonym(key: &[u8], value: &str) -> String {
    // `new_from_slice` accepts any key length for HMAC; the error arm cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(value.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(35);
    out.push_str("ps_");
    for b in &digest[..16] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A mask that keeps only the shape of a value: its first character and length.
pub(crate) fn mask(value: &str) -> String {
    let mut chars = value.chars();
    match chars.next() {
        None => String::new(),
        Some(first) => format!("{first}{}", "*".repeat(chars.count().min(12))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_stable_and_distinct() {
        let k1 = b"0123456789abcdef-key-one";
        let k2 = b"0123456789abcdef-key-two";
        let a = pseudonym(k1, "ann@example.com");
        assert_eq!(a, pseudonym(k1, "ann@example.com"));
        assert_ne!(a, pseudonym(k2, "ann@example.com"));
        assert_ne!(a, pseudonym(k1, "bob@example.com"));
        assert_eq!(a.len(), 35);
        assert!(a.starts_with("ps_"));
        // RFC 4231 test case 2: HMAC-SHA-256("Jefe", "what do ya want for nothing?").
        assert_eq!(
            pseudonym(b"Jefe", "what do ya want for nothing?"),
            "ps_5bdcc146bf60754e6a042426089575c7"
        );
        assert_eq!(mask("ann@example.com"), "a************");
        assert_eq!(mask(""), "");
    }
}
