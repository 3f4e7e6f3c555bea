//! Background work: the provider worker that carries out queued commands.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wagroups_core::{provider::ProviderRegistry, time::Timestamp};

use crate::AppState;

/// How long a claimed command stays leased to this worker before another may take it.
const COMMAND_LEASE_MS: i64 = 30_000;
const COMMAND_BATCH: i64 = 64;
const POLL: Duration = Duration::from_millis(500);

/// Claims due commands and submits them to their number's provider, until `shutdown`.
/// Woken when a command is queued; polls as a fallback (commands queued by another process,
/// retries coming due, leases expiring after a crash).
pub async fn run_command_worker(state: AppState, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = state.commands_ready.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let store = state.service.store();
            let batch = match store
                .claim_commands(Timestamp::now(), COMMAND_LEASE_MS, COMMAND_BATCH)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming commands failed");
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            // Commands of a batch go out concurrently: they concern different groups, and their
            // writes then share commits.
            futures_util::future::join_all(batch.into_iter().map(|cmd| {
                let state = &state;
                async move {
                    let number = match state.service.store().get_number(cmd.number_id).await {
                        Ok(Some(n)) => n,
                        Ok(None) => {
                            tracing::error!(command = cmd.command_id, "command for an unknown number");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "loading a command's number failed");
                            return;
                        }
                    };
                    let provider = state.providers.for_number(&number);
                    if let Err(e) = state.service.submit_command(&cmd, &number, provider.as_deref()).await {
                        tracing::warn!(command = cmd.command_id, error = %e, "submitting a command failed; it will be retried");
                    }
                }
            }))
            .await;
        }
    }
}
