//! Background work: the provider worker that carries out queued commands.
//!
//! One worker per server (one server runs on an SQLite file) submits the pending commands in
//! ID order. It reads them without claiming them (it remembers those it is submitting),
//! submits many at once, and records the providers' request IDs in batches. A submission cut
//! short by a crash leaves its command pending, so it is submitted again after the restart;
//! providers recognise a command they already carried out.

use std::{collections::HashSet, time::Duration};

use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use wagroups_core::{
    command::Command,
    service::{ServiceError, Submission},
    time::Timestamp,
};

use crate::AppState;

/// Commands being submitted at once.
const MAX_IN_FLIGHT: usize = 256;
/// How often every pending command is read again from the first (retries come due, commands
/// queued by another process), however busy the worker is.
const POLL: Duration = Duration::from_millis(500);
/// How long submissions in flight may finish after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A batch of accepted commands (row, request ID) and how recording it went.
type Recorded = (Vec<(i64, String)>, Result<(), ServiceError>);
type Recording = JoinHandle<Recorded>;

/// What became of one submission.
enum Outcome {
    /// Accepted under this request ID (still to be recorded).
    Accepted(String),
    /// Recorded (a retry or the failure), or to be tried again on a later read.
    Settled,
    /// Cannot be submitted (its number is unknown).
    Stuck,
}

struct Worker {
    state: AppState,
    /// Commands read and not yet settled: being submitted, or accepted and not yet recorded.
    in_flight: HashSet<i64>,
    /// Commands whose number is unknown: left alone until a restart.
    stuck: HashSet<i64>,
    /// The newest command read; new commands are read after it.
    cursor: i64,
    /// Accepted commands whose request IDs are still to be recorded.
    accepted: Vec<(i64, String)>,
    recording: Option<Recording>,
    /// The commands the write under way records.
    recording_ids: Vec<i64>,
}

/// Submits due commands to their number's provider, until `shutdown`. Woken when a command
/// is queued; reads every pending command again every [`POLL`].
pub async fn run_command_worker(state: AppState, shutdown: CancellationToken) {
    let mut w = Worker {
        state,
        in_flight: HashSet::new(),
        stuck: HashSet::new(),
        cursor: 0,
        accepted: Vec::new(),
        recording: None,
        recording_ids: Vec::new(),
    };
    let mut tasks: JoinSet<(i64, Outcome)> = JoinSet::new();
    // A fixed beat, which a busy server's other wake-ups do not put off.
    let mut rescan = tokio::time::interval(POLL);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        w.read_due(&mut tasks).await;
        w.start_recording();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = w.state.commands_ready.notified() => {}
            // Read every pending command again, from the first.
            _ = rescan.tick() => w.cursor = 0,
            Some(done) = tasks.join_next() => {
                w.submitted(done);
                while let Some(done) = tasks.try_join_next() {
                    w.submitted(done);
                }
            }
            finished = async {
                match w.recording.as_mut() {
                    Some(h) => h.await,
                    None => std::future::pending().await,
                }
            } => {
                w.recording = None;
                w.recorded(finished);
            }
        }
    }
    // Let submissions in flight finish, and record what they were accepted under.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(done) = tasks.join_next().await {
            w.submitted(done);
        }
    })
    .await;
    tasks.abort_all();
    if let Some(h) = w.recording.take() {
        w.recorded(h.await);
    }
    if !w.accepted.is_empty()
        && let Err(e) = w.state.service.commands_submitted(&w.accepted).await
    {
        tracing::warn!(error = %e, "recording accepted commands at shutdown failed; they are submitted again");
    }
}

