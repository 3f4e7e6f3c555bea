//! The behaviour every store implementation must have, written against the core's store
//! ports only, so the same suite runs on each backend: a backend's tests depend on this crate
//! (which depends on no backend) and instantiate it with
//! [`conformance_tests!`](crate::conformance_tests) and
//! [`sim_conformance_tests!`](crate::sim_conformance_tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_util::future::join_all;
use wagroups_core::{
    DomainError,
    command::CommandPayload,
    group::{self, GroupInput},
    ids::{ApiKeyId, EndpointId, EventId, GroupId, OrgId},
    model::{
        AddPrivacy, GroupStatus, JoinApprovalMode, JoinReason, ParticipantRole, ParticipantState, Profile, ProviderKind,
    },
    phone::Phone,
    provider::ProviderEvent,
    secret::Sealed,
    store::{
        CreateGroupOutcome, EventFilter, GroupFilter, GroupTarget, InboxStats, MutateError, Mutation, NewApiKey,
        NewEndpoint, NewGroup, NewNumber, ReportRef, Rule, Store,
        sim::{SimChange, SimGroup, SimMember, SimRefusal, SimStore, SimTarget},
    },
    time::Timestamp,
};

/// Generates one `#[tokio::test]` per conformance check of the gateway's store; `$make` is an
/// async expression yielding a fresh, empty store (and whatever must live as long as it). The
/// simulated network's store has its own: [`sim_conformance_tests!`](crate::sim_conformance_tests).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            tenancy_records, groups_are_unique_per_org, commands_in_dispatch_order, mutations_append_gap_free_events,
            rejected_mutations_write_nothing, keyset_listing, deliveries_follow_group_order,
            concurrent_changes_of_one_group_share_no_sequence, cursors_never_skip_rows_written_concurrently,
            the_inbox_holds_reports_in_order_until_they_apply, operations_are_recorded_accepted_and_closed,
            a_claim_ends_once, a_paused_numbers_commands_wait_uncounted, a_command_in_doubt_waits_to_be_settled,
            endpoint_secrets_are_kept_as_given_and_resealed_in_place,
            a_creation_confirmed_without_its_participants_reopens_its_command,
            a_foreign_groups_held_reports_are_given_up_together, idempotency_keys_replay_refuse_and_expire);
    };
    (@each $make:expr; $($name:ident),+) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (store, _guard) = $make.await;
                $crate::$name(&store).await;
            }
        )+
    };
}

/// Generates the conformance checks of the simulated network's store; `$make` yields a fresh,
/// empty one.
#[macro_export]
macro_rules! sim_conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make; simulated_network_state, simulated_users_per_organisation);
    };
}

const T0: Timestamp = Timestamp(1_700_000_000_000);

async fn org_with_number<S: Store>(s: &S, name: &str, waba: &str) -> (OrgId, i64) {
    let org = s
        .create_org(wagroups_core::store::NewOrg::named(name), T0)
        .await
        .unwrap()
        .unwrap();
    let n = s
        .add_number(
            NewNumber {
                org_id: org.id.clone(),
                waba_number: waba.into(),
                provider: ProviderKind::Simulated,
                profile: Profile::Cloud,
                default_join_approval_mode: JoinApprovalMode::AutoApprove,
                provider_config: serde_json::json!({}),
                provider_ref: None,
            },
            T0,
        )
        .await
        .unwrap()
        .unwrap();
    (org.id, n.id)
}

fn new_group(org: &str, number_id: i64, id: &str, now: Timestamp) -> NewGroup {
    NewGroup {
        org_id: org.into(),
        number_id,
        group_id: id.into(),
        subject: format!("Subject {id}"),
        description: String::new(),
        join_approval_mode: JoinApprovalMode::AutoApprove,
        command_id: format!("cmd_{org}_{id}").into(),
        command: CommandPayload::CreateGroup {
            subject: format!("Subject {id}"),
            description: String::new(),
            join_approval_mode: JoinApprovalMode::AutoApprove,
            participants: vec![],
            invite_fallback: true,
        },
        now,
    }
}

pub async fn tenancy_records<S: Store>(s: &S) {
    let (org, _) = org_with_number(s, "acme", "15550000001").await;
    assert!(
        s.create_org(wagroups_core::store::NewOrg::named("acme"), T0)
            .await
            .unwrap()
            .is_none(),
        "names are unique"
    );
    assert_eq!(s.find_org("acme").await.unwrap().unwrap().id, org);
    assert_eq!(s.find_org(&org).await.unwrap().unwrap().name, "acme");
    let dup = NewNumber {
        org_id: org.clone(),
        waba_number: "15550000001".into(),
        provider: ProviderKind::Simulated,
        profile: Profile::LinkedDevice,
        default_join_approval_mode: JoinApprovalMode::AutoApprove,
        provider_config: serde_json::json!({}),
        provider_ref: None,
    };
    assert!(
        s.add_number(dup, T0).await.unwrap().is_none(),
        "a number belongs to one org"
    );
    let disabled = s.set_number_disabled("15550000001", true).await.unwrap().unwrap();
    assert!(disabled.disabled);
    assert!(s.find_number("15550000001").await.unwrap().unwrap().disabled);
    assert!(s.set_number_disabled("19999999999", true).await.unwrap().is_none());
    assert_eq!(s.list_numbers(Some(&org)).await.unwrap().len(), 1);
    assert_eq!(s.list_numbers(Some(&"org_other".into())).await.unwrap().len(), 0);
    // A number keeps its provider's configuration as given.
    let config = serde_json::json!({ "phoneNumberId": "106540352242922", "sealed": { "token": "v1.abc" } });
    let meta = s
        .add_number(
            NewNumber {
                org_id: org.clone(),
                waba_number: "15550000009".into(),
                provider: ProviderKind::CloudApi,
                profile: Profile::Cloud,
                default_join_approval_mode: JoinApprovalMode::ApprovalRequired,
                provider_config: config.clone(),
                provider_ref: Some("106540352242922".into()),
            },
            T0,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(meta.provider_config, config);
    assert_eq!(s.get_number(meta.id).await.unwrap().unwrap().provider_config, config);
    assert_eq!(
        s.find_number("15550000009").await.unwrap().unwrap().provider,
        ProviderKind::CloudApi
    );
    // Found by its name at the provider, which no other number of that provider may take.
    let by_ref = s
        .find_number_by_ref(ProviderKind::CloudApi, "106540352242922")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_ref.id, meta.id);
    assert!(
        s.find_number_by_ref(ProviderKind::Simulated, "106540352242922")
            .await
            .unwrap()
            .is_none()
    );
    let taken = s
        .add_number(
            NewNumber {
                org_id: org.clone(),
                waba_number: "15550000010".into(),
                provider: ProviderKind::CloudApi,
                profile: Profile::Cloud,
                default_join_approval_mode: JoinApprovalMode::AutoApprove,
                provider_config: config.clone(),
                provider_ref: Some("106540352242922".into()),
            },
            T0,
        )
        .await
        .unwrap();
    assert!(taken.is_none(), "a provider reference belongs to one number");
    assert!(s.find_number("15550000010").await.unwrap().is_none());
    // Its configuration is replaced whole; its health recorded and read back.
    let new_config = serde_json::json!({ "phoneNumberId": "106540352242922", "sealed": { "token": "v1.def" } });
    let updated = s
        .set_number_provider_config("15550000009", &new_config)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.provider_config, new_config);
    assert_eq!(
        s.find_number("15550000009").await.unwrap().unwrap().provider_config,
        new_config
    );
    assert!(
        s.set_number_provider_config("19999999999", &new_config)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(meta.health, Default::default(), "a new number is ok");
    let paused = wagroups_core::model::NumberHealth {
        status: wagroups_core::model::HealthStatus::RateLimited,
        until: Some(T0.plus_millis(60_000)),
        detail: Some("131208".into()),
    };
    s.set_number_health(meta.id, &paused).await.unwrap();
    assert_eq!(s.get_number(meta.id).await.unwrap().unwrap().health, paused);
    assert_eq!(s.find_number("15550000009").await.unwrap().unwrap().health, paused);
    s.set_number_health(meta.id, &Default::default()).await.unwrap();
    assert_eq!(s.get_number(meta.id).await.unwrap().unwrap().health, Default::default());
    // Deployment settings: set once.
    assert_eq!(s.setting("secret_key_check").await.unwrap(), None);
    assert!(s.put_setting_if_absent("secret_key_check", "v1.first").await.unwrap());
    assert!(!s.put_setting_if_absent("secret_key_check", "v1.second").await.unwrap());
    assert_eq!(
        s.setting("secret_key_check").await.unwrap().as_deref(),
        Some("v1.first")
    );

    let key = s
        .create_api_key(
            NewApiKey {
                id: ApiKeyId::new(),
                org_id: org.clone(),
                name: Some("k".into()),
                numbers: Some(vec!["15550000001".into()]),
                key_hash: "hash-1".into(),
            },
            T0,
        )
        .await
        .unwrap();
    let found = s.find_api_key("hash-1").await.unwrap().unwrap();
    assert_eq!(found.id, key.id);
    assert_eq!(found.numbers, Some(vec!["15550000001".to_string()]));
    assert!(s.revoke_api_key(&key.id, T0).await.unwrap());
    assert!(!s.revoke_api_key(&key.id, T0).await.unwrap(), "revoking twice");
    assert!(
        s.find_api_key("hash-1").await.unwrap().is_none(),
        "revoked keys do not authenticate"
    );
    assert!(s.list_api_keys(&org).await.unwrap()[0].revoked_at.is_some());
}

