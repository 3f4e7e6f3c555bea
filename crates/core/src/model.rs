//! The domain's records: organisations, numbers, API keys, groups, participants.

use serde::{Deserialize, Serialize};

use crate::{
    ids::{ApiKeyId, GroupId, OperationId, OrgId},
    phone::Phone,
    time::Timestamp,
};

use crate::enums::string_enum;

string_enum!(
    /// Who may join through the invite link without an admin's approval.
    JoinApprovalMode { AutoApprove = "auto_approve", ApprovalRequired = "approval_required" }
);
string_enum!(
    /// Lifecycle of a group as wagroups knows it.
    GroupStatus { Pending = "pending", Active = "active", Failed = "failed", Deleted = "deleted" }
);
string_enum!(
    /// Where a command to the provider stands: queued, sent, carried out or given up.
    CommandStatus { Pending = "pending", Submitted = "submitted", Done = "done", Failed = "failed" }
);
string_enum!(
    /// A write WhatsApp confirms later: pending until its confirmation comes.
    OperationStatus { Pending = "pending", Succeeded = "succeeded", Failed = "failed" }
);
string_enum!(
    /// Which write an operation is: how operations and `GROUP_OPERATION_FAILED` events name it.
    OperationKind {
        UpdateSettings = "update_settings",
        AddParticipants = "add_participants",
        InviteParticipants = "invite_participants",
        RemoveParticipants = "remove_participants",
        PromoteAdmins = "promote_admins",
        DemoteAdmins = "demote_admins",
        ResetInviteLink = "reset_invite_link",
        ApproveJoinRequests = "approve_join_requests",
        RejectJoinRequests = "reject_join_requests",
        DeleteGroup = "delete_group",
    }
);
string_enum!(
    ParticipantRole { Superadmin = "superadmin", Admin = "admin", Member = "member" }
);
string_enum!(
    ParticipantState { Invited = "invited", Member = "member", Left = "left", Removed = "removed" }
);
string_enum!(
    /// Which WhatsApp a number is bound to.
    ProviderKind { Simulated = "simulated", CloudApi = "cloud-api" }
);
string_enum!(
    /// The semantics a number has: Meta's Cloud API, or a linked-device (WhatsApp Web) session.
    Profile { Cloud = "cloud", LinkedDevice = "linked-device" }
);
string_enum!(
    JoinRequestState { Pending = "pending", Approved = "approved", Rejected = "rejected", Revoked = "revoked" }
);
string_enum!(
    /// Why a user became a member.
    JoinReason {
        InviteLink = "invite_link",
        Added = "added",
        JoinRequestApproved = "join_request_approved",
        /// Found by reconciliation: the provider lists a member no report announced.
        Reconciled = "reconciled",
    }
);
string_enum!(
    /// Who may add a user to a group (WhatsApp's privacy setting).
    AddPrivacy { Everyone = "everyone", Contacts = "contacts", Nobody = "nobody" }
);

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
}

/// A business WhatsApp number of an organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Number {
    #[serde(skip)]
    pub id: i64,
    pub org_id: OrgId,
    pub waba_number: String,
    pub provider: ProviderKind,
    pub profile: Profile,
    pub disabled: bool,
    pub default_join_approval_mode: JoinApprovalMode,
    /// What the number's provider needs to serve it (a JSON object only the provider reads;
    /// any secret in it is sealed by the provider), except its top-level `wabaId`: when a
    /// provider knows the number's WhatsApp Business Account, it writes it there, and the
    /// gateway reads it (`Group::waba_id`, Meta-format webhooks). Never shown.
    #[serde(skip)]
    pub provider_config: serde_json::Value,
    /// The number's name at its provider (Meta's phone number ID), unique per provider.
    pub provider_ref: Option<String>,
    /// An alias by which a linked-device gateway's clients name the number (Wawp's
    /// `instance_id`), unique.
    pub instance_id: Option<String>,
    pub health: NumberHealth,
    pub created_at: Timestamp,
}

string_enum!(
    /// How the provider last found a number.
    #[derive(Default)]
    HealthStatus {
        #[default]
        Ok = "ok",
        /// The provider refused its credentials (Meta's `190`): its commands wait for new ones.
        CredentialsInvalid = "credentials_invalid",
        /// The number may not use the Groups API (Meta's `131215`).
        NotEligible = "not_eligible",
        /// The provider asked for a pause (rate limits): until `until`.
        RateLimited = "rate_limited",
    }
);

/// A number's health, as its provider last reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NumberHealth {
    pub status: HealthStatus,
    /// When a pause ends (`rate_limited`).
    pub until: Option<Timestamp>,
    /// What the provider said.
    pub detail: Option<String>,
}

