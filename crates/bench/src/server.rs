//! The server under test: the release `wagroups` binary, started on a fresh database in a
//! temporary directory, in its own process (so its memory is its own).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// Builds (if needed) and locates the release server next to this binary.
pub fn build_release_server() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("bench binary has no directory")?;
    let target = dir.parent().context("bench binary is not in a target directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "-p", "wagroups", "--bin", "wagroups"])
        .env("CARGO_TARGET_DIR", target)
        .status()
        .context("run cargo build for the server")?;
    if !status.success() {
        bail!("building the release server failed");
    }
    let bin = dir.join("wagroups");
    if !bin.exists() {
        bail!("{} not found after the build", bin.display());
    }
    Ok(bin)
}

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub key: String,
    pub db_path: PathBuf,
    dir: tempfile::TempDir,
}

async fn spawn(bin: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<(Child, SocketAddr, Option<String>)> {
    let db = dir.join("bench.db");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))?;
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database",
            &format!("sqlite://{}", db.display()),
        ])
        .args(args)
        .env("WAGROUPS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut key = None;
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .context("server did not start within 60 s")??
            .context("server exited before listening")?;
        if let Some(k) = line.trim().strip_prefix("API key:") {
            key = k.split_whitespace().next().map(str::to_string);
        }
        if let Some(url) = line.strip_prefix("listening on http://") {
            break url.trim().parse::<SocketAddr>()?;
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, addr, key))
}

impl Server {
    pub async fn start(bin: &Path, args: &[&str]) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        let (child, addr, key) = spawn(bin, dir.path(), args).await?;
        Ok(Server {
            child,
            addr,
            key: key.context("first start printed no API key")?,
            db_path: dir.path().join("bench.db"),
            dir,
        })
    }

    pub fn rss_mb(&self) -> String {
        format!("{:.1}", self.status_kb("VmRSS:") as f64 / 1024.0)
    }

    pub fn peak_rss_mb(&self) -> String {
        format!("{:.1}", self.status_kb("VmHWM:") as f64 / 1024.0)
    }

    /// Starts `perf record` on the server into `DIR/perf-<phase>.data`, when profiling was
    /// asked for (`--perf DIR`); stop it with [`Profile::finish`] when the phase ends.
    pub fn profile(&self, dir: Option<&Path>, phase: &str) -> Option<Profile> {
        let dir = dir?;
        let pid = self.child.id()?;
        let out = dir.join(format!("perf-{phase}.data"));
        let child = Command::new("perf")
            .args([
                "record",
                "-q",
                "-F",
                "997",
                "--call-graph",
                "dwarf,16384",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| eprintln!("  (perf record could not start: {e})"))
            .ok()?;
        Some(Profile { child, out })
    }

    /// CPU time the server has used (user + system), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        self.child.id().map_or(0.0, |pid| cpu_seconds(&pid.to_string()))
    }

    /// CPU time of the server's threads with this name, in seconds, and the bytes they
    /// handed to `write` calls.
    pub fn thread_usage(&self, name: &str) -> (f64, u64) {
        let Some(pid) = self.child.id() else { return (0.0, 0) };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return (0.0, 0);
        };
        tasks
            .flatten()
            .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
            .map(|t| {
                let cpu = cpu_seconds(&format!("{pid}/task/{}", t.file_name().to_string_lossy()));
                let written = std::fs::read_to_string(t.path().join("io"))
                    .ok()
                    .and_then(|io| {
                        io.lines()
                            .find_map(|l| l.strip_prefix("wchar:"))
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    })
                    .unwrap_or(0);
                (cpu, written)
            })
            .fold((0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    }

    pub fn status_kb(&self, field: &str) -> u64 {
        let Some(pid) = self.child.id() else { return 0 };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// SIGTERM, then waits for a clean exit; returns what went wrong (errors in its log, a
    /// failed exit).
    pub async fn stop(&mut self) -> anyhow::Result<Vec<String>> {
        let mut problems = Vec::new();
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => problems.push(format!("server exited with {status}")),
            Ok(Err(e)) => problems.push(format!("waiting for the server: {e}")),
            Err(_) => {
                let _ = self.child.kill().await;
                problems.push("server did not stop within 30 s of SIGTERM".into());
            }
        }
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        problems.extend(
            log.lines()
                .filter(|l| l.contains("ERROR"))
                .take(5)
                .map(|l| format!("server log: {l}")),
        );
        Ok(problems)
    }

    /// Starts a stopped server again on its database.
    pub async fn restart_on(mut self, bin: &Path, args: &[&str]) -> anyhow::Result<Server> {
        let (child, addr, _) = spawn(bin, self.dir.path(), args).await?;
        self.child = child;
        self.addr = addr;
        Ok(self)
    }
}

/// A running `perf record`.
pub struct Profile {
    child: Child,
    out: PathBuf,
}

impl Profile {
    /// Stops recording (SIGINT, so perf writes its file) and says where the profile is.
    pub async fn finish(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(120), self.child.wait()).await;
        eprintln!("  (profile: perf report -i {})", self.out.display());
    }
}

/// CPU time (user + system) of a process (`self` for this one), in seconds.
pub fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    // Clock ticks are 1/100 s on Linux.
    ticks / 100.0
}
