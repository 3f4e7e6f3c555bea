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

const NUMBER: &str = "15550400001";
const PHONE_NUMBER_ID: &str = "106540352242922";

/// A server with organisation `acme`, its cloud-api number on `graph`, a key, and a customer
/// webhook endpoint on `receiver`; returns the key and the endpoint's secret.
async fn cloud_server(graph: &FakeGraph, receiver: &Receiver) -> (TestServer, String, String) {
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

    assert!(
        graph.violations().is_empty(),
        "requests outside Meta's document: {:?}",
        graph.violations()
    );
}
