//! Cloud-api numbers: configured by the CLI, their secrets sealed with the deployment's key,
//! never printed, and a lost or replaced key stops the server at start.

use std::time::Duration;

use crate::harness::{TestServer, bin};

pub const TOKEN: &str = "EAAG-very-secret-access-token";
pub const APP_SECRET: &str = "app-secret-d41d8cd98f00b204";
pub const VERIFY: &str = "verify-token-5f4dcc3b";

pub fn add_args<'a>(number: &'a str, phone_number_id: &'a str, token_file: &'a str) -> Vec<&'a str> {
    vec![
        "numbers",
        "add",
        "--org",
        "acme",
        "--waba-number",
        number,
        "--provider",
        "cloud-api",
        "--phone-number-id",
        phone_number_id,
        "--access-token-file",
        token_file,
        "--app-secret",
        APP_SECRET,
        "--invite-template",
        "group_invite_link",
        "--invite-template-language",
        "en",
    ]
}

#[tokio::test]
async fn a_cloud_number_is_configured_with_sealed_secrets_that_are_never_shown() {
    let mut s = TestServer::start().await;
    s.cli(&["orgs", "create", "acme"]).await;
    let token_file = s.dir().join("token.txt");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token_file = token_file.display().to_string();
    let verify = [("WAGROUPS_VERIFY_TOKEN", VERIFY)];

    // What is missing is named.
    let (ok, _, err) = s
        .cli_status(&[
            "numbers",
            "add",
            "--org",
            "acme",
            "--waba-number",
            "15550400001",
            "--provider",
            "cloud-api",
            "--phone-number-id",
            "106540352242922",
        ])
        .await;
    assert!(!ok, "{err}");
    assert!(
        err.contains("--access-token") && err.contains("--app-secret") && err.contains("--verify-token"),
        "{err}"
    );
    let (ok, _, err) = s
        .cli_env(&add_args("15550400001", "not-an-id", &token_file), &verify)
        .await;
    assert!(!ok && err.contains("phone-number-id"), "{err}");

    let (ok, out, err) = s
        .cli_env(&add_args("15550400001", "106540352242922", &token_file), &verify)
        .await;
    assert!(ok, "{err}");
    assert!(out.contains("15550400001") && out.contains("106540352242922"), "{out}");
    // The key file was made on first use, readable by its owner only.
    let key_file = s.dir().join("wagroups.db.key");
    assert!(key_file.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // A phone number ID belongs to one number.
    let (ok, _, err) = s
        .cli_env(&add_args("15550400002", "106540352242922", &token_file), &verify)
        .await;
    assert!(!ok && err.contains("106540352242922"), "{err}");

    let listed = s.cli(&["numbers", "list", "--org", "acme"]).await;
    let row = listed
        .lines()
        .find(|l| l.starts_with("15550400001"))
        .unwrap_or_default();
    assert!(
        row.contains("cloud-api") && row.contains("106540352242922") && row.ends_with("ok"),
        "{listed}"
    );

    // A new token is sealed in place of the old one; a simulated number has nothing to update.
    s.cli(&[
        "numbers",
        "update",
        "15550400001",
        "--access-token",
        "EAAG-second-token",
    ])
    .await;
    let (ok, _, err) = s
        .cli_status(&["numbers", "update", crate::harness::NUMBER, "--access-token", "x"])
        .await;
    assert!(!ok && err.contains("simulated"), "{err}");
    let (ok, _, err) = s
        .cli_status(&["numbers", "update", "15550400001", "--phone-number-id", "1"])
        .await;
    assert!(!ok && err.contains("phone-number-id"), "{err}");

    // No secret anywhere in the clear: not in what the CLI printed, not in the server's log,
    // not in the database's files.
    let mut everything = listed.clone();
    everything.push_str(&s.log());
    for f in ["wagroups.db", "wagroups.db-wal"] {
        if let Ok(bytes) = std::fs::read(s.dir().join(f)) {
            everything.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    for secret in [TOKEN, APP_SECRET, VERIFY, "EAAG-second-token"] {
        assert!(!everything.contains(secret), "{secret} found in the clear");
    }

    // The server starts again with its key; with another key, or without one, it refuses,
    // saying why, and touches nothing.
    s.restart(&[]).await;
    s.kill().await;
    let key = std::fs::read_to_string(&key_file).unwrap();
    let other = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
    let refused = serve_refused(&s, &[("WAGROUPS_SECRET_KEY", other)]).await;
    assert!(refused.contains("does not open"), "{refused}");
    std::fs::remove_file(&key_file).unwrap();
    let refused = serve_refused(&s, &[]).await;
    assert!(
        refused.contains("no secret key") && refused.contains("wagroups.db.key"),
        "{refused}"
    );
    assert!(!key_file.exists(), "a lost key is not replaced by a new one");
    // The key given in the environment serves as well as its file.
    let (ok, _, err) = s
        .cli_env(
            &["numbers", "update", "15550400001", "--verify-token", "v2"],
            &[("WAGROUPS_SECRET_KEY", key.trim())],
        )
        .await;
    assert!(ok, "{err}");
}

/// Runs `serve` on the server's database and expects it to exit with an error; its stderr.
async fn serve_refused(s: &TestServer, env: &[(&str, &str)]) -> String {
    let child = tokio::process::Command::new(bin())
        .args(["serve", "--bind", "127.0.0.1:0", "--database", &s.db_url()])
        .env_remove("WAGROUPS_SECRET_KEY")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("serve exits")
        .unwrap();
    assert!(
        !out.status.success(),
        "serve started with a key that cannot open the secrets"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `sha256=<hex>` of `body` with `secret`: HMAC-SHA256, as Meta documents its signature.
pub fn meta_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A `gauge value` line of `/metrics`.
pub async fn gauge(s: &TestServer, name: &str) -> f64 {
    let text = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("/metrics has no gauge {name}:\n{text}"))
}

/// A Meta webhook with one join for a group the gateway has not heard of (so it stays held
/// and is counted), as Meta documents the payload (its trailing commas kept).
fn join_payload(phone_number_id: &str, wa_id: &str) -> String {
    format!(
        r#"{{
  "object": "whatsapp_business_account",
  "entry": [
    {{
      "id": "102290129340398",
      "changes": [
        {{
          "value": {{
            "messaging_product": "whatsapp",
            "metadata": {{
              "display_phone_number": "15550400001",
              "phone_number_id": "{phone_number_id}"
            }},
            "groups": [
                  {{
                    "timestamp": "1755548877",
                    "group_id": "Y2FwaV9ncm91cDpub3RfeWV0X2tub3du",
                    "type": "group_participants_add",
                    "reason": "invite_link",
                    "added_participants": [
                        {{
                          "wa_id": "{wa_id}",
                        }},
                    ]
                 }}
            ]
          }},
          "field": "group_participants_update"
        }}
      ]
    }}
  ]
}}"#
    )
}

#[tokio::test]
async fn meta_webhooks_are_verified_then_recorded_before_the_answer() {
    let s = TestServer::start().await;
    s.cli(&["orgs", "create", "acme"]).await;
    let token_file = s.dir().join("token.txt");
    std::fs::write(&token_file, TOKEN).unwrap();
    s.cli_env(
        &add_args("15550400001", "106540352242922", &token_file.display().to_string()),
        &[("WAGROUPS_VERIFY_TOKEN", VERIFY)],
    )
    .await;
    // The server reads the key file made by the CLI: restart it so it has the key.
    let mut s = s;
    s.restart(&[]).await;
    let url = s.url("/providers/meta/webhook");

    // The handshake: the challenge back, as plain text, for a verify token of ours only.
    let r = s
        .http
        .get(format!(
            "{url}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={VERIFY}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(r.text().await.unwrap(), "1158201444");
    for query in [
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=wrong",
        "hub.mode=unsubscribe&hub.challenge=1158201444&hub.verify_token=verify-token-5f4dcc3b",
        "hub.mode=subscribe&hub.verify_token=verify-token-5f4dcc3b",
        "",
    ] {
        let r = s.http.get(format!("{url}?{query}")).send().await.unwrap();
        assert_eq!(r.status(), 403, "{query}");
    }

    let body = join_payload("106540352242922", "16505551234");
    let post = |body: String, signature: Option<String>| {
        let mut req = s.http.post(&url).header("content-type", "application/json").body(body);
        if let Some(sig) = signature {
            req = req.header("x-hub-signature-256", sig);
        }
        req.send()
    };
    // Unsigned, wrongly signed, or signed for a number not ours: refused, nothing recorded.
    assert_eq!(post(body.clone(), None).await.unwrap().status(), 401);
    assert_eq!(
        post(
            body.clone(),
            Some(meta_signature("not-the-app-secret", body.as_bytes()))
        )
        .await
        .unwrap()
        .status(),
        403
    );
    let tampered = body.replace("16505551234", "16505559999");
    assert_eq!(
        post(tampered, Some(meta_signature(APP_SECRET, body.as_bytes())))
            .await
            .unwrap()
            .status(),
        403
    );
    let stranger = join_payload("999999999999999", "16505551234");
    assert_eq!(
        post(stranger.clone(), Some(meta_signature(APP_SECRET, stranger.as_bytes())))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        gauge(&s, "wagroups_provider_reports_held").await,
        0.0,
        "nothing recorded"
    );

    // Signed with the app secret: recorded (held, its group not known yet) before the 200;
    // Meta delivering it again records nothing more.
    let sig = meta_signature(APP_SECRET, body.as_bytes());
    assert_eq!(post(body.clone(), Some(sig.clone())).await.unwrap().status(), 200);
    assert_eq!(gauge(&s, "wagroups_provider_reports_held").await, 1.0);
    assert_eq!(post(body.clone(), Some(sig)).await.unwrap().status(), 200);
    assert_eq!(
        gauge(&s, "wagroups_provider_reports_held").await,
        1.0,
        "a redelivery is a duplicate"
    );
    let other = join_payload("106540352242922", "16505550000");
    assert_eq!(
        post(other.clone(), Some(meta_signature(APP_SECRET, other.as_bytes())))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(gauge(&s, "wagroups_provider_reports_held").await, 2.0);
    // Signed garbage is a 400; the secrets never reach the log.
    let garbage = "{not json".to_string();
    assert_eq!(
        post(garbage.clone(), Some(meta_signature(APP_SECRET, garbage.as_bytes())))
            .await
            .unwrap()
            .status(),
        400
    );
    let log = s.log();
    for secret in [TOKEN, APP_SECRET, VERIFY] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}
