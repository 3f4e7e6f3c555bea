//! Work queued for WhatsApp (commands): written with the change that causes it, submitted
//! by the command worker, closed by the provider's confirmation.

use async_trait::async_trait;

use super::StoreError;
use crate::command::Command;
use crate::ids::CommandId;
use crate::time::Timestamp;

#[async_trait]
pub trait CommandStore: Send + Sync {
    /// Up to `limit` commands waiting to be submitted whose time has come, after command row
    /// `after`, oldest first. Nothing is claimed: the one worker that submits commands keeps
    /// track of those it is submitting.
    async fn due_commands(&self, now: Timestamp, after: i64, limit: i64) -> Result<Vec<Command>, StoreError>;
    /// The provider accepted these commands (row, its request ID); their confirmations will
    /// arrive as provider events.
    async fn commands_submitted(&self, submitted: &[(i64, String)], now: Timestamp) -> Result<(), StoreError>;
    /// Submission failed; try again at `not_before` (the attempt is counted).
    async fn command_retry(&self, id: i64, error: &str, not_before: Timestamp) -> Result<(), StoreError>;
    /// Marks a command as being sent to a provider that is not idempotent: until its answer is
    /// recorded, a crash leaves it in doubt (not due again), for the provider's listing to
    /// settle.
    async fn command_sending(&self, id: i64, now: Timestamp) -> Result<(), StoreError>;
    /// The number's pending commands in doubt (sent, no answer recorded) since before `before`.
    async fn in_doubt_commands(&self, number_id: i64, before: Timestamp) -> Result<Vec<Command>, StoreError>;
    /// An in-doubt command the provider did not carry out is due again now.
    async fn command_resend(&self, id: i64, now: Timestamp) -> Result<(), StoreError>;
    /// The number's pending commands are due now (its pause was lifted: a new token).
    async fn resume_commands(&self, number_id: i64, now: Timestamp) -> Result<u64, StoreError>;
    /// Not submitted (its number is paused); try at `not_before`, the attempt not counted.
    /// Like `command_retry`, it touches only a pending command.
    async fn command_defer(&self, id: i64, reason: &str, not_before: Timestamp) -> Result<(), StoreError>;
    /// A command's status and its provider's answer (JSON), if the command exists.
    async fn command_outcome(
        &self,
        command_id: &CommandId,
    ) -> Result<Option<(crate::model::CommandStatus, Option<String>)>, StoreError>;
    /// Commands not yet carried out (pending or awaiting confirmation).
    async fn open_commands(&self) -> Result<i64, StoreError>;
}
