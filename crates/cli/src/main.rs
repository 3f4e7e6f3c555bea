//! `wagroups`: the gateway binary. `serve` runs it; the other commands administer the same
//! database (also while a server runs on it).

use std::process::ExitCode;

mod numbers;

/// mimalloc: the server allocates many small short-lived buffers across threads (requests,
/// rows, webhook bodies), where glibc's allocator showed as ~15 % of the delivery profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use wagroups_core::webhook::{RetrySchedule, parse_duration};
use wagroups_core::{admin, store::prelude::*};
use wagroups_server::{Config, DeliveryConfig, HttpLimits, Server};
use wagroups_store::SqliteStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Parser)]
#[command(name = "wagroups", version, about = "Self-hosted WhatsApp Groups API gateway")]
struct Cli {
    /// Database URL (`sqlite://PATH`; the file is created if missing).
    #[arg(
        long,
        global = true,
        env = "WAGROUPS_DATABASE_URL",
        default_value = "sqlite://wagroups.db"
    )]
    database: String,
    /// Log lines as `text` (coloured only on a terminal) or `json` (one object a line).
    #[arg(
        long,
        global = true,
        env = "WAGROUPS_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (HTTP API, provider worker, simulated network).
    Serve(ServeArgs),
    /// Apply the database migrations and exit.
    Migrate,
    /// Compare cloud-api numbers' groups with Meta's list of them now and apply what differs
    /// (what lost webhooks would have said); all numbers, or one.
    Reconcile {
        #[arg(long, env = "WAGROUPS_WABA_NUMBER")]
        number: Option<String>,
    },
    /// Organisations (tenants).
    #[command(subcommand)]
    Orgs(OrgsCmd),
    /// Business numbers.
    #[command(subcommand)]
    Numbers(numbers::NumbersCmd),
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Webhook endpoints.
    #[command(subcommand)]
    Webhooks(WebhooksCmd),
}

#[derive(Subcommand)]
enum WebhooksCmd {
    /// Add an endpoint; prints its signing secret on the last line.
    Add {
        #[arg(long, env = "WAGROUPS_ORG")]
        org: String,
        #[arg(long, env = "WAGROUPS_WEBHOOK_URL")]
        url: String,
        /// Only these event types (comma-separated); all when omitted.
        #[arg(long, env = "WAGROUPS_WEBHOOK_EVENT_TYPES", value_delimiter = ',')]
        event_types: Option<Vec<String>>,
        /// Only these numbers' events (comma-separated); all when omitted.
        #[arg(long, env = "WAGROUPS_WEBHOOK_WABA_NUMBERS", value_delimiter = ',')]
        waba_numbers: Option<Vec<String>>,
        #[arg(long, env = "WAGROUPS_WEBHOOK_DESCRIPTION")]
        description: Option<String>,
        /// Accept a loopback or private target (as `serve --allow-private-webhook-targets`).
        #[arg(long, env = "WAGROUPS_ALLOW_PRIVATE_WEBHOOK_TARGETS")]
        allow_private_webhook_targets: bool,
    },
    /// List an organisation's endpoints.
    List {
        #[arg(long, env = "WAGROUPS_ORG")]
        org: String,
    },
    /// Remove an endpoint.
    Remove {
        #[arg(long, env = "WAGROUPS_ORG")]
        org: String,
        id: String,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "WAGROUPS_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// Serve the API only: queued work (group creation, webhooks…) waits for a server without
    /// this flag.
    #[arg(long, env = "WAGROUPS_API_ONLY")]
    api_only: bool,
    /// Allow webhook endpoints on loopback, private, link-local and metadata addresses
    /// (local development; never on a server reachable by tenants you do not trust).
    #[arg(long, env = "WAGROUPS_ALLOW_PRIVATE_WEBHOOK_TARGETS")]
    allow_private_webhook_targets: bool,
    /// Delays before each webhook delivery attempt; after the last one fails the delivery is
    /// dead. Units: ms, s, m, h.
    #[arg(
        long,
        env = "WAGROUPS_WEBHOOK_RETRY_SCHEDULE",
        default_value = "0s,5s,5m,30m,2h,5h,10h,10h"
    )]
    webhook_retry_schedule: String,
    /// Timeout of one webhook delivery attempt.
    #[arg(long, env = "WAGROUPS_WEBHOOK_TIMEOUT", default_value = "15s")]
    webhook_timeout: String,
    /// How often cloud-api numbers are reconciled with Meta's list of their groups (also
    /// once at start); `off` never.
    #[arg(long, env = "WAGROUPS_RECONCILE_INTERVAL", default_value = "15m")]
    reconcile_interval: String,
    /// Webhook attempts in flight to one endpoint.
    #[arg(long, env = "WAGROUPS_WEBHOOK_ENDPOINT_CONCURRENCY", default_value_t = 16)]
    webhook_endpoint_concurrency: usize,
    /// The simulated WhatsApp network's database (`sqlite://PATH`); by default beside the
    /// gateway's (`wagroups.db` has `wagroups.sim.db`).
    #[arg(long, env = "WAGROUPS_SIM_DATABASE_URL")]
    sim_database: Option<String>,
    /// A request head (request line and headers) must arrive whole within this, counted from
    /// its first byte (from the connection's opening for its first request); then `408` and
    /// the connection is closed.
    #[arg(long, env = "WAGROUPS_HTTP_HEADER_TIMEOUT", default_value = "10s")]
    http_header_timeout: String,
    /// A request body must arrive whole within this of its head; then `408`.
    #[arg(long, env = "WAGROUPS_HTTP_BODY_TIMEOUT", default_value = "30s")]
    http_body_timeout: String,
    /// A keep-alive connection with no request under way is closed after this.
    #[arg(long, env = "WAGROUPS_HTTP_IDLE_TIMEOUT", default_value = "75s")]
    http_idle_timeout: String,
    /// Open connections at most. Over it, a new connection takes the place of the one idle
    /// the longest; when none is idle it waits in the listen backlog. Default: 4096, or
    /// fewer when the open-file limit is low (it leaves a quarter, at least 256, for the rest).
    #[arg(long, env = "WAGROUPS_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// The largest request head, in bytes (`431` over it).
    #[arg(long, env = "WAGROUPS_MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    max_header_bytes: usize,
}