pub async fn groups_are_unique_per_org<S: Store>(s: &S) {
    let (a, na) = org_with_number(s, "a", "15550000001").await;
    let (b, nb) = org_with_number(s, "b", "15550000002").await;
    let CreateGroupOutcome::Created(g) = s.create_group(new_group(&a, na, "same", T0)).await.unwrap() else {
        panic!("first create")
    };
    assert_eq!(g.status, GroupStatus::Pending);
    assert_eq!(g.waba_number, "15550000001");
    assert!(matches!(
        s.create_group(new_group(&a, na, "same", T0)).await.unwrap(),
        CreateGroupOutcome::DuplicateGroupId
    ));
    assert!(matches!(
        s.create_group(new_group(&b, nb, "same", T0)).await.unwrap(),
        CreateGroupOutcome::Created(_)
    ));
    assert!(s.get_group(&a, &"same".into()).await.unwrap().is_some());
    assert!(s.get_group(&a, &"other".into()).await.unwrap().is_none());
    assert_eq!(
        s.open_commands().await.unwrap(),
        2,
        "one create command per group, none for the duplicate"
    );
}

pub async fn commands_in_dispatch_order<S: Store>(s: &S) {
    let (a, na) = org_with_number(s, "a", "15550000001").await;
    s.create_group(new_group(&a, na, "g1", T0)).await.unwrap();
    s.create_group(new_group(&a, na, "g2", T0)).await.unwrap();
    let due = s.due_commands(T0, 0, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert!(due[0].id < due[1].id, "oldest first");
    assert_eq!(due[0].attempts, 1, "the first submission");
    assert_eq!(s.due_commands(T0, 0, 1).await.unwrap(), due[..1], "limit");
    assert_eq!(
        s.due_commands(T0, due[0].id, 10).await.unwrap(),
        due[1..],
        "after a row"
    );
    assert_eq!(s.due_commands(T0, 0, 10).await.unwrap(), due, "reading claims nothing");

    s.command_retry(due[0].id, "later", T0.plus_millis(60_000))
        .await
        .unwrap();
    assert_eq!(
        s.due_commands(T0.plus_millis(59_999), 0, 10).await.unwrap(),
        due[1..],
        "not before its retry time"
    );
    let again = s.due_commands(T0.plus_millis(60_000), 0, 10).await.unwrap();
    assert_eq!(again.len(), 2);
    assert_eq!(again[0].attempts, 2, "the failed submission counts");

    s.commands_submitted(&[(due[0].id, "req-1".into()), (due[1].id, "req-2".into())], T0)
        .await
        .unwrap();
    assert!(
        s.due_commands(T0.plus_millis(999_999), 0, 10).await.unwrap().is_empty(),
        "submitted"
    );
    assert_eq!(s.open_commands().await.unwrap(), 2, "awaiting confirmation");
    // The provider's request ID finds the command.
    let by_request = GroupTarget::Request {
        number_id: na,
        request_id: "req-2".into(),
    };
    let created = GroupInput::Created {
        wa_group_id: "120363000000000002@g.us".into(),
        invite_link: "https://chat.whatsapp.com/y".into(),
        at: T0,
        participants: vec![],
    };
    assert!(matches!(
        apply(s, by_request, Some("r2"), created).await.unwrap(),
        Mutation::Applied(_)
    ));
    assert_eq!(s.open_commands().await.unwrap(), 1);
    // A late record of the submission does not reopen a confirmed command.
    s.commands_submitted(&[(due[1].id, "req-2".into())], T0).await.unwrap();
    assert_eq!(s.open_commands().await.unwrap(), 1);
}

async fn apply<S: Store>(
    s: &S,
    target: GroupTarget,
    key: Option<&str>,
    input: GroupInput,
) -> Result<Mutation, MutateError> {
    let report = key.map(|k| ReportRef {
        number_id: match &target {
            GroupTarget::WaGroupId { number_id, .. }
            | GroupTarget::Request { number_id, .. }
            | GroupTarget::Operation { number_id, .. } => *number_id,
            GroupTarget::ClientId { .. } => 0,
        },
        dedup_key: k.to_string(),
        correlation: match &target {
            GroupTarget::WaGroupId { wa_group_id, .. } => wa_group_id.clone(),
            GroupTarget::Request { request_id, .. } | GroupTarget::Operation { request_id, .. } => request_id.clone(),
            GroupTarget::ClientId { group_id, .. } => group_id.to_string(),
        },
        held_seq: None,
    });
    s.mutate_group(
        target,
        report,
        T0,
        Box::new(move |state| group::apply(state, &input, T0)),
    )
    .await
}

pub async fn mutations_append_gap_free_events<S: Store>(s: &S) {
    let (a, na) = org_with_number(s, "a", "15550000001").await;
    s.create_group(new_group(&a, na, "g", T0)).await.unwrap();
    let by_request = GroupTarget::Request {
        number_id: na,
        request_id: format!("cmd_{a}_g"),
    };
    let created = GroupInput::Created {
        wa_group_id: "120363000000000001@g.us".into(),
        invite_link: "https://chat.whatsapp.com/x".into(),
        at: T0,
        participants: vec![],
    };
    let m = apply(s, by_request.clone(), Some("r1"), created.clone()).await.unwrap();
    assert!(matches!(m, Mutation::Applied(_)));
    assert!(matches!(
        apply(s, by_request, Some("r1"), created).await.unwrap(),
        Mutation::Duplicate
    ));
    assert_eq!(
        s.open_commands().await.unwrap(),
        0,
        "the confirmation closed the command"
    );
    let wa = GroupTarget::WaGroupId {
        number_id: na,
        wa_group_id: "120363000000000001@g.us".into(),
    };
    let phone = Phone::from_digits("919999999999");
    apply(
        s,
        wa.clone(),
        Some("r2"),
        GroupInput::Joined {
            phone: phone.clone(),
            reason: JoinReason::InviteLink,
            at: T0,
        },
    )
    .await
    .unwrap();
    apply(s, wa.clone(), Some("r3"), GroupInput::Left { phone, at: T0 })
        .await
        .unwrap();
    let (g, participants) = s.get_group(&a, &"g".into()).await.unwrap().unwrap();
    assert_eq!(g.status, GroupStatus::Active);
    assert_eq!(g.last_sequence, 3);
    assert_eq!(participants.len(), 2);
    let events = s.group_events(g.id, 0, 100).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, [1, 2, 3]);
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["GROUP_CREATED", "GROUP_PARTICIPANT_JOINED", "GROUP_PARTICIPANT_LEFT"]
    );
    assert_eq!(s.group_events(g.id, 1, 1).await.unwrap()[0].sequence, 2);
    assert_eq!(
        s.find_group_by_wa_id(na, "120363000000000001@g.us")
            .await
            .unwrap()
            .unwrap()
            .group_id,
        "g"
    );
    // A leave reported before its join is kept (no event yet) and announced with the join: the
    // store keeps each participant's report clock between mutations.
    let late = Phone::from_digits("919999999998");
    let m = apply(
        s,
        wa.clone(),
        Some("r4"),
        GroupInput::Left {
            phone: late.clone(),
            at: T0.plus_millis(10_000),
        },
    )
    .await
    .unwrap();
    assert!(matches!(m, Mutation::Applied(ref d) if d.events.is_empty()));
    apply(
        s,
        wa,
        Some("r5"),
        GroupInput::Joined {
            phone: late.clone(),
            reason: JoinReason::InviteLink,
            at: T0,
        },
    )
    .await
    .unwrap();
    let (g, participants) = s.get_group(&a, &"g".into()).await.unwrap().unwrap();
    let types: Vec<String> = s
        .group_events(g.id, 3, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, ["GROUP_PARTICIPANT_JOINED", "GROUP_PARTICIPANT_LEFT"]);
    let p = participants.iter().find(|p| p.phone == late).unwrap();
    assert_eq!(p.state, ParticipantState::Left);
    assert!(!p.exit_unannounced);
    assert_eq!(p.changed_at, Some(T0.plus_millis(10_000)));
}

