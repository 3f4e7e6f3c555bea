//! The wagroups HTTP server: dialect adapters (native `/v1`, DoubleTick), the sandbox,
//! health checks, and the background workers that talk to WhatsApp.

pub mod apidoc;
pub mod conn;
mod docs;
mod doubletick;
pub mod error;
mod extract;
mod graph;
mod health;
mod idempotency;
mod json;
mod meta;
mod native;
mod render;
mod runtime;
mod sandbox;
mod wawp;
mod webhooks;
mod wuts;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::StatusCode,
    response::{IntoResponse, Response},
};
pub use conn::HttpLimits;
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};
use wagroups_core::{
    admin::Bootstrap,
    model::ProviderKind,
    provider::{Provider, ProviderEventSink, ProviderRegistry, Registry},
    service::{DeliverySignal, GroupService, Signals},
    store::Store,
    webhook_service::Webhooks,
};
pub use wagroups_delivery::DeliveryConfig;
use wagroups_delivery::DeliveryWorker;
use wagroups_providers::simulated::SimNetwork;
use wagroups_store::{SqliteSimStore, SqliteStore, sim_database_url};

use crate::error::{ApiError, DialectKind};

/// Shared by every handler and worker.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<GroupService>,
    pub webhooks: Arc<Webhooks>,
    pub providers: Arc<dyn ProviderRegistry>,
    /// The simulated network itself, for the sandbox routes only (they are its control
    /// panel: users, invite links, suspensions); every gateway path reaches providers through
    /// `providers` and the database through the store ports.
    pub sim: Arc<SimNetwork>,
    pub commands_ready: Arc<Notify>,
    /// Wakes the inbox applier (a report was held, or what held ones wait for came).
    pub inbox_ready: Arc<Notify>,
    pub allow_private_webhook_targets: bool,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The deployment's secret key, once there is one (no key: no cloud-api numbers yet).
    pub secret_key: Arc<wagroups_core::secret::KeySlot>,
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: String,
    pub database_url: String,
    /// The simulated network's database; `None`: beside the gateway's.
    pub sim_database_url: Option<String>,
    /// Serve the API only: no provider worker and no delivery of simulated reports (queued
    /// work waits, durably, for a server that runs them).
    pub api_only: bool,
    pub delivery: DeliveryConfig,
    /// Timeouts and the connection cap of the HTTP server.
    pub http: HttpLimits,
    /// `WAGROUPS_SECRET_KEY`, when set (otherwise the key file beside the database).
    pub secret_key: Option<wagroups_core::secret::Secret>,
    /// How often cloud-api numbers are reconciled with Meta's listing (`None`: never; they
    /// are at start too).
    pub reconcile_every: Option<std::time::Duration>,
}

/// What an embedding (the in-process test app) adds to a server: providers beside (or in
/// place of) the simulated network, and a wrapper around the path the simulated network's
/// reports take into the inbox.
#[derive(Default)]
pub struct Extras {
    /// Registered after the simulated network (a kind registered again replaces it).
    pub providers: Vec<(ProviderKind, Arc<dyn Provider>)>,
    /// Given the simulated network, the provider its numbers are served by instead.
    #[allow(clippy::type_complexity)]
    pub wrap_simulated: Option<Box<dyn Fn(Arc<SimNetwork>) -> Arc<dyn Provider> + Send + Sync>>,
    /// Given the inbox, where the simulated network's report pump hands its reports instead.
    #[allow(clippy::type_complexity)]
    pub wrap_reports: Option<Box<dyn Fn(Arc<dyn ProviderEventSink>) -> Arc<dyn ProviderEventSink> + Send + Sync>>,
}

/// A server that has opened its database and bound its socket, ready to run.
pub struct Server {
    pub local_addr: SocketAddr,
    /// Set on the first start against an empty database.
    pub bootstrap: Option<Bootstrap>,
    listener: TcpListener,
    state: AppState,
    store: Arc<dyn Store>,
    api_only: bool,
    delivery: Arc<DeliveryWorker>,
    http: HttpLimits,
    /// Where the simulated network's pump hands its reports.
    report_sink: Arc<dyn ProviderEventSink>,
    reconcile_every: Option<std::time::Duration>,
}

/// The process-wide Prometheus recorder (installed once).
fn metrics_handle() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0,
                ])
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
        })
        .clone()
}