/// An API key's record; the secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub name: Option<String>,
    /// Business numbers the key may act on; `None` means every number of the organisation.
    pub numbers: Option<Vec<String>>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    pub fn allows(&self, waba_number: &str) -> bool {
        match &self.numbers {
            None => true,
            Some(list) => list.iter().any(|n| n == waba_number),
        }
    }
}

/// A group as stored, without its participants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: i64,
    pub org_id: OrgId,
    pub number_id: i64,
    pub waba_number: String,
    /// The number's phone number ID (its `provider_ref`), as read with the group.
    pub phone_number_id: Option<String>,
    /// The number's WhatsApp Business Account ID, when its provider knows it.
    pub waba_id: Option<String>,
    pub group_id: GroupId,
    pub status: GroupStatus,
    pub subject: String,
    pub description: String,
    pub join_approval_mode: JoinApprovalMode,
    pub wa_group_id: Option<String>,
    pub invite_link: Option<String>,
    /// Members other than the business number (Meta's `total_participant_count`).
    pub participant_count: i64,
    /// Only admins may send messages.
    pub announcement_only: bool,
    /// Only admins may edit the group's info.
    pub locked: bool,
    /// Suspended by WhatsApp: writes are refused until cleared.
    pub suspended: bool,
    pub last_sequence: i64,
    pub failure_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Group {
    /// The code of the group's invite link (what follows `https://chat.whatsapp.com/`).
    pub fn invite_code(&self) -> Option<&str> {
        self.invite_link
            .as_deref()
            .and_then(|l| l.rsplit('/').next())
            .filter(|c| !c.is_empty())
    }
}

/// A WhatsApp user in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub phone: Phone,
    pub role: ParticipantRole,
    pub state: ParticipantState,
    /// True for the business number that created the group.
    pub is_business: bool,
    pub joined_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// When WhatsApp last reported this participant joining or leaving, by WhatsApp's clock
    /// (reports come in no set order: an older one is recognised as such).
    pub changed_at: Option<Timestamp>,
    /// The participant's exit (`state` left or removed) was reported before the join it
    /// follows, and not announced yet: the join, when it comes, announces both in order.
    pub exit_unannounced: bool,
}

/// A user's request to join an `approval_required` group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub join_request_id: String,
    pub phone: Phone,
    pub state: JoinRequestState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A write to a group that WhatsApp accepted and confirms later (Meta's Cloud API confirms
/// every write by webhook): the answer to the write names it when the confirmation did not
/// come in time, and `GET /v1/operations/{id}` shows how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub id: OperationId,
    pub org_id: OrgId,
    pub group_row_id: i64,
    /// The client's group ID.
    pub group_id: GroupId,
    pub waba_number: String,
    pub kind: OperationKind,
    pub status: OperationStatus,
    /// The provider's answer per item, once succeeded.
    pub results: Vec<ItemResult>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

string_enum!(
    /// The outcome for one item of a write (a participant, a join request).
    ItemStatus {
        Added = "added",
        AlreadyMember = "already_member",
        /// Sent the invite link 1:1.
        Invited = "invited",
        /// The user's privacy forbids adding them: they need the invite link.
        InviteRequired = "invite_required",
        NotOnWhatsapp = "not_on_whatsapp",
        GroupFull = "group_full",
        /// Not a phone number or user JID.
        Invalid = "invalid",
        Removed = "removed",
        NotAMember = "not_a_member",
        CannotRemoveCreator = "cannot_remove_creator",
        /// Removed before: cannot rejoin through the invite link (Meta's rule).
        RemovedCannotRejoin = "removed_cannot_rejoin",
        Promoted = "promoted",
        Demoted = "demoted",
        AlreadyAdmin = "already_admin",
        NotAnAdmin = "not_an_admin",
        CannotDemoteCreator = "cannot_demote_creator",
        Approved = "approved",
        Rejected = "rejected",
        NotFound = "not_found",
        /// The invite link was reset.
        Reset = "reset",
        GroupCreateFailed = "group_create_failed",
        /// WhatsApp gave no answer for the item.
        Error = "error",
    }
);

impl ItemStatus {
    /// The item achieved what was asked.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            ItemStatus::Added
                | ItemStatus::AlreadyMember
                | ItemStatus::Invited
                | ItemStatus::Removed
                | ItemStatus::Promoted
                | ItemStatus::Demoted
                | ItemStatus::AlreadyAdmin
                | ItemStatus::Approved
                | ItemStatus::Rejected
                | ItemStatus::Reset
        )
    }
}

/// The outcome for one item of a multi-item operation (a participant, a join request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    /// The phone (digits) or join request ID the result is about.
    pub key: String,
    pub status: ItemStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ItemResult {
    pub fn new(key: impl Into<String>, status: ItemStatus) -> Self {
        ItemResult {
            key: key.into(),
            status,
            invite_link: None,
            message: None,
        }
    }
}
