//! The GB/T 36904 e-license identifier (电子证照标识).
//!
//! ```text
//! 1.2.156.3005.2 . TYPE . ISSUER . SERIAL . VERSION . CHECK
//!   root (fixed)   21     18 or 6  1..=64   001..999  0-9A-Z
//! ```
//!
//! * TYPE: the defining authority's 18-character USCC plus a 3-digit type sequence. Only the
//!   USCC layout is checked here (charset, digits in positions 3-8), not its mod-31 check: the
//!   identifier carries its own check character, and authorities' codes are not ours to police.
//! * ISSUER: an 18-character USCC layout, or a 6-digit region code (seen in public samples).
//! * SERIAL: 1..=64 characters of `0-9A-Z`.
//! * VERSION: three digits, `001`..=`999`; a renewal or change bumps it.
//! * CHECK: ISO/IEC 7064 hybrid MOD 37,36 over TYPE, ISSUER, SERIAL and VERSION with the dots
//!   removed (the root is not included); characters are valued `0-9` → 0-9, `A-Z` → 10-35.
//!
//! Case: an identifier is canonical uppercase. [`Identifier::parse`] rejects lowercase
//! letters, because MOD 37,36 values `a` and `A` alike, so accepting both would give one license
//! two spellings that both validate. [`Identifier::generate`] uppercases an ASCII serial before
//! computing the check, so a lowercase hex UUID serial is stored as uppercase hex.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::holder::check_uscc_shape;
use crate::region::is_six_digits;

/// The fixed OID-style root of every e-license identifier.
pub const IDENTIFIER_ROOT: &str = "1.2.156.3005.2";
/// Length of a license type code: 18-character authority code plus 3 digits.
pub const TYPE_CODE_CHARS: usize = 21;
/// Longest serial.
pub const SERIAL_CHARS_MAX: usize = 64;
/// Highest version number.
pub const VERSION_MAX: u16 = 999;

const CHECK_ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A structurally valid e-license identifier whose check character is correct.
///
/// Invariant: every segment satisfies the module-level rules and `check` is the MOD 37,36
/// character of the payload; both constructors enforce it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Identifier {
    type_code: String,
    issuer_code: String,
    serial: String,
    version: u16,
    check: char,
}

impl Identifier {
    /// Parses the full dotted form, validating every segment and the check character.
    /// Errors name the segment: `identifier.root`, `identifier.type_code`, ...
    pub fn parse(s: &str) -> Result<Identifier, ModelError> {
        let rest = s
            .strip_prefix(IDENTIFIER_ROOT)
            .and_then(|r| r.strip_prefix('.'))
            .ok_or_else(|| {
                let reason = format!("must start with {IDENTIFIER_ROOT}.");
                ModelError::invalid_field("identifier.root", reason)
            })?;
        let segments: Vec<&str> = rest.split('.').collect();
        let [type_code, issuer_code, serial, version, check] = segments.as_slice() else {
            let reason = format!("expected 5 segments after the root, got {}", segments.len());
            return Err(ModelError::invalid_field("identifier", reason));
        };
        let version = parse_version(version)?;
        let check = parse_check(check)?;
        let identifier = Identifier::assemble(type_code, issuer_code, serial, version)?;
        if identifier.check != check {
            let reason = format!("check character is {check}, expected {}", identifier.check);
            return Err(ModelError::invalid_field("identifier.check", reason));
        }
        Ok(identifier)
    }

    /// Builds an identifier and computes its check character. An ASCII serial is uppercased
    /// first; `version` must be 1..=999.
    pub fn generate(
        type_code: &str,
        issuer_code: &str,
        serial: &str,
        version: u16,
    ) -> Result<Identifier, ModelError> {
        if !(1..=VERSION_MAX).contains(&version) {
            let reason = format!("version {version} is outside 1..={VERSION_MAX}");
            return Err(ModelError::invalid_field("identifier.version", reason));
        }
        Identifier::assemble(
            type_code,
            issuer_code,
            &serial.to_ascii_uppercase(),
            version,
        )
    }

    /// The identifier of the next version of the same license (renewal or change).
    pub fn next_version(&self) -> Result<Identifier, ModelError> {
        let next = self.version + 1;
        if next > VERSION_MAX {
            let reason = format!("version {} is the last one", self.version);
            return Err(ModelError::invalid_field("identifier.version", reason));
        }
        Identifier::assemble(&self.type_code, &self.issuer_code, &self.serial, next)
    }

    /// The 21-character license type code.
    pub fn type_code(&self) -> &str {
        &self.type_code
    }

    /// The issuer's USCC or 6-digit region code.
    pub fn issuer_code(&self) -> &str {
        &self.issuer_code
    }

