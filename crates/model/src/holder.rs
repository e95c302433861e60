//! License holders and the validation of their identifiers.
//!
//! Two holder kinds are supported, with their GB/T 36903 holder-ID-type codes:
//!
//! * `111` citizen ID number (公民身份号码, GB 11643-1999): 6-digit address code,
//!   8-digit birth date, 3-digit sequence, check character by ISO 7064 MOD 11-2
//!   (`0-9` or `X`).
//! * `001` unified social credit code (统一社会信用代码, GB 32100-2015): 18 characters
//!   from a 31-character set, positions 3-8 a region code, check character by a weighted
//!   mod-31 sum.
//!
//! Decisions:
//!
//! * Identifiers are case-sensitive and canonical-uppercase. A lowercase `x` check character or
//!   lowercase USCC letters are rejected with a reason saying so; callers that want to accept
//!   them normalise first with [`normalize_holder_id`]. Silent normalisation inside validation
//!   would let two spellings of one holder reach the store.
//! * A citizen ID's address code must lie in a province of the embedded GB/T 2260 table (or be
//!   `810000`/`820000`/`830000`). The exact county code is not required: ID numbers keep the
//!   code of first registration for life, and many such codes have since been abolished (e.g.
//!   `440524`, 潮阳县, in the golden vectors), so a current-table lookup would reject real
//!   people.
//!   Province-level codes such as `310000` are therefore accepted as well.
//! * Lenient mode ([`CheckMode::Lenient`]) accepts a USCC whose final check character is wrong
//!   only when everything else is well-formed *and* the embedded GB 11714 organisation code
//!   (positions 9-17) passes its own check. That is the shape of the known legacy codes (early
//!   Fujian pilots such as `91350100M0001TGQXM`), while a typo elsewhere in the code breaks the
//!   inner check and stays rejected, as the golden vectors require. (A change in positions 1-8
//!   leaves the inner check intact, so lenient mode cannot catch it.) Citizen ID numbers have no
//!   independent inner check and no documented legacy population, so they are always checked
//!   strictly.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::date::Date;
use crate::error::ModelError;
use crate::region;

/// The 31 characters of GB 32100 (no I, O, S, V, Z); a character's value is its index.
pub const USCC_CHARSET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

/// Length of both holder identifier kinds.
pub const HOLDER_ID_CHARS: usize = 18;

const FIELD: &str = "holder.id";
const CITIZEN_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CITIZEN_CHECK_CHARS: [u8; 11] = *b"10X98765432";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
const ORG_CODE_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// The kind of identifier a holder is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HolderKind {
    /// 公民身份号码, GB/T 36903 code `111`.
    CitizenId,
    /// 统一社会信用代码, GB/T 36903 code `001`.
    Uscc,
}

impl HolderKind {
    /// Both kinds, in code order.
    pub const ALL: [HolderKind; 2] = [HolderKind::CitizenId, HolderKind::Uscc];

    /// The GB/T 36903 holder-ID-type code.
    pub fn as_code(self) -> &'static str {
        match self {
            HolderKind::CitizenId => "111",
            HolderKind::Uscc => "001",
        }
    }

    /// The API name: `citizen_id` or `uscc`.
    pub fn as_str(self) -> &'static str {
        match self {
            HolderKind::CitizenId => "citizen_id",
            HolderKind::Uscc => "uscc",
        }
    }

    /// Looks a kind up by its GB/T 36903 code.
    pub fn from_code(code: &str) -> Result<HolderKind, ModelError> {
        HolderKind::ALL
            .into_iter()
            .find(|k| k.as_code() == code)
            .ok_or_else(|| unknown_kind(code))
    }
}

impl FromStr for HolderKind {
    type Err = ModelError;

    /// Accepts the code (`111`, `001`) or the name (`citizen_id`, `uscc`).
    fn from_str(s: &str) -> Result<HolderKind, ModelError> {
        HolderKind::ALL
            .into_iter()
            .find(|k| k.as_code() == s || k.as_str() == s)
            .ok_or_else(|| unknown_kind(s))
    }
}

impl fmt::Display for HolderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn unknown_kind(s: &str) -> ModelError {
    let shown: String = s.chars().take(32).collect();
    let reason = format!("unknown holder kind {shown:?}; expected citizen_id (111) or uscc (001)");
    ModelError::invalid_field("holder.kind", reason)
}

/// How strictly check characters are enforced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckMode {
    /// Every check character must be right.
    #[default]
    Strict,
    /// A legacy USCC with a wrong final check character is accepted and flagged.
    Lenient,
}