pub async fn rejected_mutations_write_nothing<S: Store>(s: &S) {
    let (a, na) = org_with_number(s, "a", "15550000001").await;
    s.create_group(new_group(&a, na, "g", T0)).await.unwrap();
    let target = GroupTarget::ClientId {
        org_id: a.clone(),
        group_id: "g".into(),
    };
    // Joining a pending group is refused by the rules: nothing is written, not even the
    // deduplication record, so the same report can be applied once the group exists.
    let join = GroupInput::Joined {
        phone: Phone::from_digits("919999999999"),
        reason: JoinReason::InviteLink,
        at: T0,
    };
    let r = apply(s, target.clone(), Some("k"), join.clone()).await;
    assert!(
        matches!(r, Err(MutateError::Domain(DomainError::Conflict { .. }))),
        "{r:?}"
    );
    let (g, ps) = s.get_group(&a, &"g".into()).await.unwrap().unwrap();
    assert_eq!((g.last_sequence, ps.len()), (0, 0));
    let missing = GroupTarget::ClientId {
        org_id: a.clone(),
        group_id: "nope".into(),
    };
    assert!(matches!(
        apply(s, missing, None, join).await,
        Err(MutateError::Domain(DomainError::NotFound { .. }))
    ));
}

pub async fn keyset_listing<S: Store>(s: &S) {
    let (a, na) = org_with_number(s, "a", "15550000001").await;
    let s2 = s
        .add_number(
            NewNumber {
                org_id: a.clone(),
                waba_number: "15550000002".into(),
                provider: ProviderKind::Simulated,
                profile: Profile::Cloud,
                default_join_approval_mode: JoinApprovalMode::AutoApprove,
                provider_config: serde_json::json!({}),
                provider_ref: None,
            },
            T0,
        )
        .await
        .unwrap()
        .unwrap();
    for i in 0..30 {
        let n = if i % 3 == 0 { s2.id } else { na };
        s.create_group(new_group(&a, n, &format!("g{i:02}"), T0.plus_millis(i)))
            .await
            .unwrap();
    }
    let all = GroupFilter::default();
    let mut ids = Vec::new();
    let mut before = None;
    loop {
        let page = s.list_groups(&a, &all, before, 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|g| g.id);
        ids.extend(page.into_iter().map(|g| g.group_id));
    }
    let expected: Vec<GroupId> = (0..30).rev().map(|i| format!("g{i:02}").into()).collect();
    assert_eq!(ids, expected);
    let on2 = GroupFilter {
        number_id: Some(s2.id),
        ..GroupFilter::default()
    };
    assert_eq!(s.list_groups(&a, &on2, None, 100).await.unwrap().len(), 10);
    let restricted = GroupFilter {
        number_ids: Some(vec![na]),
        ..GroupFilter::default()
    };
    assert_eq!(s.list_groups(&a, &restricted, None, 100).await.unwrap().len(), 20);
    let none = GroupFilter {
        number_ids: Some(vec![]),
        ..GroupFilter::default()
    };
    assert!(s.list_groups(&a, &none, None, 100).await.unwrap().is_empty());
    let active = GroupFilter {
        status: Some(GroupStatus::Active),
        ..GroupFilter::default()
    };
    assert!(s.list_groups(&a, &active, None, 100).await.unwrap().is_empty());
    assert!(
        s.list_groups(&"org_other".into(), &all, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn simulated_network_state<S: SimStore>(s: &S) {
    let group = SimGroup {
        jid: "120363000000000009@g.us".into(),
        waba_number: "15550000001".into(),
        profile: Profile::Cloud,
        create_key: "cmd_1".into(),
        subject: "S".into(),
        description: String::new(),
        approval_required: false,
        invite_code: "CODE".into(),
        created_at: T0,
        announcement_only: false,
        locked: false,
        deleted: false,
        suspended: false,
    };
    let report = ProviderEvent::GroupCreated {
        request_id: "cmd_1".into(),
        wa_group_id: group.jid.clone(),
        invite_link: "https://chat.whatsapp.com/CODE".into(),
        at: T0,
        participants: vec![],
    };
    let business = SimMember {
        phone: "15550000001".into(),
        role: ParticipantRole::Superadmin,
        state: ParticipantState::Member,
    };
    let (g, new) = s
        .sim_create_group(group.clone(), vec![business.clone()], vec![report.clone()])
        .await
        .unwrap();
    assert!(new);
    // Submitting the same command again returns the same group and queues nothing more.
    let again = SimGroup {
        jid: "120363000000000010@g.us".into(),
        invite_code: "OTHER".into(),
        ..group.clone()
    };
    let (g2, new2) = s
        .sim_create_group(again, vec![business], vec![report.clone()])
        .await
        .unwrap();
    assert!(!new2);
    assert_eq!(g2.jid, g.jid);
    let outbox = s.sim_outbox(0, 10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].report, report);

    let refused = s
        .sim_mutate(
            SimTarget::InviteCode("CODE".into()),
            Default::default(),
            Box::new(|_| {
                Err(SimRefusal {
                    code: "no".into(),
                    message: "no".into(),
                })
            }),
        )
        .await
        .unwrap();
    assert!(matches!(refused, Some(Err(_))));
    let joined = ProviderEvent::ParticipantJoined {
        wa_group_id: g.jid.clone(),
        phone: "919999999999".into(),
        at: T0,
        reason: None,
    };
    let j = joined.clone();
    let changed = s
        .sim_mutate(
            SimTarget::InviteCode("CODE".into()),
            Default::default(),
            Box::new(move |_| {
                Ok(SimChange {
                    members: vec![SimMember {
                        phone: "919999999999".into(),
                        role: ParticipantRole::Member,
                        state: ParticipantState::Member,
                    }],
                    reports: vec![j.clone()],
                    ..SimChange::default()
                })
            }),
        )
        .await
        .unwrap();
    assert!(matches!(changed, Some(Ok(_))));
    assert!(
        s.sim_mutate(
            SimTarget::Jid("nope@g.us".into()),
            Default::default(),
            Box::new(|_| Ok(SimChange::default()))
        )
        .await
        .unwrap()
        .is_none()
    );
    let state = s.sim_group(SimTarget::Jid(g.jid.clone())).await.unwrap().unwrap();
    assert_eq!(
        s.sim_find_group(SimTarget::InviteCode("CODE".into())).await.unwrap(),
        Some(state.group.clone())
    );
    assert!(
        s.sim_find_group(SimTarget::Jid("nope@g.us".into()))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(state.members.len(), 2);
    let outbox = s.sim_outbox(0, 10).await.unwrap();
    assert_eq!(
        outbox.iter().map(|o| o.report.clone()).collect::<Vec<_>>(),
        [report, joined]
    );
    s.sim_outbox_done(vec![outbox[0].id, outbox[1].id]).await.unwrap();
    assert!(s.sim_outbox(0, 10).await.unwrap().is_empty());
    // Report IDs are never reused, even once the outbox is empty.
    s.sim_mutate(
        SimTarget::Jid(g.jid.clone()),
        Default::default(),
        Box::new(|st| {
            Ok(SimChange {
                reports: vec![ProviderEvent::ParticipantLeft {
                    wa_group_id: st.group.jid.clone(),
                    phone: "919999999999".into(),
                    at: T0,
                }],
                ..SimChange::default()
            })
        }),
    )
    .await
    .unwrap();
    let next = s.sim_outbox(0, 10).await.unwrap();
    assert!(next[0].id > outbox[1].id);
    // Reading after a report skips it and those before it.
    assert!(s.sim_outbox(next[0].id, 10).await.unwrap().is_empty());
    assert_eq!(s.sim_outbox(next[0].id - 1, 10).await.unwrap().len(), 1);
}

/// Each organisation configures its own simulated users; another's settings are invisible
/// to it, in lookups and in the state a mutation sees.
pub async fn simulated_users_per_organisation<S: SimStore>(s: &S) {
    use wagroups_core::store::sim::{SimUser, SimUsers};
    let phone = "919999999999";
    assert_eq!(s.sim_user("org_a", phone).await.unwrap(), SimUser::default_for(phone));
    let hidden = SimUser {
        phone: phone.into(),
        on_whatsapp: false,
        add_privacy: AddPrivacy::Nobody,
        contact_of: vec!["15550000001".into()],
    };
    s.sim_put_user("org_a", hidden.clone()).await.unwrap();
    assert_eq!(s.sim_user("org_a", phone).await.unwrap(), hidden);
    assert_eq!(s.sim_user("org_b", phone).await.unwrap(), SimUser::default_for(phone));
    let b = SimUser {
        add_privacy: AddPrivacy::Contacts,
        contact_of: vec![],
        ..SimUser::default_for(phone)
    };
    s.sim_put_user("org_b", b.clone()).await.unwrap();
    assert_eq!(s.sim_user("org_a", phone).await.unwrap(), hidden);
    assert_eq!(s.sim_user("org_b", phone).await.unwrap(), b);
    // A mutation loads the users of the scope it names.
    let group = SimGroup {
        jid: "120363000000000077@g.us".into(),
        waba_number: "15550000002".into(),
        profile: Profile::LinkedDevice,
        create_key: "cmd_users".into(),
        subject: "s".into(),
        description: String::new(),
        approval_required: false,
        invite_code: "USERS".into(),
        created_at: T0,
        announcement_only: false,
        locked: false,
        deleted: false,
        suspended: false,
    };
    s.sim_create_group(group.clone(), vec![], vec![]).await.unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    s.sim_mutate(
        SimTarget::Jid(group.jid.clone()),
        SimUsers {
            scope: "org_b".into(),
            phones: vec![phone.into()],
        },
        Box::new(move |st| {
            record.lock().unwrap().push(st.user(phone));
            Ok(SimChange::default())
        }),
    )
    .await
    .unwrap();
    assert_eq!(seen.lock().unwrap().last(), Some(&b));
}

/// Deliveries are written with their events, read back in queue order per endpoint, and
/// retried, killed, recovered and redelivered as recorded.
pub async fn deliveries_follow_group_order<S: Store>(s: &S) {
    use wagroups_core::webhook::{AttemptNext, AttemptRecord, DeliveryStatus};
    let (a, na) = org_with_number(s, "a", "15550000001").await;
    let ep = s
        .create_endpoint(
            NewEndpoint {
                id: EndpointId::new(),
                org_id: a.clone(),
                url: "https://example.com/hook".into(),
                description: None,
                event_types: None,
                waba_numbers: None,
                format: Default::default(),
                secret: Sealed::from_stored("whsec_AAAA".into()),
                verify_token: None,
            },
            T0,
        )
        .await
        .unwrap();
    let only_joins = s
        .create_endpoint(
            NewEndpoint {
                id: EndpointId::new(),
                org_id: a.clone(),
                url: "https://example.com/joins".into(),
                description: None,
                event_types: Some(vec!["GROUP_PARTICIPANT_JOINED".into()]),
                waba_numbers: None,
                format: Default::default(),
                secret: Sealed::from_stored("whsec_BBBB".into()),
                verify_token: None,
            },
            T0,
        )
        .await
        .unwrap();
    for g in ["g1", "g2"] {
        s.create_group(new_group(&a, na, g, T0)).await.unwrap();
        let wa = format!("120363{g}@g.us");
        apply(
            s,
            GroupTarget::Request {
                number_id: na,
                request_id: format!("cmd_{a}_{g}"),
            },
            None,
            GroupInput::Created {
                wa_group_id: wa.clone(),
                invite_link: "https://chat.whatsapp.com/x".into(),
                at: T0,
                participants: vec![],
            },
        )
        .await
        .unwrap();
        apply(
            s,
            GroupTarget::WaGroupId {
                number_id: na,
                wa_group_id: wa,
            },
            None,
            GroupInput::Joined {
                phone: Phone::from_digits("919999999999"),
                reason: JoinReason::InviteLink,
                at: T0,
            },
        )
        .await
        .unwrap();
    }
    // The queue in ID order: each group's creation then its join; joins to both endpoints.
    let event_type = |d: &wagroups_core::webhook::OpenDelivery| {
        serde_json::from_str::<serde_json::Value>(&d.payload).unwrap()["eventType"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let all = s.open_deliveries(None, 0, None, 100).await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(s.last_delivery_id().await.unwrap(), all[5].id);
    assert_eq!(
        s.open_deliveries(None, all[1].id, Some(all[3].id), 100)
            .await
            .unwrap()
            .len(),
        2,
        "(after, upto]"
    );
    let mine = s.open_deliveries(Some(&ep.id), 0, None, 100).await.unwrap();
    assert_eq!(
        mine.iter().map(|d| (d.group_row_id, event_type(d))).collect::<Vec<_>>(),
        vec![
            (mine[0].group_row_id, "GROUP_CREATED".to_string()),
            (mine[0].group_row_id, "GROUP_PARTICIPANT_JOINED".to_string()),
            (mine[2].group_row_id, "GROUP_CREATED".to_string()),
            (mine[2].group_row_id, "GROUP_PARTICIPANT_JOINED".to_string()),
        ]
    );
    assert_ne!(mine[0].group_row_id, mine[2].group_row_id);
    assert!(mine.iter().all(|d| d.attempts == 0 && d.next_attempt_at == T0));
    let joins = s.open_deliveries(Some(&only_joins.id), 0, None, 1).await.unwrap();
    assert_eq!(joins.len(), 1, "limit");
    assert_eq!(event_type(&joins[0]), "GROUP_PARTICIPANT_JOINED");

    // Outcomes recorded in one batch: g1's creation succeeded, its join died, g2's creation
    // is retried later. A delivery no longer open takes no late attempt.
    let now = T0.plus_millis(1);
    let rec = |next| AttemptRecord {
        attempted_at: now,
        status_code: Some(200),
        latency_ms: 3,
        error: None,
        next,
    };
    s.record_attempts(&[
        (mine[0].id, rec(AttemptNext::Succeeded)),
        (mine[1].id, rec(AttemptNext::Dead)),
        (mine[2].id, rec(AttemptNext::RetryAt(T0.plus_millis(1000)))),
    ])
    .await
    .unwrap();
    s.record_attempts(&[(mine[0].id, rec(AttemptNext::Succeeded))])
        .await
        .unwrap();
    let open: Vec<(i64, i64)> = s
        .open_deliveries(Some(&ep.id), 0, None, 100)
        .await
        .unwrap()
        .iter()
        .map(|d| (d.id, d.attempts))
        .collect();
    assert_eq!(open, vec![(mine[2].id, 1), (mine[3].id, 0)]);
    let succeeded = s
        .list_deliveries(&a, &ep.id, Some(DeliveryStatus::Succeeded), None, 10)
        .await
        .unwrap();
    assert_eq!(succeeded.len(), 1);
    assert_eq!(succeeded[0].attempts.len(), 1, "the late record added nothing");
    let dead = s
        .list_deliveries(&a, &ep.id, Some(DeliveryStatus::Dead), None, 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts.len(), 1);
    let failed = s
        .list_deliveries(&a, &ep.id, Some(DeliveryStatus::Failed), None, 10)
        .await
        .unwrap();
    assert_eq!(failed[0].attempts[0].next_attempt_at, Some(T0.plus_millis(1000)));
    assert_eq!(
        s.recover_deliveries(&a, &ep.id, T0, T0.plus_millis(3)).await.unwrap(),
        2
    );
    assert_eq!(
        s.open_deliveries(Some(&ep.id), 0, None, 100).await.unwrap().len(),
        3,
        "recovered under their old IDs"
    );
    // Every attempt stays listed, in order, across retries and recovery.
    s.record_attempts(&[(
        mine[2].id,
        AttemptRecord {
            attempted_at: T0.plus_millis(5),
            status_code: Some(204),
            latency_ms: 4,
            error: None,
            next: AttemptNext::Succeeded,
        },
    )])
    .await
    .unwrap();
    let retried = s
        .list_deliveries(&a, &ep.id, Some(DeliveryStatus::Succeeded), None, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.id == mine[2].id)
        .unwrap();
    let seen: Vec<(i64, Option<u16>, Option<Timestamp>)> = retried
        .attempts
        .iter()
        .map(|a| (a.attempted_at.millis(), a.status_code, a.next_attempt_at))
        .collect();
    assert_eq!(
        seen,
        vec![
            (now.millis(), Some(200), Some(T0.plus_millis(1000))),
            (T0.plus_millis(5).millis(), Some(204), None)
        ]
    );
    assert_eq!(
        s.redeliver_event(&a, &dead[0].event_id, T0).await.unwrap(),
        Some(2),
        "to both endpoints"
    );
    assert_eq!(s.redeliver_event(&a, &"evt_nope".into(), T0).await.unwrap(), None);
    // Open: the first endpoint's g1 join and g2 join; the second's two joins.
    assert_eq!(s.delivery_stats().await.unwrap().open, 4);
    // Deleting an endpoint drops what it had not received.
    assert!(s.delete_endpoint(&a, &only_joins.id, T0).await.unwrap());
    assert_eq!(s.delivery_stats().await.unwrap().open, 2);
    assert!(
        s.open_deliveries(Some(&only_joins.id), 0, None, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // The dispatcher sends to enabled endpoints of every organisation; a 410 disables.
    let (b, _) = org_with_number(s, "b", "15550000002").await;
    let other = s
        .create_endpoint(
            NewEndpoint {
                id: EndpointId::new(),
                org_id: b,
                url: "https://example.com/b".into(),
                description: None,
                event_types: None,
                waba_numbers: None,
                format: Default::default(),
                secret: Sealed::from_stored("whsec_CCCC".into()),
                verify_token: None,
            },
            T0,
        )
        .await
        .unwrap();
    let mut active: Vec<EndpointId> = s.active_endpoints().await.unwrap().into_iter().map(|e| e.id).collect();
    active.sort();
    let mut expected = vec![ep.id.clone(), other.id.clone()];
    expected.sort();
    assert_eq!(active, expected);
    s.record_attempts(&[(mine[3].id, rec(AttemptNext::DeadAndDisable("410 Gone".into())))])
        .await
        .unwrap();
    let gone = s.get_endpoint(&a, &ep.id).await.unwrap().unwrap();
    assert!(gone.disabled);
    assert_eq!(gone.disabled_reason.as_deref(), Some("410 Gone"));
    assert_eq!(
        s.active_endpoints()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        vec![other.id]
    );
}

/// An active group `id` of `org` on number `number_id` (WhatsApp ID `wa`).
async fn active_group<S: Store>(s: &S, org: &str, number_id: i64, id: &str, wa: &str) -> GroupTarget {
    s.create_group(new_group(org, number_id, id, T0)).await.unwrap();
    let by_request = GroupTarget::Request {
        number_id,
        request_id: format!("cmd_{org}_{id}"),
    };
    let created = GroupInput::Created {
        wa_group_id: wa.into(),
        invite_link: format!("https://chat.whatsapp.com/{id}"),
        at: T0,
        participants: vec![],
    };
    apply(s, by_request, Some(&format!("created-{id}")), created)
        .await
        .unwrap();
    GroupTarget::WaGroupId {
        number_id,
        wa_group_id: wa.into(),
    }
}

fn joined(i: usize) -> GroupInput {
    GroupInput::Joined {
        phone: Phone::from_digits(format!("9190000{i:05}")),
        reason: JoinReason::InviteLink,
        at: T0,
    }
}

/// Many writers changing one group at once: every change gets its own sequence, with no gap
/// and no repeat (the backend serialises changes of one group).
pub async fn concurrent_changes_of_one_group_share_no_sequence<S: Store>(s: &S) {
    let (a, na) = org_with_number(s, "a", "15550000001").await;
    let wa = active_group(s, &a, na, "busy", "120363000000000091@g.us").await;
    let writers = 8;
    let each = 12;
    let changes = (0..writers * each).map(|i| {
        let wa = wa.clone();
        async move { apply(s, wa, Some(&format!("join-{i}")), joined(i)).await.unwrap() }
    });
    let applied = join_all(changes).await;
    assert!(applied.iter().all(|m| matches!(m, Mutation::Applied(_))));
    let (g, participants) = s.get_group(&a, &"busy".into()).await.unwrap().unwrap();
    let n = (writers * each) as i64;
    assert_eq!(g.last_sequence, n + 1);
    assert_eq!(participants.iter().filter(|p| !p.is_business).count() as i64, n);
    let events = s.group_events(g.id, 0, 1000).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, (1..=n + 1).collect::<Vec<_>>(), "gap-free, no repeat");
    let mut ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "every event its own ID");
}

/// Readers that page "after the last position read" while writers commit: the event log,
/// the delivery queue and the command queue each yield every row exactly once, in position
/// order, however the writers' commits interleave with the reads.
pub async fn cursors_never_skip_rows_written_concurrently<S: Store>(s: &S) {
    let (a, na) = org_with_number(s, "a", "15550000001").await;
    s.create_endpoint(
        NewEndpoint {
            id: EndpointId::new(),
            org_id: a.clone(),
            url: "https://example.com/all".into(),
            description: None,
            event_types: None,
            waba_numbers: None,
            format: Default::default(),
            secret: Sealed::from_stored("whsec_AAAA".into()),
            verify_token: None,
        },
        T0,
    )
    .await
    .unwrap();
    let groups = 6;
    let mut targets = Vec::new();
    for g in 0..groups {
        targets.push(active_group(s, &a, na, &format!("c{g}"), &format!("1203630000000001{g:02}@g.us")).await);
    }
    let base_events = s.list_events(&a, &EventFilter::default(), 0, 1000).await.unwrap();
    let base_deliveries = s.open_deliveries(None, 0, None, 1000).await.unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let writes = 60;
    let writers = async {
        let changes = (0..writes).map(|i| {
            let t = targets[i % groups].clone();
            async move { apply(s, t, Some(&format!("w-{i}")), joined(i)).await.unwrap() }
        });
        let org = a.as_str();
        let new_groups =
            (0..20).map(|i| async move { s.create_group(new_group(org, na, &format!("n{i}"), T0)).await.unwrap() });
        futures_util::join!(join_all(changes), join_all(new_groups));
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let reader = async {
        let (mut events, mut deliveries, mut commands) = (Vec::new(), Vec::new(), Vec::new());
        let (mut ev_after, mut dl_after, mut cmd_after) = (0i64, 0i64, 0i64);
        loop {
            let finished = done.load(std::sync::atomic::Ordering::SeqCst);
            // Pages of a few rows, so reads interleave with the writers' commits.
            for (pos, e) in s.list_events(&a, &EventFilter::default(), ev_after, 5).await.unwrap() {
                assert!(pos > ev_after, "events out of position order");
                ev_after = pos;
                events.push(e.event_id);
            }
            for d in s.open_deliveries(None, dl_after, None, 5).await.unwrap() {
                assert!(d.id > dl_after, "deliveries out of queue order");
                dl_after = d.id;
                deliveries.push(d.id);
            }
            for c in s.due_commands(T0, cmd_after, 5).await.unwrap() {
                assert!(c.id > cmd_after, "commands out of queue order");
                cmd_after = c.id;
                commands.push(c.id);
            }
            if finished {
                let more = !s
                    .list_events(&a, &EventFilter::default(), ev_after, 1)
                    .await
                    .unwrap()
                    .is_empty()
                    || !s.open_deliveries(None, dl_after, None, 1).await.unwrap().is_empty()
                    || !s.due_commands(T0, cmd_after, 1).await.unwrap().is_empty();
                if !more {
                    return (events, deliveries, commands);
                }
            }
            tokio::task::yield_now().await;
        }
    };
    let ((), (events, deliveries, commands)) = futures_util::join!(writers, reader);
    let all_events = s.list_events(&a, &EventFilter::default(), 0, 1000).await.unwrap();
    let expected: Vec<EventId> = all_events.iter().map(|(_, e)| e.event_id.clone()).collect();
    assert_eq!(all_events.len(), base_events.len() + writes, "one event per change");
    assert_eq!(events, expected, "the event cursor saw every event once, in order");
    let all_deliveries: Vec<i64> = s
        .open_deliveries(None, 0, None, 1000)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(all_deliveries.len(), base_deliveries.len() + writes);
    assert_eq!(
        deliveries, all_deliveries,
        "the delivery cursor saw every delivery once, in order"
    );
    let all_commands: Vec<i64> = s
        .due_commands(T0, 0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        all_commands.len(),
        20,
        "the created groups' commands (the others were confirmed)"
    );
    assert_eq!(
        commands, all_commands,
        "the command cursor saw every command once, in order"
    );
}

fn report_ref(number_id: i64, key: &str, correlation: &str) -> ReportRef {
    ReportRef {
        number_id,
        dedup_key: key.into(),
        correlation: correlation.into(),
        held_seq: None,
    }
}

/// Held reports are kept with their payload, in the order held; a report behind a held one
/// of its group is blocked, a held one applies only as itself, and dead ones stay counted.
pub async fn the_inbox_holds_reports_in_order_until_they_apply<S: Store>(s: &S) {
    let (a, na) = org_with_number(s, "a", "15550000001").await;
    let wa = "120363000000000055@g.us";
    let created = ProviderEvent::GroupCreated {
        request_id: "req-late".into(),
        wa_group_id: wa.into(),
        invite_link: "https://chat.whatsapp.com/late".into(),
        at: T0,
        participants: vec![],
    };
    let join = |p: &str| ProviderEvent::ParticipantJoined {
        wa_group_id: wa.into(),
        phone: p.into(),
        at: T0,
        reason: None,
    };
    // Held: a confirmation whose request is unknown, then two reports of its group.
    let first = report_ref(na, "k1", wa);
    assert!(
        s.hold_report(&first, &created, "unknown request", T0, T0)
            .await
            .unwrap()
    );
    assert!(
        !s.hold_report(&first, &created, "again", T0, T0).await.unwrap(),
        "a key is held once"
    );
    s.hold_report(&report_ref(na, "k2", wa), &join("919000000001"), "behind", T0, T0)
        .await
        .unwrap();
    s.hold_report(&report_ref(na, "k3", wa), &join("919000000002"), "behind", T0, T0)
        .await
        .unwrap();
    // Another group's report, held later.
    let other = report_ref(na, "k9", "120363000000000056@g.us");
    s.hold_report(&other, &join("919000000009"), "unknown", T0, T0.plus_millis(5))
        .await
        .unwrap();
    let heads = s.held_heads(10, false).await.unwrap();
    let keys: Vec<&str> = heads.iter().map(|h| h.report.dedup_key.as_str()).collect();
    assert_eq!(keys, ["k1", "k9"], "each group's first held report, soonest due first");
    assert_eq!(heads[0].event.as_ref(), Some(&created));
    assert_eq!(heads[0].waba_number, "15550000001");
    let newest: Vec<String> = s
        .held_heads(1, true)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.report.dedup_key)
        .collect();
    assert_eq!(newest, ["k9"], "the most recently held group first");
    s.mark_dead(&other, "never").await.unwrap();
    let heads = s.held_heads(10, false).await.unwrap();
    assert_eq!(heads.len(), 1);
    let held = [heads[0].clone()];
    assert_eq!(s.inbox_stats().await.unwrap(), InboxStats { held: 3, dead: 1 });

    // A new report of the group waits behind them; a held one is not applied as a new one.
    let wa_target = GroupTarget::WaGroupId {
        number_id: na,
        wa_group_id: wa.into(),
    };
    let noop: Rule = Box::new(|st| Ok(group::Decision::from_state(st)));
    let m = s
        .mutate_group(wa_target.clone(), Some(report_ref(na, "k4", wa)), T0, noop)
        .await
        .unwrap();
    assert!(matches!(m, Mutation::Blocked), "{m:?}");
    let noop: Rule = Box::new(|st| Ok(group::Decision::from_state(st)));
    let m = s
        .mutate_group(wa_target.clone(), Some(report_ref(na, "k2", wa)), T0, noop)
        .await
        .unwrap();
    assert!(matches!(m, Mutation::Duplicate), "{m:?}");

    // The request becomes known: the held confirmation applies as itself, and leaves the line.
    s.create_group(new_group(&a, na, "late", T0)).await.unwrap();
    let due = s.due_commands(T0, 0, 10).await.unwrap();
    s.commands_submitted(&[(due[0].id, "req-late".into())], T0)
        .await
        .unwrap();
    let input = GroupInput::Created {
        wa_group_id: wa.into(),
        invite_link: "https://chat.whatsapp.com/late".into(),
        at: T0,
        participants: vec![],
    };
    let m = s
        .mutate_group(
            GroupTarget::Request {
                number_id: na,
                request_id: "req-late".into(),
            },
            Some(held[0].report.clone()),
            T0,
            Box::new(move |st| group::apply(st, &input, T0)),
        )
        .await
        .unwrap();
    assert!(matches!(m, Mutation::Applied(_)), "{m:?}");
    // The next of its group is now first in line; the one behind it cannot go before it.
    let heads = s.held_heads(10, false).await.unwrap();
    let keys: Vec<&str> = heads.iter().map(|h| h.report.dedup_key.as_str()).collect();
    assert_eq!(keys, ["k2"]);
    let k2 = heads[0].clone();
    let k3 = ReportRef {
        held_seq: k2.report.held_seq.map(|n| n + 1),
        ..report_ref(na, "k3", wa)
    };
    let noop: Rule = Box::new(|st| Ok(group::Decision::from_state(st)));
    let m = s
        .mutate_group(wa_target.clone(), Some(k3.clone()), T0, noop)
        .await
        .unwrap();
    assert!(matches!(m, Mutation::Blocked), "{m:?}");

    // Retries are counted; a report given up is dead, kept and counted, and blocks nothing.
    s.retry_report(&k2.report, "still", T0.plus_millis(100)).await.unwrap();
    let again = s.held_heads(10, false).await.unwrap();
    assert_eq!((again[0].attempts, again[0].next_attempt_at), (1, T0.plus_millis(100)));
    s.give_up_report(&k2.report, k2.event.as_ref().unwrap(), "never", T0)
        .await
        .unwrap();
    assert_eq!(s.inbox_stats().await.unwrap(), InboxStats { held: 1, dead: 2 });
    let k3 = s.held_heads(10, false).await.unwrap()[0].clone();
    assert_eq!(k3.report.dedup_key, "k3", "the group goes on without it");
    let input = GroupInput::Joined {
        phone: Phone::from_digits("919000000002"),
        reason: JoinReason::InviteLink,
        at: T0,
    };
    let m = s
        .mutate_group(
            wa_target,
            Some(k3.report.clone()),
            T0,
            Box::new(move |st| group::apply(st, &input, T0)),
        )
        .await
        .unwrap();
    assert!(matches!(m, Mutation::Applied(_)), "{m:?}");
    assert_eq!(s.inbox_stats().await.unwrap(), InboxStats { held: 0, dead: 2 });
    // An applied report is never made dead, nor held again.
    let event = k3.event.clone().unwrap();
    s.give_up_report(&k3.report, &event, "late", T0).await.unwrap();
    assert!(!s.hold_report(&k3.report, &event, "x", T0, T0).await.unwrap());
    assert_eq!(s.inbox_stats().await.unwrap(), InboxStats { held: 0, dead: 2 });
    let (g, _) = s.get_group(&a, &"late".into()).await.unwrap().unwrap();
    assert_eq!(g.status, GroupStatus::Active);
    assert_eq!(g.last_sequence, 2, "created, then the one join that applied");
}

/// Operations: recorded (tenant-scoped), accepted under a request ID, finished once (a
/// finished one stays as it ended), closed by their confirmation, and listed when stale.
pub async fn operations_are_recorded_accepted_and_closed<S: Store>(s: &S) {
    use wagroups_core::{
        model::{ItemResult, ItemStatus, OperationStatus},
        store::NewOperation,
    };
    let (a, na) = org_with_number(s, "a", "15550000001").await;
    let wa = "120363000000000061@g.us";
    active_group(s, &a, na, "op", wa).await;
    let (g, _) = s.get_group(&a, &"op".into()).await.unwrap().unwrap();
    let new = |id: &str| NewOperation {
        id: id.into(),
        org_id: a.clone(),
        group_row_id: g.id,
        number_id: na,
        request_id: id.into(),
        kind: wagroups_core::model::OperationKind::ResetInviteLink,
    };
    let op = s.create_operation(new("op_1"), T0).await.unwrap();
    assert_eq!(
        (op.status, op.group_id.as_str(), op.waba_number.as_str()),
        (OperationStatus::Pending, "op", "15550000001")
    );
    assert!(
        s.get_operation(&"org_other".into(), &"op_1".into())
            .await
            .unwrap()
            .is_none(),
        "tenant-scoped"
    );
    // Finished at once: stays as it ended.
    s.finish_operation(
        &"op_1".into(),
        true,
        &[ItemResult::new("k", ItemStatus::Reset)],
        None,
        T0,
    )
    .await
    .unwrap();
    s.finish_operation(&"op_1".into(), false, &[], Some(("late", "too late")), T0)
        .await
        .unwrap();
    let done = s.get_operation(&a, &"op_1".into()).await.unwrap().unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded);
    assert_eq!(done.results, [ItemResult::new("k", ItemStatus::Reset)]);
    // Accepted under the provider's request ID, then confirmed through it.
    s.create_operation(new("op_2"), T0).await.unwrap();
    s.operation_accepted(&"op_2".into(), "req-2", T0).await.unwrap();
    assert_eq!(
        s.stale_operations(T0.plus_millis(1), 10).await.unwrap(),
        [(na, "req-2".to_string())],
        "pending and older than the cut"
    );
    assert!(s.stale_operations(T0, 10).await.unwrap().is_empty());
    let input = GroupInput::OperationFailed {
        code: "131009".into(),
        message: "no".into(),
        at: T0,
    };
    let m = s
        .mutate_group(
            GroupTarget::Operation {
                number_id: na,
                request_id: "req-2".into(),
                fallback: None,
            },
            None,
            T0,
            Box::new(move |st| group::apply(st, &input, T0)),
        )
        .await
        .unwrap();
    assert!(matches!(m, Mutation::Applied(_)));
    let failed = s.get_operation(&a, &"op_2".into()).await.unwrap().unwrap();
    assert_eq!(failed.status, OperationStatus::Failed);
    assert_eq!(failed.error_code.as_deref(), Some("131009"));
    let events = s.group_events(g.id, 0, 10).await.unwrap();
    assert_eq!(events.last().unwrap().event_type, "GROUP_OPERATION_FAILED");
    assert!(
        s.stale_operations(T0.plus_millis(1), 10).await.unwrap().is_empty(),
        "closed"
    );

    // A confirmation naming a request ID never learned finds, by its fallback, the group's
    // oldest pending operation of its kind whose request ID is still unknown, and only that.
    let kind = wagroups_core::model::OperationKind::ResetInviteLink;
    s.create_operation(new("op_3"), T0).await.unwrap();
    s.create_operation(new("op_4"), T0.plus_millis(1)).await.unwrap();
    s.create_operation(new("op_5"), T0.plus_millis(2)).await.unwrap();
    s.operation_accepted(&"op_5".into(), "req-5", T0).await.unwrap();
    let confirm = |request_id: &str, kind| {
        let input = GroupInput::OperationSucceeded {
            results: vec![],
            at: T0,
        };
        s.mutate_group(
            GroupTarget::Operation {
                number_id: na,
                request_id: request_id.into(),
                fallback: Some(wagroups_core::provider::OperationFallback {
                    wa_group_id: wa.into(),
                    kind,
                }),
            },
            None,
            T0,
            Box::new(move |st| group::apply(st, &input, T0)),
        )
    };
    let other_kind = wagroups_core::model::OperationKind::DeleteGroup;
    assert!(
        matches!(
            confirm("meta-1", other_kind).await,
            Err(MutateError::Domain(DomainError::NotFound { .. }))
        ),
        "another kind is not matched"
    );
    assert!(matches!(confirm("meta-1", kind).await.unwrap(), Mutation::Applied(_)));
    let a = &a;
    let status = |id: &'static str| async move { s.get_operation(a, &id.into()).await.unwrap().unwrap().status };
    assert_eq!(status("op_3").await, OperationStatus::Succeeded, "the oldest first");
    assert_eq!(status("op_4").await, OperationStatus::Pending);
    assert!(matches!(confirm("meta-2", kind).await.unwrap(), Mutation::Applied(_)));
    assert_eq!(status("op_4").await, OperationStatus::Succeeded);
    assert!(
        matches!(
            confirm("meta-3", kind).await,
            Err(MutateError::Domain(DomainError::NotFound { .. }))
        ),
        "op_5's request ID is known: only it finds op_5"
    );
    assert_eq!(status("op_5").await, OperationStatus::Pending);
}

/// However the ends of one piece of work race, it ends once: a command is submitted once (one
/// request ID) and a retry after its submission changes nothing; a
/// delivery's success is final, and an attempt recorded after it leaves no trace.
pub async fn a_claim_ends_once<S: Store>(s: &S) {
    use wagroups_core::webhook::{AttemptNext, AttemptRecord, DeliveryStatus};
    let (a, na) = org_with_number(s, "a", "15550000001").await;
    s.create_group(new_group(&a, na, "g1", T0)).await.unwrap();
    let cmd = s.due_commands(T0, 0, 10).await.unwrap().remove(0);
    let request = |r: &str| GroupTarget::Request {
        number_id: na,
        request_id: r.into(),
    };
    let ends = (0..6).map(|i| async move {
        if i % 3 == 2 {
            s.command_retry(cmd.id, "timed out", T0.plus_millis(1)).await.unwrap();
        } else {
            s.commands_submitted(&[(cmd.id, format!("req-{i}"))], T0).await.unwrap();
        }
    });
    join_all(ends).await;
    assert!(
        s.due_commands(T0.plus_millis(999_999), 0, 10).await.unwrap().is_empty(),
        "submitted, and no retry reopened it"
    );
    assert_eq!(s.open_commands().await.unwrap(), 1);
    // Exactly one of the request IDs is the command's.
    let mut found = 0;
    for i in [0, 1, 3, 4] {
        let created = GroupInput::Created {
            wa_group_id: "120363000000000071@g.us".into(),
            invite_link: "https://chat.whatsapp.com/c".into(),
            at: T0,
            participants: vec![],
        };
        match apply(s, request(&format!("req-{i}")), None, created).await {
            Ok(Mutation::Applied(_)) => found += 1,
            Ok(other) => panic!("req-{i}: {other:?}"),
            Err(_) => {}
        }
    }
    assert_eq!(found, 1, "one submission recorded");
    assert_eq!(s.open_commands().await.unwrap(), 0, "closed by its confirmation");

    // Deliveries are queued with the events: an endpoint, then four joins.
    let ep = s
        .create_endpoint(
            NewEndpoint {
                id: EndpointId::new(),
                org_id: a.clone(),
                url: "https://example.com/hook".into(),
                description: None,
                event_types: None,
                waba_numbers: None,
                format: Default::default(),
                secret: Sealed::from_stored("whsec_AAAA".into()),
                verify_token: None,
            },
            T0,
        )
        .await
        .unwrap();
    let wa = GroupTarget::WaGroupId {
        number_id: na,
        wa_group_id: "120363000000000071@g.us".into(),
    };
    for i in 0..4 {
        apply(s, wa.clone(), None, joined(i)).await.unwrap();
    }
    let open = s.open_deliveries(Some(&ep.id), 0, None, 100).await.unwrap();
    assert_eq!(open.len(), 4);
    let rec = |at: i64, next| AttemptRecord {
        attempted_at: T0.plus_millis(at),
        status_code: Some(200),
        latency_ms: 1,
        error: None,
        next,
    };
    // Per delivery, a success raced by a failure and by another success.
    let races = open.iter().map(|d| {
        let id = d.id;
        async move {
            let outcomes = [
                rec(1, AttemptNext::Succeeded),
                rec(2, AttemptNext::RetryAt(T0.plus_millis(60_000))),
                rec(3, AttemptNext::Succeeded),
            ];
            join_all(
                outcomes
                    .into_iter()
                    .map(|r| async move { s.record_attempts(&[(id, r)]).await.unwrap() }),
            )
            .await;
        }
    });
    join_all(races).await;
    assert!(s.open_deliveries(Some(&ep.id), 0, None, 100).await.unwrap().is_empty());
    let done = s
        .list_deliveries(&a, &ep.id, Some(DeliveryStatus::Succeeded), None, 10)
        .await
        .unwrap();
    assert_eq!(done.len(), 4, "every delivery succeeded");
    for d in &done {
        let successes = d
            .attempts
            .iter()
            .filter(|t| t.status_code == Some(200) && t.next_attempt_at.is_none())
            .count();
        assert_eq!(successes, 1, "one success recorded, nothing after it: {:?}", d.attempts);
        assert_eq!(
            d.attempts.last().and_then(|t| t.next_attempt_at),
            None,
            "the success is the last attempt"
        );
        assert!(d.attempts.len() <= 2, "at most the failure before the success");
    }
    // A record arriving after the end is ignored.
    s.record_attempts(&[(done[0].id, rec(9, AttemptNext::Dead))])
        .await
        .unwrap();
    let again = s
        .list_deliveries(&a, &ep.id, Some(DeliveryStatus::Succeeded), None, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 4);
    assert_eq!(
        again.iter().find(|d| d.id == done[0].id).map(|d| d.attempts.len()),
        Some(done[0].attempts.len())
    );
}

/// A paused number's command waits without its attempt being counted, and is due again at
/// once when the number is resumed; a submitted command is not touched by either.
pub async fn a_paused_numbers_commands_wait_uncounted<S: Store>(s: &S) {
    let (a, na) = org_with_number(s, "a", "15550000001").await;
    let (b, nb) = org_with_number(s, "b", "15550000002").await;
    s.create_group(new_group(&a, na, "g1", T0)).await.unwrap();
    s.create_group(new_group(&a, na, "g2", T0)).await.unwrap();
    s.create_group(new_group(&b, nb, "g3", T0)).await.unwrap();
    let due = s.due_commands(T0, 0, 10).await.unwrap();
    assert_eq!(due.len(), 3);
    let later = T0.plus_millis(30_000);
    for c in &due {
        s.command_defer(c.id, "paused", later).await.unwrap();
    }
    assert!(s.due_commands(T0, 0, 10).await.unwrap().is_empty(), "deferred");
    let again = s.due_commands(later, 0, 10).await.unwrap();
    assert_eq!(again.len(), 3);
    assert!(
        again.iter().zip(&due).all(|(x, y)| x.attempts == y.attempts),
        "not counted"
    );
    // Resuming one number makes its commands due now, not the other number's.
    assert_eq!(s.resume_commands(na, T0).await.unwrap(), 2);
    let now_due = s.due_commands(T0, 0, 10).await.unwrap();
    assert_eq!(
        now_due.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![due[0].id, due[1].id]
    );
    // A submitted command stays submitted.
    s.commands_submitted(&[(due[0].id, "req-1".into())], T0).await.unwrap();
    s.command_defer(due[0].id, "paused", later).await.unwrap();
    assert_eq!(s.resume_commands(na, T0).await.unwrap(), 0);
    assert_eq!(s.due_commands(later, 0, 10).await.unwrap().len(), 2);
}

/// A command marked as being sent is not due again (its answer may be lost); it is listed as
/// in doubt once older than the cut, until it is resent, retried, or closed.
pub async fn a_command_in_doubt_waits_to_be_settled<S: Store>(s: &S) {
    let (a, na) = org_with_number(s, "a", "15550000001").await;
    s.create_group(new_group(&a, na, "g1", T0)).await.unwrap();
    s.create_group(new_group(&a, na, "g2", T0)).await.unwrap();
    let due = s.due_commands(T0, 0, 10).await.unwrap();
    s.command_sending(due[0].id, T0).await.unwrap();
    assert_eq!(
        s.due_commands(T0.plus_millis(999_999), 0, 10)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        vec![due[1].id],
        "in doubt: not due"
    );
    assert!(
        s.in_doubt_commands(na, T0).await.unwrap().is_empty(),
        "not older than the cut"
    );
    let doubt = s.in_doubt_commands(na, T0.plus_millis(1)).await.unwrap();
    assert_eq!(doubt.iter().map(|c| c.id).collect::<Vec<_>>(), vec![due[0].id]);
    assert!(matches!(doubt[0].payload, CommandPayload::CreateGroup { .. }));
    // Resent: due again, no longer in doubt.
    s.command_resend(due[0].id, T0).await.unwrap();
    assert_eq!(s.due_commands(T0, 0, 10).await.unwrap().len(), 2);
    assert!(s.in_doubt_commands(na, T0.plus_millis(1)).await.unwrap().is_empty());
    // A retry (the provider answered with an error) also ends the doubt.
    s.command_sending(due[1].id, T0).await.unwrap();
    s.command_retry(due[1].id, "refused", T0).await.unwrap();
    assert!(s.in_doubt_commands(na, T0.plus_millis(1)).await.unwrap().is_empty());
    assert_eq!(s.due_commands(T0, 0, 10).await.unwrap().len(), 2);
}

/// An endpoint's secrets are stored as the core hands them (sealed) and read back unchanged;
/// a rotation keeps the old one as previous; resealing replaces the stored forms and nothing
/// else, and only when they are still what was read; every endpoint row, disabled and deleted
/// ones too, is listed for it.
pub async fn endpoint_secrets_are_kept_as_given_and_resealed_in_place<S: Store>(s: &S) {
    let (a, _) = org_with_number(s, "a", "15550000001").await;
    let new = |url: &str, secret: &str| NewEndpoint {
        id: EndpointId::new(),
        org_id: a.clone(),
        url: url.into(),
        description: None,
        event_types: None,
        waba_numbers: None,
        format: Default::default(),
        secret: Sealed::from_stored(secret.into()),
        verify_token: None,
    };
    let one = s
        .create_endpoint(new("https://example.com/1", "v1.first"), T0)
        .await
        .unwrap();
    assert_eq!(one.secret.as_stored(), "v1.first");
    let two = s
        .create_endpoint(new("https://example.com/2", "whsec_PLAIN"), T0)
        .await
        .unwrap();
    s.update_endpoint(
        &a,
        &two.id,
        wagroups_core::store::EndpointPatch {
            disabled: Some(true),
            ..Default::default()
        },
        T0,
    )
    .await
    .unwrap();
    let rotated = s
        .rotate_endpoint_secret(
            &a,
            &one.id,
            &Sealed::from_stored("v1.second".into()),
            T0.plus_millis(5),
            T0.plus_millis(1),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.secret.as_stored(), "v1.second");
    assert_eq!(
        rotated.previous_secret.as_ref().map(Sealed::as_stored),
        Some("v1.first")
    );

    let all = s.all_endpoints().await.unwrap();
    assert_eq!(all.len(), 2, "disabled endpoints are listed too");
    assert!(
        all.iter().all(|e| e.updated_at <= T0.plus_millis(1)),
        "nothing else changed them"
    );
    assert_eq!(s.active_endpoints().await.unwrap().len(), 1);

    let sealed = |t: &str| Sealed::from_stored(t.into());
    assert!(
        s.reseal_endpoint_secrets(&two.id, (&sealed("whsec_PLAIN"), None), (&sealed("v1.sealed"), None))
            .await
            .unwrap()
    );
    // Stale: the endpoint was rotated since it was read; the rotation stands.
    assert!(
        !s.reseal_endpoint_secrets(&one.id, (&sealed("v1.first"), None), (&sealed("v1.stale"), None))
            .await
            .unwrap()
    );
    assert!(
        s.reseal_endpoint_secrets(
            &one.id,
            (&sealed("v1.second"), Some(&sealed("v1.first"))),
            (&sealed("v1.second-resealed"), Some(&sealed("v1.first-resealed"))),
        )
        .await
        .unwrap()
    );
    // A deleted endpoint's row is still listed for resealing.
    s.delete_endpoint(&a, &two.id, T0.plus_millis(2)).await.unwrap();
    assert!(s.all_endpoints().await.unwrap().iter().any(|e| e.id == two.id));
    let two_after = s
        .all_endpoints()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.id == two.id)
        .unwrap();
    assert_eq!(two_after.secret.as_stored(), "v1.sealed");
    assert_eq!(two_after.previous_secret, None);
    assert!(two_after.disabled);
    let one_after = s.get_endpoint(&a, &one.id).await.unwrap().unwrap();
    assert_eq!(one_after.secret.as_stored(), "v1.second-resealed");
    assert_eq!(
        one_after.previous_secret.as_ref().map(Sealed::as_stored),
        Some("v1.first-resealed")
    );
    assert_eq!(one_after.previous_secret_until, rotated.previous_secret_until);
    assert_eq!(one_after.updated_at, rotated.updated_at);
}

/// A creation's confirmation sees the participants its command asked for; confirmed without
/// them, the command is due again with its request ID (for the gateway to invite them), and
/// a group is read by its row ID.
pub async fn a_creation_confirmed_without_its_participants_reopens_its_command<S: Store>(s: &S) {
    let (a, na) = org_with_number(s, "a", "15550000001").await;
    let mut g = new_group(&a, na, "people", T0);
    g.command = CommandPayload::CreateGroup {
        subject: "Subject people".into(),
        description: String::new(),
        join_approval_mode: JoinApprovalMode::AutoApprove,
        participants: vec!["919000000001".into()],
        invite_fallback: true,
    };
    s.create_group(g).await.unwrap();
    let due = s.due_commands(T0, 0, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].request_id, None, "not accepted yet");
    s.commands_submitted(&[(due[0].id, "req-p".into())], T0).await.unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen_by_rule = seen.clone();
    let created = GroupInput::Created {
        wa_group_id: "120363000000000009@g.us".into(),
        invite_link: "https://chat.whatsapp.com/p".into(),
        at: T0,
        participants: vec![],
    };
    let m = s
        .mutate_group(
            GroupTarget::Request {
                number_id: na,
                request_id: "req-p".into(),
            },
            None,
            T0,
            Box::new(move |state| {
                *seen_by_rule.lock().unwrap() = state.command_participants.clone();
                group::apply(state, &created, T0)
            }),
        )
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), ["919000000001"], "the command's participants");
    let Mutation::Applied(d) = m else {
        panic!("{m:?}");
    };
    assert!(matches!(d.close_command, Some(group::CommandClose::Reopen { .. })));
    let again = s.due_commands(T0.plus_millis(1), 0, 10).await.unwrap();
    assert_eq!(again.len(), 1, "due again");
    assert_eq!(again[0].request_id.as_deref(), Some("req-p"), "its request ID kept");
    let (group, participants) = s.group_by_row(again[0].group_row_id).await.unwrap().unwrap();
    assert_eq!(group.group_id.as_str(), "people");
    assert_eq!(group.status, GroupStatus::Active);
    assert!(participants.iter().any(|p| p.is_business));
    assert!(s.group_by_row(i64::MAX).await.unwrap().is_none());
}

