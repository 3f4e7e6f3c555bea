//! The store conformance suites on SQLite (a fresh database file per test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod gateway {
    use wagroups_store::SqliteStore;

    async fn sqlite_store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        (SqliteStore::open(&url).await.unwrap(), dir)
    }

    wagroups_conformance::conformance_tests!(sqlite_store());
}

mod simulated_network {
    use wagroups_store::SqliteSimStore;

    async fn sim_store() -> (SqliteSimStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("sim.db").display());
        (SqliteSimStore::open(&url).await.unwrap(), dir)
    }

    wagroups_conformance::sim_conformance_tests!(sim_store());
}

/// The simulated network lives in a file of its own; it takes over the state earlier versions
/// kept in the gateway's database, and keeps its report keys apart from any other network's.
mod simulated_network_file {
    use wagroups_core::{
        provider::ProviderEvent,
        store::sim::{SimStore, SimTarget},
        time::Timestamp,
    };
    use wagroups_store::{SqliteSimStore, SqliteStore, sim_database_url};

    #[test]
    fn sits_beside_the_gateway_database() {
        assert_eq!(
            sim_database_url("sqlite:///data/wagroups.db").unwrap(),
            "sqlite:///data/wagroups.sim.db"
        );
        assert_eq!(sim_database_url("sqlite://gw").unwrap(), "sqlite://gw.sim");
    }

