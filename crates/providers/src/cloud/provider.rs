//! The `cloud-api` provider: a number's commands and writes sent to Meta's Graph API with
//! its token; what Meta confirms arrives by webhook (`crate::cloud::webhook`).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use wagroups_core::{
    command::{Command, CommandPayload},
    model::{HealthStatus, ItemResult, ItemStatus, Number, NumberHealth},
    provider::{
        Operated, Provider, ProviderEnvelope, ProviderError, ProviderEvent, ProviderEventSink, ProviderOp, RemoteGroup,
        Submitted,
    },
    secret::{KeySlot, Secret},
    time::Timestamp,
};

/// What Meta's Cloud API cannot do.
fn not_supported(what: &str) -> ProviderError {
    ProviderError::Rejected {
        code: "not_supported".into(),
        message: format!("Meta's Cloud API does not support {what}"),
    }
}

use super::{
    config::{CloudConfig, Credential},
    graph::{Graph, GraphError},
};

pub struct CloudProvider {
    graph: Graph,
    keys: Arc<KeySlot>,
    /// What a write did that Meta sends no webhook for (a reset link, a rejected request),
    /// handed to the inbox by the [`Provider::flush`] the core makes right after the write.
    effects: Mutex<Vec<ProviderEnvelope>>,
}

/// The pause between two of reconciliation's calls to Meta.
const RECONCILE_PACE: std::time::Duration = std::time::Duration::from_millis(100);

/// Meta removes at most this many participants per request.
const REMOVE_MAX: usize = 8;

impl CloudProvider {
    pub fn new(graph: Graph, keys: Arc<KeySlot>) -> CloudProvider {
        CloudProvider {
            graph,
            keys,
            effects: Mutex::new(Vec::new()),
        }
    }

    /// `what` tells the write's effects apart (the key must not depend on what else is
    /// queued: other requests flush the queue concurrently).
    fn effect(&self, number: &Number, operation_id: &str, what: &str, event: ProviderEvent) {
        let mut effects = self.effects.lock().unwrap_or_else(|e| e.into_inner());
        effects.push(ProviderEnvelope {
            waba_number: number.waba_number.clone(),
            dedup_key: format!("cloud:{operation_id}:{what}"),
            event,
        });
    }

    /// The invite template sent to each of `phones`, one call each, in order. Each sent is
    /// `invited` (and recorded as invited, with the group's link); one Meta cannot deliver to
    /// gets the reason. A failure that is not about the recipient (a refused token, a rate
    /// limit, a template Meta refuses) before anyone was sent fails the write as any Meta
    /// failure does; after some were, the rest are answered invite_required with why.
    async fn send_invites(
        &self,
        number: &Number,
        (config, token): (&CloudConfig, &Secret),
        wa_group_id: &str,
        phones: &[String],
        operation_id: &str,
    ) -> Result<Operated, ProviderError> {
        let Some(template) = config.invite_template() else {
            return Ok(Operated::Done(
                phones.iter().map(|p| invite_required(p, None)).collect(),
            ));
        };
        let mut results = Vec::with_capacity(phones.len());
        let mut stopped: Option<String> = None;
        // A failure about the number (not the recipient) after some were sent.
        let mut stopped_by: Option<ProviderError> = None;
        for phone in phones {
            if let Some(why) = &stopped {
                results.push(invite_required(phone, Some(why.clone())));
                continue;
            }
            match self
                .graph
                .send_invite_template(config, token, phone, template, wa_group_id)
                .await
            {
                Ok(_message_id) => {
                    self.effect(
                        number,
                        operation_id,
                        &format!("invited:{phone}"),
                        ProviderEvent::ParticipantInvited {
                            wa_group_id: wa_group_id.to_string(),
                            phone: phone.clone(),
                            invite_link: None,
                            at: Timestamp::now(),
                        },
                    );
                    results.push(ItemResult::new(phone.clone(), ItemStatus::Invited));
                }
                Err(GraphError::Meta { code, message, .. }) if RECIPIENT_CODES.contains(&code) => {
                    let mut r = ItemResult::new(
                        phone.clone(),
                        if code == 131026 {
                            ItemStatus::NotOnWhatsapp
                        } else {
                            ItemStatus::Invalid
                        },
                    );
                    r.message = Some(format!("Meta {code}: {message}"));
                    results.push(r);
                }
                // Sent and unanswered: Meta may have delivered it, and no confirmation will say.
                Err(GraphError::NoAnswer(why)) => {
                    let mut r = ItemResult::new(phone.clone(), ItemStatus::InviteRequired);
                    r.message = Some(format!(
                        "Meta did not answer ({why}): the invite may have been sent; send them the group's invite \
                         link to be sure"
                    ));
                    results.push(r);
                    stopped = Some("Meta stopped answering".into());
                }
                // Nobody sent yet: the write fails as the failure says (a pause, a retry, a refusal).
                Err(e) if results.iter().all(|r| r.status != ItemStatus::Invited) => return Err(provider_error(e)),
                Err(e) => {
                    let why = e.to_string();
                    results.push(invite_required(phone, Some(why.clone())));
                    stopped = Some(why);
                    let e = provider_error(e);
                    if matches!(e, ProviderError::Paused { .. } | ProviderError::Ineligible { .. }) {
                        stopped_by = Some(e);
                    }
                }
            }
        }
        Ok(match stopped_by {
            Some(stopped_by) => Operated::Partial { results, stopped_by },
            None => Operated::Done(results),
        })
    }

