//! Sign-in's passing state on DynamoDB: small items of the limits table
//! (`pending#<hash>`), swept by its TTL, taken by a conditional delete.

use super::*;
use crate::secret::Redacted;
use crate::store::SignInStore;

fn pending_id(key: &str) -> String {
    format!("pending#{key}")
}

#[async_trait]
impl SignInStore for DynamoStore {
    async fn put_pending(&self, key: &str, data: &Redacted<String>, expires_at: Timestamp) -> Result<(), StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.tables.limits)
            .item(COUNTER_ID, s(pending_id(key)))
            .item("data", s(data.expose()))
            .item("expiresAt", n(expires_at.millis()))
            .item(TTL, n(expires_at.ceil_seconds() + 60))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", COUNTER_ID)
            .send()
            .await;
        match written(put.map_err(classify))? {
            true => Ok(()),
            false => Err(StoreError::Conflict(Conflict::Exists)),
        }
    }

    async fn take_pending(&self, key: &str, now: Timestamp) -> Result<Option<Redacted<String>>, StoreError> {
        let gone = self
            .client
            .delete_item()
            .table_name(&self.tables.limits)
            .key(COUNTER_ID, s(pending_id(key)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(classify)?;
        let Some(item) = gone.attributes else { return Ok(None) };
        if ts(&item, "expiresAt")? <= now {
            return Ok(None);
        }
        Ok(Some(Redacted::from(get_s(&item, "data")?.to_owned())))
    }
}
