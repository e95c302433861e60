//! Calendar dates with no time zone, as printed on license faces and in GB/T 36903 metadata.
//!
//! A [`Date`] is always a real proleptic-Gregorian date in years 1800..=2999; the constructor,
//! the parser and deserialization all enforce that. Day arithmetic goes through a day count
//! since 1970-01-01 (the civil-from-days algorithm), so no clock is ever read here: callers pass
//! "today" in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// Earliest year a [`Date`] may carry.
pub const YEAR_MIN: u16 = 1800;
/// Latest year a [`Date`] may carry.
pub const YEAR_MAX: u16 = 2999;

const SECS_PER_DAY: u64 = 86_400;
/// Days from 0000-03-01 to 1970-01-01 in the civil-from-days algorithm.
const EPOCH_SHIFT_DAYS: i64 = 719_468;
const DAYS_PER_ERA: i64 = 146_097;

/// A calendar date without time zone.
///
/// Invariant: `YEAR_MIN <= year <= YEAR_MAX`, `1 <= month <= 12`, `1 <= day <= days in month`.
/// The derived ordering is chronological because the fields are declared year, month, day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "DateParts")]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

/// Unvalidated wire form; deserialization goes through [`Date::new`].
#[derive(Deserialize)]
struct DateParts {
    year: u16,
    month: u8,
    day: u8,
}

impl TryFrom<DateParts> for Date {
    type Error = ModelError;

    fn try_from(parts: DateParts) -> Result<Date, ModelError> {
        Date::new(parts.year, parts.month, parts.day)
    }
}

impl Date {
    /// Builds a date, rejecting impossible ones (2023-02-29, month 13) and years outside
    /// `YEAR_MIN..=YEAR_MAX`. Errors name the field `date`; callers rename it with
    /// [`ModelError::with_field`].
    pub fn new(year: u16, month: u8, day: u8) -> Result<Date, ModelError> {
        if !(YEAR_MIN..=YEAR_MAX).contains(&year) {
            let reason = format!("year {year} is outside {YEAR_MIN}..={YEAR_MAX}");
            return Err(ModelError::invalid_field("date", reason));
        }
        if !(1..=12).contains(&month) {
            return Err(ModelError::invalid_field(
                "date",
                format!("month {month} is not 1..=12"),
            ));
        }
        if day == 0 || day > days_in_month(year, month) {
            let reason = format!("{year:04}-{month:02} has no day {day}");
            return Err(ModelError::invalid_field("date", reason));
        }
        Ok(Date { year, month, day })
    }

    /// Parses `YYYY-MM-DD` or `YYYYMMDD` (ASCII digits only, no signs or spaces).
    pub fn parse(s: &str) -> Result<Date, ModelError> {
        let bytes = s.as_bytes();
        let (year, month, day) = match bytes.len() {
            10 if bytes[4] == b'-' && bytes[7] == b'-' => {
                (&bytes[0..4], &bytes[5..7], &bytes[8..10])
            }
            8 => (&bytes[0..4], &bytes[4..6], &bytes[6..8]),
            _ => return Err(not_a_date(s)),
        };
        match (ascii_number(year), ascii_number(month), ascii_number(day)) {
            (Some(y), Some(m), Some(d)) => Date::new(y as u16, m as u8, d as u8),
            _ => Err(not_a_date(s)),
        }
    }

    /// The UTC calendar date of a Unix timestamp. Timestamps past 2999-12-31 clamp to that day.
    pub fn from_unix_secs(secs: u64) -> Date {
        let days = i64::try_from(secs / SECS_PER_DAY).unwrap_or(i64::MAX);
        let max_days = Date::MAX.days_since_epoch();
        let (year, month, day) = civil_from_days(days.min(max_days));
        // The clamp keeps the year inside the range, so `new` cannot fail here.
        Date::new(year as u16, month, day).unwrap_or(Date::MAX)
    }

    /// The date `days` after 1970-01-01 (negative for earlier dates).
    pub fn from_days_since_epoch(days: i64) -> Result<Date, ModelError> {
        let in_range = Date::MIN.days_since_epoch()..=Date::MAX.days_since_epoch();
        if !in_range.contains(&days) {
            let reason = format!("day {days} since 1970-01-01 is outside {YEAR_MIN}..={YEAR_MAX}");
            return Err(ModelError::invalid_field("date", reason));
        }
        let (year, month, day) = civil_from_days(days);
        Date::new(year as u16, month, day)
    }

