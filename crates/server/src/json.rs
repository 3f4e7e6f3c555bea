//! JSON request bodies parsed strictly: an object that gives a key twice is refused instead
//! of taken last-wins, since a proxy or a client library that reads the first one would
//! see another request than the gateway carries out.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

#[derive(Debug)]
pub enum StrictError {
    /// The path of the key given twice: `groupId`, `settings.locked`, `participants[2].id`.
    Duplicate(String),
    Syntax(serde_json::Error),
}

/// Parses `bytes` as one JSON value; objects at any depth must not repeat a key.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, StrictError> {
    let ctx = RefCell::new(Ctx::default());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict { ctx: &ctx, at: None }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(e) => match ctx.into_inner().duplicate {
            Some(path) => Err(StrictError::Duplicate(path)),
            None => Err(StrictError::Syntax(e)),
        },
    }
}

#[derive(Default)]
struct Ctx {
    /// The containers entered, outermost first.
    path: Vec<Segment>,
    duplicate: Option<String>,
}

#[derive(Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

impl Ctx {
    fn path_to(&self, key: &str) -> String {
        let mut out = String::new();
        for s in &self.path {
            match s {
                Segment::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(key);
        out
    }
}

/// A value, at `at` within its parent (`None` for the top level).
struct Strict<'a> {
    ctx: &'a RefCell<Ctx>,
    at: Option<Segment>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Strict<'_> {
    fn enter(&self) {
        if let Some(s) = &self.at {
            self.ctx.borrow_mut().path.push(s.clone());
        }
    }

    fn leave(&self) {
        if self.at.is_some() {
            self.ctx.borrow_mut().path.pop();
        }
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.enter();
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
        let mut i = 0;
        while let Some(v) = seq.next_element_seed(Strict {
            ctx: self.ctx,
            at: Some(Segment::Index(i)),
        })? {
            items.push(v);
            i += 1;
        }
        self.leave();
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.enter();
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let mut ctx = self.ctx.borrow_mut();
                let path = ctx.path_to(&key);
                ctx.duplicate = Some(path.clone());
                return Err(de::Error::custom(format_args!("duplicate key {path}")));
            }
            let v = map.next_value_seed(Strict {
                ctx: self.ctx,
                at: Some(Segment::Key(key.clone())),
            })?;
            out.insert(key, v);
        }
        self.leave();
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(s: &str) -> Option<String> {
        match parse_strict(s.as_bytes()) {
            Err(StrictError::Duplicate(p)) => Some(p),
            _ => None,
        }
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth_and_named() {
        assert_eq!(dup(r#"{"groupId":"a","groupId":"b"}"#).as_deref(), Some("groupId"));
        assert_eq!(
            dup(r#"{"settings":{"locked":true,"locked":false}}"#).as_deref(),
            Some("settings.locked")
        );
        assert_eq!(
            dup(r#"{"participants":[{"id":1},{"id":2,"id":3}]}"#).as_deref(),
            Some("participants[1].id")
        );
        // The same key in sibling objects is no duplicate.
        assert_eq!(dup(r#"{"a":{"x":1},"b":{"x":2}}"#), None);
    }

    #[test]
    fn values_parse_as_serde_json_does() {
        let text = r#"{"s":"é\n","n":-3,"u":18446744073709551615,"f":1.5,"b":true,"z":null,"a":[1,[2],{}]}"#;
        assert_eq!(
            parse_strict(text.as_bytes()).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
        assert!(matches!(parse_strict(b"{\"a\":1} x"), Err(StrictError::Syntax(_))));
        assert!(matches!(parse_strict(b"{\"a\":"), Err(StrictError::Syntax(_))));
    }
}
