//! Tenancy rules every use case applies: what a key may see and use of its organisation.

use crate::{
    DomainError, ValidationError,
    error::ServiceError,
    ids::GroupId,
    model::{ApiKey, Group, Number, Participant},
    store::Store,
    validate,
};

/// The caller's number `waba_number`: it must belong to the key's organisation (else the
/// field is invalid) and be allowed for the key (else forbidden).
pub async fn number_for(
    store: &dyn Store,
    key: &ApiKey,
    field: &str,
    waba_number: &str,
) -> Result<Number, ServiceError> {
    let digits = validate::waba_number(field, waba_number)?;
    let number = store
        .find_number(&digits)
        .await?
        .filter(|n| n.org_id == key.org_id)
        .ok_or_else(|| ValidationError::new(field, format!("no number {digits} is registered in this organisation")))?;
    if !key.allows(&number.waba_number) {
        return Err(DomainError::Forbidden {
            message: format!("this API key is not allowed to use number {}", number.waba_number),
        }
        .into());
    }
    Ok(number)
}

/// The row IDs of the numbers a restricted key may use; `None` for an unrestricted key.
pub async fn allowed_number_ids(store: &dyn Store, key: &ApiKey) -> Result<Option<Vec<i64>>, ServiceError> {
    let Some(allowed) = &key.numbers else {
        return Ok(None);
    };
    let mut ids = Vec::with_capacity(allowed.len());
    for w in allowed {
        if let Some(n) = store.find_number(w).await? {
            ids.push(n.id);
        }
    }
    Ok(Some(ids))
}

/// A group of the key's organisation, with its participants.
pub async fn group_of(
    store: &dyn Store,
    key: &ApiKey,
    group_id: &str,
) -> Result<(Group, Vec<Participant>), ServiceError> {
    let (g, participants) = store
        .get_group(&key.org_id, &GroupId::from(group_id))
        .await?
        .ok_or_else(|| DomainError::not_found(format!("group {group_id:?}")))?;
    if !key.allows(&g.waba_number) {
        return Err(DomainError::Forbidden {
            message: format!("this API key is not allowed to use number {}", g.waba_number),
        }
        .into());
    }
    Ok((g, participants))
}
