//! Groups on a cloud-api number, against a fake of Meta's Graph API that holds every request
//! to Meta's OpenAPI document and confirms by signed webhook, as Meta does.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    cloud_numbers::{APP_SECRET, VERIFY, add_args},
    fake_graph::FakeGraph,
    harness::{TestServer, eventually},
    receiver::{Behaviour, Receiver, verify},
};

pub(crate) const NUMBER: &str = "15550400001";
pub(crate) const PHONE_NUMBER_ID: &str = "106540352242922";

/// A server with organisation `acme`, its cloud-api number on `graph`, a key, and a customer
/// webhook endpoint on `receiver`; returns the key and the endpoint's secret.
pub(crate) async fn cloud_server(graph: &FakeGraph, receiver: &Receiver) -> (TestServer, String, String) {
    let s = TestServer::start_with(&["--allow-private-webhook-targets"]).await;
    s.cli(&["orgs", "create", "acme"]).await;
    let token_file = s.dir().join("token.txt");
    std::fs::write(&token_file, "EAAG-token").unwrap();
    let token_file = token_file.display().to_string();
    let mut args = add_args(NUMBER, PHONE_NUMBER_ID, &token_file);
    let graph_url = graph.url();
    args.extend(["--graph-url", &graph_url]);
    s.cli_env(&args, &[("WAGROUPS_VERIFY_TOKEN", VERIFY)]).await;
    graph.send_webhooks_to(s.url("/providers/meta/webhook"));
    let key = s.new_key("acme", None).await;
    let (st, ep) = s
        .post("/v1/webhook-endpoints", &key, json!({ "url": receiver.url }))
        .await;
    assert_eq!(st, 201, "{ep}");
    let secret = ep["secret"].as_str().unwrap().to_string();
    (s, key, secret)
}

/// Waits until the group's status is `status`; returns it.
async fn wait_status(s: &TestServer, key: &str, id: &str, status: &str) -> Value {
    eventually(Duration::from_secs(20), || async {
        let (st, g) = s.get(&format!("/v1/groups/{id}"), key).await;
        (st == 200 && g["status"] == status).then_some(g)
    })
    .await
    .unwrap_or_else(|| panic!("group {id} did not become {status}; log:\n{}", s.log()))
}

