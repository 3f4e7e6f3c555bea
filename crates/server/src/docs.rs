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

pub fn routes() -> Routes {
    vec![("/docs", get(page)), ("/docs/rapidoc-min.js", get(rapidoc))]
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

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
