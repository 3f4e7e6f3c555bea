//! The group-management rules of the service, called directly (typed) on the in-process app.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod app;

use serde_json::json;
use wagroups_core::{
    DomainError, admin,
    model::{AddPrivacy, Profile},
    ops::{GroupPatch, WriteOptions, Written},
    provider::ItemStatus,
    service::ServiceError,
    store::sim::SimUser,
};

use crate::app::spawn_app;

fn conflict_code(e: ServiceError) -> String {
    match e {
        ServiceError::Domain(DomainError::Conflict { code, .. }) => code,
        other => panic!("not a conflict: {other:?}"),
    }
}

#[tokio::test]
async fn writes_are_refused_by_the_groups_state_and_the_providers_capabilities() {
    let app = spawn_app().await;
    let s = &app.state.service;
    let key = {
        let store = s.store();
        let org = admin::org(store.as_ref(), "default").await.unwrap();
        let (k, _) = admin::create_key(store.as_ref(), &org.id, None, None).await.unwrap();
        k
    };
    app.active_group("g", json!({})).await;
    let opts = WriteOptions::default();
    // Nothing to change.
    let e = s
        .update_group(&key, "g", GroupPatch::default(), opts)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ServiceError::Domain(DomainError::Invalid(ref v)) if v.field == "body"),
        "{e:?}"
    );
    // The cloud profile has no admins to promote and no announcement setting.
    let e = s
        .set_admins(&key, "g", &["919000000001".into()], true, opts)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ServiceError::Domain(DomainError::Unprocessable { ref code, .. }) if code == "capability_missing"),
        "{e:?}"
    );
    let patch = GroupPatch {
        announcement_only: Some(true),
        ..GroupPatch::default()
    };
    let e = s.update_group(&key, "g", patch, opts).await.unwrap_err();
    assert!(
        matches!(e, ServiceError::Domain(DomainError::Unprocessable { .. })),
        "{e:?}"
    );
    // Suspended, then deleted: writes are refused with the state's code.
    let (st, _) = app.post("/v1/sandbox/groups/g/suspend", json!({})).await;
    assert_eq!(st, 200);
    let e = s.reset_invite_link(&key, "g", opts).await.unwrap_err();
    assert_eq!(conflict_code(e), "group_suspended");
    let (st, _) = app.post("/v1/sandbox/groups/g/unsuspend", json!({})).await;
    assert_eq!(st, 200);
    assert!(matches!(
        s.delete_group(&key, "g", opts).await.unwrap(),
        Written::Done(_)
    ));
    let e = s.reset_invite_link(&key, "g", opts).await.unwrap_err();
    assert_eq!(conflict_code(e), "group_deleted");
}

#[tokio::test]
async fn adds_fall_back_to_invites_only_when_asked() {
    let app = spawn_app().await;
    let s = &app.state.service;
    let store = s.store();
    let org = admin::org(store.as_ref(), "default").await.unwrap();
    admin::add_number(
        store.as_ref(),
        "default",
        "15550100007",
        admin::NumberSetup::simulated(Profile::LinkedDevice),
    )
    .await
    .unwrap();
    let (key, _) = admin::create_key(store.as_ref(), &org.id, None, None).await.unwrap();
    app.active_group("ld", json!({ "wabaNumber": "15550100007" })).await;
    app.state
        .sim
        .put_user(
            &org.id,
            SimUser {
                add_privacy: AddPrivacy::Nobody,
                ..SimUser::default_for("919000000001")
            },
        )
        .await
        .unwrap();
    let opts = WriteOptions::default();
    let Written::Done(r) = s
        .add_participants(&key, "ld", &["919000000001".into(), "919000000002".into()], false, opts)
        .await
        .unwrap()
    else {
        panic!("the linked-device profile answers at once")
    };
    assert_eq!(r[0].status, ItemStatus::InviteRequired);
    assert!(
        r[0].invite_link
            .as_deref()
            .is_some_and(|l| l.starts_with("https://chat.whatsapp.com/"))
    );
    assert!(r[0].message.is_some());
    assert_eq!(r[1].status, ItemStatus::Added);
    let Written::Done(r) = s
        .add_participants(&key, "ld", &["919000000001".into()], true, opts)
        .await
        .unwrap()
    else {
        panic!("at once")
    };
    assert_eq!(r[0].status, ItemStatus::Invited, "the fallback sends the link");
}