/// The routes of one part of the API: path and the methods it serves.
pub type Routes = Vec<(&'static str, axum::routing::MethodRouter<AppState>)>;

/// Every route the server serves, by part.
fn all_routes() -> Routes {
    [
        health::routes(),
        native::routes(),
        sandbox::routes(),
        doubletick::routes(),
        webhooks::routes(),
        meta::routes(),
        graph::routes(),
        wuts::routes(),
        wawp::routes(),
        health::metrics_routes(),
        docs::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The paths the router serves (the OpenAPI document must list each).
pub fn served_paths() -> Vec<&'static str> {
    all_routes().into_iter().map(|(path, _)| path).collect()
}

pub fn router(state: AppState) -> Router {
    all_routes()
        .into_iter()
        .fold(Router::new(), |r, (path, methods)| r.route(path, methods))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::layer))
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        // A panic answers 500 without its text; the connection's service gives every error
        // answer that is not JSON the dialect's shape (`errors_as_json`).
        .layer(CatchPanicLayer::custom(|_| {
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }))
        // The path only: a query string may carry an API key (`access_token`).
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &Request| tracing::debug_span!("request", method = %req.method(), path = %req.uri().path()),
        ))
        .with_state(state)
}

async fn fallback(req: Request) -> Response {
    let path = req.uri().path();
    let e = ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {} {path}", req.method()),
    );
    DialectKind::for_path(path).render(e)
}

async fn method_not_allowed(req: Request) -> Response {
    let path = req.uri().path();
    let e = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{path} does not take {}", req.method()),
    );
    DialectKind::for_path(path).render(e)
}

/// Whether an answer is an error that is not in JSON (from a layer or an extractor of axum's
/// own, or a panic).
pub(crate) fn needs_json_error(resp: &Response) -> bool {
    let status = resp.status();
    (status.is_client_error() || status.is_server_error())
        && !resp
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"))
}

/// The last line of defence for the error shapes: an error answer that is not JSON is
/// rendered in the shape of the path's dialect (called for every answer by the connection's
/// service, when [`needs_json_error`]).
pub(crate) async fn errors_as_json(dialect: DialectKind, resp: Response) -> Response {
    let status = resp.status();
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let e = if status.is_server_error() {
        ApiError {
            status,
            ..ApiError::internal()
        }
    } else {
        let code = status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
            .replace(' ', "_");
        let message = if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            text
        };
        ApiError::new(status, &code, message)
    };
    let rendered = dialect.render(e);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let (new_parts, body) = rendered.into_parts();
    parts.headers.extend(new_parts.headers);
    Response::from_parts(parts, body)
}

/// Binds `addr` with a listen backlog deep enough for a burst of connections while the
/// accept loop makes room (the default of 128 drops SYNs, which clients retry only after 1 s).
async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(4096)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => anyhow::anyhow!("cannot listen on {addr}: {e}"),
        None => anyhow::anyhow!("{addr} resolves to no address"),
    })
}

impl Server {
    /// Opens the database (applying migrations), bootstraps an empty one, binds `bind`.
    pub async fn start(config: &Config) -> anyhow::Result<Server> {
        Self::start_with(config, Extras::default()).await
    }