    /// The number's configuration and access token.
    fn token(&self, number: &Number) -> Result<(CloudConfig, Secret), ProviderError> {
        let config = CloudConfig::of(number).map_err(|e| ProviderError::Rejected {
            code: "configuration_invalid".into(),
            message: e.to_string(),
        })?;
        let key = self
            .keys
            .get()
            .ok_or_else(|| ProviderError::Retryable("the secret key is not loaded yet".into()))?;
        let token = config
            .open(&number.waba_number, Credential::AccessToken, &key)
            .map_err(|e| ProviderError::Rejected {
                code: "configuration_invalid".into(),
                message: e.to_string(),
            })?;
        Ok((config, token))
    }
}

/// Someone the business must send the group's link to, and why.
fn invite_required(phone: &str, why: Option<String>) -> ItemResult {
    let mut r = ItemResult::new(phone.to_string(), ItemStatus::InviteRequired);
    r.message = Some(match why {
        Some(why) => format!("the invite template could not be sent ({why}): send them the group's invite link"),
        None => "Meta adds nobody to a group: send them the group's invite link".into(),
    });
    r
}

/// Meta's answers to a template that say the recipient cannot get it (131026: undeliverable,
/// the number is not on WhatsApp or cannot receive it; 131030: not in a test number's
/// allowed list; 131021: the recipient is the sender).
const RECIPIENT_CODES: [i64; 3] = [131026, 131030, 131021];

/// Meta's rate limits: the Groups API's own, the app's, the WABA's, throughput.
const RATE_LIMIT_CODES: [i64; 4] = [131208, 4, 80007, 130429];
/// How long a rate limit pauses the number when Meta says not (no `Retry-After`).
const RATE_LIMIT_PAUSE: std::time::Duration = std::time::Duration::from_secs(60);

/// What a Graph API failure means for the number and its work: a refused token or a rate
/// limit pauses the number; Meta's own failures and no answer are retried; an ineligible
/// number is refused and marked; any other code is WhatsApp's refusal, with Meta's code.
pub fn provider_error(e: GraphError) -> ProviderError {
    match e {
        GraphError::Transport(m) | GraphError::BadAnswer(m) => ProviderError::Retryable(m),
        GraphError::NoAnswer(m) => ProviderError::InDoubt(m),
        GraphError::Meta { code: 190, message, .. } => ProviderError::Paused {
            health: NumberHealth {
                status: HealthStatus::CredentialsInvalid,
                until: None,
                detail: Some(format!("190: {message}")),
            },
            message: format!("Meta refused the number's access token (190): {message}"),
        },
        GraphError::Meta {
            status,
            code,
            message,
            retry_after,
            ..
        } if status == 429 || RATE_LIMIT_CODES.contains(&code) => {
            let pause = retry_after
                .map(std::time::Duration::from_secs)
                .unwrap_or(RATE_LIMIT_PAUSE);
            let until = Timestamp::now().plus_millis(pause.as_millis() as i64);
            ProviderError::Paused {
                health: NumberHealth {
                    status: HealthStatus::RateLimited,
                    until: Some(until),
                    detail: Some(format!("{code}: {message}")),
                },
                message: format!(
                    "Meta rate-limited the number ({code}: {message}); paused until {}",
                    until.to_rfc3339()
                ),
            }
        }
        GraphError::Meta {
            status, code, message, ..
        } if status >= 500 || code == 1 || code == 2 => ProviderError::Retryable(format!("Meta {code}: {message}")),
        GraphError::Meta {
            code: 131215, message, ..
        } => ProviderError::Ineligible {
            code: "131215".into(),
            message,
        },
        GraphError::Meta { code, message, .. } => ProviderError::Rejected {
            code: code.to_string(),
            message,
        },
    }
}