impl CheckMode {
    /// `strict` or `lenient`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckMode::Strict => "strict",
            CheckMode::Lenient => "lenient",
        }
    }
}

impl FromStr for CheckMode {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<CheckMode, ModelError> {
        match s {
            "strict" => Ok(CheckMode::Strict),
            "lenient" => Ok(CheckMode::Lenient),
            _ => Err(ModelError::invalid_field(
                "check_mode",
                "expected strict or lenient",
            )),
        }
    }
}

/// The subject a license is issued to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Holder {
    /// Which identifier `id` is.
    pub kind: HolderKind,
    /// The citizen ID number or USCC, canonical uppercase.
    pub id: String,
    /// The holder's name (person or organisation).
    pub name: String,
    /// True when the id was accepted in lenient mode despite a wrong check character.
    pub legacy_checksum: bool,
}

/// The outcome of a successful holder-ID validation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HolderIdCheck {
    /// True when lenient mode accepted a wrong check character.
    pub legacy_checksum: bool,
}

/// Validates a holder identifier of the given kind. Errors name the field `holder.id`.
///
/// `today` bounds a citizen's birth date. `mode` matters only for USCCs (see the module doc).
pub fn validate_holder_id(
    kind: HolderKind,
    id: &str,
    mode: CheckMode,
    today: Date,
) -> Result<HolderIdCheck, ModelError> {
    match kind {
        HolderKind::CitizenId => validate_citizen_id(id, today, FIELD),
        HolderKind::Uscc => validate_uscc(id, mode, FIELD),
    }
}

/// Trims surrounding whitespace and uppercases ASCII letters (`x` → `X`).
///
/// For importers and front ends that receive hand-typed identifiers; validation itself never
/// normalises.
pub fn normalize_holder_id(id: &str) -> String {
    id.trim().to_ascii_uppercase()
}

/// The GB 11643 check character (`0-9` or `X`) for the first 17 digits of a citizen ID number.
pub fn citizen_id_check_char(first17: &str) -> Result<char, ModelError> {
    let bytes = first17.as_bytes();
    if bytes.len() != 17 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(ModelError::invalid_field(
            FIELD,
            "expected exactly 17 ASCII digits",
        ));
    }
    Ok(citizen_check(bytes))
}

/// The GB 32100 check character for the first 17 characters of a USCC.
pub fn uscc_check_char(first17: &str) -> Result<char, ModelError> {
    let bytes = first17.as_bytes();
    if bytes.len() != 17 {
        return Err(ModelError::invalid_field(
            FIELD,
            "expected exactly 17 characters",
        ));
    }
    for (index, &byte) in bytes.iter().enumerate() {
        check_uscc_char(byte, index, FIELD)?;
    }
    Ok(uscc_check(bytes))
}

/// Citizen ID validation with a caller-chosen field name.
pub(crate) fn validate_citizen_id(
    id: &str,
    today: Date,
    field: &str,
) -> Result<HolderIdCheck, ModelError> {
    check_citizen_shape(id, field)?;
    check_address_code(&id[..6], field)?;
    check_birth_date(&id[6..14], today, field)?;
    let expected = citizen_check(&id.as_bytes()[..17]);
    let actual = char::from(id.as_bytes()[17]);
    if actual != expected {
        let reason = format!("check character is {actual}, expected {expected}");
        return Err(ModelError::invalid_field(field, reason));
    }
    Ok(HolderIdCheck::default())
}

/// USCC validation with a caller-chosen field name.
pub(crate) fn validate_uscc(
    id: &str,
    mode: CheckMode,
    field: &str,
) -> Result<HolderIdCheck, ModelError> {
    check_uscc_shape(id, field)?;
    let bytes = id.as_bytes();
    let expected = uscc_check(&bytes[..17]);
    let actual = char::from(bytes[17]);
    if actual == expected {
        return Ok(HolderIdCheck::default());
    }
    let mismatch = format!("check character is {actual}, expected {expected}");
    match mode {
        CheckMode::Strict => Err(ModelError::invalid_field(field, mismatch)),
        CheckMode::Lenient if org_code_check_ok(&bytes[8..17]) => Ok(HolderIdCheck {
            legacy_checksum: true,
        }),
        CheckMode::Lenient => {
            let reason = format!(
                "{mismatch}, and the embedded organisation code fails its GB 11714 check, \
                 so lenient mode does not accept it as a legacy code"
            );
            Err(ModelError::invalid_field(field, reason))
        }
    }
}

