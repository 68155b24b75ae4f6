//! The identities aggregate on DynamoDB: one item per identity in the
//! identities table (listed through its tenant index), the tokens
//! exchanged through it entered in the children table under its id, and
//! the `jti` claims in the limits table (expiring with their JWTs).

use super::*;
use crate::identity::{AwsRule, IdentityRecord, OidcRule, SubjectMatch, TrustRule, MAX_TOKEN_TTL};
use crate::store::identities::{IdentityStore, JtiClaim};

fn identity_item(i: &IdentityRecord) -> Item {
    let mut item = Item::from([
        (IDENTITY_ID.into(), s(i.identity_id.as_str())),
        (TENANT_ID.into(), s(i.tenant_id.as_str())),
        ("name".into(), s(&i.name)),
        ("kind".into(), s(i.kind())),
        ("scopes".into(), list(i.rights.scopes.iter().map(|s| s.as_str().to_owned()))),
        ("rightsExpireAt".into(), n(i.rights.expires_at.millis())),
        ("tokenTtl".into(), n(i.token_ttl)),
        (CREATED_AT.into(), n(i.created_at.millis())),
        ("createdBy".into(), s(i.created_by.as_str())),
        ("ancestors".into(), list(i.ancestors.iter().map(ToString::to_string))),
    ]);
    match &i.rule {
        TrustRule::Oidc(o) => {
            item.insert("issuer".into(), s(&o.issuer));
            item.insert("audience".into(), s(&o.audience));
            item.insert("subject".into(), s(&o.subject));
            item.insert("subjectMatch".into(), s(o.subject_match.as_str()));
            let claims = o.bound_claims.iter().map(|(k, v)| (k.clone(), list(v.iter().cloned()))).collect();
            item.insert("boundClaims".into(), AttributeValue::M(claims));
        }
        TrustRule::Aws(a) => {
            item.insert("awsAccountId".into(), s(&a.account_id));
            item.insert("awsRoleName".into(), s(&a.role_name));
        }
    }
    if let Some(k) = &i.rights.key_ids {
        item.insert("keyIds".into(), list(k.iter().map(ToString::to_string)));
    }
    if let Some(c) = &i.rights.allowed_cidrs {
        item.insert("allowedCidrs".into(), list(c.iter().map(ToString::to_string)));
    }
    if let Some(r) = i.rights.rate_limit {
        item.insert("rateLimit".into(), n(r));
    }
    if let Some(d) = i.deleted_at {
        item.insert("deletedAt".into(), n(d.millis()));
    }
    item
}

fn identity_from(item: &Item) -> Result<IdentityRecord, StoreError> {
    let rule = match get_s(item, "kind")? {
        "oidc" => {
            let claims = match item.get("boundClaims") {
                None => BTreeMap::new(),
                Some(v) => v
                    .as_m()
                    .map_err(|_| bad("boundClaims"))?
                    .iter()
                    .map(|(k, v)| {
                        let values = v.as_l().map_err(|_| bad("boundClaims"))?;
                        let values = values.iter().map(|x| x.as_s().cloned().map_err(|_| bad("boundClaims")));
                        Ok((k.clone(), values.collect::<Result<Vec<_>, _>>()?))
                    })
                    .collect::<Result<_, StoreError>>()?,
            };
            TrustRule::Oidc(OidcRule {
                issuer: get_s(item, "issuer")?.to_owned(),
                audience: get_s(item, "audience")?.to_owned(),
                subject: get_s(item, "subject")?.to_owned(),
                subject_match: SubjectMatch::parse(get_s(item, "subjectMatch")?).ok_or_else(|| bad("subjectMatch"))?,
                bound_claims: claims,
            })
        }
        "aws" => TrustRule::Aws(AwsRule {
            account_id: get_s(item, "awsAccountId")?.to_owned(),
            role_name: get_s(item, "awsRoleName")?.to_owned(),
        }),
        _ => return Err(bad("kind")),
    };
    Ok(IdentityRecord {
        identity_id: IdentityId::from_stored(get_s(item, IDENTITY_ID)?.to_owned()),
        tenant_id: TenantId::parse(get_s(item, TENANT_ID)?).ok_or_else(|| bad(TENANT_ID))?,
        name: get_s(item, "name")?.to_owned(),
        rule,
        rights: grant_from(item, "rightsExpireAt")?,
        token_ttl: get_n(item, "tokenTtl")?,
        created_at: ts(item, CREATED_AT)?,
        created_by: TokenId::from_stored(get_s(item, "createdBy")?.to_owned()),
        ancestors: opt_list(item, "ancestors")?.unwrap_or_default().into_iter().map(TokenId::from_stored).collect(),
        deleted_at: opt_ts(item, "deletedAt"),
    })
}

