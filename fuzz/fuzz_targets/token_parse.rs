//! `ParsedToken::parse` over any string: it never panics, and it accepts
//! exactly the strings of the contract's shape whose checksum is right.
#![no_main]

use ibyok::ids::TokenId;
use ibyok::token::{checksum, ParsedToken, PREFIX, TOKEN_LEN};
use libfuzzer_sys::fuzz_target;

const CHECKSUM_LEN: usize = 6;

/// The contract, written out independently of the library.
fn well_formed(raw: &str) -> bool {
    let b = raw.as_bytes();
    b.len() == TOKEN_LEN
        && raw.starts_with(PREFIX)
        && b[PREFIX.len()..].iter().all(u8::is_ascii_alphanumeric)
        && checksum(&raw[..TOKEN_LEN - CHECKSUM_LEN]) == raw[TOKEN_LEN - CHECKSUM_LEN..]
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The raw input, and the input as it would arrive after a sloppy paste.
    for raw in [&*text, text.trim()] {
        match ParsedToken::parse(raw) {
            Some(t) => {
                assert!(well_formed(raw), "accepted a malformed token {raw:?}");
                assert_eq!(t.secret().expose_token(), raw);
                assert!(TokenId::parse(t.id().as_str()).is_some(), "bad id {:?}", t.id());
                assert!(t.matches(&t.verifier()));
                assert!(!t.matches(&t.verifier()[..31]));
                assert!(!format!("{t:?}").contains(&raw[PREFIX.len()..]), "Debug shows the secret");
                // Parsing is a function of the text: same id, same verifier.
                let again = ParsedToken::parse(raw).expect("parses twice");
                assert_eq!(again.id(), t.id());
                assert_eq!(again.verifier(), t.verifier());
            }
            None => assert!(!well_formed(raw), "refused a well-formed token {raw:?}"),
        }
    }
});
