//! Commands: work for WhatsApp, queued durably in the same transaction as the change that
//! needs it, and carried out by the provider worker.

use serde::{Deserialize, Serialize};

use crate::ids::{CommandId, OrgId};
use crate::model::JoinApprovalMode;

/// What the provider is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CommandPayload {
    CreateGroup {
        subject: String,
        description: String,
        join_approval_mode: JoinApprovalMode,
        /// Participants to add at creation (digits).
        #[serde(default)]
        participants: Vec<String>,
        /// Invite those who cannot be added (privacy) through the link.
        #[serde(default = "yes")]
        invite_fallback: bool,
    },
}

fn yes() -> bool {
    true
}

impl CommandPayload {
    pub fn kind(&self) -> &'static str {
        match self {
            CommandPayload::CreateGroup { .. } => "create_group",
        }
    }
}

/// A claimed command, ready to be submitted to the number's provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub id: i64,
    /// Stable across retries; providers use it to make submission idempotent.
    pub command_id: CommandId,
    pub org_id: OrgId,
    pub number_id: i64,
    pub group_row_id: i64,
    pub payload: CommandPayload,
    /// Submissions so far, including this one.
    pub attempts: i64,
    /// The provider's request ID, once it accepted the command. A pending command that has
    /// one is a creation WhatsApp confirmed without its participants, to be invited now.
    pub request_id: Option<String>,
}

/// Retry policy for submitting commands to a provider.
pub const COMMAND_MAX_ATTEMPTS: i64 = 8;

/// Delay before the next submission after `attempts` failed ones: 1 s doubling, capped at 5 min.
pub fn command_backoff_ms(attempts: i64) -> i64 {
    let exp = attempts.clamp(1, 16) - 1;
    (1000i64 << exp).min(300_000)
}
