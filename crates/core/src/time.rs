//! Timestamps: milliseconds since the Unix epoch, rendered as RFC 3339 at the edges.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

/// A point in time in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        Timestamp(ms)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus_millis(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }

    /// RFC 3339 with millisecond precision, e.g. `2026-11-22T10:00:00.123Z`.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match ::time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(dt) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.millisecond()
            ),
            Err(_) => "1970-01-01T00:00:00.000Z".to_string(),
        }
    }

    /// RFC 3339 to the second, e.g. `2026-11-22T10:00:00Z` (as some gateways write times).
    pub fn to_rfc3339_seconds(self) -> String {
        let full = self.to_rfc3339();
        match full.split_once('.') {
            Some((head, _)) => format!("{head}Z"),
            None => full,
        }
    }

    /// Parses an RFC 3339 timestamp (any offset).
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let dt = ::time::OffsetDateTime::parse(s, &::time::format_description::well_known::Rfc3339).ok()?;
        Some(Timestamp((dt.unix_timestamp_nanos() / 1_000_000) as i64))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

/// An RFC 3339 date-time in UTC with milliseconds.
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::schema::date_time()
    }
}
impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp(1_763_805_600_123);
        let s = t.to_rfc3339();
        assert_eq!(s, "2025-11-22T10:00:00.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&s), Some(t));
        assert_eq!(Timestamp::parse_rfc3339("2025-11-22T11:00:00.123+01:00"), Some(t));
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }
}