    /// [`Server::start`], with what `extras` adds.
    pub async fn start_with(config: &Config, extras: Extras) -> anyhow::Result<Server> {
        // First, so that the store's workers register their metrics with it.
        let metrics = metrics_handle();
        let sqlite = Arc::new(SqliteStore::open(&config.database_url).await?);
        let store: Arc<dyn Store> = sqlite;
        let bootstrap = wagroups_core::admin::bootstrap(store.as_ref()).await?;
        // The key sealing the secrets at rest (webhook signing secrets, Meta's tokens): made at
        // the first start (a key file beside the database) unless WAGROUPS_SECRET_KEY gives it.
        // A key that does not open the database's secrets stops the start, with why.
        let secret_key = wagroups_store::keys::secret_key(
            store.as_ref(),
            &config.database_url,
            config.secret_key.as_ref().map(|s| s.expose()),
            true,
        )
        .await?;
        let commands_ready = Arc::new(Notify::new());
        let inbox_ready = Arc::new(Notify::new());
        let inbox_wake = inbox_ready.clone();
        let deliveries_ready = Arc::new(Notify::new());
        let deliveries_changed = Arc::new(Notify::new());
        let wake = commands_ready.clone();
        let (ready, changed) = (deliveries_ready.clone(), deliveries_changed.clone());
        let sim_url = match &config.sim_database_url {
            Some(u) => u.clone(),
            None => sim_database_url(&config.database_url)?,
        };
        let sim_store = SqliteSimStore::open_importing(&sim_url, Some(&config.database_url)).await?;
        let sim = Arc::new(SimNetwork::new(Arc::new(sim_store)));
        let simulated: Arc<dyn Provider> = match &extras.wrap_simulated {
            Some(wrap) => wrap(sim.clone()),
            None => sim.clone(),
        };
        let secret_key = Arc::new(wagroups_core::secret::KeySlot::with(secret_key));
        let cloud =
            wagroups_providers::cloud::CloudProvider::new(wagroups_providers::cloud::Graph::new()?, secret_key.clone());
        let mut registry = Registry::default()
            .with(ProviderKind::Simulated, simulated)
            .with(ProviderKind::CloudApi, Arc::new(cloud));
        for (kind, provider) in extras.providers {
            registry = registry.with(kind, provider);
        }
        let providers: Arc<dyn ProviderRegistry> = Arc::new(registry);
        let signals = Signals {
            commands: Arc::new(move || wake.notify_one()),
            deliveries: Arc::new(move |signal| match signal {
                DeliverySignal::Queued => ready.notify_one(),
                DeliverySignal::Changed => changed.notify_one(),
            }),
            inbox: Arc::new(move || inbox_wake.notify_one()),
            sleep: Arc::new(|d| Box::pin(tokio::time::sleep(d))),
        };
        let handshake = wagroups_delivery::handshake::MetaHandshake::new(config.delivery.allow_private_targets)?;
        let webhooks =
            Arc::new(Webhooks::new(store.clone(), &signals, secret_key.clone()).with_handshake(Arc::new(handshake)));
        // Secrets stored before they were sealed are sealed now.
        let sealed = webhooks.seal_plaintext_secrets().await?;
        if sealed > 0 {
            tracing::info!(endpoints = sealed, "sealed webhook signing secrets stored in plaintext");
        }
        let service = Arc::new(GroupService::new(store.clone(), providers.clone(), signals));
        let delivery = Arc::new(DeliveryWorker::new(
            store.clone(),
            secret_key.clone(),
            config.delivery.clone(),
            deliveries_ready,
            deliveries_changed,
        )?);
        let state = AppState {
            service,
            webhooks,
            providers,
            sim,
            commands_ready,
            inbox_ready,
            allow_private_webhook_targets: config.delivery.allow_private_targets,
            metrics,
            secret_key,
        };
        let inbox: Arc<dyn ProviderEventSink> = state.service.clone();
        let report_sink = match &extras.wrap_reports {
            Some(wrap) => wrap(inbox),
            None => inbox,
        };
        let listener = bind(&config.bind).await?;
        let local_addr = listener.local_addr()?;
        Ok(Server {
            local_addr,
            bootstrap,
            listener,
            state,
            store,
            api_only: config.api_only,
            delivery,
            http: config.http.clone(),
            report_sink,
            reconcile_every: config.reconcile_every,
        })
    }

    /// What handlers and workers share (the service, the providers…).
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` is cancelled, then stops taking requests, lets in-flight ones
    /// finish and stops the workers.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let workers = CancellationToken::new();
        let mut tasks = Vec::new();
        if !self.api_only {
            tasks.push(tokio::spawn(
                self.state
                    .sim
                    .clone()
                    .run_pump(self.report_sink.clone(), workers.clone()),
            ));
            tasks.push(tokio::spawn(runtime::run_command_worker(
                self.state.clone(),
                workers.clone(),
            )));
            tasks.push(tokio::spawn(runtime::run_inbox_applier(
                self.state.clone(),
                workers.clone(),
            )));
            tasks.push(tokio::spawn(self.delivery.clone().run(workers.clone())));
            if let Some(every) = self.reconcile_every {
                tasks.push(tokio::spawn(runtime::run_reconciler(
                    self.state.clone(),
                    every,
                    workers.clone(),
                )));
            }
        }
        let app = router(self.state.clone());
        let served = conn::serve(self.listener, app, self.http, shutdown).await;
        workers.cancel();
        for t in tasks {
            let _ = t.await;
        }
        self.store.close().await;
        served?;
        Ok(())
    }
}
