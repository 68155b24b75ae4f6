//! Table creation from [`schema`] (tests and `ibyok dev --aws`).

use super::*;

pub(super) fn attr_type(t: schema::AttrType) -> ScalarAttributeType {
    match t {
        schema::AttrType::S => ScalarAttributeType::S,
        schema::AttrType::N => ScalarAttributeType::N,
        schema::AttrType::B => ScalarAttributeType::B,
    }
}

pub(super) fn key_schema(hash: schema::Attr, range: Option<schema::Attr>) -> Result<Vec<KeySchemaElement>, StoreError> {
    let mut out = vec![build(KeySchemaElement::builder().attribute_name(hash.name).key_type(KeyType::Hash).build())?];
    if let Some(r) = range {
        out.push(build(KeySchemaElement::builder().attribute_name(r.name).key_type(KeyType::Range).build())?);
    }
    Ok(out)
}

/// Creates the tables (on-demand, with their indexes and TTL) from
/// [`schema`]. For tests and `ibyok dev --aws`; production tables come from
/// the template.
pub async fn create_tables(client: &Client, tables: &Tables) -> Result<(), StoreError> {
    for def in schema::ALL {
        let name = match def.suffix {
            "tokens" => &tables.tokens,
            "keys" => &tables.keys,
            "tenants" => &tables.tenants,
            "children" => &tables.children,
            "usage" => &tables.usage,
            "limits" => &tables.limits,
            "replicas" => &tables.replicas,
            "identities" => &tables.identities,
            "digests" => &tables.digests,
            "members" => &tables.members,
            _ => &tables.audit,
        };
        let mut req = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(def.hash, def.range)?));
        for a in def.key_attributes() {
            req = req.attribute_definitions(build(
                AttributeDefinition::builder().attribute_name(a.name).attribute_type(attr_type(a.ty)).build(),
            )?);
        }
        for idx in def.indexes {
            let projection = Projection::builder()
                .projection_type(if idx.keys_only { ProjectionType::KeysOnly } else { ProjectionType::All })
                .build();
            req = req.global_secondary_indexes(build(
                GlobalSecondaryIndex::builder()
                    .index_name(idx.name)
                    .set_key_schema(Some(key_schema(idx.hash, idx.range)?))
                    .projection(projection)
                    .build(),
            )?);
        }
        if def.stream {
            req = req.stream_specification(build(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build(),
            )?);
        }
        match req.send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().and_then(|x| x.code()) == Some("ResourceInUseException") => continue,
            Err(e) => return Err(classify(e)),
        }
        if let Some(ttl) = def.ttl {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(build(
                    TimeToLiveSpecification::builder().attribute_name(ttl).enabled(true).build(),
                )?)
                .send()
                .await
                .map_err(classify)?;
        }
    }
    Ok(())
}