#[async_trait]
impl Provider for CloudProvider {
    async fn submit(&self, number: &Number, command: &Command) -> Result<Submitted, ProviderError> {
        let (config, token) = self.token(number)?;
        match &command.payload {
            // Meta's create takes no participants: the confirmation says none was added, and the
            // gateway invites them once the group is active.
            CommandPayload::CreateGroup {
                subject,
                description,
                join_approval_mode,
                ..
            } => {
                let request_id = self
                    .graph
                    .create_group(&config, &token, subject, description, *join_approval_mode)
                    .await
                    .map_err(provider_error)?;
                Ok(Submitted { request_id })
            }
        }
    }

    /// Settings, removals and deletion are confirmed by Meta's webhooks (found by the request
    /// ID when Meta's answer names one, otherwise by group and kind); a link reset and join
    /// request decisions are answered at once.
    async fn operate(
        &self,
        number: &Number,
        wa_group_id: &str,
        op: &ProviderOp,
        operation_id: &str,
    ) -> Result<Operated, ProviderError> {
        let (config, token) = self.token(number)?;
        let accepted = |request_id: Option<String>| Operated::Accepted {
            request_id: request_id.unwrap_or_else(|| operation_id.to_string()),
        };
        let g = &self.graph;
        match op {
            ProviderOp::UpdateSettings(change) => {
                if change.join_approval_mode.is_some() || change.announcement_only.is_some() || change.locked.is_some()
                {
                    return Err(not_supported(
                        "changing the join approval mode, announcement-only or locked settings after creation",
                    ));
                }
                let r = g
                    .update_group(
                        &config,
                        &token,
                        wa_group_id,
                        change.subject.as_deref(),
                        change.description.as_deref(),
                    )
                    .await
                    .map_err(provider_error)?;
                Ok(accepted(r))
            }
            ProviderOp::RemoveParticipants { phones } => {
                if phones.len() > REMOVE_MAX {
                    return Err(ProviderError::Rejected {
                        code: "too_many_participants".into(),
                        message: format!("Meta removes at most {REMOVE_MAX} participants per request"),
                    });
                }
                let r = g
                    .remove_participants(&config, &token, wa_group_id, phones)
                    .await
                    .map_err(provider_error)?;
                Ok(accepted(r))
            }
            ProviderOp::Delete => {
                let r = g
                    .delete_group(&config, &token, wa_group_id)
                    .await
                    .map_err(provider_error)?;
                Ok(accepted(r))
            }
            ProviderOp::ResetInviteLink => {
                let link = g
                    .reset_invite_link(&config, &token, wa_group_id)
                    .await
                    .map_err(provider_error)?;
                self.effect(
                    number,
                    operation_id,
                    "invite-link-reset",
                    ProviderEvent::InviteLinkReset {
                        wa_group_id: wa_group_id.to_string(),
                        invite_link: link.clone(),
                        at: Timestamp::now(),
                    },
                );
                let mut r = ItemResult::new("inviteLink", ItemStatus::Reset);
                r.invite_link = Some(link);
                Ok(Operated::Done(vec![r]))
            }
            ProviderOp::ResolveJoinRequests { ids, approve } => {
                // Who asked: a rejection's event names them, and Meta sends no webhook for it.
                let open = g
                    .join_requests(&config, &token, wa_group_id)
                    .await
                    .map_err(provider_error)?;
                let (known, unknown): (Vec<&String>, Vec<&String>) =
                    ids.iter().partition(|id| open.iter().any(|(o, _)| o == *id));
                let mut results: Vec<ItemResult> = unknown
                    .iter()
                    .map(|id| ItemResult::new((*id).clone(), ItemStatus::NotFound))
                    .collect();
                if !known.is_empty() {
                    let asked: Vec<String> = known.iter().map(|s| (*s).clone()).collect();
                    let (done, failed) = g
                        .resolve_join_requests(&config, &token, wa_group_id, &asked, *approve)
                        .await
                        .map_err(provider_error)?;
                    for id in &asked {
                        if done.contains(id) {
                            results.push(ItemResult::new(
                                id.clone(),
                                if *approve {
                                    ItemStatus::Approved
                                } else {
                                    ItemStatus::Rejected
                                },
                            ));
                            if !*approve && let Some((_, wa_id)) = open.iter().find(|(o, _)| o == id) {
                                self.effect(
                                    number,
                                    operation_id,
                                    &format!("rejected:{id}"),
                                    ProviderEvent::JoinRequestRejected {
                                        wa_group_id: wa_group_id.to_string(),
                                        join_request_id: id.clone(),
                                        phone: wa_id.clone(),
                                        at: Timestamp::now(),
                                    },
                                );
                            }
                        } else {
                            let failure = failed.iter().find(|(f, _, _)| f == id);
                            let mut r = ItemResult::new(
                                id.clone(),
                                match failure.map(|(_, c, _)| c.as_str()) {
                                    Some("131213") | None => ItemStatus::NotFound,
                                    Some("131204") => ItemStatus::GroupFull,
                                    Some(_) => ItemStatus::Invalid,
                                },
                            );
                            r.message = failure.map(|(_, c, m)| format!("Meta {c}: {m}"));
                            results.push(r);
                        }
                    }
                }
                // In the order asked.
                results.sort_by_key(|r| ids.iter().position(|i| *i == r.key));
                Ok(Operated::Done(results))
            }
            // Meta adds nobody: with the number's invite template, each is sent the link 1:1;
            // without one, each is answered invite_required, with the group's link (the core
            // fills it in) for the business to send.
            ProviderOp::Invite { phones } if config.invite_template().is_some() => {
                self.send_invites(number, (&config, &token), wa_group_id, phones, operation_id)
                    .await
            }
            ProviderOp::AddParticipants { phones } | ProviderOp::Invite { phones } => Ok(Operated::Done(
                phones.iter().map(|p| invite_required(p, None)).collect(),
            )),
            ProviderOp::SetAdmins { .. } => Err(not_supported("promoting and demoting admins")),
        }
    }