    /// The serial, unique within type and issuer.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The version, 1..=999.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The MOD 37,36 check character.
    pub fn check(&self) -> char {
        self.check
    }

    /// Validates segments (version already range-checked) and computes the check character.
    fn assemble(
        type_code: &str,
        issuer_code: &str,
        serial: &str,
        version: u16,
    ) -> Result<Identifier, ModelError> {
        debug_assert!((1..=VERSION_MAX).contains(&version));
        check_type_code(type_code, "identifier.type_code")?;
        check_issuer_code(issuer_code)?;
        check_serial(serial, "identifier.serial")?;
        let payload = format!("{type_code}{issuer_code}{serial}{version:03}");
        let check = mod37_36_check_char(&payload)?;
        Ok(Identifier {
            type_code: type_code.to_owned(),
            issuer_code: issuer_code.to_owned(),
            serial: serial.to_owned(),
            version,
            check,
        })
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{IDENTIFIER_ROOT}.{}.{}.{}.{:03}.{}",
            self.type_code, self.issuer_code, self.serial, self.version, self.check
        )
    }
}

impl FromStr for Identifier {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Identifier, ModelError> {
        Identifier::parse(s)
    }
}

impl TryFrom<String> for Identifier {
    type Error = ModelError;

    fn try_from(s: String) -> Result<Identifier, ModelError> {
        Identifier::parse(&s)
    }
}

impl From<Identifier> for String {
    fn from(identifier: Identifier) -> String {
        identifier.to_string()
    }
}

/// The ISO/IEC 7064 hybrid MOD 37,36 check character of `payload` (characters `0-9A-Z`).
pub fn mod37_36_check_char(payload: &str) -> Result<char, ModelError> {
    let mut product: u32 = 36;
    for c in payload.chars() {
        let value = c
            .to_digit(36)
            .filter(|_| !c.is_ascii_lowercase())
            .ok_or_else(|| {
                let reason = format!("character {c:?} has no MOD 37,36 value (0-9, A-Z)");
                ModelError::invalid_field("identifier", reason)
            })?;
        let sum = match (product + value) % 36 {
            0 => 36,
            s => s,
        };
        product = (2 * sum) % 37;
    }
    let check = (37 - product) % 36;
    Ok(char::from(CHECK_ALPHABET[check as usize]))
}

/// Validates a 21-character type code layout under `field`.
pub(crate) fn check_type_code(code: &str, field: &str) -> Result<(), ModelError> {
    let count = code.chars().count();
    if count != TYPE_CODE_CHARS || !code.is_ascii() {
        let reason = format!("must be {TYPE_CODE_CHARS} ASCII characters, got {count}");
        return Err(ModelError::invalid_field(field, reason));
    }
    check_uscc_shape(&code[..18], field)?;
    if !code[18..].bytes().all(|b| b.is_ascii_digit()) {
        let reason = "the last 3 characters must be digits (type sequence)";
        return Err(ModelError::invalid_field(field, reason));
    }
    Ok(())
}

/// True for a well-formed serial (any ASCII case); used for caller-supplied serials.
pub(crate) fn check_serial_any_case(serial: &str, field: &str) -> Result<(), ModelError> {
    check_serial(&serial.to_ascii_uppercase(), field)
}

fn check_issuer_code(code: &str) -> Result<(), ModelError> {
    const FIELD: &str = "identifier.issuer_code";
    if is_six_digits(code) {
        return Ok(());
    }
    if code.chars().count() != 18 {
        let reason = "must be an 18-character USCC or a 6-digit region code";
        return Err(ModelError::invalid_field(FIELD, reason));
    }
    check_uscc_shape(code, FIELD)
}

fn check_serial(serial: &str, field: &str) -> Result<(), ModelError> {
    let count = serial.chars().count();
    if !(1..=SERIAL_CHARS_MAX).contains(&count) {
        let reason = format!("must be 1..={SERIAL_CHARS_MAX} characters, got {count}");
        return Err(ModelError::invalid_field(field, reason));
    }
    if let Some(c) = serial.chars().find(|c| !is_upper_alnum(*c)) {
        let reason = if c.is_ascii_lowercase() {
            "lowercase letters are not allowed; identifiers are uppercase".to_owned()
        } else {
            format!("character {c:?} is not 0-9 or A-Z")
        };
        return Err(ModelError::invalid_field(field, reason));
    }
    Ok(())
}

fn parse_version(segment: &str) -> Result<u16, ModelError> {
    let digits = segment.len() == 3 && segment.bytes().all(|b| b.is_ascii_digit());
    match segment.parse::<u16>() {
        Ok(version) if digits && version >= 1 => Ok(version),
        _ => Err(ModelError::invalid_field(
            "identifier.version",
            "must be 001..=999",
        )),
    }
}

