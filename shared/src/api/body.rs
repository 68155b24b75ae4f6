//! Request parsing: JSON bodies field by field (so every message names its
//! field), and the list routes' `limit` and `cursor`.

use super::{ApiError, ApiRequest};
use crate::secret::SecretValue;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;

pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The one larger body: a leaked-token report (`POST
/// /github/secret-scanning`), which may carry thousands of matches.
pub const MAX_REPORT_BODY_BYTES: usize = 1024 * 1024;

/// The largest body a request to `path` may carry (decided by the path
/// alone, before routing).
pub fn max_body_bytes(path: &str) -> usize {
    if path == "/github/secret-scanning" {
        MAX_REPORT_BODY_BYTES
    } else {
        MAX_BODY_BYTES
    }
}

/// A JSON object body whose field names were all checked against the
/// route's list. A secret field (a key's `value`) is read straight into
/// [`SecretValue`] and never enters the map.
pub struct JsonObject(Map<String, Value>);

/// The secret field of a body, as it was found.
pub enum SecretField {
    Absent,
    /// Present but not a JSON string (null included).
    NotString,
    Value(SecretValue),
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

impl JsonObject {
    /// A body with no secret field (`value` is then an unknown field).
    pub fn parse(req: &ApiRequest, known: &[&str]) -> Result<Self, ApiError> {
        debug_assert!(!known.contains(&SECRET_FIELD));
        Self::parse_fields(req, known).map(|(object, _)| object)
    }

    /// As [`parse`](Self::parse), but a request with no body at all reads
    /// as `{}` (a `POST` whose fields are all optional).
    pub fn parse_optional(req: &ApiRequest, known: &[&str]) -> Result<Self, ApiError> {
        if req.body.expose().is_empty() {
            return Ok(Self(Map::new()));
        }
        Self::parse(req, known)
    }

    /// A body whose `value` (one of `known`) is a key's value: it is read
    /// straight into a [`SecretValue`] as the parser meets it, never into
    /// the map.
    pub fn parse_with_value(req: &ApiRequest, known: &[&str]) -> Result<(Self, SecretField), ApiError> {
        debug_assert!(known.contains(&SECRET_FIELD));
        Self::parse_fields(req, known)
    }

    /// The errors and their order are those of parsing the whole body into
    /// a `serde_json::Value`: 415, malformed JSON, not an object, then the
    /// first unknown field in the map's (alphabetical) order.
    fn parse_fields(req: &ApiRequest, known: &[&str]) -> Result<(Self, SecretField), ApiError> {
        if !is_json(req.content_type.as_deref()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let parsed =
            serde_json::from_slice::<Parsed>(req.body.expose()).map_err(|_| ApiError::bad("body", "malformed JSON"))?;
        let Parsed::Object { map, secret_field } = parsed else {
            return Err(ApiError::bad("body", "must be a JSON object"));
        };
        let unknown_secret = !matches!(secret_field, SecretField::Absent) && !known.contains(&SECRET_FIELD);
        let unknown_in_map = map.keys().map(String::as_str).find(|k| !known.contains(k));
        let unknown = match (unknown_in_map, unknown_secret) {
            (Some(k), true) => Some(k.min(SECRET_FIELD)),
            (Some(k), false) => Some(k),
            (None, true) => Some(SECRET_FIELD),
            (None, false) => None,
        };
        if let Some(unknown) = unknown {
            return Err(ApiError::BadRequest(format!("{unknown}: unknown field")));
        }
        Ok((Self(map), secret_field))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    pub fn raw(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }

    /// An optional string (absent or, where allowed, null → `None`).
    pub fn opt_str(&self, field: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::bad(field, "must be a string")),
        }
    }

    pub fn str(&self, field: &str) -> Result<&str, ApiError> {
        self.opt_str(field)?.ok_or_else(|| ApiError::bad(field, "is required"))
    }

    pub fn opt_string_list(&self, field: &str) -> Result<Option<Vec<&str>>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().ok_or_else(|| ApiError::bad(field, "must be a list of strings")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(ApiError::bad(field, "must be a list of strings")),
        }
    }
}