    fn capabilities(&self, number: &Number) -> wagroups_core::provider::Capabilities {
        wagroups_core::provider::Capabilities {
            // Meta's create takes no idempotency key: a lost answer leaves it in doubt.
            idempotent_submit: false,
            ..wagroups_core::provider::Capabilities::for_profile(number.profile)
        }
    }

    /// A new link (Meta's document has no call that reads the current one): for a group whose
    /// creation's answer was lost, nobody has the old one yet.
    async fn invite_link(&self, number: &Number, wa_group_id: &str) -> Result<Option<String>, ProviderError> {
        let (config, token) = self.token(number)?;
        self.graph
            .reset_invite_link(&config, &token, wa_group_id)
            .await
            .map(Some)
            .map_err(provider_error)
    }

    /// Every active group of the number and each one's info, read one call at a time with a
    /// pause between calls (reconciliation must not eat the number's rate limit).
    async fn groups(&self, number: &Number) -> Result<Option<Vec<RemoteGroup>>, ProviderError> {
        let (config, token) = self.token(number)?;
        let mut listed = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, next) = self
                .graph
                .active_groups(&config, &token, 100, after.as_deref())
                .await
                .map_err(provider_error)?;
            listed.extend(page);
            match next {
                Some(n) if after.as_deref() != Some(n.as_str()) => after = Some(n),
                _ => break,
            }
            tokio::time::sleep(RECONCILE_PACE).await;
        }
        let mut groups = Vec::with_capacity(listed.len());
        for g in listed {
            tokio::time::sleep(RECONCILE_PACE).await;
            groups.push(
                self.graph
                    .group_info(&config, &token, &g.id)
                    .await
                    .map_err(provider_error)?,
            );
        }
        Ok(Some(groups))
    }

    async fn flush(&self, sink: &dyn ProviderEventSink) {
        let effects = std::mem::take(&mut *self.effects.lock().unwrap_or_else(|e| e.into_inner()));
        for (i, env) in effects.iter().enumerate() {
            if let Err(e) = sink.deliver(env.clone()).await {
                tracing::warn!(error = %e, "a cloud-api write's effect could not be recorded; kept for the next flush");
                let mut left = self.effects.lock().unwrap_or_else(|e| e.into_inner());
                left.extend(effects[i..].iter().cloned());
                return;
            }
        }
    }
}
