//! Cursors: a query's `LastEvaluatedKey`, bound to its tenant.

use super::*;

/// A cursor is the query's `LastEvaluatedKey`, base64url JSON; it must name
/// the caller's tenant.
pub(super) fn encode_cursor(key: &Item) -> Option<String> {
    let mut map = BTreeMap::new();
    for (k, v) in key {
        let text = match v {
            AttributeValue::S(x) => format!("S{x}"),
            AttributeValue::N(x) => format!("N{x}"),
            _ => return None,
        };
        map.insert(k.clone(), text);
    }
    serde_json::to_vec(&map).ok().map(|j| URL_SAFE_NO_PAD.encode(j))
}

pub(super) fn decode_cursor(tenant: &TenantId, cursor: Option<&str>) -> Result<Option<Item>, StoreError> {
    let Some(c) = cursor else { return Ok(None) };
    let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| StoreError::BadCursor)?;
    let map: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
    if map.len() > 4 || map.get(TENANT_ID).map(String::as_str) != Some(&format!("S{tenant}")) {
        return Err(StoreError::BadCursor);
    }
    let mut item = Item::new();
    for (k, v) in map {
        let value = match v.split_at_checked(1) {
            Some(("S", x)) => s(x),
            Some(("N", x)) if x.parse::<i64>().is_ok() => n(x),
            _ => return Err(StoreError::BadCursor),
        };
        item.insert(k, value);
    }
    Ok(Some(item))
}
