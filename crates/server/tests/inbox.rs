//! The provider inbox and its applier, with a provider that confirms late: before the request
//! IDs are recorded, in reverse order, and more than once. (The simulated network confirms in
//! order and echoes command IDs, so the end-to-end suite does not reach these paths.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use wagroups_core::{
    admin,
    command::Command,
    inbox::Received,
    model::Number,
    provider::{
        Operated, Provider, ProviderEnvelope, ProviderError, ProviderEvent, ProviderOp, ProviderRegistry, Submitted,
    },
    service::{CreateGroupRequest, GroupService, Submission},
    store::{InboxStats, prelude::*},
    time::Timestamp,
};
use wagroups_store::SqliteStore;

/// Accepts every command under a request ID of its own (not the command ID), and reports
/// nothing by itself: the test delivers its confirmations.
struct LateProvider;

#[async_trait]
impl Provider for LateProvider {
    async fn submit(&self, _: &Number, command: &Command) -> Result<Submitted, ProviderError> {
        Ok(Submitted {
            request_id: format!("req-{}", command.command_id),
        })
    }

    async fn operate(&self, _: &Number, _: &str, _: &ProviderOp, _: &str) -> Result<Operated, ProviderError> {
        Err(ProviderError::Retryable("not in this test".into()))
    }
}

struct Registry(Arc<LateProvider>);

impl ProviderRegistry for Registry {
    fn for_number(&self, _: &Number) -> Option<Arc<dyn Provider>> {
        Some(self.0.clone())
    }
}

async fn setup() -> (tempfile::TempDir, Arc<SqliteStore>, GroupService, admin::Bootstrap) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("inbox.db").display());
    let store = Arc::new(SqliteStore::open(&url).await.unwrap());
    let boot = admin::bootstrap(store.as_ref()).await.unwrap().unwrap();
    let service = GroupService::new(
        store.clone(),
        Arc::new(Registry(Arc::new(LateProvider))),
        wagroups_core::service::Signals::none(),
    );
    (dir, store, service, boot)
}

fn envelope(boot: &admin::Bootstrap, key: &str, event: ProviderEvent) -> ProviderEnvelope {
    ProviderEnvelope {
        waba_number: boot.number.waba_number.clone(),
        dedup_key: key.into(),
        event,
    }
}

