//! Phone numbers: parsing and E.164 normalisation (with `phonenumber`), the
//! country allow-list against SMS-pumping fraud, and the masked form that is
//! the only one ever written to logs and API answers.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a phone number was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhoneError {
    /// Not a number that exists in the numbering plan.
    #[error("not a valid phone number; use international format such as +14155552671")]
    Invalid,
    /// The number's country is not on the configured allow-list.
    #[error("phone numbers from {0} are not allowed on this appliance")]
    CountryNotAllowed(String),
}

/// A valid phone number in E.164 form (`+14155552671`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumber {
    e164: String,
    country: String,
}

impl PhoneNumber {
    /// Parses a number in international form (a leading `+`, or `00`).
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let trimmed = input.trim();
        if trimmed.len() > 40 {
            return Err(PhoneError::Invalid);
        }
        let international = match trimmed.strip_prefix("00") {
            Some(rest) => format!("+{rest}"),
            None => trimmed.to_owned(),
        };
        let number = phonenumber::parse(None, &international).map_err(|_| PhoneError::Invalid)?;
        if !number.is_valid() {
            return Err(PhoneError::Invalid);
        }
        let country = number.country().id().map(|id| id.as_ref().to_owned()).unwrap_or_default();
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        Ok(Self { e164, country })
    }

    /// Parses, then checks the country against `allowed` (ISO 3166 alpha-2
    /// codes; empty allows every country).
    pub(crate) fn parse_allowed(input: &str, allowed: &[String]) -> Result<Self, PhoneError> {
        let number = Self::parse(input)?;
        let permitted = allowed.is_empty() || allowed.iter().any(|c| c.eq_ignore_ascii_case(&number.country));
        if permitted {
            Ok(number)
        } else {
            Err(PhoneError::CountryNotAllowed(number.country))
        }
    }

    /// The whole number, for the SMS provider only.
    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The number's country (ISO 3166 alpha-2).
    #[cfg(test)]
    fn country(&self) -> &str {
        &self.country
    }

    /// The form shown in logs and answers: country code and last four digits.
    pub fn masked(&self) -> String {
        mask_digits(&self.e164)
    }
}

/// Masks all but a `+`, the first two and the last four characters.
pub(crate) fn mask_digits(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let keep_tail = chars.len().saturating_sub(4);
    chars.iter().enumerate().map(|(i, c)| if i < 2 || i >= keep_tail { *c } else { '*' }).collect()
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_to_e164() {
        let n = PhoneNumber::parse(" +1 (415) 555-2671 ").unwrap();
        assert_eq!(n.e164(), "+14155552671");
        assert_eq!(n.country(), "US");
        assert_eq!(PhoneNumber::parse("0033 6 12 34 56 78").unwrap().e164(), "+33612345678");
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        for bad in ["", "hello", "+1", "12345", "+999999999999", "+1415555267100000000000"] {
            assert_eq!(PhoneNumber::parse(bad), Err(PhoneError::Invalid), "{bad}");
        }
    }

    #[test]
    fn masks_everything_but_the_ends() {
        let n = PhoneNumber::parse("+14155552671").unwrap();
        assert_eq!(n.masked(), "+1******2671");
        assert_eq!(format!("{n} {n:?}").matches("2671").count(), 2);
        assert!(!format!("{n} {n:?}").contains("555"));
    }

    #[test]
    fn allow_list_guards_countries() {
        let allowed = vec!["fr".to_owned()];
        assert!(PhoneNumber::parse_allowed("+33612345678", &allowed).is_ok());
        assert_eq!(
            PhoneNumber::parse_allowed("+14155552671", &allowed),
            Err(PhoneError::CountryNotAllowed("US".into()))
        );
    }
}
