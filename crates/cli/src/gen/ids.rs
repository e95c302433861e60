//! Holder and license numbers with valid check characters.
//!
//! * Citizen ID numbers (GB 11643): address code, birth date, a 3-digit sequence whose last
//!   digit is odd for men and even for women, and the check character from
//!   [`licstore_model::citizen_id_check_char`].
//! * USCCs (GB 32100): registration department and category (`91` enterprise, `92` individual
//!   business, `11` government organ, `12` public institution), the region code in positions
//!   3-8, a GB 11714 organisation code whose own check character is right, and the final check
//!   from [`licstore_model::uscc_check_char`]. Organisation codes of entities set up since 2016
//!   use the `MA1` + 5 characters shape seen on Shanghai codes; older ones are 8 digits.
//! * Birth medical certificate numbers: one letter and nine digits (the template's placeholder
//!   pattern; the real format is not public).

use licstore_model::{citizen_id_check_char, uscc_check_char, Date};
use rand::Rng;

/// Characters allowed in a USCC (GB 32100), which excludes I, O, S, V and Z.
const USCC_CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const ORG_CODE_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// Sex, which fixes the parity of a citizen ID's sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sex {
    /// 男, odd sequence.
    Male,
    /// 女, even sequence.
    Female,
}

impl Sex {
    /// The face value, `男` or `女`.
    pub fn label(self) -> &'static str {
        match self {
            Sex::Male => "男",
            Sex::Female => "女",
        }
    }

    /// A fair draw.
    pub fn random(rng: &mut impl Rng) -> Sex {
        if rng.random_bool(0.5) {
            Sex::Male
        } else {
            Sex::Female
        }
    }
}

/// A citizen ID number for this address code, birth date and sex.
pub fn citizen_id(rng: &mut impl Rng, address_code: &str, birth: Date, sex: Sex) -> String {
    debug_assert_eq!(address_code.len(), 6);
    let parity = match sex {
        Sex::Male => 1,
        Sex::Female => 0,
    };
    let sequence = rng.random_range(0..50u32) * 2 + parity;
    let order = rng.random_range(0..10u32);
    let date = format!("{:04}{:02}{:02}", birth.year(), birth.month(), birth.day());
    let first17 = format!("{address_code}{date}{order}{sequence:02}");
    with_check(&first17, citizen_id_check_char(&first17))
}

/// A USCC with the given 2-character prefix and region code, and an organisation code of the
/// modern (`MA1…`) or legacy (8 digits) shape.
pub fn uscc(rng: &mut impl Rng, prefix: &str, region_code: &str, modern: bool) -> String {
    let org = organisation_code(rng, modern);
    let first17 = format!("{prefix}{region_code}{org}");
    with_check(&first17, uscc_check_char(&first17))
}

fn with_check<E>(first17: &str, check: Result<char, E>) -> String {
    // The callers build 17 characters of the right alphabet, so the check cannot fail.
    let check = check.unwrap_or('0');
    format!("{first17}{check}")
}

/// A GB 11714 organisation code: 8 characters and its check character.
pub fn organisation_code(rng: &mut impl Rng, modern: bool) -> String {
    let body: String = if modern {
        let tail: String = (0..5).map(|_| random_uscc_char(rng)).collect();
        format!("MA1{tail}")
    } else {
        (0..8)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect()
    };
    let check = org_code_check(&body);
    format!("{body}{check}")
}

fn random_uscc_char(rng: &mut impl Rng) -> char {
    char::from(USCC_CHARS[rng.random_range(0..USCC_CHARS.len())])
}

/// The GB 11714 check character of an 8-character organisation code body.
pub fn org_code_check(body: &str) -> char {
    let sum: u32 = body
        .chars()
        .zip(ORG_CODE_WEIGHTS)
        .map(|(c, w)| c.to_digit(36).unwrap_or(0) * w)
        .sum();
    match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        digit => char::from_digit(digit, 10).unwrap_or('0'),
    }
}

/// A birth medical certificate number: a letter for the print series of the birth year, then
/// `31` and seven digits.
pub fn birth_certificate_number(rng: &mut impl Rng, birth_year: u16) -> String {
    let series = char::from(b'A' + (birth_year.saturating_sub(1996) % 26) as u8);
    format!("{series}31{:07}", rng.random_range(0..10_000_000u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use licstore_model::{validate_holder_id, CheckMode, HolderKind};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn generated_ids_pass_the_model_validators() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let today = Date::new(2026, 1, 1).expect("date");
        let birth = Date::new(1990, 2, 28).expect("date");
        for i in 0..500 {
            let sex = if i % 2 == 0 { Sex::Male } else { Sex::Female };
            let id = citizen_id(&mut rng, "310115", birth, sex);
            let check = validate_holder_id(HolderKind::CitizenId, &id, CheckMode::Strict, today);
            assert!(check.is_ok(), "{id}: {check:?}");
            let sequence_digit = id.as_bytes()[16] - b'0';
            assert_eq!(sequence_digit % 2 == 1, sex == Sex::Male, "{id}");
            let code = uscc(&mut rng, "91", "310104", i % 3 == 0);
            let check = validate_holder_id(HolderKind::Uscc, &code, CheckMode::Strict, today);
            assert!(check.is_ok(), "{code}: {check:?}");
            assert_eq!(&code[2..8], "310104");
        }
    }

    #[test]
    fn org_code_check_vectors() {
        // Bodies and check characters of real codes (positions 9-17 of public USCCs).
        let cases = [
            ("60003734", '1'),
            ("00001333", '8'),
            ("M0001TGQ", 'X'),
            ("12345678", '8'),
        ];
        for (body, want) in cases {
            assert_eq!(org_code_check(body), want, "{body}");
        }
    }
}