#[tokio::test]
async fn late_reversed_and_repeated_confirmations_give_the_log_in_order_confirmations_give() {
    let (_dir, store, service, boot) = setup().await;
    let mut groups = Vec::new();
    for id in ["first", "second"] {
        let created = service
            .create_group(
                &boot.key,
                CreateGroupRequest {
                    waba_number: Some(boot.number.waba_number.clone()),
                    subject: Some(format!("Group {id}")),
                    group_id: Some(id.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        groups.push(created);
    }
    let due = store.due_commands(Timestamp::now(), 0, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    let created = |i: usize| ProviderEvent::GroupCreated {
        request_id: format!("req-{}", due[i].command_id),
        wa_group_id: format!("12036300000000000{i}@g.us"),
        invite_link: format!("https://chat.whatsapp.com/late{i}"),
        at: Timestamp::now(),
        participants: vec![],
    };
    let joined = |i: usize| ProviderEvent::ParticipantJoined {
        wa_group_id: format!("12036300000000000{i}@g.us"),
        phone: format!("91900000000{i}"),
        at: Timestamp::now(),
        reason: None,
    };
    // The confirmations come before the request IDs are recorded, the second group's first,
    // each report twice.
    let mut outcomes = Vec::new();
    for i in [1, 0] {
        for (key, event) in [(format!("c{i}"), created(i)), (format!("j{i}"), joined(i))] {
            outcomes.push(
                service
                    .receive_report(envelope(&boot, &key, event.clone()))
                    .await
                    .unwrap(),
            );
            outcomes.push(service.receive_report(envelope(&boot, &key, event)).await.unwrap());
        }
    }
    assert_eq!(
        outcomes,
        [Received::Held, Received::Duplicate].repeat(4),
        "held (request unknown, or behind it), and seen once"
    );
    assert_eq!(store.inbox_stats().await.unwrap(), InboxStats { held: 4, dead: 0 });
    let (g, _) = store.get_group(&boot.org.id, &"first".into()).await.unwrap().unwrap();
    assert_eq!(g.last_sequence, 0, "nothing applied yet");

    // The worker records the request IDs; the applier then applies what was held, in order.
    for cmd in &due {
        let Submission::Accepted(request_id) = service
            .submit_command(cmd, &boot.number, Some(&LateProvider))
            .await
            .unwrap()
        else {
            panic!("not accepted")
        };
        service.commands_submitted(&[(cmd.id, request_id)]).await.unwrap();
    }
    let next = service.apply_held_reports(true).await.unwrap();
    assert_eq!(next, None, "nothing left held");
    assert_eq!(store.inbox_stats().await.unwrap(), InboxStats { held: 0, dead: 0 });
    for (i, id) in ["first", "second"].into_iter().enumerate() {
        let (g, participants) = store.get_group(&boot.org.id, &id.into()).await.unwrap().unwrap();
        assert_eq!(g.status.as_str(), "active", "{id}");
        assert_eq!(
            g.wa_group_id.as_deref(),
            Some(format!("12036300000000000{i}@g.us").as_str())
        );
        let events = store.group_events(g.id, 0, 10).await.unwrap();
        let log: Vec<(i64, &str)> = events.iter().map(|e| (e.sequence, e.event_type.as_str())).collect();
        assert_eq!(log, [(1, "GROUP_CREATED"), (2, "GROUP_PARTICIPANT_JOINED")], "{id}");
        assert!(
            participants
                .iter()
                .any(|p| p.phone.as_str() == format!("91900000000{i}"))
        );
    }
    // Delivered again later: duplicates.
    let again = service.receive_report(envelope(&boot, "c0", created(0))).await.unwrap();
    assert_eq!(again, Received::Duplicate);
}

#[tokio::test]
async fn a_report_that_can_never_apply_is_kept_dead_and_blocks_nothing() {
    let (_dir, store, service, boot) = setup().await;
    let bad = ProviderEvent::ParticipantJoined {
        wa_group_id: "120363000000000009@g.us".into(),
        phone: "not a phone".into(),
        at: Timestamp::now(),
        reason: None,
    };
    assert_eq!(
        service.receive_report(envelope(&boot, "bad", bad)).await.unwrap(),
        Received::Dead
    );
    let unknown_number = ProviderEnvelope {
        waba_number: "15559999999".into(),
        dedup_key: "stray".into(),
        event: ProviderEvent::GroupDeleted {
            wa_group_id: "120363000000000009@g.us".into(),
            at: Timestamp::now(),
        },
    };
    assert_eq!(service.receive_report(unknown_number).await.unwrap(), Received::Dead);
    assert_eq!(store.inbox_stats().await.unwrap(), InboxStats { held: 0, dead: 2 });
    assert_eq!(service.apply_held_reports(true).await.unwrap(), None);
}

/// More held reports than one read takes, none of which will apply, do not keep a report that
/// can apply waiting behind them.
#[tokio::test]
async fn a_crowd_of_held_reports_does_not_starve_one_that_can_apply() {
    let (_dir, store, service, boot) = setup().await;
    let created = service
        .create_group(
            &boot.key,
            CreateGroupRequest {
                waba_number: Some(boot.number.waba_number.clone()),
                subject: Some("Late".into()),
                group_id: Some("late".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let cmd = store.due_commands(Timestamp::now(), 0, 1).await.unwrap().remove(0);
    assert_eq!(cmd.command_id, created.command_id);
    // 600 reports about groups nobody knows are held first, then its confirmation.
    for i in 0..600 {
        let stray = ProviderEvent::ParticipantLeft {
            wa_group_id: format!("1203630000001{i:05}@g.us"),
            phone: "919000000001".into(),
            at: Timestamp::now(),
        };
        service
            .receive_report(envelope(&boot, &format!("stray-{i}"), stray))
            .await
            .unwrap();
    }
    let confirmation = ProviderEvent::GroupCreated {
        request_id: format!("req-{}", cmd.command_id),
        wa_group_id: "120363000000000099@g.us".into(),
        invite_link: "https://chat.whatsapp.com/late".into(),
        at: Timestamp::now(),
        participants: vec![],
    };
    assert_eq!(
        service
            .receive_report(envelope(&boot, "late", confirmation))
            .await
            .unwrap(),
        Received::Held
    );
    let Submission::Accepted(request_id) = service
        .submit_command(&cmd, &boot.number, Some(&LateProvider))
        .await
        .unwrap()
    else {
        panic!("not accepted")
    };
    store
        .commands_submitted(&[(cmd.id, request_id)], Timestamp::now())
        .await
        .unwrap();
    // Rounds as the applier runs them when nobody wakes it: the due ones, again at once
    // while a read came back full.
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    for _ in 0..3 {
        service.apply_held_reports(false).await.unwrap();
    }
    let (g, _) = store.get_group(&boot.org.id, &"late".into()).await.unwrap().unwrap();
    assert_eq!(g.status.as_str(), "active", "the confirmation applied");
    assert_eq!(store.inbox_stats().await.unwrap().held, 600);
}
