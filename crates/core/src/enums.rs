//! The one way the core defines an enum with a fixed text per variant (statuses, roles,
//! states, settings, event types): the text is written once, beside its variant, and gives
//! the serde form, `as_str`, `parse` and the validation error naming every allowed value.

/// `string_enum!(/// docs  Name { /// docs  Variant = "text", … })`. Extra derives (such as
/// `Default`, with `#[default]` on a variant) go on the enum's attributes.
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }

            /// Reads a client's `field`: one of the texts, or an error that lists them.
            pub fn validate(field: &str, raw: &str) -> Result<Self, $crate::ValidationError> {
                Self::parse(raw).ok_or_else(|| {
                    $crate::ValidationError::new(
                        field,
                        format!("must be one of {}; got {raw:?}", [$($text),+].join(", ")),
                    )
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// The JSON form in the OpenAPI document: a string, one of the texts.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::schema::one_of_texts(&[$($text),+])
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}

pub(crate) use string_enum;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    string_enum!(
        #[derive(Default)]
        Colour {
            #[default]
            Red = "red",
            /// Documented.
            DarkBlue = "dark-blue",
        }
    );

    #[test]
    fn text_serde_and_errors_agree() {
        assert_eq!(Colour::default(), Colour::Red);
        assert_eq!(Colour::DarkBlue.as_str(), "dark-blue");
        assert_eq!(Colour::parse("dark-blue"), Some(Colour::DarkBlue));
        assert_eq!(Colour::parse("DarkBlue"), None);
        assert_eq!(serde_json::to_string(&Colour::DarkBlue).unwrap(), "\"dark-blue\"");
        assert_eq!(serde_json::from_str::<Colour>("\"red\"").unwrap(), Colour::Red);
        let e = Colour::validate("colour", "green").unwrap_err();
        assert_eq!(e.field, "colour");
        assert_eq!(e.message, "must be one of red, dark-blue; got \"green\"");
        assert_eq!(Colour::ALL.len(), 2);
    }
}
