//! The SQLite writer's cost per store operation, without HTTP: creates, confirmations with N
//! webhook endpoints (event and delivery rows) and attempt records, from 64 concurrent tasks.
//! Prints writer-thread CPU per operation; run it under `valgrind --tool=callgrind` for
//! instruction counts that do not depend on what else the machine is doing.
//!
//! `cargo run --release -p wagroups-store --example writer_cost -- [GROUPS] [ENDPOINTS]`
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::{sync::Arc, time::Instant};
use wagroups_core::{
    command::CommandPayload,
    group::{self, GroupInput},
    model::{JoinApprovalMode, Profile, ProviderKind},
    store::{GroupTarget, NewEndpoint, NewGroup, NewNumber, prelude::*},
    time::Timestamp,
    webhook::{AttemptNext, AttemptRecord},
};
use wagroups_store::SqliteStore;

fn writer_cpu() -> f64 {
    let mut t = 0.0;
    for e in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() == "wg-db-writer" {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap();
            let rest = stat.rsplit_once(')').unwrap().1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            t += (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0;
        }
    }
    t
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).map(|a| a.parse().unwrap()).unwrap_or(4000);
    let eps: usize = std::env::args().nth(2).map(|a| a.parse().unwrap()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let s = Arc::new(SqliteStore::open(&url).await.unwrap());
    let t0 = Timestamp::now();
    let org = s
        .create_org(wagroups_core::store::NewOrg::named("o"), t0)
        .await
        .unwrap()
        .unwrap();
    let num = s
        .add_number(
            NewNumber {
                org_id: org.id.clone(),
                waba_number: "15550000001".into(),
                provider: ProviderKind::Simulated,
                profile: Profile::Cloud,
                default_join_approval_mode: JoinApprovalMode::AutoApprove,
                provider_config: serde_json::json!({}),
                provider_ref: None,
            },
            t0,
        )
        .await
        .unwrap()
        .unwrap();
    for i in 0..eps {
        s.create_endpoint(
            NewEndpoint {
                id: wagroups_core::ids::EndpointId::new(),
                org_id: org.id.clone(),
                url: format!("http://127.0.0.1:9/{i}"),
                description: None,
                event_types: None,
                waba_numbers: None,
                format: Default::default(),
                secret: wagroups_core::secret::Sealed::from_stored(
                    wagroups_core::webhook::new_secret().expose().to_string(),
                ),
                verify_token: None,
            },
            t0,
        )
        .await
        .unwrap();
    }
    let conc = 64;
    // creates
    let (c0, w0) = (writer_cpu(), Instant::now());
    let mut set = tokio::task::JoinSet::new();
    for k in 0..conc {
        let s = s.clone();
        let org = org.id.clone();
        let nid = num.id;
        set.spawn(async move {
            for i in (k..n).step_by(conc) {
                let id = format!("g{i}");
                s.create_group(NewGroup {
                    org_id: org.clone(),
                    number_id: nid,
                    group_id: id.clone().into(),
                    subject: format!("Subject {i}"),
                    description: String::new(),
                    join_approval_mode: JoinApprovalMode::AutoApprove,
                    command_id: format!("cmd_{i}").into(),
                    command: CommandPayload::CreateGroup {
                        subject: format!("Subject {i}"),
                        description: String::new(),
                        join_approval_mode: wagroups_core::model::JoinApprovalMode::AutoApprove,
                        participants: vec![],
                        invite_fallback: true,
                    },
                    now: Timestamp::now(),
                })
                .await
                .unwrap();
            }
        });
    }
    while set.join_next().await.is_some() {}
    let (c1, w1) = (writer_cpu(), Instant::now());
    println!(
        "create_group: {:.1} us writer CPU/op, {:.0} ops/s wall",
        (c1 - c0) * 1e6 / n as f64,
        n as f64 / (w1 - w0).as_secs_f64()
    );
    // apply created (event + deliveries)
    for k in 0..conc {
        let s = s.clone();
        let nid = num.id;
        set.spawn(async move {
            for i in (k..n).step_by(conc) {
                let now = Timestamp::now();
                let input = GroupInput::Created {
                    wa_group_id: format!("120363{:012}@g.us", i),
                    invite_link: format!("https://chat.whatsapp.com/c{i}"),
                    at: now,
                    participants: vec![],
                };
                s.mutate_group(
                    GroupTarget::Request {
                        number_id: nid,
                        request_id: format!("cmd_{i}"),
                    },
                    Some(wagroups_core::store::ReportRef {
                        number_id: nid,
                        dedup_key: format!("sim:{i}"),
                        correlation: format!("120363{:012}@g.us", i),
                        held_seq: None,
                    }),
                    now,
                    Box::new(move |st| group::apply(st, &input, now)),
                )
                .await
                .unwrap();
            }
        });
    }
    while set.join_next().await.is_some() {}
    let (c2, w2) = (writer_cpu(), Instant::now());
    println!(
        "apply created ({eps} endpoints): {:.1} us writer CPU/op, {:.0} ops/s wall",
        (c2 - c1) * 1e6 / n as f64,
        n as f64 / (w2 - w1).as_secs_f64()
    );
    // record attempts in batches of 64
    let open = s.open_deliveries(None, 0, None, (n * eps) as i64).await.unwrap();
    let total = open.len();
    let batches: Vec<Vec<(i64, AttemptRecord)>> = open
        .chunks(64)
        .map(|c| {
            c.iter()
                .map(|d| {
                    (
                        d.id,
                        AttemptRecord {
                            attempted_at: Timestamp::now(),
                            status_code: Some(204),
                            latency_ms: 1,
                            error: None,
                            next: AttemptNext::Succeeded,
                        },
                    )
                })
                .collect()
        })
        .collect();
    for b in batches {
        s.record_attempts(&b).await.unwrap();
    }
    let (c3, w3) = (writer_cpu(), Instant::now());
    println!(
        "record_attempts: {:.1} us writer CPU/delivery, {:.0} deliveries/s wall ({total})",
        (c3 - c2) * 1e6 / total as f64,
        total as f64 / (w3 - w2).as_secs_f64()
    );
}