#[tokio::test]
async fn groups_are_created_on_meta_and_confirmed_by_its_signed_webhook() {
    let graph = FakeGraph::start(APP_SECRET).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (s, key, endpoint_secret) = cloud_server(&graph, &receiver).await;

    // The native create: accepted, sent to Meta, active once Meta's webhook confirms it.
    let (st, created) = s
        .post(
            "/v1/groups",
            &key,
            json!({ "wabaNumber": NUMBER, "subject": "Support 42", "description": "Order 42",
                    "joinApprovalMode": "approval_required" }),
        )
        .await;
    assert_eq!(st, 202, "{created}");
    assert_eq!(created["status"], "pending");
    let id = created["groupId"].as_str().unwrap().to_string();
    let g = wait_status(&s, &key, &id, "active").await;
    assert!(g["waGroupId"].as_str().unwrap().starts_with("Y2FwaV9ncm91cDo"), "{g}");
    assert!(
        g["inviteLink"]
            .as_str()
            .unwrap()
            .starts_with("https://chat.whatsapp.com/"),
        "{g}"
    );
    let create = graph
        .calls()
        .into_iter()
        .find(|c| c.operation == "createGroup")
        .expect("Meta was asked to create the group");
    assert_eq!(
        (create.method.as_str(), create.path.as_str()),
        ("POST", format!("/v23.0/{PHONE_NUMBER_ID}/groups").as_str())
    );
    assert_eq!(
        create.body,
        json!({ "messaging_product": "whatsapp", "subject": "Support 42", "description": "Order 42",
                "join_approval_mode": "approval_required" })
    );
    // The customer hears of it, signed, as from the simulated network.
    let delivered = eventually(Duration::from_secs(15), || async {
        receiver
            .accepted()
            .into_iter()
            .find(|r| r.json["eventType"] == "GROUP_CREATED" && r.json["groupId"] == id.as_str())
    })
    .await
    .expect("GROUP_CREATED delivered");
    assert!(verify(&endpoint_secret, &delivered));
    assert_eq!(delivered.json["waGroupId"], g["waGroupId"]);
    assert_eq!(delivered.json["inviteLink"], g["inviteLink"]);

    // DoubleTick's create goes the same way.
    let r = s
        .http
        .post(s.url("/whatsapp/wa-group/create"))
        .header("authorization", key.as_str())
        .json(&json!({ "wabaNumber": NUMBER, "subject": "From DoubleTick" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    wait_status(&s, &key, body["groupId"].as_str().unwrap(), "active").await;

    // Meta refusing at once (not eligible), and accepting then failing by webhook (limit
    // reached): both end failed with Meta's code, as GROUP_CREATE_FAILED.
    for (subject, code) in [("Refused [sync 131215]", "131215"), ("Late [fail 131211]", "131211")] {
        let id = s
            .create_group(&key, json!({ "wabaNumber": NUMBER, "subject": subject }))
            .await;
        let g = wait_status(&s, &key, &id, "failed").await;
        assert!(g["failureReason"].as_str().unwrap().starts_with(code), "{g}");
        let events = s.events(&key, &id).await;
        assert_eq!(events[0]["eventType"], "GROUP_CREATE_FAILED", "{events:?}");
        assert_eq!(events[0]["error"]["code"], code);
    }
    // Participants at creation: Meta's create takes none, so once Meta confirms the group
    // each is sent the invite template (Meta cannot deliver to the second); the answer waits
    // for it and reports each one.
    graph.undeliverable("16505551235");
    let creates = graph.count("createGroup");
    let (st, created) = s
        .post(
            "/v1/groups",
            &key,
            json!({ "wabaNumber": NUMBER, "subject": "With people",
                    "participants": ["16505551234", "16505551235"] }),
        )
        .await;
    assert_eq!(st, 202, "{created}");
    assert_eq!(created["status"], "active", "{created}");
    assert_eq!(created["results"][0]["status"], "invited", "{created}");
    assert!(
        created["results"][0]["inviteLink"]
            .as_str()
            .unwrap()
            .starts_with("https://chat.whatsapp.com/"),
        "{created}"
    );
    assert_eq!(created["results"][1]["status"], "not_on_whatsapp", "{created}");
    let with_people = created["groupId"].as_str().unwrap().to_string();
    let wa = created["waGroupId"].as_str().unwrap().to_string();
    assert_eq!(graph.count("createGroup") - creates, 1);
    let create = graph
        .calls()
        .into_iter()
        .rfind(|c| c.operation == "createGroup")
        .unwrap();
    assert!(
        create.body.get("participants").is_none(),
        "Meta's create takes no participants"
    );
    assert!(graph.invites().contains(&("16505551234".to_string(), wa.clone())));
    let events = s.events(&key, &with_people).await;
    let types: Vec<&str> = events.iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    assert_eq!(types, ["GROUP_CREATED", "GROUP_PARTICIPANT_INVITED"], "{events:?}");
    assert_eq!(events[1]["customerPhone"], "16505551234");

    assert!(
        graph.violations().is_empty(),
        "requests outside Meta's document: {:?}",
        graph.violations()
    );
}

/// The reports the gateway's inbox has not applied (held or dead), read from its database:
/// what a failing wait prints.
fn unapplied_reports(s: &TestServer) -> Vec<String> {
    let db = rusqlite::Connection::open(s.dir().join("wagroups.db")).unwrap();
    db.prepare(
        "SELECT dedup_key || ' ' || status || ' ' || attempts || ' ' || coalesce(next_attempt_at, 0) || ' ' \
         || coalesce(error, '') || ' ' || coalesce(report, '') FROM provider_inbox WHERE status != 'applied'",
    )
    .unwrap()
    .query_map([], |r| r.get(0))
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

/// Waits until the inbox holds exactly `n` reports (per `/metrics`); panics with them if not.
async fn wait_held(s: &TestServer, n: f64, why: &str) {
    let reached = eventually(Duration::from_secs(15), || async {
        (crate::cloud_numbers::gauge(s, "wagroups_provider_reports_held").await == n).then_some(())
    })
    .await;
    assert!(reached.is_some(), "{why}: {:?}", unapplied_reports(s));
}

/// Waits until Meta got `n` group creations.
async fn wait_creates(graph: &FakeGraph, n: usize) {
    let sent = eventually(Duration::from_secs(15), || async {
        (graph.count("createGroup") == n).then_some(())
    })
    .await;
    assert!(
        sent.is_some(),
        "Meta got {} creates, not {n}",
        graph.count("createGroup")
    );
}

/// `PATCH /v1/groups/{id}` with `body`.
async fn patch(s: &TestServer, key: &str, id: &str, body: Value) -> (u16, Value) {
    s.send(reqwest::Method::PATCH, &format!("/v1/groups/{id}"), key, Some(body))
        .await
}

/// The members of the group (besides the business), as the gateway has them.
async fn members(s: &TestServer, key: &str, id: &str) -> Vec<String> {
    let (_, p) = s.get(&format!("/v1/groups/{id}/participants"), key).await;
    p["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "member" && p["isBusiness"] == false)
        .map(|p| p["phone"].as_str().unwrap().to_string())
        .collect()
}

async fn wait_members(s: &TestServer, key: &str, id: &str, want: &[&str]) {
    let ok = eventually(Duration::from_secs(15), || async {
        let mut m = members(s, key, id).await;
        m.sort();
        (m == want).then_some(())
    })
    .await;
    assert!(
        ok.is_some(),
        "members never became {want:?}: {:?}",
        members(s, key, id).await
    );
}

async fn wait_events(s: &TestServer, key: &str, id: &str, n: usize) -> Vec<String> {
    let types = |events: Vec<Value>| -> Vec<String> {
        events
            .iter()
            .map(|e| e["eventType"].as_str().unwrap_or("").to_string())
            .collect()
    };
    match eventually(Duration::from_secs(15), || async {
        let events = s.events(key, id).await;
        (events.len() >= n).then(|| types(events))
    })
    .await
    {
        Some(t) => t,
        None => panic!("fewer than {n} events: {:?}", types(s.events(key, id).await)),
    }
}

#[tokio::test]
async fn a_cloud_group_is_managed_through_meta() {
    let graph = FakeGraph::start(APP_SECRET).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (s, key, _) = cloud_server(&graph, &receiver).await;
    let id = s
        .create_group(
            &key,
            json!({ "wabaNumber": NUMBER, "subject": "Managed", "joinApprovalMode": "approval_required" }),
        )
        .await;
    let g = wait_status(&s, &key, &id, "active").await;
    let wa = g["waGroupId"].as_str().unwrap().to_string();
    let (a, b, c, d) = ("16505550001", "16505550002", "16505550003", "16505550004");
    graph.user_joins(&wa, a).await;
    graph.user_joins(&wa, b).await;
    wait_members(&s, &key, &id, &[a, b]).await;

    // A new subject: Meta confirms it by webhook (the answer named no request ID).
    let (st, g) = patch(&s, &key, &id, json!({ "subject": "Renamed" })).await;
    assert_eq!(st, 200, "{g}");
    assert_eq!(g["subject"], "Renamed");
    assert_eq!(graph.group(&wa).unwrap().subject, "Renamed");
    // What Meta cannot do is refused, saying so.
    let (st, e) = patch(&s, &key, &id, json!({ "joinApprovalMode": "auto_approve" })).await;
    assert_eq!(st, 422, "{e}");

    // Removing a member and someone who is not one: per-item results from Meta's webhook.
    let (st, r) = s
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/groups/{id}/participants"),
            &key,
            Some(json!({ "participants": [a, "16505559999"] })),
        )
        .await;
    assert_eq!(st, 207, "{r}");
    assert_eq!(r["results"][0]["status"], "removed");
    assert_eq!(r["results"][1]["status"], "not_a_member");
    wait_members(&s, &key, &id, &[b]).await;

    // Meta adds nobody: with the number's invite template, each is sent the link 1:1 and is
    // invited; one Meta cannot deliver to is told apart; a member and a removed user (whom
    // WhatsApp keeps out of the link) are not sent it.
    let (e, f) = ("16505550009", "16505550008");
    graph.undeliverable(f);
    let (st, r) = s
        .post(
            &format!("/v1/groups/{id}/participants"),
            &key,
            json!({ "participants": [e, f, b, a] }),
        )
        .await;
    assert_eq!(st, 207, "{r}");
    let link = graph.group(&wa).unwrap().invite_link;
    assert_eq!(r["results"][0]["status"], "invited", "{r}");
    assert_eq!(r["results"][0]["inviteLink"], link.as_str());
    assert_eq!(r["results"][1]["status"], "not_on_whatsapp", "{r}");
    assert_eq!(r["results"][2]["status"], "already_member", "{r}");
    assert_eq!(r["results"][3]["status"], "removed_cannot_rejoin", "{r}");
    assert_eq!(
        graph.invites(),
        [(e.to_string(), wa.clone())],
        "Meta sent the template to e only"
    );
    let sent = graph
        .calls()
        .into_iter()
        .find(|c| c.operation == "sendMessage")
        .unwrap();
    assert_eq!(sent.body["template"]["name"], "group_invite_link");
    assert_eq!(sent.body["template"]["language"]["code"], "en");
    let (_, p) = s.get(&format!("/v1/groups/{id}/participants"), &key).await;
    assert!(
        p["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["phone"] == e && p["state"] == "invited"),
        "{p}"
    );
    // Without a template, each is answered invite_required, with the link to send.
    s.cli(&["numbers", "update", NUMBER, "--invite-template", ""]).await;
    let (st, r) = s
        .post(
            &format!("/v1/groups/{id}/participants"),
            &key,
            json!({ "participants": ["16505550007"] }),
        )
        .await;
    assert_eq!(st, 207, "{r}");
    assert_eq!(r["results"][0]["status"], "invite_required");
    assert_eq!(r["results"][0]["inviteLink"], link.as_str());
    assert_eq!(graph.invites().len(), 1, "no template sent without one configured");

    // A new link, answered at once; the old one is gone.
    let (st, r) = s
        .post(&format!("/v1/groups/{id}/invite-link/reset"), &key, json!({}))
        .await;
    assert_eq!(st, 200, "{r}");
    let link = r["inviteLink"].as_str().unwrap().to_string();
    assert_eq!(link, graph.group(&wa).unwrap().invite_link);
    let (_, l) = s.get(&format!("/v1/groups/{id}/invite-link"), &key).await;
    assert_eq!(l["inviteLink"], link.as_str());

    // Join requests: one approved, one rejected, one unknown.
    let rc = graph.user_requests(&wa, c).await;
    let rd = graph.user_requests(&wa, d).await;
    let listed = eventually(Duration::from_secs(15), || async {
        let (_, l) = s.get(&format!("/v1/groups/{id}/join-requests"), &key).await;
        (l["data"].as_array().map(|a| a.len()) == Some(2)).then_some(l)
    })
    .await
    .expect("two join requests listed");
    assert_eq!(listed["data"][0]["joinRequestId"], rc.as_str());
    let (st, r) = s
        .post(
            &format!("/v1/groups/{id}/join-requests/approve"),
            &key,
            json!({ "joinRequestIds": [rc, "MTY0NjcwNDM1OTU6unknown"] }),
        )
        .await;
    assert_eq!(st, 207, "{r}");
    assert_eq!(r["results"][0]["status"], "approved");
    assert_eq!(r["results"][1]["status"], "not_found");
    // The approved user joins when Meta says so.
    wait_members(&s, &key, &id, &[b, c]).await;
    let (st, r) = s
        .post(
            &format!("/v1/groups/{id}/join-requests/reject"),
            &key,
            json!({ "joinRequestIds": [rd] }),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["results"][0]["status"], "rejected");

    // A member leaves; the group is deleted.
    graph.user_leaves(&wa, b).await;
    wait_members(&s, &key, &id, &[c]).await;
    let (st, g) = s
        .send(reqwest::Method::DELETE, &format!("/v1/groups/{id}"), &key, None)
        .await;
    assert_eq!(st, 200, "{g}");
    wait_status(&s, &key, &id, "deleted").await;

    let types = wait_events(&s, &key, &id, 13).await;
    assert_eq!(
        types,
        [
            "GROUP_CREATED",
            "GROUP_PARTICIPANT_JOINED",
            "GROUP_PARTICIPANT_JOINED",
            "GROUP_UPDATED",
            "GROUP_PARTICIPANT_REMOVED",
            "GROUP_PARTICIPANT_INVITED",
            "GROUP_INVITE_LINK_RESET",
            "GROUP_JOIN_REQUEST_CREATED",
            "GROUP_JOIN_REQUEST_CREATED",
            "GROUP_PARTICIPANT_JOINED",
            "GROUP_JOIN_REQUEST_REJECTED",
            "GROUP_PARTICIPANT_LEFT",
            "GROUP_DELETED",
        ]
    );
    assert!(
        graph.violations().is_empty(),
        "requests outside Meta's document: {:?}",
        graph.violations()
    );
}

/// The number's HEALTH column in `numbers list`.
async fn health(s: &TestServer) -> String {
    let listed = s.cli(&["numbers", "list", "--org", "acme"]).await;
    listed
        .lines()
        .find(|l| l.starts_with(NUMBER))
        .and_then(|l| l.split('\t').nth(6))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn a_refused_token_pauses_the_number_until_a_new_one_and_rate_limits_are_waited_out() {
    let graph = FakeGraph::start(APP_SECRET).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (s, key, _) = cloud_server(&graph, &receiver).await;

    // Meta stops taking the token (190): the create waits, the number says why, and Meta is
    // not asked again while nothing changed.
    graph.revoke("EAAG-token");
    let id = s
        .create_group(&key, json!({ "wabaNumber": NUMBER, "subject": "Waits for a token" }))
        .await;
    let paused = eventually(Duration::from_secs(15), || async {
        (health(&s).await == "credentials_invalid").then_some(())
    })
    .await;
    assert!(paused.is_some(), "health: {}", health(&s).await);
    let asked = graph.count("createGroup");
    assert_eq!(asked, 1, "one call, then the number waits");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        graph.count("createGroup"),
        asked,
        "not hammered while the token is refused"
    );
    let (_, g) = s.get(&format!("/v1/groups/{id}"), &key).await;
    assert_eq!(g["status"], "pending");

    // A new token: the waiting create goes out at once and completes.
    s.cli(&["numbers", "update", NUMBER, "--access-token", "EAAG-new-token"])
        .await;
    wait_status(&s, &key, &id, "active").await;
    assert_eq!(health(&s).await, "ok");

    // A rate limit with Retry-After: the number pauses that long, then the create is sent again.
    graph.fail_next(131208, Some(2));
    let before = graph.count("createGroup");
    let started = std::time::Instant::now();
    let id = s
        .create_group(&key, json!({ "wabaNumber": NUMBER, "subject": "After the pause" }))
        .await;
    let limited = eventually(Duration::from_secs(10), || async {
        health(&s).await.starts_with("rate_limited until").then_some(())
    })
    .await;
    assert!(limited.is_some(), "health: {}", health(&s).await);
    wait_status(&s, &key, &id, "active").await;
    assert!(started.elapsed() >= Duration::from_secs(2), "Retry-After honoured");
    assert_eq!(
        graph.count("createGroup") - before,
        2,
        "once refused, once after the pause"
    );
    assert_eq!(health(&s).await, "ok");

    // `numbers check` asks Meta once and says what is wrong in plain words.
    let out = s.cli(&["numbers", "check", NUMBER]).await;
    assert!(out.contains("in order"), "{out}");
    graph.fail_next(131215, None);
    let (ok, _, err) = s.cli_status(&["numbers", "check", NUMBER]).await;
    assert!(!ok && err.contains("may not use the Groups API"), "{err}");
    assert_eq!(health(&s).await, "not_eligible");
    graph.revoke("EAAG-new-token");
    let (ok, _, err) = s.cli_status(&["numbers", "check", NUMBER]).await;
    assert!(
        !ok && err.contains("refuses its access token") && err.contains("numbers update"),
        "{err}"
    );
    assert_eq!(health(&s).await, "credentials_invalid");
    assert!(graph.violations().is_empty(), "{:?}", graph.violations());
}

#[tokio::test]
async fn webhooks_lost_on_purpose_are_recovered_by_reconciliation() {
    let graph = FakeGraph::start(APP_SECRET).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (mut s, key, _) = cloud_server(&graph, &receiver).await;
    let id = s
        .create_group(&key, json!({ "wabaNumber": NUMBER, "subject": "Reconciled" }))
        .await;
    let wa = wait_status(&s, &key, &id, "active").await["waGroupId"]
        .as_str()
        .unwrap()
        .to_string();
    let gone = s
        .create_group(&key, json!({ "wabaNumber": NUMBER, "subject": "Deleted at Meta" }))
        .await;
    let gone_wa = wait_status(&s, &key, &gone, "active").await["waGroupId"]
        .as_str()
        .unwrap()
        .to_string();
    let (a, b, c) = ("16505550011", "16505550012", "16505550013");
    graph.user_joins(&wa, a).await;
    wait_members(&s, &key, &id, &[a]).await;

    // Meta's webhooks are lost: b joins, a leaves, the subject changes, a group is deleted.
    graph.lose_webhooks(true);
    graph.user_joins(&wa, b).await;
    graph.user_leaves(&wa, a).await;
    graph.change_group(&wa, |g| g.subject = "Renamed at Meta".into());
    graph.change_group(&gone_wa, |g| g.deleted = true);
    assert_eq!(members(&s, &key, &id).await, [a], "the gateway heard nothing");

    // `wagroups reconcile` asks Meta and writes what differs.
    let out = s.cli(&["reconcile", "--number", NUMBER]).await;
    assert!(out.contains("2 groups compared, 4 changes applied"), "{out}");
    wait_members(&s, &key, &id, &[b]).await;
    let (_, g) = s.get(&format!("/v1/groups/{id}"), &key).await;
    assert_eq!(g["subject"], "Renamed at Meta");
    wait_status(&s, &key, &gone, "deleted").await;
    let events = s.events(&key, &id).await;
    let joined = events
        .iter()
        .find(|e| e["eventType"] == "GROUP_PARTICIPANT_JOINED" && e["customerPhone"] == b)
        .expect("b's join appended");
    assert_eq!(joined["reason"], "reconciled");
    let left = events
        .iter()
        .find(|e| e["eventType"] == "GROUP_PARTICIPANT_LEFT" && e["customerPhone"] == a)
        .expect("a's leave appended");
    assert_eq!(left["reason"], "reconciled", "{left}");
    let renamed = events
        .iter()
        .find(|e| e["eventType"] == "GROUP_UPDATED")
        .expect("the rename appended");
    assert_eq!(renamed["reason"], "reconciled", "{renamed}");
    let deleted = s
        .events(&key, &gone)
        .await
        .into_iter()
        .find(|e| e["eventType"] == "GROUP_DELETED")
        .expect("the deletion appended");
    assert_eq!(deleted["reason"], "reconciled", "{deleted}");
    // Events from Meta's own webhooks carry no such reason.
    assert!(
        events
            .iter()
            .filter(|e| e["eventType"] == "GROUP_CREATED")
            .all(|e| e.get("reason").is_none())
    );
    // The running server delivers what the CLI appended.
    let delivered = eventually(Duration::from_secs(15), || async {
        receiver
            .accepted()
            .into_iter()
            .find(|r| r.json["eventType"] == "GROUP_PARTICIPANT_JOINED" && r.json["reason"] == "reconciled")
    })
    .await;
    assert!(delivered.is_some(), "the reconciled join reached the customer");
    // Nothing left to do: a second pass changes nothing.
    let out = s.cli(&["reconcile"]).await;
    assert!(out.contains("1 groups compared, 0 changes applied"), "{out}");

    // On its schedule (and at start), the server does the same by itself.
    s.restart(&["--allow-private-webhook-targets", "--reconcile-interval", "1s"])
        .await;
    graph.send_webhooks_to(s.url("/providers/meta/webhook"));
    graph.user_joins(&wa, c).await;
    wait_members(&s, &key, &id, &[b, c]).await;
    assert!(graph.violations().is_empty(), "{:?}", graph.violations());
}

#[tokio::test]
async fn a_server_killed_while_meta_creates_a_group_finishes_it_once() {
    let graph = FakeGraph::start(APP_SECRET).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (mut s, key, _) = cloud_server(&graph, &receiver).await;
    // Meta makes the group but its answer is slow, and its webhook late.
    graph.hold_webhooks();
    graph.slow_creates(Duration::from_secs(60));
    let id = s
        .create_group(&key, json!({ "wabaNumber": NUMBER, "subject": "Survives a crash" }))
        .await;
    wait_creates(&graph, 1).await;
    // SIGKILL while Meta's answer is on its way: the gateway never learns the request ID.
    s.kill().await;
    graph.slow_creates(Duration::ZERO);
    s.restart(&["--allow-private-webhook-targets"]).await;
    graph.send_webhooks_to(s.url("/providers/meta/webhook"));
    // At start, Meta's listing settles the creation in doubt: no second create is sent.
    let g = wait_status(&s, &key, &id, "active").await;
    assert!(
        g["inviteLink"]
            .as_str()
            .unwrap()
            .starts_with("https://chat.whatsapp.com/"),
        "{g}"
    );
    // Meta's confirmation, arriving late (recorded before Meta's request was answered), is
    // settled as already applied: not held, not given up.
    let accepted = graph.webhooks_accepted();
    graph.release_webhooks().await;
    assert_eq!(
        graph.webhooks_accepted(),
        accepted + 1,
        "the late confirmation reached the gateway"
    );
    wait_held(&s, 0.0, "the late confirmation is still held").await;
    assert_eq!(
        crate::cloud_numbers::gauge(&s, "wagroups_provider_reports_dead").await,
        0.0
    );
    assert_eq!(graph.count("createGroup"), 1, "no duplicate create sent to Meta");
    let events = s.events(&key, &id).await;
    let created: Vec<&Value> = events.iter().filter(|e| e["eventType"] == "GROUP_CREATED").collect();
    assert_eq!(created.len(), 1, "{events:?}");
    let delivered = eventually(Duration::from_secs(15), || async {
        let n = receiver
            .accepted()
            .iter()
            .filter(|r| r.json["eventType"] == "GROUP_CREATED" && r.json["groupId"] == id.as_str())
            .count();
        (n >= 1).then_some(n)
    })
    .await;
    assert_eq!(delivered, Some(1), "the customer hears of it once");
    assert!(graph.violations().is_empty(), "{:?}", graph.violations());
}

/// Where a scenario runs: the simulated network's cloud profile, or Meta (the fake Graph API).
pub(crate) enum World<'a> {
    Simulated,
    Meta(&'a FakeGraph),
}

impl World<'_> {
    pub(crate) async fn joins(&self, s: &TestServer, key: &str, group: &Value, phone: &str) {
        match self {
            World::Simulated => {
                let (st, b) = s
                    .post(
                        "/v1/sandbox/join",
                        key,
                        json!({ "phone": phone, "inviteLink": group["inviteLink"] }),
                    )
                    .await;
                assert_eq!(st, 200, "{b}");
            }
            World::Meta(graph) => graph.user_joins(group["waGroupId"].as_str().unwrap(), phone).await,
        }
    }

    /// The user asks to join (an `approval_required` group); the request's ID.
    pub(crate) async fn requests(&self, s: &TestServer, key: &str, group: &Value, phone: &str) -> String {
        match self {
            World::Simulated => {
                let (st, b) = s
                    .post(
                        "/v1/sandbox/join",
                        key,
                        json!({ "phone": phone, "inviteLink": group["inviteLink"] }),
                    )
                    .await;
                assert_eq!(st, 200, "{b}");
                b["joinRequestId"].as_str().unwrap().to_string()
            }
            World::Meta(graph) => graph.user_requests(group["waGroupId"].as_str().unwrap(), phone).await,
        }
    }

    pub(crate) async fn leaves(&self, s: &TestServer, key: &str, group: &Value, phone: &str) {
        match self {
            World::Simulated => {
                let (st, b) = s
                    .post(
                        "/v1/sandbox/leave",
                        key,
                        json!({ "phone": phone, "groupId": group["groupId"] }),
                    )
                    .await;
                assert_eq!(st, 200, "{b}");
            }
            World::Meta(graph) => graph.user_leaves(group["waGroupId"].as_str().unwrap(), phone).await,
        }
    }
}

/// What a scenario leaves behind, without what differs by nature (IDs, links, times).
#[derive(Debug, PartialEq)]
struct Outcome {
    /// Per group: its event types in order.
    events: Vec<Vec<String>>,
    /// The same, as the customer's webhooks delivered them (verified).
    delivered: Vec<Vec<String>>,
    /// Per group: status, subject, description, participant count, and each participant's
    /// phone, state and role.
    state: Vec<Value>,
    /// Per write: its HTTP status and per-item statuses.
    answers: Vec<(u16, Vec<String>)>,
}

/// Every native operation a cloud number allows, and DoubleTick's create, on `world`.
async fn scenario(
    world: World<'_>,
    s: &TestServer,
    key: &str,
    number: &str,
    receiver: &Receiver,
    secret: &str,
) -> Outcome {
    let (a, b, c) = ("16505550201", "16505550202", "16505550203");
    let mut answers = Vec::new();
    let mut note = |st: u16, r: &Value| {
        let items = r["results"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| i["status"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        answers.push((st, items));
    };
    let id = s
        .create_group(
            key,
            json!({ "wabaNumber": number, "subject": "Parity", "description": "Same either way" }),
        )
        .await;
    let group = wait_status(s, key, &id, "active").await;
    world.joins(s, key, &group, a).await;
    world.joins(s, key, &group, b).await;
    wait_members(s, key, &id, &[a, b]).await;
    let (st, r) = patch(s, key, &id, json!({ "subject": "Parity 2", "description": "Changed" })).await;
    note(st, &r);
    let path = format!("/v1/groups/{id}/participants");
    let (st, r) = s.post(&path, key, json!({ "participants": [c, a] })).await;
    note(st, &r);
    let (st, r) = s
        .send(
            reqwest::Method::DELETE,
            &path,
            key,
            Some(json!({ "participants": [b] })),
        )
        .await;
    note(st, &r);
    wait_members(s, key, &id, &[a]).await;
    let (st, r) = s.post(&path, key, json!({ "participants": [b] })).await;
    note(st, &r);
    let (st, r) = s
        .post(&format!("/v1/groups/{id}/invite-link/reset"), key, json!({}))
        .await;
    note(st, &r);
    world.leaves(s, key, &group, a).await;
    wait_members(s, key, &id, &[]).await;
    let (st, r) = s
        .send(reqwest::Method::DELETE, &format!("/v1/groups/{id}"), key, None)
        .await;
    note(st, &r);
    wait_status(s, key, &id, "deleted").await;

    let r = s
        .http
        .post(s.url("/whatsapp/wa-group/create"))
        .header("authorization", key)
        .json(&json!({ "wabaNumber": number, "subject": "From DoubleTick", "description": "Same" }))
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    note(st, &body);
    let dt = body["groupId"].as_str().unwrap().to_string();
    wait_status(s, key, &dt, "active").await;

    // Participants at creation: invited through the link (a member is added by nobody).
    let (st, r) = s
        .post(
            "/v1/groups",
            key,
            json!({ "wabaNumber": number, "subject": "With people", "participants": ["16505550204"] }),
        )
        .await;
    assert_eq!(r["results"][0]["status"], "invited", "{r}");
    note(st, &r);
    let people = r["groupId"].as_str().unwrap().to_string();
    wait_status(s, key, &people, "active").await;

    let ids = [id, dt, people];
    let mut events = Vec::new();
    let mut state = Vec::new();
    for g in &ids {
        let log = s.events(key, g).await;
        events.push(
            log.iter()
                .map(|e| e["eventType"].as_str().unwrap().to_string())
                .collect::<Vec<_>>(),
        );
        let (_, got) = s.get(&format!("/v1/groups/{g}"), key).await;
        let mut people: Vec<Value> = got["participants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| json!([p["phone"], p["state"], p["role"], p["isBusiness"]]))
            .collect();
        people.sort_by_key(|p| p.to_string());
        state.push(json!([
            got["status"],
            got["subject"],
            got["description"],
            got["participantCount"],
            people
        ]));
    }
    // The customer's webhooks: each group's events, in order, signed.
    let mut delivered = Vec::new();
    for (g, want) in ids.iter().zip(&events) {
        let got = eventually(Duration::from_secs(20), || async {
            let mut seen: Vec<(i64, String)> = receiver
                .accepted()
                .iter()
                .filter(|r| r.json["groupId"] == g.as_str() && verify(secret, r))
                .map(|r| {
                    (
                        r.json["sequence"].as_i64().unwrap(),
                        r.json["eventType"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            seen.sort();
            seen.dedup();
            let types: Vec<String> = seen.into_iter().map(|(_, t)| t).collect();
            (types.len() >= want.len()).then_some(types)
        })
        .await
        .unwrap_or_else(|| panic!("the customer did not get {want:?} for {g}"));
        delivered.push(got);
    }
    Outcome {
        events,
        delivered,
        state,
        answers,
    }
}

#[tokio::test]
async fn a_cloud_api_number_behaves_as_the_simulated_cloud_number_does() {
    // The simulated network's cloud profile (the default organisation's number).
    let sim = TestServer::start_with(&["--allow-private-webhook-targets"]).await;
    let sim_receiver = Receiver::start(Behaviour::Ok).await;
    let (st, ep) = sim
        .post("/v1/webhook-endpoints", &sim.key, json!({ "url": sim_receiver.url }))
        .await;
    assert_eq!(st, 201, "{ep}");
    let sim_secret = ep["secret"].as_str().unwrap().to_string();
    let simulated = scenario(
        World::Simulated,
        &sim,
        &sim.key,
        crate::harness::NUMBER,
        &sim_receiver,
        &sim_secret,
    )
    .await;

    // The same on a cloud-api number, through Meta.
    let graph = FakeGraph::start(APP_SECRET).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (s, key, secret) = cloud_server(&graph, &receiver).await;
    let meta = scenario(World::Meta(&graph), &s, &key, NUMBER, &receiver, &secret).await;

    // The business number differs: in the state it is the one participant compared apart.
    let strip = |o: &Outcome, number: &str| -> Vec<Value> {
        o.state
            .iter()
            .map(|v| {
                let mut v = v.clone();
                for p in v[4].as_array_mut().unwrap() {
                    if p[0] == number {
                        p[0] = json!("BUSINESS");
                    }
                }
                v
            })
            .collect()
    };
    assert_eq!(meta.events, simulated.events, "event logs");
    assert_eq!(meta.delivered, simulated.delivered, "customer webhooks");
    assert_eq!(meta.answers, simulated.answers, "the API's answers");
    assert_eq!(
        strip(&meta, NUMBER),
        strip(&simulated, crate::harness::NUMBER),
        "final state"
    );
    assert!(graph.violations().is_empty(), "{:?}", graph.violations());
}

#[tokio::test]
async fn metas_other_error_codes_become_the_failures_they_describe() {
    let graph = FakeGraph::start(APP_SECRET).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (s, key, _) = cloud_server(&graph, &receiver).await;

    // 131214 (creation disabled for the WABA) at once: the create fails with Meta's code.
    let id = s
        .create_group(
            &key,
            json!({ "wabaNumber": NUMBER, "subject": "Kill switch [sync 131214]" }),
        )
        .await;
    let g = wait_status(&s, &key, &id, "failed").await;
    assert!(g["failureReason"].as_str().unwrap().starts_with("131214"), "{g}");
    let events = s.events(&key, &id).await;
    assert_eq!(events[0]["eventType"], "GROUP_CREATE_FAILED");
    assert_eq!(events[0]["error"]["code"], "131214");

    // Meta's own failure (code 2, "service temporarily unavailable") is retried, not failed.
    graph.fail_next(2, None);
    let before = graph.count("createGroup");
    let id = s
        .create_group(&key, json!({ "wabaNumber": NUMBER, "subject": "Retried" }))
        .await;
    let g = wait_status(&s, &key, &id, "active").await;
    let wa = g["waGroupId"].as_str().unwrap().to_string();
    assert_eq!(graph.count("createGroup") - before, 2, "refused once, sent again");

    // A throughput limit (130429) with Retry-After pauses the number, then the write goes.
    graph.fail_next(130429, Some(1));
    let (st, e) = patch(&s, &key, &id, json!({ "subject": "Throttled" })).await;
    assert_eq!(st, 503, "{e}");
    let asked = graph.count("updateGroupSettings");
    let (st, e) = patch(&s, &key, &id, json!({ "subject": "Throttled" })).await;
    assert_eq!(st, 503, "paused while rate-limited: {e}");
    assert_eq!(
        graph.count("updateGroupSettings"),
        asked,
        "not sent to Meta while paused"
    );
    let resumed = eventually(Duration::from_secs(10), || async {
        let (st, g) = patch(&s, &key, &id, json!({ "subject": "Throttled" })).await;
        (st == 200).then_some(g)
    })
    .await;
    assert_eq!(resumed.expect("the pause ends")["subject"], "Throttled");

    // A group Meta does not know (131041) or has suspended (131207): the write is refused
    // with Meta's code and message, and the record is left as it was.
    for code in [131041, 131207] {
        graph.fail_next(code, None);
        let (st, e) = patch(&s, &key, &id, json!({ "subject": "Refused" })).await;
        assert_eq!(st, 422, "{code}: {e}");
        assert_eq!(e["error"]["code"], code.to_string(), "{e}");
        let (_, g) = s.get(&format!("/v1/groups/{id}"), &key).await;
        assert_eq!(g["subject"], "Throttled");
    }
    // Removing a duplicate participant (131202): refused with Meta's code.
    graph.user_joins(&wa, "16505550301").await;
    wait_members(&s, &key, &id, &["16505550301"]).await;
    graph.fail_next(131202, None);
    let (st, e) = s
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/groups/{id}/participants"),
            &key,
            Some(json!({ "participants": ["16505550301"] })),
        )
        .await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["error"]["code"], "131202", "{e}");
    wait_members(&s, &key, &id, &["16505550301"]).await;
    assert!(graph.violations().is_empty(), "{:?}", graph.violations());
}

#[tokio::test]
async fn participants_asked_for_at_creation_are_invited_even_across_a_crash() {
    let graph = FakeGraph::start(APP_SECRET).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (mut s, key, _) = cloud_server(&graph, &receiver).await;
    // Meta confirms the group, then its first answer to the invitation is a failure of its own.
    graph.hold_webhooks();
    let (st, created) = s
        .post(
            "/v1/groups",
            &key,
            json!({ "wabaNumber": NUMBER, "subject": "Invited after a crash",
                    "participants": ["16505550401"] }),
        )
        .await;
    assert_eq!(st, 202, "{created}");
    let id = created["groupId"].as_str().unwrap().to_string();
    wait_creates(&graph, 1).await;
    graph.fail_next(2, None);
    graph.release_webhooks().await;
    let tried = eventually(Duration::from_secs(15), || async {
        (graph.count("sendMessage") == 1).then_some(())
    })
    .await;
    assert!(tried.is_some(), "the invitation was tried once the group was confirmed");
    wait_status(&s, &key, &id, "active").await;
    assert!(graph.invites().is_empty(), "Meta refused the first try");

    // The server dies before the next try; after the restart the invitation is sent.
    s.kill().await;
    s.restart(&["--allow-private-webhook-targets"]).await;
    graph.send_webhooks_to(s.url("/providers/meta/webhook"));
    let invited = eventually(Duration::from_secs(20), || async {
        let events = s.events(&key, &id).await;
        events
            .iter()
            .any(|e| e["eventType"] == "GROUP_PARTICIPANT_INVITED" && e["customerPhone"] == "16505550401")
            .then_some(())
    })
    .await;
    assert!(invited.is_some(), "the participant was invited after the restart");
    assert_eq!(graph.invites().len(), 1, "sent once");
    assert_eq!(graph.count("createGroup"), 1, "the group was not created again");
    assert!(graph.violations().is_empty(), "{:?}", graph.violations());
}

#[tokio::test]
async fn metas_webhooks_batched_reordered_and_repeated_apply_once_each() {
    let graph = FakeGraph::start(APP_SECRET).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (s, key, _) = cloud_server(&graph, &receiver).await;
    graph.hold_webhooks();
    let id = s
        .create_group(&key, json!({ "wabaNumber": NUMBER, "subject": "Batched" }))
        .await;
    let made = eventually(Duration::from_secs(15), || async {
        graph.group_with_subject("Batched")
    })
    .await;
    let wa = made.expect("Meta made the group");
    let (a, b) = ("16505550501", "16505550502");
    graph.user_joins(&wa, a).await;
    graph.user_joins(&wa, b).await;
    // One POST with the joins before the creation's confirmation, then the same POST again.
    let answers = graph.release_webhooks_batched_reversed_twice().await;
    assert_eq!(answers, [200, 200]);
    let joined = eventually(Duration::from_secs(15), || async {
        let mut m = members(&s, &key, &id).await;
        m.sort();
        (m == [a, b]).then_some(())
    })
    .await;
    assert!(
        joined.is_some(),
        "the joins were not applied: {:?}",
        unapplied_reports(&s)
    );
    let events = s.events(&key, &id).await;
    let types: Vec<&str> = events.iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["GROUP_CREATED", "GROUP_PARTICIPANT_JOINED", "GROUP_PARTICIPANT_JOINED"],
        "each applied once, the creation first"
    );
    wait_held(&s, 0.0, "nothing left held").await;
    // The customer got each event once, in order.
    let delivered = eventually(Duration::from_secs(15), || async {
        let mut seqs: Vec<i64> = receiver
            .accepted()
            .iter()
            .filter(|r| r.json["groupId"] == id.as_str())
            .map(|r| r.json["sequence"].as_i64().unwrap())
            .collect();
        seqs.sort();
        (seqs.len() >= 3).then_some(seqs)
    })
    .await;
    assert_eq!(delivered, Some(vec![1, 2, 3]));
    assert!(graph.violations().is_empty(), "{:?}", graph.violations());
}

#[tokio::test]
async fn a_participants_reports_in_the_wrong_order_leave_the_record_as_meta_last_said() {
    let graph = FakeGraph::start(APP_SECRET).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (s, key, _) = cloud_server(&graph, &receiver).await;
    graph.hold_webhooks();
    let id = s
        .create_group(&key, json!({ "wabaNumber": NUMBER, "subject": "Reordered" }))
        .await;
    let wa = eventually(Duration::from_secs(15), || async {
        graph.group_with_subject("Reordered")
    })
    .await
    .expect("Meta made the group");
    // `a` joins and leaves; `b` joins, leaves and joins again, seconds apart by Meta's
    // clock. Meta delivers it all in one POST, newest first (the creation last).
    let (a, b) = ("16505550601", "16505550602");
    graph.user_joins(&wa, a).await;
    graph.user_joins(&wa, b).await;
    graph.advance_clock(5);
    graph.user_leaves(&wa, a).await;
    graph.user_leaves(&wa, b).await;
    graph.advance_clock(5);
    graph.user_joins(&wa, b).await;
    assert_eq!(graph.release_webhooks_batched_reversed_twice().await, [200, 200]);
    wait_held(&s, 0.0, "everything applied").await;
    wait_members(&s, &key, &id, &[b]).await;
    let events = wait_events(&s, &key, &id, 4).await;
    assert_eq!(
        events,
        [
            "GROUP_CREATED",
            "GROUP_PARTICIPANT_JOINED",
            "GROUP_PARTICIPANT_JOINED",
            "GROUP_PARTICIPANT_LEFT"
        ],
        "b's newest join, then a's join and leave announced together when the join came"
    );
    let log = s.events(&key, &id).await;
    let who: Vec<(&str, &str)> = log[1..]
        .iter()
        .map(|e| (e["eventType"].as_str().unwrap(), e["customerPhone"].as_str().unwrap()))
        .collect();
    assert_eq!(
        who,
        [
            ("GROUP_PARTICIPANT_JOINED", b),
            ("GROUP_PARTICIPANT_JOINED", a),
            ("GROUP_PARTICIPANT_LEFT", a)
        ]
    );
    // What the record says is what Meta lists: reconciliation finds nothing to change.
    let out = s.cli(&["reconcile", "--number", NUMBER]).await;
    assert!(out.contains("0 changes applied"), "{out}");
    wait_members(&s, &key, &id, &[b]).await;
    assert!(graph.violations().is_empty(), "{:?}", graph.violations());
}

#[tokio::test]
async fn reports_for_a_group_wagroups_did_not_create_are_found_foreign_by_reconciliation() {
    let graph = FakeGraph::start(APP_SECRET).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (s, key, _) = cloud_server(&graph, &receiver).await;
    let ours = s
        .create_group(&key, json!({ "wabaNumber": NUMBER, "subject": "Ours" }))
        .await;
    wait_status(&s, &key, &ours, "active").await;
    // A group made at Meta by something else; a user joins it: the gateway keeps the report.
    let foreign = graph.foreign_group(PHONE_NUMBER_ID, "Made elsewhere");
    graph.user_joins(&foreign, "16505550601").await;
    wait_held(&s, 1.0, "the report is kept, in case its group becomes known").await;
    // Reconciliation sees the group in Meta's list with no record: foreign, its report dead.
    let out = s.cli(&["reconcile", "--number", NUMBER]).await;
    assert!(
        out.contains("1 groups at the provider that wagroups did not create"),
        "{out}"
    );
    assert_eq!(
        crate::cloud_numbers::gauge(&s, "wagroups_provider_reports_held").await,
        0.0
    );
    assert_eq!(
        crate::cloud_numbers::gauge(&s, "wagroups_provider_reports_dead").await,
        1.0
    );
    let (_, list) = s.get("/v1/groups", &key).await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "no group appears for it: {list}"
    );

    // A creation Meta made but whose confirmation has not come yet is not foreign.
    graph.hold_webhooks();
    let pending = s
        .create_group(&key, json!({ "wabaNumber": NUMBER, "subject": "Not confirmed yet" }))
        .await;
    let made = eventually(Duration::from_secs(15), || async {
        graph.group_with_subject("Not confirmed yet")
    })
    .await;
    assert!(made.is_some(), "Meta made it");
    let out = s.cli(&["reconcile", "--number", NUMBER]).await;
    assert!(
        out.contains("1 groups at the provider that wagroups did not create"),
        "{out}"
    );
    graph.release_webhooks().await;
    wait_status(&s, &key, &pending, "active").await;
    assert!(graph.violations().is_empty(), "{:?}", graph.violations());
}