fn parse_check(segment: &str) -> Result<char, ModelError> {
    let mut chars = segment.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if is_upper_alnum(c) => Ok(c),
        _ => Err(ModelError::invalid_field(
            "identifier.check",
            "must be one of 0-9, A-Z",
        )),
    }
}

fn is_upper_alnum(c: char) -> bool {
    c.is_ascii_digit() || c.is_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPE: &str = "11100000000013338W032";
    const ISSUER: &str = "11220000013544541J";

    #[test]
    fn parse_rejects_each_broken_segment() {
        let good = "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F";
        assert!(Identifier::parse(good).is_ok());
        let cases = [
            (
                "1.2.156.3005.3.11100000000013338W032.11220000013544541J.2430599.001.F",
                "root",
            ),
            (
                "1.2.156.3005.211100000000013338W032.11220000013544541J.2430599.001.F",
                "root",
            ),
            (
                "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001",
                "identifier",
            ),
            (
                "1.2.156.3005.2.1110000000013338W032.11220000013544541J.2430599.001.F",
                "type_code",
            ),
            (
                "1.2.156.3005.2.11100000000013338W03A.11220000013544541J.2430599.001.F",
                "type_code",
            ),
            (
                "1.2.156.3005.2.11100000000013338I032.11220000013544541J.2430599.001.F",
                "type_code",
            ),
            (
                "1.2.156.3005.2.11100000000013338W032.1122000001354454.2430599.001.F",
                "issuer_code",
            ),
            (
                "1.2.156.3005.2.11100000000013338W032.11220000013544541J.243059a.001.F",
                "serial",
            ),
            (
                "1.2.156.3005.2.11100000000013338W032.11220000013544541J..001.F",
                "serial",
            ),
            (
                "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.000.F",
                "version",
            ),
            (
                "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.01.F",
                "version",
            ),
            (
                "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.+01.F",
                "version",
            ),
            (
                "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.f",
                "check",
            ),
            (
                "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.FF",
                "check",
            ),
            (
                "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.G",
                "check",
            ),
        ];
        for (input, segment) in cases {
            let error = Identifier::parse(input).expect_err(input);
            let field = error.field().unwrap_or_default();
            assert!(field.ends_with(segment), "{input}: {error}");
        }
    }

    #[test]
    fn generate_normalises_serial_case_and_checks_version() {
        let lower = Identifier::generate(TYPE, ISSUER, "9f8e7d6c", 1).expect("valid");
        assert_eq!(lower.serial(), "9F8E7D6C");
        assert_eq!(Identifier::parse(&lower.to_string()), Ok(lower));
        let cases: [(&str, &str, &str, u16, Option<&str>); 6] = [
            (TYPE, "340100", "1", 1, None),
            (TYPE, ISSUER, "1", 0, Some("identifier.version")),
            (TYPE, ISSUER, "1", 1000, Some("identifier.version")),
            (TYPE, ISSUER, "", 1, Some("identifier.serial")),
            (TYPE, ISSUER, "序号", 1, Some("identifier.serial")),
            (
                "11100000000013338W",
                ISSUER,
                "1",
                1,
                Some("identifier.type_code"),
            ),
        ];
        for (type_code, issuer, serial, version, field) in cases {
            let result = Identifier::generate(type_code, issuer, serial, version);
            assert_eq!(result.err().as_ref().and_then(ModelError::field), field);
        }
    }

    #[test]
    fn next_version_bumps_and_rechecks() {
        let first = Identifier::generate(TYPE, ISSUER, "2430599", 1).unwrap();
        let second = first.next_version().unwrap();
        assert_eq!(second.version(), 2);
        assert!(second.to_string().ends_with(".2430599.002.D"), "{second}");
        assert_eq!(Identifier::parse(&second.to_string()), Ok(second.clone()));
        let last = Identifier::generate(TYPE, ISSUER, "2430599", VERSION_MAX).unwrap();
        assert!(last.next_version().is_err());
    }

    #[test]
    fn check_char_rejects_foreign_characters() {
        for payload in ["abc", "A-B", "Ä"] {
            assert!(mod37_36_check_char(payload).is_err(), "{payload}");
        }
    }

    #[test]
    fn serde_uses_the_dotted_form() {
        let id = Identifier::generate(TYPE, ISSUER, "2430599", 1).unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<Identifier>(&json).unwrap(), id);
        let bad = json.replace(".F\"", ".G\"");
        assert!(serde_json::from_str::<Identifier>(&bad).is_err());
    }
}
