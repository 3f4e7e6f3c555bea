//! `wagroups-bench`: one run on one machine. Starts the release `wagroups` server on fresh
//! SQLite databases, a local webhook sink that verifies every signature, and a keep-alive load
//! generator; measures throughput, latency, delivery, scale and memory; prints a markdown table
//! and writes it, with the machine's description, to `BENCHMARKS.md`.
//!
//! `cargo run --release -p wagroups-bench -- [--quick]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod load;
mod meta;
mod server;
mod sink;

use std::{
    fmt::Write as _,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::json;

use crate::{
    load::{Client, Stats, fixed_rate, saturate},
    server::Server,
    sink::Sink,
};

#[derive(Parser)]
#[command(about = "Benchmark wagroups on this machine")]
struct Args {
    /// Short run (under 2 minutes) for everyday use.
    #[arg(long)]
    quick: bool,
    /// Concurrent keep-alive connections at saturation.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Phases to run (comma-separated: create, api, conns, sink, delivery, backlog, scale); all
    /// by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Benchmark this server binary instead of building the workspace's (to compare builds).
    #[arg(long)]
    server: Option<std::path::PathBuf>,
    /// Record the server with `perf record` during each timed phase, into this directory.
    #[arg(long)]
    perf: Option<std::path::PathBuf>,
    /// Where to write the report (`-` for nowhere).
    #[arg(long, default_value = "BENCHMARKS.md")]
    output: String,
}

/// One line of the report.
struct Row {
    figure: String,
    value: String,
    unit: &'static str,
    conditions: String,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    problems: Vec<String>,
}

impl Report {
    fn add(
        &mut self,
        figure: impl Into<String>,
        value: impl std::fmt::Display,
        unit: &'static str,
        conditions: impl Into<String>,
    ) {
        let row = Row {
            figure: figure.into(),
            value: value.to_string(),
            unit,
            conditions: conditions.into(),
        };
        eprintln!(
            "  {:<58} {:>12} {:<8} {}",
            row.figure, row.value, row.unit, row.conditions
        );
        self.rows.push(row);
    }

    fn check(&mut self, stats: &Stats, what: &str) {
        if stats.errors > 0 {
            self.problems.push(format!(
                "{what}: {} failed requests (first: {})",
                stats.errors, stats.first_error
            ));
        }
    }

    fn latency(&mut self, name: &str, h: &Histogram<u64>, conditions: &str) {
        for (label, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
            self.add(
                format!("{name} latency {label}"),
                ms(h.value_at_quantile(q)),
                "ms",
                conditions,
            );
        }
    }

    fn markdown(&self) -> String {
        let mut out = String::from("| figure | value | unit | conditions |\n|---|---:|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(out, "| {} | {} | {} | {} |", r.figure, r.value, r.unit, r.conditions);
        }
        out
    }
}

/// Microseconds to milliseconds with two decimals.
fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

struct Plan {
    warmup: Duration,
    phase: Duration,
    e2e_rate: u64,
    backlog_groups: usize,
    scale_small: usize,
    scale_large: usize,
    delivery_groups: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                warmup: Duration::from_millis(300),
                phase: Duration::from_secs(2),
                e2e_rate: 1000,
                backlog_groups: 1_000,
                scale_small: 10_000,
                scale_large: 100_000,
                delivery_groups: 2_500,
            }
        } else {
            Plan {
                warmup: Duration::from_secs(1),
                phase: Duration::from_secs(5),
                e2e_rate: 1000,
                backlog_groups: 10_000,
                scale_small: 10_000,
                scale_large: 1_000_000,
                delivery_groups: 8_000,
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    // The connection phase holds thousands of sockets.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    match run(&args).await {
        Ok(problems) if problems.is_empty() => {}
        Ok(problems) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<Vec<String>> {
    let bin = match &args.server {
        Some(b) => b.clone(),
        None => server::build_release_server()?,
    };
    let plan = Plan::new(args.quick);
    let c = args.concurrency;
    let mut report = Report::default();
    let started = Instant::now();
    eprintln!(
        "wagroups benchmark ({} run), server {}",
        if args.quick { "quick" } else { "full" },
        bin.display()
    );

    let perf = args.perf.as_deref();
    if let Some(dir) = perf {
        std::fs::create_dir_all(dir)?;
    }
    let want = |phase: &str| args.only.is_empty() || args.only.iter().any(|p| p == phase);
    // The HTTP ceiling, for the create ratios.
    let mut healthz = None;
    // 1–3: baseline, creates, end to end (one server, a sink on all events).
    if want("create") {
        let sink = Sink::start(false).await?;
        let srv = Server::start(&bin, &["--allow-private-webhook-targets"]).await?;
        report.add(
            "server RSS idle after start",
            srv.rss_mb(),
            "MB",
            "fresh database, no load",
        );
        sink.attach(&srv, &[]).await?;
        let client = Client::new(srv.addr, &srv.key);

        let st = saturate(&client, c, plan.warmup, plan.phase, |_| client.get("/healthz")).await;
        report.check(&st, "healthz");
        let baseline = st.rate();
        healthz = Some(baseline);
        report.add(
            "baseline GET /healthz",
            format!("{baseline:.0}"),
            "req/s",
            format!("{c} keep-alive connections"),
        );

        let seq = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let prof = srv.profile(perf, "create");
        let usage = Usage::start(&srv, &client).await;
        let st = saturate(&client, c, plan.warmup, plan.phase, |_| {
            let n = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            client.post(
                "/v1/groups",
                json!({ "wabaNumber": "15550100001", "subject": format!("Bench {n}"), "groupId": format!("n{n}") }),
            )
        })
        .await;
        if let Some(p) = prof {
            p.finish().await;
        }
        report.check(&st, "native create");
        let native = st.rate();
        let writes = usage.note(&srv, &client, st.ok_all, "create").await;
        report.add(
            "POST /v1/groups (native create), full pipeline",
            format!("{native:.0}"),
            "req/s",
            format!("{c} connections, each durable before 202; confirmations and webhooks run concurrently; {writes}"),
        );
        report.latency("native create", &st.hist, &format!("at saturation, {c} connections"));
        report.add(
            "create ÷ baseline, full pipeline",
            format!("{:.2}", native / baseline.max(1.0)),
            "ratio",
            "native create req/s with confirmations and webhooks running, over healthz req/s",
        );

        let st = saturate(&client, c, plan.warmup, plan.phase, |_| {
            let n = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            client.post(
                "/whatsapp/wa-group/create",
                json!({ "wabaNumber": "15550100001", "subject": format!("DT {n}"), "groupId": format!("d{n}") }),
            )
        })
        .await;
        report.check(&st, "DoubleTick create");
        report.add(
            "POST /whatsapp/wa-group/create (DoubleTick)",
            format!("{:.0}", st.rate()),
            "req/s",
            format!("{c} connections"),
        );
        report.latency(
            "DoubleTick create",
            &st.hist,
            &format!("at saturation, {c} connections"),
        );
        report.add("server RSS peak (after create load)", srv.peak_rss_mb(), "MB", "VmHWM");

        // Let the provider and delivery workers catch up before timing end to end.
        sink.wait_quiet(Duration::from_secs(120)).await;
        let sent = Arc::new(dashmap_lite::Times::default());
        let prof = srv.profile(perf, "e2e");
        let st = fixed_rate(&client, plan.e2e_rate, plan.phase, c, |i, at| {
            let id = format!("e{i}");
            sent.put(&id, at);
            client.post(
                "/v1/groups",
                json!({ "wabaNumber": "15550100001", "subject": "E2E", "groupId": id }),
            )
        })
        .await;
        report.check(&st, "fixed-rate create");
        report.latency(
            &format!("create at {}/s", plan.e2e_rate),
            &st.hist,
            "fixed offered rate, latency from the scheduled send time",
        );
        let n = st.count as usize;
        let e2e = sink.created_latencies("e", &sent, n, Duration::from_secs(60)).await;
        if let Some(p) = prof {
            p.finish().await;
        }
        if e2e.len() < n {
            report.problems.push(format!(
                "end to end: {} of {n} GROUP_CREATED webhooks arrived",
                e2e.len()
            ));
        }
        let h = hist_of(&e2e);
        report.add(
            format!("end to end create → signed webhook p50 at {}/s", plan.e2e_rate),
            ms(h.value_at_quantile(0.5)),
            "ms",
            "until the sink verified GROUP_CREATED",
        );
        report.add(
            format!("end to end create → signed webhook p99 at {}/s", plan.e2e_rate),
            ms(h.value_at_quantile(0.99)),
            "ms",
            "until the sink verified GROUP_CREATED",
        );

        // Sustained maximum: creates at saturation; GROUP_CREATED webhooks verified per second.
        sink.wait_quiet(Duration::from_secs(120)).await;
        let before = sink.created_count();
        let t0 = Instant::now();
        let st = saturate(&client, c, Duration::ZERO, plan.phase, |_| {
            let n = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            client.post(
                "/v1/groups",
                json!({ "wabaNumber": "15550100001", "subject": "Max", "groupId": format!("m{n}") }),
            )
        })
        .await;
        report.check(&st, "sustained create");
        let target = before + st.ok();
        sink.wait_created(target, Duration::from_secs(300)).await;
        let secs = t0.elapsed().as_secs_f64();
        report.add(
            "end to end sustained maximum",
            format!("{:.0}", (sink.created_count() - before) as f64 / secs),
            "webhooks/s",
            format!(
                "creates at saturation for {:?}, until every GROUP_CREATED was verified",
                plan.phase
            ),
        );
        report.problems.extend(sink.problems());
        let mut srv = srv;
        report.problems.extend(srv.stop().await?);
    }

    // The Meta path: a cloud-api number on a local fake Graph API that confirms by webhook.
    if want("meta") {
        let graph = meta::FakeGraph::start().await?;
        let sink = Sink::start(false).await?;
        let srv = Server::start(
            &bin,
            &["--allow-private-webhook-targets", "--reconcile-interval", "off"],
        )
        .await?;
        graph.send_webhooks_to(format!("http://{}/providers/meta/webhook", srv.addr));
        let added = tokio::process::Command::new(&bin)
            .args(["numbers", "add", "--org", "default", "--waba-number", meta::NUMBER])
            .args(["--provider", "cloud-api", "--phone-number-id", meta::PHONE_NUMBER_ID])
            .args([
                "--access-token",
                "bench-token",
                "--app-secret",
                meta::APP_SECRET,
                "--verify-token",
                "bench",
            ])
            .args(["--graph-url", &format!("http://{}", graph.addr)])
            .args(["--database", &format!("sqlite://{}", srv.db_path.display())])
            .env("WAGROUPS_LOG", "warn")
            .output()
            .await?;
        if !added.status.success() {
            bail!(
                "numbers add --provider cloud-api: {}",
                String::from_utf8_lossy(&added.stderr)
            );
        }
        sink.attach(&srv, &[]).await?;
        let client = Client::new(srv.addr, &srv.key);
        // The server loads the key the CLI made; the first create through Meta says when.
        client
            .post_json(
                "/v1/groups",
                json!({ "wabaNumber": meta::NUMBER, "subject": "warm", "groupId": "meta-warm" }),
            )
            .await;
        wait_until(Duration::from_secs(60), || async {
            client.get_json("/v1/groups/meta-warm").await.1["status"] == "active"
        })
        .await;
        let seq = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let usage = Usage::start(&srv, &client).await;
        let st = saturate(&client, c, plan.warmup, plan.phase, |_| {
            let n = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            client.post(
                "/v1/groups",
                json!({ "wabaNumber": meta::NUMBER, "subject": format!("Meta {n}"), "groupId": format!("mc{n}") }),
            )
        })
        .await;
        report.check(&st, "cloud-api create");
        let writes = usage.note(&srv, &client, st.ok_all, "create").await;
        report.add(
            "POST /v1/groups on a cloud-api number (Meta path)",
            format!("{:.0}", st.rate()),
            "req/s",
            format!("{c} connections, each durable before 202; the fake Graph API answers each create and confirms it by a signed group_create webhook, concurrently; {writes}"),
        );
        sink.wait_quiet(Duration::from_secs(120)).await;
        let sent = Arc::new(dashmap_lite::Times::default());
        let rate = 500;
        let st = fixed_rate(&client, rate, plan.phase, c, |i, at| {
            let id = format!("me{i}");
            sent.put(&id, at);
            client.post(
                "/v1/groups",
                json!({ "wabaNumber": meta::NUMBER, "subject": "E2E Meta", "groupId": id }),
            )
        })
        .await;
        report.check(&st, "cloud-api fixed-rate create");
        let n = st.count as usize;
        let e2e = sink.created_latencies("me", &sent, n, Duration::from_secs(60)).await;
        if e2e.len() < n {
            report.problems.push(format!(
                "Meta path: {} of {n} GROUP_CREATED webhooks arrived (provider reports held: {:?})",
                e2e.len(),
                client.metric("wagroups_provider_reports_held").await,
            ));
        }
        let h = hist_of(&e2e);
        for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
            report.add(
                format!("end to end create → Meta → signed webhook {name} at {rate}/s"),
                ms(h.value_at_quantile(q)),
                "ms",
                "create, the Graph call, Meta's signed group_create webhook verified and recorded, GROUP_CREATED verified by the sink",
            );
        }
        // Meta's webhooks in: each verified against the app secret and recorded in the provider
        // inbox before its 200 (for groups the gateway does not know: held).
        sink.wait_quiet(Duration::from_secs(120)).await;
        let usage = Usage::start(&srv, &client).await;
        let st = saturate(&client, c, plan.warmup, plan.phase, |i| {
            let body = meta::webhook(
                "group_participants_update",
                vec![
                    json!({ "timestamp": "1755548877", "group_id": format!("Y2FwaV9ncm91cDp1bmtub3du{i:012}"),
                             "type": "group_participants_add", "reason": "invite_link",
                             "added_participants": [{ "wa_id": "16505551234" }] }),
                ],
            );
            let sig = meta::sign(body.as_bytes());
            client.post_owned("/providers/meta/webhook", body, &[("x-hub-signature-256", sig)])
        })
        .await;
        report.check(&st, "Meta webhooks");
        let writes = usage.note(&srv, &client, st.ok_all, "webhook").await;
        report.add(
            "inbound Meta webhooks accepted",
            format!("{:.0}", st.rate()),
            "webhooks/s",
            format!("{c} connections, one report each, signature verified on the raw bytes and the report durable in the provider inbox before the 200; {writes}"),
        );
    }

    // 2b: durable creates alone: an API-only server queues the work without carrying it out,
    // so the figure is the API's (each answer still follows the commit).
    if want("api") {
        let mut srv = Server::start(&bin, &["--api-only"]).await?;
        let client = Client::new(srv.addr, &srv.key);
        let seq = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let prof = srv.profile(perf, "api");
        let usage = Usage::start(&srv, &client).await;
        let st = saturate(&client, c, plan.warmup, plan.phase, |_| {
            let n = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            client.post(
                "/v1/groups",
                json!({ "wabaNumber": "15550100001", "subject": format!("Bench {n}"), "groupId": format!("a{n}") }),
            )
        })
        .await;
        if let Some(p) = prof {
            p.finish().await;
        }
        report.check(&st, "API-only create");
        let writes = usage.note(&srv, &client, st.ok_all, "create").await;
        report.add(
            "POST /v1/groups, API only (durable creates)",
            format!("{:.0}", st.rate()),
            "req/s",
            format!("{c} connections, workers paused (--api-only), each committed before 202; {writes}"),
        );
        report.latency("API-only create", &st.hist, &format!("at saturation, {c} connections"));
        if let Some(baseline) = healthz {
            report.add(
                "create ÷ baseline, API only",
                format!("{:.2}", st.rate() / baseline.max(1.0)),
                "ratio",
                "durable creates/s over healthz req/s (the API's own cost)",
            );
        }
        report.problems.extend(srv.stop().await?);
    }

    // 4a: the most webhooks this machine carries without a gateway: a bare client posting
    // signed webhooks to the sink, which verifies each as it does in the phases below.
    // Memory per idle keep-alive connection: 2,000 connections, each after one request.
    if want("conns") {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut srv = Server::start(&bin, &[]).await?;
        let n = 2000;
        let before = srv.status_kb("VmRSS:");
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            let mut s = tokio::net::TcpStream::connect(srv.addr).await?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n").await?;
            let mut buf = [0u8; 512];
            let got = s.read(&mut buf).await?;
            if !buf[..got].starts_with(b"HTTP/1.1 200") {
                bail!(
                    "healthz on connection {} answered {:?}",
                    conns.len(),
                    String::from_utf8_lossy(&buf[..got])
                );
            }
            conns.push(s);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = srv.status_kb("VmRSS:");
        report.add(
            "server memory per idle keep-alive connection",
            format!("{:.1}", after.saturating_sub(before) as f64 / n as f64),
            "KB",
            format!("RSS growth with {n} connections open, each idle after one GET /healthz"),
        );
        drop(conns);
        report.problems.extend(srv.stop().await?);
    }

    if want("sink") {
        let sink = Sink::start(false).await?;
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let n = sink.add_secret(secret)?;
        let client = Client::new(sink.addr(), "");
        let body = r#"{"eventId":"evt_bench","eventType":"GROUP_PARTICIPANT_JOINED","groupId":"bench","sequence":2,"customerPhone":"919999999999"}"#;
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        let signature = standardwebhooks::Webhook::new(secret)?
            .sign("evt_bench", ts, body.as_bytes())
            .map_err(|e| anyhow::anyhow!("signing: {e:?}"))?;
        let headers = [
            ("webhook-id", "evt_bench".to_string()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", signature),
        ];
        let path = format!("/hook/{n}");
        let cpu0 = server::cpu_seconds("self");
        let t0 = Instant::now();
        let st = saturate(&client, c, plan.warmup, plan.phase, |_| {
            client.post_with(&path, body, &headers)
        })
        .await;
        report.check(&st, "sink ceiling");
        report.add(
            "webhook sink ceiling (no gateway)",
            format!("{:.0}", st.rate()),
            "webhooks/s",
            format!(
                "a bare keep-alive client posting signed webhooks to the bench's sink, which verifies each; {c} connections, {:.2} cores",
                (server::cpu_seconds("self") - cpu0) / t0.elapsed().as_secs_f64()
            ),
        );
        report.problems.extend(sink.problems());
    }

    // 4: delivery throughput with 1 and 10 endpoints, sandbox joins as the source.
    for endpoints in [1usize, 10].into_iter().filter(|_| want("delivery")) {
        let sink = Sink::start(false).await?;
        let mut srv = Server::start(&bin, &["--allow-private-webhook-targets"]).await?;
        let client = Client::new(srv.addr, &srv.key);
        let links = create_groups(&client, plan.delivery_groups, "j").await?;
        sink.attach(&srv, &vec![(); endpoints]).await?;
        let base = sink.total();
        let joins = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let prof = srv.profile(perf, &format!("delivery-{endpoints}"));
        let usage = Usage::start(&srv, &client).await;
        let t0 = Instant::now();
        let st = saturate(&client, c, Duration::ZERO, plan.phase, |_| {
            let n = joins.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as usize;
            let link = &links[n % links.len()];
            // Cloud groups hold 8 members: spread users over groups.
            client.post(
                "/v1/sandbox/join",
                json!({ "phone": format!("91{:010}", 7_000_000_000u64 + n as u64), "inviteLink": link }),
            )
        })
        .await;
        report.check(&st, "sandbox joins");
        let joined = st.ok();
        sink.wait_total(base + joined * endpoints as u64, Duration::from_secs(300))
            .await;
        let secs = t0.elapsed().as_secs_f64();
        if let Some(p) = prof {
            p.finish().await;
        }
        let delivered = sink.total() - base;
        let writes = usage.note(&srv, &client, delivered, "delivery").await;
        report.add(
            format!(
                "webhook deliveries, {endpoints} endpoint{}",
                if endpoints > 1 { "s" } else { "" }
            ),
            format!("{:.0}", delivered as f64 / secs),
            "deliveries/s",
            format!(
                "{joined} sandbox joins ({:.0}/s) → {delivered} signed deliveries, verified; {writes}",
                st.rate(),
            ),
        );
        report.problems.extend(sink.problems());
        report.problems.extend(srv.stop().await?);
    }

    // 4b: drain a backlog: deliveries killed while the sink failed, recovered at once.
    if want("backlog") {
        let sink = Sink::start(true).await?;
        let mut srv = Server::start(
            &bin,
            &["--allow-private-webhook-targets", "--webhook-retry-schedule", "0s"],
        )
        .await?;
        let client = Client::new(srv.addr, &srv.key);
        let endpoints = sink.attach(&srv, &[(); 10]).await?;
        create_groups_fast(&client, plan.backlog_groups, "b", c).await?;
        let total = plan.backlog_groups as u64 * 10;
        wait_until(Duration::from_secs(600), || async {
            client.queue_depth().await == Some(0) && sink.failed() >= total
        })
        .await;
        sink.set_failing(false);
        let base = sink.total();
        let prof = srv.profile(perf, "backlog");
        let usage = Usage::start(&srv, &client).await;
        let t0 = Instant::now();
        for id in &endpoints {
            let (s, b) = client
                .post_json(
                    &format!("/v1/webhook-endpoints/{id}/recover"),
                    json!({ "since": "2000-01-01T00:00:00Z" }),
                )
                .await;
            if s != 202 {
                bail!("recover answered {s}: {b}");
            }
        }
        sink.wait_total(base + total, Duration::from_secs(600)).await;
        let secs = t0.elapsed().as_secs_f64();
        if let Some(p) = prof {
            p.finish().await;
        }
        let drained = sink.total() - base;
        let writes = usage.note(&srv, &client, drained, "delivery").await;
        if drained < total {
            report
                .problems
                .push(format!("backlog: {drained} of {total} deliveries arrived"));
        }
        report.add(
            format!("drain a backlog of {total} deliveries"),
            format!("{secs:.2}"),
            "s",
            format!(
                "10 endpoints × {} events, recovered at once ({:.0} deliveries/s); {writes}",
                plan.backlog_groups,
                drained as f64 / secs,
            ),
        );
        report.problems.extend(sink.problems());
        report.problems.extend(srv.stop().await?);
    }

    // 5–6: scale: list and get with N groups; size per group; RSS with many groups.
    if want("scale") {
        let mut srv = Server::start(&bin, &[]).await?;
        let client = Client::new(srv.addr, &srv.key);
        create_groups_fast(&client, plan.scale_small, "s", c).await?;
        wait_until(Duration::from_secs(600), || async {
            client.count_pending().await == Some(0)
        })
        .await;
        let path = srv.db_path.clone();
        checkpoint(&path).await?;
        report.add(
            "database size per group",
            format!("{:.0}", db_bytes(&path) as f64 / plan.scale_small as f64),
            "bytes",
            format!(
                "{} groups created through the API (group, command, event, participant rows; the gateway's database, checkpointed)",
                plan.scale_small
            ),
        );
        measure_reads(&mut report, &client, plan.scale_small, c, &plan).await;
        report.problems.extend(srv.stop().await?);

        let extra = plan.scale_large - plan.scale_small;
        let t0 = Instant::now();
        seed_groups(&path, extra).await?;
        eprintln!("  (seeded {extra} more groups in {:.1}s)", t0.elapsed().as_secs_f64());
        let mut srv = srv.restart_on(&bin, &[]).await?;
        let client = Client::new(srv.addr, &srv.key);
        report.add(
            format!("server RSS idle with {} groups", plan.scale_large),
            srv.rss_mb(),
            "MB",
            "after restart on the large database",
        );
        measure_reads(&mut report, &client, plan.scale_large, c, &plan).await;
        report.add(
            format!("server RSS after reads with {} groups", plan.scale_large),
            srv.rss_mb(),
            "MB",
            "after the list/get load above",
        );
        report.problems.extend(srv.stop().await?);
    }

    let elapsed = started.elapsed();
    let table = report.markdown();
    println!("{table}");
    if args.output != "-" {
        std::fs::write(&args.output, document(&table, args, elapsed))
            .with_context(|| format!("write {}", args.output))?;
        eprintln!("wrote {} ({:.0} s)", args.output, elapsed.as_secs_f64());
    }
    Ok(report.problems)
}

/// The name of the server's SQLite writer thread (of the gateway's database).
const WRITER_THREAD: &str = "wg-db-writer";

/// What a phase cost: CPU of the server and of this process (load generator and sink), and
/// the SQLite writer's commits.
struct Usage {
    at: Instant,
    server: f64,
    writer: (f64, u64),
    bench: f64,
    commits: (f64, f64),
}

impl Usage {
    async fn start(srv: &Server, client: &Client) -> Usage {
        Usage {
            commits: client.commits().await,
            server: srv.cpu_seconds(),
            writer: srv.thread_usage(WRITER_THREAD),
            bench: server::cpu_seconds("self"),
            at: Instant::now(),
        }
    }

    /// "server 1.2 cores, load generator and sink 0.4 cores; 300 commits/s of 5.0 write jobs each"
    /// `ops` operations (each a `what`) were done meanwhile.
    async fn note(&self, srv: &Server, client: &Client, ops: u64, what: &str) -> String {
        let secs = self.at.elapsed().as_secs_f64().max(1e-3);
        let (server, bench) = (
            srv.cpu_seconds() - self.server,
            server::cpu_seconds("self") - self.bench,
        );
        let now = srv.thread_usage(WRITER_THREAD);
        let (writer, wal) = (now.0 - self.writer.0, now.1 - self.writer.1);
        let (commits, jobs) = client.commits().await;
        let (c, j) = (commits - self.commits.0, jobs - self.commits.1);
        format!(
            "server CPU {:.0} µs per {what}; CPU: server {:.2} cores (its SQLite writer thread {:.2}), load generator and sink {:.2} cores; {:.0} commits/s of {:.1} write jobs and {:.0} KB of WAL each",
            server * 1e6 / ops.max(1) as f64,
            server / secs,
            writer / secs,
            bench / secs,
            c / secs,
            j / c.max(1.0),
            wal as f64 / 1024.0 / c.max(1.0)
        )
    }
}

/// Reads at a given scale: a page of 25 groups, and one group by ID.
async fn measure_reads(report: &mut Report, client: &Client, n: usize, c: usize, plan: &Plan) {
    let conc = c.min(16);
    let st = saturate(client, conc, plan.warmup, plan.phase, |_| {
        client.get("/v1/groups?limit=25")
    })
    .await;
    report.check(&st, "list groups");
    report.add(
        format!("GET /v1/groups (25) p50 with {n} groups"),
        ms(st.hist.value_at_quantile(0.5)),
        "ms",
        format!("{conc} connections, {:.0} req/s", st.rate()),
    );
    report.add(
        format!("GET /v1/groups (25) p99 with {n} groups"),
        ms(st.hist.value_at_quantile(0.99)),
        "ms",
        format!("{conc} connections"),
    );
    let st = saturate(client, conc, plan.warmup, plan.phase, |i| {
        client.get(&format!("/v1/groups/s{}", i % 10_000))
    })
    .await;
    report.check(&st, "get group");
    report.add(
        format!("GET /v1/groups/{{id}} p50 with {n} groups"),
        ms(st.hist.value_at_quantile(0.5)),
        "ms",
        format!("{conc} connections, {:.0} req/s", st.rate()),
    );
    report.add(
        format!("GET /v1/groups/{{id}} p99 with {n} groups"),
        ms(st.hist.value_at_quantile(0.99)),
        "ms",
        format!("{conc} connections"),
    );
}

/// Creates groups one by one until each is active; returns their invite links.
async fn create_groups(client: &Client, n: usize, prefix: &str) -> anyhow::Result<Vec<String>> {
    create_groups_fast(client, n, prefix, 16).await?;
    let mut links = Vec::with_capacity(n);
    for i in 0..n {
        let path = format!("/v1/groups/{prefix}{i}");
        let link = wait_value(Duration::from_secs(120), || async {
            let (_, g) = client.get_json(&path).await;
            g["inviteLink"].as_str().map(str::to_string)
        })
        .await
        .with_context(|| format!("group {prefix}{i} never became active"))?;
        links.push(link);
    }
    Ok(links)
}

/// Creates `n` groups with `c` connections (not waiting for them to become active).
async fn create_groups_fast(client: &Client, n: usize, prefix: &str, c: usize) -> anyhow::Result<()> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..c {
        let client = client.clone();
        let next = next.clone();
        let prefix = prefix.to_string();
        tasks.spawn(async move {
            let mut conn = client.connect().await?;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return anyhow::Ok(());
                }
                let body = json!({ "wabaNumber": "15550100001", "subject": format!("Group {i}"), "groupId": format!("{prefix}{i}") });
                let (s, b) = conn.send(client.post("/v1/groups", body)).await?;
                if s != 202 {
                    bail!("create answered {s}: {}", String::from_utf8_lossy(&b));
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// Bulk-inserts `n` active groups straight into the database (the server is stopped).
async fn seed_groups(path: &std::path::Path, n: usize) -> anyhow::Result<()> {
    use sqlx::{ConnectOptions, sqlite::SqliteConnectOptions};
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .connect()
        .await?;
    let sql = "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ?) \
        INSERT INTO groups (org_id, number_id, group_id, status, subject, description, join_approval_mode, wa_group_id, \
        invite_link, participant_count, last_sequence, created_at, updated_at) \
        SELECT (SELECT id FROM orgs LIMIT 1), (SELECT id FROM numbers LIMIT 1), 'seed-' || i, 'active', 'Seeded group ' || i, \
        'A seeded group for the scale benchmark', 'auto_approve', '120363' || (100000000000 + i) || '@g.us', \
        'https://chat.whatsapp.com/seed' || i, 0, 1, 1700000000000 + i, 1700000000000 + i FROM seq";
    sqlx::query(sql).bind(n as i64).execute(&mut conn).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Copies the WAL back into the database file and empties it, so its size is the data's.
async fn checkpoint(path: &std::path::Path) -> anyhow::Result<()> {
    use sqlx::{ConnectOptions, sqlite::SqliteConnectOptions};
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    Ok(())
}

fn db_bytes(path: &std::path::Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .map(|m| m.len())
        .sum()
}

fn hist_of(samples: &[u64]) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for s in samples {
        let _ = h.record((*s).max(1));
    }
    h
}

async fn wait_until<F, Fut>(timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_value<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!(
        "{cores} cores ({cpu}), {:.1} GiB memory, {}",
        mem_kb as f64 / 1024.0 / 1024.0,
        std::env::consts::OS
    )
}

fn document(table: &str, args: &Args, elapsed: Duration) -> String {
    format!(
        "# Benchmarks\n\nProduced by `cargo run --release -p wagroups-bench --{}` in {:.0} s.\n\n\
         Machine: {}. The load generator and the webhook sink run on the same machine as the server, \
         so they share its cores.\n\n{table}\n\
         Every create is acknowledged only after its transaction committed (SQLite WAL, \
         `synchronous=NORMAL`: it survives a process kill). Webhook figures count deliveries whose \
         Standard Webhooks signature the sink verified. Latencies are measured by the load \
         generator (client side, including its own scheduling on the shared cores).\n",
        if args.quick { " --quick" } else { "" },
        elapsed.as_secs_f64(),
        machine()
    )
}

/// A tiny shared map of send times by group ID.
mod dashmap_lite {
    use std::{collections::HashMap, sync::Mutex, time::Instant};

    #[derive(Default)]
    pub struct Times(Mutex<HashMap<String, Instant>>);

    impl Times {
        pub fn put(&self, id: &str, at: Instant) {
            self.0.lock().unwrap().insert(id.to_string(), at);
        }
        pub fn get(&self, id: &str) -> Option<Instant> {
            self.0.lock().unwrap().get(id).copied()
        }
    }
}