/// The whole body, read in one pass: an object's fields into the map but
/// for the secret field `value`, which goes straight into its zeroizing
/// type; anything but an object is read through (so that a syntax error
/// anywhere still answers "malformed JSON") and dropped.
///
/// The secret field's name is fixed: `value`, the only secret a request
/// carries.
enum Parsed {
    Object { map: Map<String, Value>, secret_field: SecretField },
    NotObject,
}

const SECRET_FIELD: &str = "value";

impl<'de> Deserialize<'de> for Parsed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopLevel)
    }
}

struct TopLevel;

macro_rules! not_an_object {
    ($($visit:ident($t:ty)),*) => {$(
        fn $visit<E: de::Error>(self, _: $t) -> Result<Parsed, E> {
            Ok(Parsed::NotObject)
        }
    )*};
}

impl<'de> Visitor<'de> for TopLevel {
    type Value = Parsed;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    not_an_object!(visit_bool(bool), visit_i64(i64), visit_u64(u64), visit_f64(f64), visit_str(&str));
    fn visit_unit<E: de::Error>(self) -> Result<Parsed, E> {
        Ok(Parsed::NotObject)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Parsed, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq))?;
        Ok(Parsed::NotObject)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut fields: A) -> Result<Parsed, A::Error> {
        let mut map = Map::new();
        let mut secret_field = SecretField::Absent;
        while let Some(name) = fields.next_key::<String>()? {
            if name == SECRET_FIELD {
                // A repeated field: the last wins (as in a `Value`); the
                // earlier one is wiped as it drops.
                secret_field = fields.next_value_seed(SecretSeed)?;
            } else {
                let value: Value = fields.next_value()?;
                map.insert(name, value);
            }
        }
        Ok(Parsed::Object { map, secret_field })
    }
}

/// The secret field's value: a string into [`SecretValue`], anything else
/// read through as a `Value` (the same syntax and range errors) and dropped.
struct SecretSeed;

impl<'de> DeserializeSeed<'de> for SecretSeed {
    type Value = SecretField;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<SecretField, D::Error> {
        d.deserialize_any(self)
    }
}

macro_rules! not_a_string {
    ($($visit:ident($t:ty)),*) => {$(
        fn $visit<E: de::Error>(self, _: $t) -> Result<SecretField, E> {
            Ok(SecretField::NotString)
        }
    )*};
}