#[derive(Subcommand)]
enum OrgsCmd {
    /// Create an organisation.
    Create { name: String },
    /// List organisations.
    List,
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create an API key; its secret is printed once, alone on the last line.
    Create {
        #[arg(long, env = "WAGROUPS_ORG")]
        org: String,
        /// Restrict the key to these numbers (comma-separated); all numbers when omitted.
        #[arg(long, env = "WAGROUPS_KEY_NUMBERS", value_delimiter = ',')]
        numbers: Option<Vec<String>>,
        #[arg(long, env = "WAGROUPS_KEY_NAME")]
        name: Option<String>,
    },
    /// List an organisation's keys (never their secrets).
    List {
        #[arg(long, env = "WAGROUPS_ORG")]
        org: String,
    },
    /// Revoke a key: requests with it are refused (401) from now on.
    Revoke { key_id: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("WAGROUPS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if cli.log_format == LogFormat::Json {
        logs.json().init();
    } else {
        // Colour codes only for a person at a terminal, never into a file or a pipe.
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&cli.database, args).await,
        Command::Migrate => {
            SqliteStore::open(&cli.database).await?.close().await;
            println!("migrations applied to {}", cli.database);
            Ok(())
        }
        other => {
            let store = SqliteStore::open(&cli.database).await?;
            let r = admin_command(&store, &cli.database, other).await;
            store.close().await;
            r
        }
    }
}