/// Length, charset and layout of a USCC (positions 3-8 digits); the check is not verified.
pub(crate) fn check_uscc_shape(id: &str, field: &str) -> Result<(), ModelError> {
    let count = id.chars().count();
    if count != HOLDER_ID_CHARS {
        let reason = format!("must be {HOLDER_ID_CHARS} characters, got {count}");
        return Err(ModelError::invalid_field(field, reason));
    }
    for (index, &byte) in id.as_bytes().iter().enumerate() {
        check_uscc_char(byte, index, field)?;
        if (2..8).contains(&index) && !byte.is_ascii_digit() {
            let reason = format!("position {} must be a digit (region code)", index + 1);
            return Err(ModelError::invalid_field(field, reason));
        }
    }
    Ok(())
}

/// The mod-31 check value of 17 charset-validated bytes, as a character.
pub(crate) fn uscc_check(first17: &[u8]) -> char {
    debug_assert_eq!(first17.len(), 17);
    let sum: u32 = first17
        .iter()
        .zip(USCC_WEIGHTS)
        .map(|(&b, w)| uscc_value(b).unwrap_or(0) * w)
        .sum();
    let value = (31 - sum % 31) % 31;
    char::from(USCC_CHARSET.as_bytes()[value as usize])
}

fn check_uscc_char(byte: u8, index: usize, field: &str) -> Result<(), ModelError> {
    if uscc_value(byte).is_some() {
        return Ok(());
    }
    let position = index + 1;
    let reason = if byte.is_ascii_lowercase() {
        format!("lowercase letter at position {position}; codes are uppercase")
    } else if byte.is_ascii() {
        let shown = char::from(byte);
        format!("character {shown:?} at position {position} is outside the GB 32100 set")
    } else {
        format!("non-ASCII character at position {position}")
    };
    Err(ModelError::invalid_field(field, reason))
}

fn uscc_value(byte: u8) -> Option<u32> {
    USCC_CHARSET
        .bytes()
        .position(|c| c == byte)
        .map(|v| v as u32)
}

/// GB 11714 check of the organisation code in USCC positions 9-17.
fn org_code_check_ok(org_code: &[u8]) -> bool {
    debug_assert_eq!(org_code.len(), 9);
    let sum: u32 = org_code[..8]
        .iter()
        .zip(ORG_CODE_WEIGHTS)
        .map(|(&b, w)| char::from(b).to_digit(36).unwrap_or(0) * w)
        .sum();
    let expected = match 11 - sum % 11 {
        10 => b'X',
        11 => b'0',
        digit => b'0' + digit as u8,
    };
    org_code[8] == expected
}

fn check_citizen_shape(id: &str, field: &str) -> Result<(), ModelError> {
    let count = id.chars().count();
    if count != HOLDER_ID_CHARS || !id.is_ascii() {
        let reason = format!("must be {HOLDER_ID_CHARS} ASCII characters, got {count}");
        return Err(ModelError::invalid_field(field, reason));
    }
    let bytes = id.as_bytes();
    if let Some(index) = bytes[..17].iter().position(|b| !b.is_ascii_digit()) {
        let reason = format!("position {} must be a digit", index + 1);
        return Err(ModelError::invalid_field(field, reason));
    }
    match bytes[17] {
        b'0'..=b'9' | b'X' => Ok(()),
        b'x' => Err(ModelError::invalid_field(
            field,
            "check character must be uppercase X, got lowercase x",
        )),
        _ => Err(ModelError::invalid_field(
            field,
            "check character must be 0-9 or X",
        )),
    }
}

fn check_address_code(code: &str, field: &str) -> Result<(), ModelError> {
    let special = code.starts_with('8');
    let known = if special {
        region::is_special_residence_code(code)
    } else {
        region::is_known_province(&code[..2])
    };
    if known {
        return Ok(());
    }
    let reason = format!("address code {code} is not in a known GB/T 2260 province");
    Err(ModelError::invalid_field(field, reason))
}

fn check_birth_date(digits: &str, today: Date, field: &str) -> Result<(), ModelError> {
    let birth = Date::parse(digits).map_err(|_| {
        ModelError::invalid_field(field, format!("birth date {digits} is not a calendar date"))
    })?;
    if birth > today {
        let reason = format!("birth date {birth} is after today ({today})");
        return Err(ModelError::invalid_field(field, reason));
    }
    Ok(())
}