impl DynamoStore {
    /// The creator of an identity or of a token must be live at `at`.
    fn creator_live(&self, creator: &TokenId, at: Timestamp) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.tables.tokens)
            .key(TOKEN_ID, s(creator.as_str()))
            .condition_expression(format!("attribute_exists({TOKEN_ID}) AND {LIVE_TOKEN}"))
            .expression_attribute_values(":at", n(at.millis()));
        Ok(TransactWriteItem::builder().condition_check(build(check.build())?).build())
    }
}

#[async_trait]
impl IdentityStore for DynamoStore {
    async fn create_identity(&self, identity: &IdentityRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let items = vec![
            self.put(&self.tables.identities, identity_item(identity), Some("attribute_not_exists(identityId)"))?,
            self.creator_live(&identity.created_by, identity.created_at)?,
            self.audit_put(audit)?,
        ];
        let outcome = self
            .transact_or(items, |i| match i {
                0 => StoreError::Conflict(Conflict::Exists),
                _ => StoreError::Conflict(Conflict::IssuerNotLive),
            })
            .await;
        match outcome {
            // A retry of this very write that had landed.
            Err(StoreError::Conflict(Conflict::Exists))
                if self.get_identity(&identity.identity_id).await?.as_ref() == Some(identity) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    async fn get_identity(&self, id: &IdentityId) -> Result<Option<IdentityRecord>, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.tables.identities)
            .key(IDENTITY_ID, s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        got.item.as_ref().map(identity_from).transpose()
    }

    async fn list_identities(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<IdentityRecord>, StoreError> {
        let (items, next) = self.tenant_page(&self.tables.identities, IDENTITY_ID, tenant, limit, cursor).await?;
        let items = items.iter().map(identity_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items: items.into_iter().filter(|i| &i.tenant_id == tenant).collect(), next })
    }

    async fn delete_identity(
        &self,
        tenant: &TenantId,
        id: &IdentityId,
        at: Timestamp,
        audit: &AuditEvent,
    ) -> Result<Vec<Revocable>, StoreError> {
        // Kept until every token it issued has expired, then swept.
        let sweep = at.plus_seconds(MAX_TOKEN_TTL).ceil_seconds() + TTL_MARGIN_SECONDS;
        let mark = Update::builder()
            .table_name(&self.tables.identities)
            .key(IDENTITY_ID, s(id.as_str()))
            .update_expression("SET deletedAt = :at, #ttl = :ttl")
            .condition_expression("tenantId = :tenant AND attribute_not_exists(deletedAt)")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":at", n(at.millis()))
            .expression_attribute_values(":ttl", n(sweep))
            .expression_attribute_values(":tenant", s(tenant.as_str()));
        let items = vec![TransactWriteItem::builder().update(build(mark.build())?).build(), self.audit_put(audit)?];
        match self.transact_or(items, |_| StoreError::NotFound).await {
            Ok(()) => {}
            // Missing, another tenant's, or deleted already (then the
            // cascade runs again, with no second event).
            Err(StoreError::NotFound) => match self.get_identity(id).await? {
                Some(i) if &i.tenant_id == tenant && i.deleted_at.is_some() => {}
                _ => return Err(StoreError::NotFound),
            },
            Err(e) => return Err(e),
        }
        self.children_of(id.as_str()).await
    }

    async fn exchange(
        &self,
        identity: &IdentityId,
        token: &TokenRecord,
        jti: Option<&JtiClaim>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut items = self.token_creation(token)?;
        items.push(self.put(&self.tables.children, child_item(identity.as_str(), token), None)?);
        let still = ConditionCheck::builder()
            .table_name(&self.tables.identities)
            .key(IDENTITY_ID, s(identity.as_str()))
            .condition_expression("attribute_exists(identityId) AND attribute_not_exists(deletedAt)");
        items.push(TransactWriteItem::builder().condition_check(build(still.build())?).build());
        let jti_at = items.len();
        if let Some(claim) = jti {
            let item =
                Item::from([(COUNTER_ID.to_owned(), s(&claim.key)), (TTL.to_owned(), n(claim.until.ceil_seconds()))]);
            // A claim past its time that the TTL has not swept yet is free.
            let claim_put = Put::builder()
                .table_name(&self.tables.limits)
                .set_item(Some(item))
                .condition_expression(format!("attribute_not_exists({COUNTER_ID}) OR #ttl < :now"))
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":now", n(token.created_at.seconds()));
            items.push(TransactWriteItem::builder().put(build(claim_put.build())?).build());
        }
        items.push(self.audit_put(audit)?);
        let outcome = self
            .transact_or(items, |i| match i {
                0 => StoreError::Conflict(Conflict::Exists),
                i if i == jti_at && jti.is_some() => StoreError::Conflict(Conflict::Replayed),
                // The creator, or the identity, is no longer live.
                _ => StoreError::Conflict(Conflict::IssuerNotLive),
            })
            .await;
        self.landed_or(token, outcome).await
    }
}