async fn serve(database: &str, args: ServeArgs) -> anyhow::Result<()> {
    let delivery = DeliveryConfig {
        schedule: RetrySchedule::parse(&args.webhook_retry_schedule)
            .map_err(|e| anyhow::anyhow!("--webhook-retry-schedule: {e}"))?,
        timeout: parse_duration(&args.webhook_timeout).map_err(|e| anyhow::anyhow!("--webhook-timeout: {e}"))?,
        allow_private_targets: args.allow_private_webhook_targets,
        per_endpoint: args.webhook_endpoint_concurrency.max(1),
        ..DeliveryConfig::default()
    };
    // Every connection is a file: take all the process may have.
    let nofile = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024)
        }
    };
    let duration = |flag: &str, v: &str| {
        let d = parse_duration(v).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))?;
        anyhow::ensure!(
            d >= std::time::Duration::from_millis(100),
            "--{flag}: must be at least 100ms, got {v}"
        );
        Ok(d)
    };
    let mut http = HttpLimits::for_open_files(nofile);
    http.header_timeout = duration("http-header-timeout", &args.http_header_timeout)?;
    http.body_timeout = duration("http-body-timeout", &args.http_body_timeout)?;
    http.idle_timeout = duration("http-idle-timeout", &args.http_idle_timeout)?;
    if let Some(n) = args.max_connections {
        anyhow::ensure!(n > 0, "--max-connections: must be at least 1");
        http.max_connections = n;
    }
    anyhow::ensure!(
        (1024..=1024 * 1024).contains(&args.max_header_bytes),
        "--max-header-bytes: must be 1024 to 1048576"
    );
    http.max_header_bytes = args.max_header_bytes;
    tracing::info!(
        open_files = nofile,
        max_connections = http.max_connections,
        header_timeout = ?http.header_timeout,
        body_timeout = ?http.body_timeout,
        idle_timeout = ?http.idle_timeout,
        "HTTP limits"
    );
    let server = Server::start(&Config {
        bind: args.bind,
        database_url: database.to_string(),
        sim_database_url: args.sim_database,
        api_only: args.api_only,
        delivery,
        http,
        secret_key: std::env::var("WAGROUPS_SECRET_KEY")
            .ok()
            .map(wagroups_core::secret::Secret::new),
        reconcile_every: match args.reconcile_interval.trim() {
            "off" => None,
            v => Some(duration("reconcile-interval", v)?),
        },
    })
    .await?;
    let base = format!("http://{}", server.local_addr);
    if let Some(b) = &server.bootstrap {
        println!("First start: bootstrapped an empty database.");
        println!("  organisation: {} ({})", b.org.name, b.org.id);
        println!(
            "  number:       {} (simulated, {} profile)",
            b.number.waba_number, b.number.profile
        );
        println!("  API key:      {}  (shown once; only its hash is stored)", b.secret);
        println!("Create a group:");
        println!(
            "  curl -s -X POST {base}/v1/groups -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' \
             -d '{{\"wabaNumber\": \"{}\", \"subject\": \"My first group\"}}'",
            b.secret, b.number.waba_number
        );
    }
    println!("listening on {base}");
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    server.run(shutdown).await
}

/// `wagroups reconcile`: this process asks Meta and writes what differs; a running server
/// delivers the events it appends.
async fn reconcile(store: &SqliteStore, database: &str, number: Option<String>) -> anyhow::Result<()> {
    use std::sync::Arc;
    use wagroups_core::{model::ProviderKind, provider::Registry, service::GroupService};
    let key = secret_key(store, database, false).await?;
    let slot = Arc::new(wagroups_core::secret::KeySlot::with(key));
    let cloud = wagroups_providers::cloud::CloudProvider::new(wagroups_providers::cloud::Graph::new()?, slot);
    let registry = Registry::default().with(ProviderKind::CloudApi, Arc::new(cloud));
    let store: Arc<dyn Store> = Arc::new(store.clone());
    let service = GroupService::new(store, Arc::new(registry), wagroups_core::service::Signals::none());
    let digits = match number {
        Some(n) => Some(wagroups_core::validate::waba_number("number", &n)?),
        None => None,
    };
    let results = service.reconcile_numbers(digits.as_deref()).await?;
    if results.is_empty() {
        println!("no cloud-api number to reconcile");
    }
    let mut failed = false;
    for (number, r) in results {
        match r {
            Ok(Some(done)) => {
                println!(
                    "number {number}: {} groups compared, {} changes applied",
                    done.groups, done.changes
                );
                if done.foreign > 0 {
                    println!(
                        "number {number}: {} groups at the provider that wagroups did not create (their reports \
                         are not applied; see the log)",
                        done.foreign
                    );
                }
            }
            Ok(None) => {}
            Err(e) => {
                failed = true;
                eprintln!("number {number}: {e}");
            }
        }
    }
    anyhow::ensure!(!failed, "some numbers could not be reconciled");
    Ok(())
}

/// The deployment's secret key: `WAGROUPS_SECRET_KEY`, or the key file beside the database
/// (made on first use when `create`). Read from the environment only, never from a flag
/// (a flag shows in the process list).
pub async fn secret_key(
    store: &SqliteStore,
    database: &str,
    create: bool,
) -> anyhow::Result<Option<wagroups_core::secret::SecretKey>> {
    let env = std::env::var("WAGROUPS_SECRET_KEY").ok();
    Ok(wagroups_store::keys::secret_key(store, database, env.as_deref(), create).await?)
}

async fn signal_shutdown(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down: finishing in-flight requests");
    token.cancel();
}

