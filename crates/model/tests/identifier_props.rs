//! Property tests of the GB/T 36904 identifier: generated identifiers always parse, and any
//! single-character change after the root is caught.

use licstore_model::{Identifier, IDENTIFIER_ROOT};
use proptest::prelude::*;

const USCC_CHARSET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

fn uscc_like() -> impl Strategy<Value = String> {
    let set = format!("[{USCC_CHARSET}]");
    (
        proptest::string::string_regex(&format!("{set}{{2}}")).expect("regex"),
        "[0-9]{6}",
        proptest::string::string_regex(&format!("{set}{{10}}")).expect("regex"),
    )
        .prop_map(|(a, b, c)| format!("{a}{b}{c}"))
}

fn identifier() -> impl Strategy<Value = Identifier> {
    let issuer = prop_oneof![uscc_like(), "[0-9]{6}"];
    (
        uscc_like(),
        "[0-9]{3}",
        issuer,
        "[0-9A-Za-z]{1,64}",
        1u16..=999,
    )
        .prop_map(|(authority, sequence, issuer, serial, version)| {
            let type_code = format!("{authority}{sequence}");
            Identifier::generate(&type_code, &issuer, &serial, version).expect("valid parts")
        })
}

/// Replacement characters: every printable ASCII character plus a few non-ASCII ones.
fn replacement() -> impl Strategy<Value = char> {
    prop_oneof![
        (0x20u8..0x7f).prop_map(char::from),
        Just('é'),
        Just('中'),
        Just('\u{0}'),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn generated_identifiers_parse(id in identifier()) {
        let text = id.to_string();
        prop_assert_eq!(Identifier::parse(&text), Ok(id));
    }

    #[test]
    fn any_single_change_after_the_root_is_rejected(
        id in identifier(),
        position in any::<prop::sample::Index>(),
        replacement in replacement(),
    ) {
        let text = id.to_string();
        let head = IDENTIFIER_ROOT.len() + 1;
        let tail: Vec<char> = text[head..].chars().collect();
        let index = position.index(tail.len());
        prop_assume!(tail[index] != replacement);
        let mut changed = tail.clone();
        changed[index] = replacement;
        let changed = format!("{}{}", &text[..head], changed.iter().collect::<String>());
        prop_assert!(Identifier::parse(&changed).is_err(), "{} validated", changed);
    }

    #[test]
    fn next_version_parses(id in identifier()) {
        if let Ok(next) = id.next_version() {
            prop_assert_eq!(next.version(), id.version() + 1);
            prop_assert_eq!(Identifier::parse(&next.to_string()), Ok(next));
        } else {
            prop_assert_eq!(id.version(), 999);
        }
    }

    #[test]
    fn parse_never_panics(text in "\\PC{0,140}") {
        let _ = Identifier::parse(&text);
        let _ = Identifier::parse(&format!("{IDENTIFIER_ROOT}.{text}"));
    }
}
