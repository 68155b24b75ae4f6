//! Request parsing: JSON bodies field by field (so every message names its
//! field), and the list routes' `limit` and `cursor`.

use super::{ApiError, ApiRequest};
use serde_json::{Map, Value};

pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON object body whose field names were all checked against the
/// route's list.
pub struct JsonObject(Map<String, Value>);

fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

impl JsonObject {
    pub fn parse(req: &ApiRequest, known: &[&str]) -> Result<Self, ApiError> {
        if !is_json(req.content_type.as_deref()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let value: Value = serde_json::from_slice(&req.body).map_err(|_| ApiError::bad("body", "malformed JSON"))?;
        let Value::Object(map) = value else {
            return Err(ApiError::bad("body", "must be a JSON object"));
        };
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ApiError::BadRequest(format!("{unknown}: unknown field")));
        }
        Ok(Self(map))
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