fn citizen_check(first17: &[u8]) -> char {
    debug_assert_eq!(first17.len(), 17);
    let sum: u32 = first17
        .iter()
        .zip(CITIZEN_WEIGHTS)
        .map(|(&b, w)| u32::from(b.wrapping_sub(b'0')) * w)
        .sum();
    char::from(CITIZEN_CHECK_CHARS[(sum % 11) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::new(2026, 1, 1).unwrap()
    }

    #[test]
    fn citizen_id_rules() {
        // (id, expected error substring or None for valid)
        let cases: [(&str, Option<&str>); 13] = [
            ("11010519491231002X", None),
            ("810000199001010019", None),
            ("310000200001010016", None),
            ("11010519491231002x", Some("uppercase X")),
            ("11010519491231002", Some("must be 18")),
            ("1101051949123100２X", Some("ASCII")),
            ("1101051949123100AX", Some("position 17 must be a digit")),
            ("11010519491231002Y", Some("0-9 or X")),
            ("990105194912310028", Some("not in a known")),
            ("840000199001010015", Some("not in a known")),
            ("110105194913310021", Some("not a calendar date")),
            ("110105203001010016", Some("after today")),
            (
                "110105194912310021",
                Some("check character is 1, expected X"),
            ),
        ];
        for (id, expected) in cases {
            let result = validate_holder_id(HolderKind::CitizenId, id, CheckMode::Lenient, today());
            match (result, expected) {
                (Ok(check), None) => assert!(!check.legacy_checksum, "{id}"),
                (Err(e), Some(text)) => {
                    assert_eq!(e.field(), Some("holder.id"));
                    assert!(e.to_string().contains(text), "{id}: {e}");
                }
                (other, _) => panic!("{id}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn uscc_rules() {
        // (id, strict ok, lenient ok, error substring when strict fails)
        let cases: [(&str, bool, bool, &str); 8] = [
            ("91110000600037341L", true, true, ""),
            ("91350100M0001TGQXM", false, true, "expected 1"),
            ("91310115MA1K3YJ12H", false, false, "expected G"),
            (
                "91310115MA1K3YJ1IG",
                false,
                false,
                "outside the GB 32100 set",
            ),
            ("91110000600037341l", false, false, "lowercase"),
            ("9111A000600037341L", false, false, "must be a digit"),
            ("91110000600037341", false, false, "must be 18"),
            // A change in positions 1-8 leaves the organisation code intact: lenient mode
            // cannot tell it from a legacy code (documented limitation).
            ("Y1110000600037341L", false, true, "expected"),
        ];
        for (id, strict_ok, lenient_ok, text) in cases {
            let strict = validate_holder_id(HolderKind::Uscc, id, CheckMode::Strict, today());
            let lenient = validate_holder_id(HolderKind::Uscc, id, CheckMode::Lenient, today());
            assert_eq!(strict.is_ok(), strict_ok, "{id} strict: {strict:?}");
            assert_eq!(lenient.is_ok(), lenient_ok, "{id} lenient: {lenient:?}");
            if let Err(e) = strict {
                assert!(e.to_string().contains(text), "{id}: {e}");
            }
            if let Ok(check) = lenient {
                assert_eq!(check.legacy_checksum, !strict_ok, "{id}");
            }
        }
    }

    #[test]
    fn check_char_functions() {
        let citizen = [
            ("11010519491231002", Ok('X')),
            ("44052418800101001", Ok('4')),
            ("4405241880010100", Err(())),
            ("4405241880010100A", Err(())),
        ];
        for (input, expected) in citizen {
            assert_eq!(
                citizen_id_check_char(input).map_err(|_| ()),
                expected,
                "{input}"
            );
        }
        let uscc = [
            ("91110000600037341", Ok('L')),
            ("11100000000013338", Ok('W')),
            ("9111000060003734I", Err(())),
            ("9111000060003734", Err(())),
        ];
        for (input, expected) in uscc {
            assert_eq!(uscc_check_char(input).map_err(|_| ()), expected, "{input}");
        }
    }

    #[test]
    fn kind_codes_and_names() {
        let cases = [
            ("111", Some(HolderKind::CitizenId)),
            ("citizen_id", Some(HolderKind::CitizenId)),
            ("001", Some(HolderKind::Uscc)),
            ("uscc", Some(HolderKind::Uscc)),
            ("414", None),
            ("USCC", None),
        ];
        for (input, expected) in cases {
            assert_eq!(input.parse::<HolderKind>().ok(), expected, "{input}");
        }
        for kind in HolderKind::ALL {
            assert_eq!(HolderKind::from_code(kind.as_code()), Ok(kind));
            assert!(HolderKind::from_code(kind.as_str()).is_err());
        }
    }

    #[test]
    fn normalize_uppercases_and_trims() {
        assert_eq!(
            normalize_holder_id(" 11010519491231002x\n"),
            "11010519491231002X"
        );
    }
}
