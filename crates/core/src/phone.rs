//! Phone numbers of WhatsApp users, accepted in the shapes clients send and stored as digits.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::ValidationError;

/// A WhatsApp user's phone number in international form, digits only (`919999999999`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

impl Phone {
    /// Accepts `+91 99999 99999`, `919999999999`, `919999999999@c.us` and
    /// `919999999999@s.whatsapp.net` (spaces, dashes, dots and parentheses are ignored).
    /// The result has 7 to 15 digits (E.164) and does not start with 0.
    pub fn parse(field: &str, input: &str) -> Result<Phone, ValidationError> {
        let raw = input.trim();
        let local = match raw.split_once('@') {
            Some((user, server)) => match server {
                "c.us" | "s.whatsapp.net" => user,
                _ => {
                    return Err(ValidationError::new(
                        field,
                        format!(
                            "'{input}' is not a phone number: only @c.us and @s.whatsapp.net JIDs name a user by phone"
                        ),
                    ));
                }
            },
            None => raw,
        };
        // A device suffix (`919999999999:12@s.whatsapp.net`) names the same user.
        let local = local.split(':').next().unwrap_or(local);
        let mut digits = String::with_capacity(local.len());
        for (i, c) in local.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => {}
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => {
                    return Err(ValidationError::new(
                        field,
                        format!("'{input}' is not a phone number: unexpected character '{c}'"),
                    ));
                }
            }
        }
        if !(7..=15).contains(&digits.len()) {
            return Err(ValidationError::new(
                field,
                format!(
                    "'{input}' is not a phone number: expected 7 to 15 digits in international form, got {}",
                    digits.len()
                ),
            ));
        }
        if digits.starts_with('0') {
            return Err(ValidationError::new(
                field,
                format!("'{input}' is not a phone number: the country code cannot start with 0"),
            ));
        }
        Ok(Phone(digits))
    }

    /// Wraps digits already validated (for example read back from storage).
    pub fn from_digits(digits: impl Into<String>) -> Phone {
        Phone(digits.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The user's JID on WhatsApp.
    pub fn jid(&self) -> String {
        format!("{}@s.whatsapp.net", self.0)
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A phone number as WhatsApp knows it: digits with the country code.
impl utoipa::PartialSchema for Phone {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::schema::text(Some("Digits with the country code"), None, None)
    }
}
impl utoipa::ToSchema for Phone {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_documented_shape() {
        for input in [
            "+91 99999 99999",
            "919999999999",
            "919999999999@c.us",
            "919999999999@s.whatsapp.net",
            "919999999999:3@s.whatsapp.net",
            "+91-99999-99999",
            " (91) 99999.99999 ",
        ] {
            assert_eq!(
                Phone::parse("phone", input).map(|p| p.0),
                Ok("919999999999".to_string()),
                "{input}"
            );
        }
        assert_eq!(
            Phone::parse("p", "919999999999").map(|p| p.jid()),
            Ok("919999999999@s.whatsapp.net".into())
        );
    }

    #[test]
    fn refuses_what_is_not_a_phone() {
        for input in [
            "",
            "abc",
            "12345",
            "1234567890123456",
            "0919999999999",
            "120363039000000000@g.us",
            "12345678@lid",
            "91+9999999999",
        ] {
            let err = Phone::parse("participants[0]", input);
            assert!(err.is_err(), "{input} should be refused");
            if let Err(e) = err {
                assert_eq!(e.field, "participants[0]");
            }
        }
    }
}
