//! The report pump against a real simulated-network store and a recording sink.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use wagroups_core::{
    provider::{Provider, ProviderEnvelope, ProviderEvent, ProviderEventSink},
    service::ServiceError,
    store::sim::{SimChange, SimGroup, SimStore, SimTarget},
    time::Timestamp,
};
use wagroups_providers::simulated::SimNetwork;
use wagroups_store::SqliteSimStore;

/// Applies nothing: remembers which reports reached it.
#[derive(Default)]
struct Recorder(Mutex<HashSet<String>>);

#[async_trait]
impl ProviderEventSink for Recorder {
    async fn deliver(&self, envelope: ProviderEnvelope) -> Result<wagroups_core::inbox::Received, ServiceError> {
        tokio::task::yield_now().await;
        self.0.lock().unwrap().insert(envelope.dedup_key);
        Ok(wagroups_core::inbox::Received::Applied)
    }
}

fn group(jid: &str) -> SimGroup {
    SimGroup {
        jid: jid.into(),
        waba_number: "15550100001".into(),
        profile: wagroups_core::model::Profile::Cloud,
        create_key: format!("cmd_{jid}"),
        subject: "S".into(),
        description: String::new(),
        approval_required: false,
        invite_code: format!("CODE{}", jid.len()),
        created_at: Timestamp(1_700_000_000_000),
        announcement_only: false,
        locked: false,
        deleted: false,
        suspended: false,
    }
}

/// A caller waiting for its reports is let go only once they were applied, even behind a
/// backlog longer than one round reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_waits_for_reports_behind_a_long_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sim.db").display());
    let store = Arc::new(SqliteSimStore::open(&url).await.unwrap());
    store
        .sim_create_group(group("120363000000000001@g.us"), vec![], vec![])
        .await
        .unwrap();
    let sim = Arc::new(SimNetwork::new(store.clone()));
    let sink = Arc::new(Recorder::default());
    let shutdown = CancellationToken::new();
    let pump = tokio::spawn(sim.clone().run_pump(sink.clone(), shutdown.clone()));
    // 1,500 reports queued at once: three rounds' worth.
    let reports: Vec<ProviderEvent> = (0..1500)
        .map(|i| ProviderEvent::ParticipantLeft {
            wa_group_id: "120363000000000001@g.us".into(),
            phone: format!("9199{i:08}"),
            at: Timestamp(1_700_000_000_000),
        })
        .collect();
    store
        .sim_mutate(
            SimTarget::Jid("120363000000000001@g.us".into()),
            Default::default(),
            Box::new(move |_| {
                Ok(SimChange {
                    reports: reports.clone(),
                    ..SimChange::default()
                })
            }),
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let last = store
        .sim_outbox(0, 2000)
        .await
        .unwrap()
        .last()
        .unwrap()
        .dedup_key
        .clone();
    Provider::flush(sim.as_ref(), sink.as_ref()).await;
    assert!(
        sink.0.lock().unwrap().contains(&last),
        "the last report was applied before flush returned"
    );
    assert_eq!(sink.0.lock().unwrap().len(), 1500);
    shutdown.cancel();
    pump.await.unwrap();
}
