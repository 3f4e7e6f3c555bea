//! The provider port: how wagroups talks to WhatsApp (Meta's Cloud API or the simulated
//! network), what each provider can do, and what WhatsApp reports back.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{
    command::Command,
    model::{Number, Profile},
    phone::Phone,
    time::Timestamp,
};

/// What a provider can do for a number. The domain decides what to do when a capability is
/// missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Participants can be added directly (otherwise they are invited through the link).
    pub direct_add: bool,
    /// Admins can be promoted and demoted.
    pub admin_promotion: bool,
    /// Announcement-only and locked-info settings exist.
    pub announcement_and_locked: bool,
    /// Participants besides the business number.
    pub max_participants: usize,
    /// Writes are confirmed asynchronously (by a provider event carrying the request ID).
    pub async_confirmation: bool,
}

impl Capabilities {
    pub fn for_profile(profile: Profile) -> Self {
        match profile {
            Profile::Cloud => Capabilities {
                direct_add: false,
                admin_promotion: false,
                announcement_and_locked: false,
                max_participants: 8,
                async_confirmation: true,
            },
            Profile::LinkedDevice => Capabilities {
                direct_add: true,
                admin_promotion: true,
                announcement_and_locked: true,
                max_participants: 1023,
                async_confirmation: false,
            },
        }
    }
}

/// A provider accepted a command; its outcome arrives later as a [`ProviderEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProviderError {
    /// Worth trying again later (network, rate limit, provider outage).
    #[error("provider unavailable: {0}")]
    Retryable(String),
    /// WhatsApp refused the command; retrying will not help.
    #[error("{code}: {message}")]
    Rejected { code: String, message: String },
}

#[async_trait]
pub trait Provider: Send + Sync {
    fn capabilities(&self, number: &Number) -> Capabilities {
        Capabilities::for_profile(number.profile)
    }

    /// Submits a command. Must be idempotent on `command.command_id`: a command submitted
    /// again after a crash must not act twice.
    async fn submit(&self, number: &Number, command: &Command) -> Result<Submitted, ProviderError>;
}

/// What WhatsApp reports about a number's groups, in one vocabulary for every provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProviderEvent {
    GroupCreated {
        request_id: String,
        wa_group_id: String,
        invite_link: String,
        at: Timestamp,
    },
    GroupCreateFailed {
        request_id: String,
        code: String,
        message: String,
        at: Timestamp,
    },
    ParticipantJoined {
        wa_group_id: String,
        phone: String,
        at: Timestamp,
    },
    ParticipantLeft {
        wa_group_id: String,
        phone: String,
        at: Timestamp,
    },
    JoinRequestCreated {
        wa_group_id: String,
        join_request_id: String,
        phone: String,
        at: Timestamp,
    },
}

/// A provider event for one business number, with a key that identifies it across
/// redeliveries (the same report applied twice changes nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEnvelope {
    pub waba_number: String,
    pub dedup_key: String,
    pub event: ProviderEvent,
}

/// Where providers hand their events: the group service.
#[async_trait]
pub trait ProviderEventSink: Send + Sync {
    async fn deliver(&self, envelope: ProviderEnvelope) -> Result<(), crate::service::ServiceError>;
}

impl ProviderEvent {
    pub fn phone(&self) -> Option<Phone> {
        match self {
            ProviderEvent::ParticipantJoined { phone, .. }
            | ProviderEvent::ParticipantLeft { phone, .. }
            | ProviderEvent::JoinRequestCreated { phone, .. } => Some(Phone::from_digits(phone.clone())),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 timestamp {s:?}")))
    }
}