/// Every held report of one correlation is given up at once (a group wagroups did not
/// create); other correlations' and other numbers' are left held.
pub async fn a_foreign_groups_held_reports_are_given_up_together<S: Store>(s: &S) {
    let (_, na) = org_with_number(s, "a", "15550000001").await;
    let (_, nb) = org_with_number(s, "b", "15550000002").await;
    let join = |wa: &str, p: &str| ProviderEvent::ParticipantJoined {
        wa_group_id: wa.into(),
        phone: p.into(),
        at: T0,
        reason: None,
    };
    let (foreign, ours) = ("120363000000000077@g.us", "120363000000000078@g.us");
    for (n, key, wa) in [
        (na, "f1", foreign),
        (na, "f2", foreign),
        (na, "o1", ours),
        (nb, "x1", foreign),
    ] {
        assert!(
            s.hold_report(&report_ref(n, key, wa), &join(wa, "919000000001"), "unknown", T0, T0)
                .await
                .unwrap()
        );
    }
    assert_eq!(s.mark_dead_held(na, foreign, "foreign").await.unwrap(), 2);
    let stats = s.inbox_stats().await.unwrap();
    assert_eq!((stats.held, stats.dead), (2, 2));
    let heads = s.held_heads(10, false).await.unwrap();
    let mut left: Vec<&str> = heads.iter().map(|h| h.report.dedup_key.as_str()).collect();
    left.sort();
    assert_eq!(left, ["o1", "x1"]);
    assert_eq!(
        s.mark_dead_held(na, foreign, "again").await.unwrap(),
        0,
        "nothing held is left"
    );
}