    #[tokio::test]
    async fn takes_over_the_state_kept_in_the_gateway_database() {
        let dir = tempfile::tempdir().unwrap();
        let gw = dir.path().join("wagroups.db");
        let gw_url = format!("sqlite://{}", gw.display());
        SqliteStore::open(&gw_url).await.unwrap();
        // What a 0.1 server left: a group, a member, one report still queued and the ID
        // sequence of reports already delivered.
        let report = ProviderEvent::ParticipantLeft {
            wa_group_id: "120363000000000001@g.us".into(),
            phone: "919999999999".into(),
            at: Timestamp(1_700_000_000_000),
        };
        {
            let c = rusqlite::Connection::open(&gw).unwrap();
            c.execute_batch(
                "INSERT INTO sim_groups (jid, waba_number, profile, create_key, subject, description, \
                 approval_required, invite_code, created_at) VALUES ('120363000000000001@g.us', '15550100001', \
                 'cloud', 'cmd_1', 'Old', '', 0, 'OLDCODE', 1700000000000); \
                 INSERT INTO sim_members (jid, phone, role, state) \
                 VALUES ('120363000000000001@g.us', '15550100001', 'superadmin', 'member');",
            )
            .unwrap();
            c.execute(
                "INSERT INTO sim_outbox (id, waba_number, report) VALUES (41, '15550100001', ?1)",
                [serde_json::to_string(&report).unwrap()],
            )
            .unwrap();
            c.execute("UPDATE sqlite_sequence SET seq = 500 WHERE name = 'sim_outbox'", [])
                .unwrap();
        }
        let sim_url = sim_database_url(&gw_url).unwrap();
        let sim = SqliteSimStore::open_importing(&sim_url, Some(&gw_url)).await.unwrap();
        let g = sim
            .sim_group(SimTarget::InviteCode("OLDCODE".into()))
            .await
            .unwrap()
            .expect("the group came over");
        assert_eq!(g.members.len(), 1);
        let queued = sim.sim_outbox(0, 10).await.unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].report, report);
        assert_eq!(
            queued[0].dedup_key, "sim:41",
            "the key the gateway may already have applied"
        );
        // A new report continues the old sequence.
        sim.sim_mutate(
            SimTarget::Jid("120363000000000001@g.us".into()),
            Default::default(),
            Box::new(move |_| {
                Ok(wagroups_core::store::sim::SimChange {
                    reports: vec![report.clone()],
                    ..Default::default()
                })
            }),
        )
        .await
        .unwrap();
        let next = sim.sim_outbox(41, 10).await.unwrap();
        assert!(next[0].id > 500, "{}", next[0].id);
        assert!(
            next[0].dedup_key.starts_with("sim:") && next[0].dedup_key != format!("sim:{}", next[0].id),
            "new reports are keyed by the network's own identity: {}",
            next[0].dedup_key
        );
        // Opened again, it does not import twice.
        drop(sim);
        let again = SqliteSimStore::open_importing(&sim_url, Some(&gw_url)).await.unwrap();
        let both = again.sim_outbox(0, 10).await.unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(
            both[1].dedup_key, next[0].dedup_key,
            "the same identity after a restart"
        );
        // The gateway's copy was emptied: a network made later (the file deleted) is new.
        drop(again);
        for f in ["wagroups.sim.db", "wagroups.sim.db-wal", "wagroups.sim.db-shm"] {
            let _ = std::fs::remove_file(dir.path().join(f));
        }
        let fresh = SqliteSimStore::open_importing(&sim_url, Some(&gw_url)).await.unwrap();
        assert!(
            fresh
                .sim_find_group(SimTarget::InviteCode("OLDCODE".into()))
                .await
                .unwrap()
                .is_none()
        );
        assert!(fresh.sim_outbox(0, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_new_network_keys_its_reports_apart() {
        let dir = tempfile::tempdir().unwrap();
        let mut prefixes = Vec::new();
        for name in ["a.sim.db", "b.sim.db"] {
            let url = format!("sqlite://{}", dir.path().join(name).display());
            let sim = SqliteSimStore::open(&url).await.unwrap();
            sim.sim_create_group(
                wagroups_core::store::sim::SimGroup {
                    jid: "120363000000000002@g.us".into(),
                    waba_number: "15550100001".into(),
                    profile: wagroups_core::model::Profile::Cloud,
                    create_key: "cmd_2".into(),
                    subject: "New".into(),
                    description: String::new(),
                    approval_required: false,
                    invite_code: "NEWCODE".into(),
                    created_at: Timestamp(1_700_000_000_000),
                    announcement_only: false,
                    locked: false,
                    deleted: false,
                    suspended: false,
                },
                vec![],
                vec![ProviderEvent::ParticipantLeft {
                    wa_group_id: "120363000000000002@g.us".into(),
                    phone: "919999999999".into(),
                    at: Timestamp(1_700_000_000_000),
                }],
            )
            .await
            .unwrap();
            let key = sim.sim_outbox(0, 1).await.unwrap().remove(0).dedup_key;
            assert!(key.starts_with("sim:") && key.ends_with(":1"), "{key}");
            prefixes.push(key);
        }
        assert_ne!(prefixes[0], prefixes[1], "report 1 of two networks are two reports");
    }
}

/// Keys and numbers are held in memory, yet a change made through another store on the same
/// file (the CLI beside a running server) is seen by the next lookup.
mod auth_lookups {
    use wagroups_core::{
        model::{JoinApprovalMode, Profile, ProviderKind},
        store::{NewApiKey, NewNumber, prelude::*},
        time::Timestamp,
    };
    use wagroups_store::SqliteStore;

    #[tokio::test]
    async fn see_changes_made_by_another_process_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("gw.db").display());
        let server = SqliteStore::open(&url).await.unwrap();
        let cli = SqliteStore::open(&url).await.unwrap();
        let t = Timestamp(1_700_000_000_000);
        let org = cli
            .create_org(wagroups_core::store::NewOrg::named("o"), t)
            .await
            .unwrap()
            .unwrap();
        let number = NewNumber {
            org_id: org.id.clone(),
            waba_number: "15550000001".into(),
            provider: ProviderKind::Simulated,
            profile: Profile::Cloud,
            default_join_approval_mode: JoinApprovalMode::AutoApprove,
            provider_config: serde_json::json!({}),
            provider_ref: None,
        };
        let n = cli.add_number(number, t).await.unwrap().unwrap();
        let key = cli
            .create_api_key(
                NewApiKey {
                    id: wagroups_core::ids::ApiKeyId::new(),
                    org_id: org.id.clone(),
                    name: None,
                    key_hash: "h1".into(),
                    numbers: None,
                },
                t,
            )
            .await
            .unwrap();
        // Found, twice (the second from memory).
        for _ in 0..2 {
            assert_eq!(
                server.find_api_key("h1").await.unwrap().map(|k| k.id),
                Some(key.id.clone())
            );
            assert!(!server.find_number("15550000001").await.unwrap().unwrap().disabled);
            assert!(!server.get_number(n.id).await.unwrap().unwrap().disabled);
        }
        assert!(cli.revoke_api_key(&key.id, t).await.unwrap());
        assert!(server.find_api_key("h1").await.unwrap().is_none(), "revoked elsewhere");
        cli.set_number_disabled("15550000001", true).await.unwrap();
        assert!(server.find_number("15550000001").await.unwrap().unwrap().disabled);
        assert!(server.get_number(n.id).await.unwrap().unwrap().disabled);
        // Unknown keys are answered from the database each time.
        assert!(server.find_api_key("nope").await.unwrap().is_none());
    }
}

