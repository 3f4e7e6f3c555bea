//! The administration commands.

use serde_json::json;

use crate::harness::{NUMBER, TestServer, bin};

#[tokio::test]
async fn cli_manages_orgs_numbers_and_keys_beside_a_running_server() {
    let s = TestServer::start().await;
    let out = s.cli(&["orgs", "create", "acme"]).await;
    assert!(out.contains("acme"), "{out}");
    let (ok, _, err) = s.cli_status(&["orgs", "create", "acme"]).await;
    assert!(!ok && err.contains("acme"), "duplicate org refused: {err}");

    s.cli(&[
        "numbers",
        "add",
        "--org",
        "acme",
        "--waba-number",
        "+1 555 030 0001",
        "--profile",
        "linked-device",
    ])
    .await;
    let (ok, _, err) = s
        .cli_status(&["numbers", "add", "--org", "acme", "--waba-number", "15550300001"])
        .await;
    assert!(!ok && err.contains("already"), "{err}");
    let (ok, _, err) = s
        .cli_status(&["numbers", "add", "--org", "acme", "--waba-number", "12ab"])
        .await;
    assert!(!ok && err.contains("waba-number"), "{err}");
    let (ok, _, err) = s
        .cli_status(&["numbers", "add", "--org", "nobody", "--waba-number", "15550300002"])
        .await;
    assert!(!ok && err.contains("nobody"), "{err}");

    let listed = s.cli(&["numbers", "list", "--org", "acme"]).await;
    assert!(
        listed.contains("15550300001") && listed.contains("linked-device"),
        "{listed}"
    );
    assert!(!listed.contains(NUMBER), "only acme's numbers: {listed}");
    let all = s.cli(&["numbers", "list"]).await;
    assert!(all.contains(NUMBER) && all.contains("15550300001"), "{all}");

    // The secret is alone on the last line, and works at once against the running server.
    let out = s.cli(&["keys", "create", "--org", "acme", "--name", "ci"]).await;
    let secret = out.lines().last().unwrap().trim();
    assert!(secret.starts_with("wag_") && !secret.contains(' '), "{out}");
    let (st, _) = s
        .post(
            "/v1/groups",
            secret,
            json!({ "wabaNumber": "15550300001", "subject": "from cli" }),
        )
        .await;
    assert_eq!(st, 202);
    let keys = s.cli(&["keys", "list", "--org", "acme"]).await;
    assert!(keys.contains("ci") && keys.contains("active"), "{keys}");
    assert!(!keys.contains(secret), "the secret is never shown again");
    let (ok, _, err) = s
        .cli_status(&["keys", "create", "--org", "acme", "--numbers", NUMBER])
        .await;
    assert!(
        !ok && err.contains(NUMBER),
        "a key cannot be restricted to another org's number: {err}"
    );
}

#[tokio::test]
async fn database_option_goes_before_or_after_the_subcommand_or_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    let run = |args: Vec<&str>, env: Option<&str>| {
        let mut c = std::process::Command::new(bin());
        c.args(args).env_remove("WAGROUPS_DATABASE_URL");
        if let Some(e) = env {
            c.env("WAGROUPS_DATABASE_URL", e);
        }
        c.output().unwrap()
    };
    assert!(
        run(vec!["--database", &db, "orgs", "create", "one"], None)
            .status
            .success()
    );
    assert!(
        run(vec!["orgs", "create", "two", "--database", &db], None)
            .status
            .success()
    );
    assert!(run(vec!["orgs", "create", "three"], Some(&db)).status.success());
    let out = run(vec!["orgs", "list", "--database", &db], None);
    let listed = String::from_utf8_lossy(&out.stdout);
    for name in ["one", "two", "three"] {
        assert!(listed.contains(name), "{listed}");
    }
}