impl<'de> Visitor<'de> for SecretSeed {
    type Value = SecretField;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    not_a_string!(visit_bool(bool), visit_i64(i64), visit_u64(u64), visit_f64(f64));
    fn visit_unit<E: de::Error>(self) -> Result<SecretField, E> {
        Ok(SecretField::NotString)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretField, E> {
        Ok(SecretField::Value(SecretValue::new(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<SecretField, E> {
        Ok(SecretField::Value(SecretValue::new(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<SecretField, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq))?;
        Ok(SecretField::NotString)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SecretField, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map))?;
        Ok(SecretField::NotString)
    }
}

/// A name of 1–100 characters.
pub fn check_name(field: &str, name: &str) -> Result<String, ApiError> {
    let n = name.chars().count();
    if n == 0 || n > 100 || name.trim().is_empty() {
        return Err(ApiError::bad(field, "must be 1 to 100 characters"));
    }
    Ok(name.to_owned())
}

pub struct Paging {
    pub limit: usize,
    pub cursor: Option<String>,
}

impl ApiRequest {
    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn paging(&self) -> Result<Paging, ApiError> {
        let limit = match self.query_param("limit") {
            None => 50,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| ApiError::bad("limit", "must be an integer from 1 to 100"))?,
        };
        let cursor = match self.query_param("cursor") {
            None => None,
            Some("") => return Err(ApiError::bad("cursor", "not a cursor from this listing")),
            Some(c) => Some(c.to_owned()),
        };
        Ok(Paging { limit, cursor })
    }
}

/// Parses a raw query string (`a=1&b=two`), percent-decoding names and
/// values. A malformed query yields what could be read.
pub fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    match raw {
        None | Some("") => Vec::new(),
        Some(q) => serde_urlencoded::from_str(q).unwrap_or_default(),
    }
}

/// Reads pages from `next_page(size, cursor)` until `limit` items pass `keep`
/// or the listing ends; answers them with the cursor to continue from. A
/// page never asks the store for more than 100 items.
pub async fn fill_page<T, F, Fut>(
    limit: usize,
    mut cursor: Option<String>,
    mut next_page: F,
    keep: impl Fn(&T) -> bool,
) -> Result<(Vec<T>, Option<String>), ApiError>
where
    F: FnMut(usize, Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<crate::store::Page<T>, crate::store::StoreError>>,
{
    let mut items = Vec::new();
    loop {
        let page = next_page((limit - items.len()).min(100), cursor.take()).await?;
        items.extend(page.items.into_iter().filter(|i| keep(i)));
        cursor = page.next;
        if items.len() >= limit || cursor.is_none() {
            return Ok((items, cursor));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answers of parsing into a whole `serde_json::Value` first (the
    /// parser before the secret field was typed), as the reference.
    fn reference(body: &[u8], known: &[&str]) -> Result<Vec<String>, String> {
        let value: Value = serde_json::from_slice(body).map_err(|_| "body: malformed JSON".to_owned())?;
        let Value::Object(map) = value else { return Err("body: must be a JSON object".into()) };
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!("{unknown}: unknown field"));
        }
        Ok(map.keys().cloned().collect())
    }

    fn request(body: &[u8]) -> ApiRequest {
        ApiRequest {
            content_type: Some("application/json".into()),
            body: body.to_vec().into(),
            ..ApiRequest::default()
        }
    }

    fn message(e: ApiError) -> String {
        e.to_string()
    }

    #[test]
    fn typed_secret_parsing_answers_as_the_whole_value_parser_did() {
        let bodies: &[&str] = &[
            r#"{"name":"n","llmType":"openai","value":"sk-1"}"#,
            r#"{"value":"sk-\"escaped\"\u00e9"}"#,
            r#"{"value":12}"#,
            r#"{"value":null}"#,
            r#"{"value":{"nested":[1,2,{"a":"b"}]}}"#,
            r#"{"value":[1e400]}"#,
            r#"{"value":1e400}"#,
            r#"{"value":"a","value":"b"}"#,
            r#"{"zzz":1,"value":"x"}"#,
            r#"{"aaa":1,"value":"x"}"#,
            r#"{"value":"x"} trailing"#,
            r#"{"value":"x""#,
            r#"{"value":"x",}"#,
            r#"["value"]"#,
            r#"[1, 2"#,
            r#""value""#,
            r#"12"#,
            r#"null"#,
            r#""#,
            r#"{}"#,
            r#"{"modeOverrides":{"production":"live"},"value":"v"}"#,
        ];
        for known in
            [&["name", "llmType", "value", "modeOverrides"][..], &["value"][..], &["name", "modeOverrides"][..]]
        {
            for body in bodies {
                let expected = reference(body.as_bytes(), known);
                let req = request(body.as_bytes());
                let got = if known.contains(&"value") {
                    JsonObject::parse_with_value(&req, known).map(|(o, secret)| {
                        let mut keys: Vec<String> = o.0.keys().cloned().collect();
                        if !matches!(secret, SecretField::Absent) {
                            keys.push("value".into());
                            keys.sort();
                        }
                        keys
                    })
                } else {
                    JsonObject::parse(&req, known).map(|o| o.0.keys().cloned().collect())
                };
                assert_eq!(got.map_err(message), expected, "{body} with {known:?}");
            }
        }
    }

    #[test]
    fn the_value_field_never_enters_the_map() {
        let req = request(br#"{"name":"n","value":"sk-secret-1234"}"#);
        let (object, secret) = JsonObject::parse_with_value(&req, &["name", "value"]).unwrap();
        assert!(!object.has("value"));
        let SecretField::Value(v) = secret else { panic!("no value") };
        assert_eq!(v.expose_value(), "sk-secret-1234");
        for (body, not_string) in [(r#"{"value":null}"#, true), (r#"{"value":[]}"#, true), (r#"{}"#, false)] {
            let (_, secret) = JsonObject::parse_with_value(&request(body.as_bytes()), &["value"]).unwrap();
            assert_eq!(matches!(secret, SecretField::NotString), not_string, "{body}");
        }
    }
}