mod secret_key {
    use wagroups_core::secret::SecretKey;
    use wagroups_store::{
        SqliteStore,
        keys::{KeyError, key_file, secret_key},
    };

    async fn fresh() -> (tempfile::TempDir, String, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        (dir, url, store)
    }

    #[tokio::test]
    async fn a_key_file_is_made_on_first_use_private_and_kept() {
        let (_dir, url, store) = fresh().await;
        assert!(
            secret_key(&store, &url, None, false).await.unwrap().is_none(),
            "none yet, none made"
        );
        let file = key_file(&url).unwrap();
        assert!(!file.exists());
        let key = secret_key(&store, &url, None, true).await.unwrap().unwrap();
        assert!(file.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let sealed = key.seal("p", "s");
        let again = secret_key(&store, &url, None, false).await.unwrap().unwrap();
        assert_eq!(
            again.open("p", &sealed).unwrap().expose(),
            "s",
            "the same key is read back"
        );
    }

    #[tokio::test]
    async fn a_lost_or_replaced_key_is_a_clear_error() {
        let (_dir, url, store) = fresh().await;
        secret_key(&store, &url, None, true).await.unwrap().unwrap();
        let file = key_file(&url).unwrap();
        // Another key in the environment does not open what the file's key sealed.
        let other = SecretKey::generate().to_text();
        let e = secret_key(&store, &url, Some(&other), false).await.unwrap_err();
        assert!(matches!(e, KeyError::WrongKey { .. }), "{e}");
        assert!(e.to_string().contains("WAGROUPS_SECRET_KEY"), "{e}");
        // The key file gone: refused, never a new key.
        std::fs::remove_file(&file).unwrap();
        for create in [false, true] {
            let e = secret_key(&store, &url, None, create).await.unwrap_err();
            assert!(matches!(e, KeyError::Missing { .. }), "{e}");
            assert!(e.to_string().contains(&file.display().to_string()), "{e}");
        }
        assert!(!file.exists());
        // A key that is not one.
        let e = secret_key(&store, &url, Some("short"), false).await.unwrap_err();
        assert!(matches!(e, KeyError::Unreadable { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_key_from_the_environment_is_used_and_no_file_is_written() {
        let (_dir, url, store) = fresh().await;
        let key = SecretKey::generate();
        let got = secret_key(&store, &url, Some(&key.to_text()), true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.open("p", &key.seal("p", "x")).unwrap().expose(), "x");
        assert!(!key_file(&url).unwrap().exists());
        assert!(
            secret_key(&store, &url, Some(&key.to_text()), false)
                .await
                .unwrap()
                .is_some()
        );
    }
}