async fn admin_command(store: &SqliteStore, database: &str, cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Orgs(OrgsCmd::Create { name }) => {
            let org = admin::create_org(store, &name).await?;
            println!("created organisation {} ({})", org.name, org.id);
        }
        Command::Orgs(OrgsCmd::List) => {
            for o in store.list_orgs().await? {
                println!("{}\t{}", o.id, o.name);
            }
        }
        Command::Numbers(cmd) => numbers::run(store, database, cmd).await?,
        Command::Reconcile { number } => reconcile(store, database, number).await?,
        Command::Keys(KeysCmd::Create { org, numbers, name }) => {
            let (key, secret) = admin::create_key(store, &org, numbers, name).await?;
            let scope = key
                .numbers
                .as_ref()
                .map(|n| n.join(","))
                .unwrap_or_else(|| "all numbers".into());
            println!(
                "created API key {} for {} ({scope}); the secret is shown once:",
                key.id, key.org_id
            );
            println!("{secret}");
        }
        Command::Keys(KeysCmd::List { org }) => {
            let org = admin::org(store, &org).await?;
            for k in store.list_api_keys(&org.id).await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    k.id,
                    k.name.as_deref().unwrap_or("-"),
                    k.numbers.as_ref().map(|n| n.join(",")).unwrap_or_else(|| "all".into()),
                    if k.revoked_at.is_some() { "revoked" } else { "active" }
                );
            }
        }
        Command::Keys(KeysCmd::Revoke { key_id }) => {
            let Some(id) = wagroups_core::ids::ApiKeyId::parse(&key_id) else {
                anyhow::bail!("{key_id:?} is not an API key ID (key_…)");
            };
            if store.revoke_api_key(&id, wagroups_core::time::Timestamp::now()).await? {
                println!("revoked {key_id}");
            } else {
                anyhow::bail!("no active API key {key_id}");
            }
        }
        Command::Webhooks(cmd) => webhooks_command(store, database, cmd).await?,
        Command::Serve(_) | Command::Migrate => {}
    }
    Ok(())
}

/// The CLI acts with the authority of an unrestricted key of the organisation.
fn org_key(org: &wagroups_core::model::Org) -> wagroups_core::model::ApiKey {
    wagroups_core::model::ApiKey {
        id: "cli".into(),
        org_id: org.id.clone(),
        name: None,
        numbers: None,
        created_at: wagroups_core::time::Timestamp::now(),
        revoked_at: None,
    }
}

async fn webhooks_command(sqlite: &SqliteStore, database: &str, cmd: WebhooksCmd) -> anyhow::Result<()> {
    // Signing secrets are sealed with the deployment's key (made here if this is its first use).
    let key = secret_key(sqlite, database, true).await?;
    let keys = std::sync::Arc::new(wagroups_core::secret::KeySlot::with(key));
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(sqlite.clone());
    // A running server picks up endpoint changes by polling: nobody to wake here.
    let service =
        wagroups_core::webhook_service::Webhooks::new(store.clone(), &wagroups_core::service::Signals::none(), keys);
    match cmd {
        WebhooksCmd::Add {
            org,
            url,
            event_types,
            waba_numbers,
            description,
            allow_private_webhook_targets,
        } => {
            let org = admin::org(store.as_ref(), &org).await?;
            let parsed = url::Url::parse(url.trim()).map_err(|e| anyhow::anyhow!("--url: {e}"))?;
            wagroups_delivery::guard::check_target(&parsed, allow_private_webhook_targets)
                .await
                .map_err(|e| anyhow::anyhow!("--url: {e}"))?;
            let ep = service
                .create_endpoint(
                    &org_key(&org),
                    wagroups_core::webhook_service::EndpointInput {
                        url: Some(url),
                        event_types: Some(event_types),
                        waba_numbers: Some(waba_numbers),
                        description: Some(description),
                        format: None,
                        disabled: None,
                        ..Default::default()
                    },
                    allow_private_webhook_targets,
                )
                .await?;
            println!(
                "created webhook endpoint {} -> {}; its signing secret:",
                ep.endpoint.id, ep.endpoint.url
            );
            println!("{}", ep.secret.expose());
        }
        WebhooksCmd::List { org } => {
            let org = admin::org(store.as_ref(), &org).await?;
            for ep in service.list_endpoints(&org_key(&org)).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    ep.id,
                    ep.url,
                    ep.event_types
                        .map(|t| t.join(","))
                        .unwrap_or_else(|| "all events".into()),
                    ep.waba_numbers
                        .map(|n| n.join(","))
                        .unwrap_or_else(|| "all numbers".into()),
                    if ep.disabled { "disabled" } else { "enabled" }
                );
            }
        }
        WebhooksCmd::Remove { org, id } => {
            let org = admin::org(store.as_ref(), &org).await?;
            service.delete_endpoint(&org_key(&org), &id).await?;
            println!("removed webhook endpoint {id}");
        }
    }
    Ok(())
}