pub async fn idempotency_keys_replay_refuse_and_expire<S: Store>(s: &S) {
    use wagroups_core::idempotency::{Begin, Replay};
    let (a, _) = org_with_number(s, "a", "15550000001").await;
    let (b, _) = org_with_number(s, "b", "15550000002").await;
    let later = T0.plus_millis(1000);
    assert_eq!(
        s.begin_idempotent(&a, "k", "fp1", T0, later).await.unwrap(),
        Begin::Proceed
    );
    // While the first is answered, the second waits; another organisation's key is its own.
    assert_eq!(
        s.begin_idempotent(&a, "k", "fp1", T0, later).await.unwrap(),
        Begin::InFlight
    );
    assert_eq!(
        s.begin_idempotent(&b, "k", "fp1", T0, later).await.unwrap(),
        Begin::Proceed
    );
    assert_eq!(
        s.begin_idempotent(&a, "k", "fp2", T0, later).await.unwrap(),
        Begin::Mismatch
    );
    let reply = Replay {
        status: 202,
        content_type: "application/json".into(),
        body: b"{\"groupId\":\"g\"}".to_vec(),
    };
    s.finish_idempotent(&a, "k", &reply).await.unwrap();
    assert_eq!(
        s.begin_idempotent(&a, "k", "fp1", T0, later).await.unwrap(),
        Begin::Replay(reply)
    );
    // Expired, the key is new again; an abandoned one too.
    assert_eq!(
        s.begin_idempotent(&a, "k", "fp2", later, later.plus_millis(1000))
            .await
            .unwrap(),
        Begin::Proceed
    );
    s.abandon_idempotent(&a, "k").await.unwrap();
    assert_eq!(
        s.begin_idempotent(&a, "k", "fp3", later, later.plus_millis(1000))
            .await
            .unwrap(),
        Begin::Proceed
    );
}
