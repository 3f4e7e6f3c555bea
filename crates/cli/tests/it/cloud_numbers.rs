//! Cloud-api numbers: configured by the CLI, their secrets sealed with the deployment's key,
//! never printed, and a lost or replaced key stops the server at start.

use std::time::Duration;

use crate::harness::{TestServer, bin};

const TOKEN: &str = "EAAG-very-secret-access-token";
const APP_SECRET: &str = "app-secret-d41d8cd98f00b204";
const VERIFY: &str = "verify-token-5f4dcc3b";

fn add_args<'a>(number: &'a str, phone_number_id: &'a str, token_file: &'a str) -> Vec<&'a str> {
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