    /// Days since 1970-01-01; negative before it.
    pub fn days_since_epoch(&self) -> i64 {
        let month = i64::from(self.month);
        let year = i64::from(self.year) - i64::from(month <= 2);
        let era = year.div_euclid(400);
        let year_of_era = year - era * 400;
        let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + i64::from(self.day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        era * DAYS_PER_ERA + day_of_era - EPOCH_SHIFT_DAYS
    }

    /// The same day `years` later; 29 February becomes 28 February in a non-leap year.
    /// Used to derive a default `valid_until` from a template's validity period.
    pub fn add_years(&self, years: u16) -> Result<Date, ModelError> {
        let year = self.year.saturating_add(years);
        let day = self.day.min(days_in_month(year, self.month));
        Date::new(year, self.month, day)
    }

    /// Calendar year.
    pub fn year(&self) -> u16 {
        self.year
    }

    /// Month, 1..=12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// Day of month, 1..=31.
    pub fn day(&self) -> u8 {
        self.day
    }

    /// The earliest representable date, 1800-01-01.
    pub const MIN: Date = Date {
        year: YEAR_MIN,
        month: 1,
        day: 1,
    };

    /// The latest representable date, 2999-12-31.
    pub const MAX: Date = Date {
        year: YEAR_MAX,
        month: 12,
        day: 31,
    };
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Date {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Date, ModelError> {
        Date::parse(s)
    }
}

fn not_a_date(s: &str) -> ModelError {
    let shown: String = s.chars().take(32).collect();
    ModelError::invalid_field("date", format!("{shown:?} is not YYYY-MM-DD or YYYYMMDD"))
}

/// Parses up to four ASCII digits; `None` on anything else.
fn ascii_number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0')),
    )
}

fn is_leap_year(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let shifted = days + EPOCH_SHIFT_DAYS;
    let era = shifted.div_euclid(DAYS_PER_ERA);
    let day_of_era = shifted - era * DAYS_PER_ERA;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u8, day as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_accepts_real_dates_and_rejects_others() {
        let cases: [(u16, u8, u8, bool); 12] = [
            (2024, 2, 29, true),
            (2023, 2, 29, false),
            (2000, 2, 29, true),
            (1900, 2, 29, false),
            (2023, 4, 31, false),
            (2023, 12, 31, true),
            (2023, 13, 1, false),
            (2023, 0, 1, false),
            (2023, 1, 0, false),
            (1799, 12, 31, false),
            (1800, 1, 1, true),
            (3000, 1, 1, false),
        ];
        for (year, month, day, ok) in cases {
            assert_eq!(
                Date::new(year, month, day).is_ok(),
                ok,
                "{year}-{month}-{day}"
            );
        }
    }

    #[test]
    fn parse_accepts_both_forms_only() {
        let cases = [
            ("2024-02-29", Some("2024-02-29")),
            ("20240229", Some("2024-02-29")),
            ("2023-02-29", None),
            ("2024-2-29", None),
            ("2024/02/29", None),
            ("+2024-02-29", None),
            ("2024-+2-29", None),
            ("２０２４0229", None),
            ("", None),
            ("2024-02-29 ", None),
        ];
        for (input, expected) in cases {
            let parsed = Date::parse(input).ok().map(|d| d.to_string());
            assert_eq!(parsed.as_deref(), expected, "{input:?}");
        }
    }

    #[test]
    fn unix_secs_map_to_utc_dates() {
        let cases: [(u64, &str); 5] = [
            (0, "1970-01-01"),
            (86_399, "1970-01-01"),
            (951_782_400, "2000-02-29"),
            (1_700_000_000, "2023-11-14"),
            (u64::MAX, "2999-12-31"),
        ];
        for (secs, expected) in cases {
            assert_eq!(Date::from_unix_secs(secs).to_string(), expected, "{secs}");
        }
    }

    #[test]
    fn day_counts_roundtrip_over_the_whole_range() {
        let first = Date::MIN.days_since_epoch();
        let last = Date::MAX.days_since_epoch();
        let mut previous: Option<Date> = None;
        for days in first..=last {
            let date = Date::from_days_since_epoch(days).expect("in range");
            assert_eq!(date.days_since_epoch(), days);
            assert!(previous.is_none_or(|p| p < date));
            previous = Some(date);
        }
        assert!(Date::from_days_since_epoch(first - 1).is_err());
        assert!(Date::from_days_since_epoch(last + 1).is_err());
    }

    #[test]
    fn add_years_clamps_leap_day() {
        let cases = [
            ("2024-02-29", 1, Some("2025-02-28")),
            ("2024-02-29", 4, Some("2028-02-29")),
            ("2020-06-15", 20, Some("2040-06-15")),
            ("2990-01-01", 20, None),
        ];
        for (start, years, expected) in cases {
            let date = Date::parse(start).expect("valid start");
            let result = date.add_years(years).ok().map(|d| d.to_string());
            assert_eq!(result.as_deref(), expected, "{start} + {years}");
        }
    }

    #[test]
    fn deserialization_validates() {
        let good: Date = serde_json::from_str(r#"{"year":2024,"month":2,"day":29}"#).unwrap();
        assert_eq!(good.to_string(), "2024-02-29");
        let bad = serde_json::from_str::<Date>(r#"{"year":2023,"month":2,"day":29}"#);
        assert!(bad.is_err());
    }
}
