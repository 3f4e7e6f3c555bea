//! The OpenAPI document and the running router agree on every path's methods: a method a path
//! does not take is answered `405`, whose `Allow` lists exactly the documented methods.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod app;

use std::collections::BTreeSet;

use crate::app::spawn_app;

#[tokio::test]
async fn each_path_takes_exactly_the_methods_the_document_gives() {
    let app = spawn_app().await;
    let doc: serde_json::Value = serde_norway::from_str(include_str!("../openapi/wagroups.yaml")).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let documented: BTreeSet<String> = item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "parameters")
            .map(|k| k.to_ascii_uppercase())
            .collect();
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let resp = app
            .http
            .request(
                reqwest::Method::from_bytes(b"PURGE").unwrap(),
                format!("{}{concrete}", app.base),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{path}: an undocumented method");
        let allowed: BTreeSet<String> = resp
            .headers()
            .get("allow")
            .unwrap_or_else(|| panic!("{path}: no Allow"))
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| m != "HEAD")
            .collect();
        assert_eq!(allowed, documented, "{path}");
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} paths");
}

#[tokio::test]
async fn the_api_reference_is_served_with_its_own_script() {
    let app = spawn_app().await;
    let page = app.http.get(format!("{}/docs", app.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"spec-url="/openapi.json""#), "{html}");
    assert!(html.contains(r#"src="/docs/rapidoc-min.js""#), "no CDN: {html}");
    assert!(!html.contains("https://"), "nothing fetched from elsewhere: {html}");
    let script = app
        .http
        .get(format!("{}/docs/rapidoc-min.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(script.headers()["content-encoding"], "gzip");
    let body = script.bytes().await.unwrap();
    assert_eq!(&body[..2], [0x1f, 0x8b], "gzip data");
    assert!(body.len() > 100_000);
}