impl Worker {
    /// Starts submitting the due commands not yet in flight, as many as there is room for.
    async fn read_due(&mut self, tasks: &mut JoinSet<(i64, Outcome)>) {
        loop {
            let room = MAX_IN_FLIGHT.saturating_sub(self.in_flight.len());
            if room == 0 {
                return;
            }
            let batch = match self
                .state
                .service
                .store()
                .due_commands(Timestamp::now(), self.cursor, room as i64)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "reading due commands failed");
                    return;
                }
            };
            let full = batch.len() == room;
            for cmd in batch {
                self.cursor = cmd.id;
                if !self.stuck.contains(&cmd.id) && self.in_flight.insert(cmd.id) {
                    tasks.spawn(submit(self.state.clone(), cmd));
                }
            }
            if !full {
                return;
            }
        }
    }

    fn submitted(&mut self, done: Result<(i64, Outcome), tokio::task::JoinError>) {
        match done {
            Ok((id, Outcome::Accepted(request_id))) => self.accepted.push((id, request_id)),
            Ok((id, Outcome::Settled)) => {
                self.in_flight.remove(&id);
            }
            Ok((id, Outcome::Stuck)) => {
                self.in_flight.remove(&id);
                self.stuck.insert(id);
            }
            // A panicked submission: its command stays in flight (not submitted again) until
            // a restart.
            Err(e) => tracing::error!(error = %e, "a command submission panicked"),
        }
    }

    /// Records accepted commands in one write, unless a write is under way.
    fn start_recording(&mut self) {
        if self.recording.is_some() || self.accepted.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.accepted);
        self.recording_ids = batch.iter().map(|(id, _)| *id).collect();
        let service = self.state.service.clone();
        self.recording = Some(tokio::spawn(async move {
            let result = service.commands_submitted(&batch).await;
            (batch, result)
        }));
    }

    fn recorded(&mut self, finished: Result<Recorded, tokio::task::JoinError>) {
        match finished {
            Ok((batch, Ok(()))) => {
                for (id, _) in batch {
                    self.in_flight.remove(&id);
                }
            }
            Ok((mut batch, Err(e))) => {
                tracing::warn!(error = %e, n = batch.len(), "recording accepted commands failed; retrying");
                batch.append(&mut self.accepted);
                self.accepted = batch;
            }
            Err(e) => {
                // Still pending in the database: they are submitted again (providers
                // recognise a command they carried out).
                tracing::error!(error = %e, "recording accepted commands panicked");
                for id in std::mem::take(&mut self.recording_ids) {
                    self.in_flight.remove(&id);
                }
            }
        }
    }
}

/// Applies held provider reports when they can be: woken when a report is held or request
/// IDs are recorded, and when the next held report is due. Reports held before a restart are
/// taken up at once.
pub async fn run_inbox_applier(state: AppState, shutdown: CancellationToken) {
    // Woken (or just started): every held report is tried now.
    let mut woken = true;
    loop {
        let pause = match state.service.apply_held_reports(woken).await {
            Ok(Some(due)) => Duration::from_millis((due.millis() - Timestamp::now().millis()).clamp(0, 60_000) as u64),
            // Nothing held: a wake-up says when there is.
            Ok(None) => Duration::from_secs(60),
            Err(e) => {
                tracing::warn!(error = %e, "applying held provider reports failed; retrying");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = state.inbox_ready.notified() => woken = true,
            _ = tokio::time::sleep(pause) => woken = false,
        }
    }
}

/// Submits one command.
async fn submit(state: AppState, cmd: Command) -> (i64, Outcome) {
    let number = match state.service.store().get_number(cmd.number_id).await {
        Ok(Some(n)) => n,
        Ok(None) => {
            tracing::error!(
                command = cmd.command_id.as_str(),
                "command for an unknown number; left until a restart"
            );
            return (cmd.id, Outcome::Stuck);
        }
        Err(e) => {
            tracing::warn!(error = %e, "loading a command's number failed");
            return (cmd.id, Outcome::Settled);
        }
    };
    let provider = state.providers.for_number(&number);
    match state.service.submit_command(&cmd, &number, provider.as_deref()).await {
        Ok(Submission::Accepted(request_id)) => (cmd.id, Outcome::Accepted(request_id)),
        Ok(Submission::Recorded) => (cmd.id, Outcome::Settled),
        Err(e) => {
            tracing::warn!(command = cmd.command_id.as_str(), error = %e, "submitting a command failed; it will be retried");
            (cmd.id, Outcome::Settled)
        }
    }
}

/// Reconciles the numbers whose providers keep a listing (Meta's Cloud API) with it: once at
/// start (webhooks may have been missed while the server was down), then every `every`.
pub async fn run_reconciler(state: AppState, every: Duration, shutdown: CancellationToken) {
    loop {
        match state.service.reconcile_numbers(None).await {
            Ok(results) => {
                for (number, r) in results {
                    if let Err(e) = r {
                        tracing::warn!(%number, error = %e, "reconciliation did not complete");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reconciliation could not start"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
