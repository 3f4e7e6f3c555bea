//! Field rules shared by every dialect: subject, description, client group ID, join
//! approval mode and business numbers.

use crate::ValidationError;

pub const SUBJECT_MAX: usize = 128;
pub const DESCRIPTION_MAX: usize = 2048;
pub const GROUP_ID_MAX: usize = 50;

/// Trims the subject; it must then hold 1 to 128 characters, none of them a control
/// character (WhatsApp shows a subject on one line).
pub fn subject(field: &str, raw: &str) -> Result<String, ValidationError> {
    let s = raw.trim();
    printable(field, s, false)?;
    let n = s.chars().count();
    if n == 0 {
        return Err(ValidationError::new(
            field,
            "must not be empty (1 to 128 characters after trimming whitespace)",
        ));
    }
    if n > SUBJECT_MAX {
        return Err(ValidationError::new(
            field,
            format!("must be at most {SUBJECT_MAX} characters, got {n}"),
        ));
    }
    Ok(s.to_string())
}

/// The description may be empty and holds at most 2048 characters; line breaks and tabs are
/// kept, other control characters refused.
pub fn description(field: &str, raw: &str) -> Result<String, ValidationError> {
    printable(field, raw, true)?;
    at_most(field, raw, DESCRIPTION_MAX)
}

/// Refuses the control characters (C0, DEL, C1) nobody can see or type in WhatsApp, which
/// would be stored and shown as garbage (or cut a client's string at a NUL). `multiline`
/// keeps line feeds, carriage returns and tabs.
pub fn printable(field: &str, raw: &str, multiline: bool) -> Result<(), ValidationError> {
    let bad = raw
        .char_indices()
        .find(|(_, c)| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')));
    match bad {
        None => Ok(()),
        Some((i, c)) => Err(ValidationError::new(
            field,
            format!(
                "must not contain control characters{}; found U+{:04X} at character {}",
                if multiline {
                    " other than line breaks and tabs"
                } else {
                    ""
                },
                c as u32,
                raw[..i].chars().count() + 1
            ),
        )),
    }
}

/// A text of at most `max` characters (not bytes), kept as given.
pub fn at_most(field: &str, raw: &str, max: usize) -> Result<String, ValidationError> {
    let n = raw.chars().count();
    if n > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters, got {n}"),
        ));
    }
    Ok(raw.to_string())
}

/// A client group ID: 1 to 50 characters of letters, digits, `_`, `-` and `.`.
pub fn group_id(field: &str, raw: &str) -> Result<String, ValidationError> {
    let n = raw.chars().count();
    if n == 0 || n > GROUP_ID_MAX {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {GROUP_ID_MAX} characters, got {n}"),
        ));
    }
    if let Some(c) = raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(ValidationError::new(
            field,
            format!("may only contain letters, digits, '_', '-' and '.', found {c:?}"),
        ));
    }
    Ok(raw.to_string())
}

/// A business number as digits (a leading `+` and spaces are tolerated), 7 to 15 digits.
pub fn waba_number(field: &str, raw: &str) -> Result<String, ValidationError> {
    let digits: String = raw
        .trim()
        .trim_start_matches('+')
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .collect();
    if digits.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if !digits.chars().all(|c| c.is_ascii_digit()) || !(7..=15).contains(&digits.len()) {
        return Err(ValidationError::new(
            field,
            format!("must be a phone number of 7 to 15 digits in international form, got {raw:?}"),
        ));
    }
    Ok(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_trimmed_and_bounded_in_characters() {
        assert_eq!(subject("subject", "  Hi  ").as_deref(), Ok("Hi"));
        assert!(subject("subject", "   ").is_err());
        let max = "é".repeat(128);
        assert_eq!(subject("subject", &format!(" {max} ")), Ok(max.clone()));
        assert!(subject("subject", &format!("{max}x")).is_err());
    }

    #[test]
    fn description_and_group_id_limits() {
        assert!(description("d", &"a".repeat(2048)).is_ok());
        assert!(description("d", &"a".repeat(2049)).is_err());
        assert!(group_id("g", &"a".repeat(50)).is_ok());
        assert!(group_id("g", &"a".repeat(51)).is_err());
        assert!(group_id("g", "").is_err());
        assert!(group_id("g", "new_support-2026.v1").is_ok());
        assert!(group_id("g", "has space").is_err());
        assert!(group_id("g", "ünïcode").is_err());
    }

    #[test]
    fn control_characters_are_refused_but_descriptions_keep_line_breaks() {
        let e = subject("subject", "a\u{0}b").unwrap_err();
        assert!(
            e.message.contains("U+0000") && e.message.contains("character 2"),
            "{}",
            e.message
        );
        assert!(subject("subject", "line\nbreak").is_err());
        assert!(subject("subject", "tab\there").is_err());
        assert!(subject("subject", "bell\u{7}").is_err());
        assert!(subject("subject", "c1\u{85}x").is_err());
        assert!(subject("subject", "Ünïcødé ✓ 👍").is_ok());
        assert!(description("description", "one\ntwo\r\n\tthree").is_ok());
        assert!(description("description", "del\u{7f}").is_err());
        assert!(description("description", "esc\u{1b}[31m").is_err());
    }

    #[test]
    fn waba_numbers() {
        assert_eq!(waba_number("w", "+1 555 0100001").as_deref(), Ok("15550100001"));
        assert!(waba_number("w", "12ab").is_err());
        assert!(waba_number("w", "").is_err());
    }
}
