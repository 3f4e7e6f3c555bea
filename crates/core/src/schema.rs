//! The JSON Schema of the core's own value types (its enums, identifiers, phones and
//! timestamps), written once beside each type, so the server's OpenAPI document describes
//! them as they serialise.

use utoipa::openapi::{
    RefOr,
    schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type},
};

/// A string that is one of `texts`.
pub fn one_of_texts(texts: &[&str]) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(texts.iter().copied()))
        .into()
}

/// A string, with what it means, the pattern it matches and its longest length.
pub fn text(description: Option<&str>, pattern: Option<&str>, max_length: Option<usize>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(description)
        .pattern(pattern)
        .max_length(max_length)
        .into()
}

/// An RFC 3339 date-time.
pub fn date_time() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .into()
}
