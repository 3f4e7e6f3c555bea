//! The API reference at `/docs`: RapiDoc (vendored, MIT, in `assets/`; no CDN) rendering
//! `/openapi.json`, with a request console.

use axum::{
    http::{HeaderName, header},
    response::Html,
    routing::get,
};

use crate::Routes;

/// RapiDoc 9.3.8, minified and gzip-compressed as published (`rapidoc-min.js.gz`).
const RAPIDOC_GZ: &[u8] = include_bytes!("../assets/rapidoc-min.js.gz");

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wagroups API reference</title>
<script type="module" src="/docs/rapidoc-min.js"></script>
</head>
<body>
<rapi-doc spec-url="/openapi.json" render-style="read" theme="light" show-header="false"
  allow-server-selection="false" allow-authentication="true" persist-auth="false"
  regular-font="system-ui, -apple-system, Segoe UI, sans-serif" mono-font="ui-monospace, monospace"
  primary-color="#128c7e"></rapi-doc>
</body>
</html>
"##;

/// The reference page's operations.
#[derive(utoipa::OpenApi)]
#[openapi(paths(page, rapidoc))]
pub struct Doc;

pub fn routes() -> Routes {
    vec![("/docs", get(page)), ("/docs/rapidoc-min.js", get(rapidoc))]
}

/// This API reference, in a browser.
#[utoipa::path(get, path = "/docs", tag = "operations", operation_id = "docs.page", security(),
    summary = "This API reference, in a browser (RapiDoc, served by the gateway itself)",
    responses((status = 200, description = "The page", content_type = "text/html", body = String)))]
async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// The page's script.
#[utoipa::path(get, path = "/docs/rapidoc-min.js", tag = "operations", operation_id = "docs.script", security(),
    summary = "The reference page's script (vendored RapiDoc, MIT)",
    responses((status = 200, description = "The script (gzip-encoded)", content_type = "text/javascript", body = String)))]
async fn rapidoc() -> ([(HeaderName, &'static str); 4], &'static [u8]) {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CONTENT_ENCODING, "gzip"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::VARY, "accept-encoding"),
        ],
        RAPIDOC_GZ,
    )
}
