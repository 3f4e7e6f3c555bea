//! Participants as a request names them: each input read as a phone (or not), and the
//! outcome for each, in input order.

use crate::{
    ValidationError,
    phone::Phone,
    provider::{ItemResult, ItemStatus},
};

/// Most items in one participant or join-request request.
pub const ITEMS_MAX: usize = 256;

/// Participants as given, each read as a phone or not.
#[derive(Debug, Clone, Default)]
pub struct ParsedParticipants {
    items: Vec<(String, Option<Phone>)>,
}

/// Reads each input as a phone or JID; unreadable ones become `invalid` results, not errors.
pub fn parse_participants(inputs: &[String]) -> Result<ParsedParticipants, ValidationError> {
    if inputs.len() > ITEMS_MAX {
        return Err(ValidationError::new(
            "participants",
            format!("must list at most {ITEMS_MAX} participants, got {}", inputs.len()),
        ));
    }
    Ok(ParsedParticipants {
        items: inputs
            .iter()
            .map(|i| (i.clone(), Phone::parse("participant", i).ok()))
            .collect(),
    })
}

impl ParsedParticipants {
    /// Distinct readable phones, in input order.
    pub fn valid_phones(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in self.items.iter().filter_map(|(_, p)| p.as_ref()) {
            if !out.iter().any(|x| x == p.as_str()) {
                out.push(p.as_str().to_string());
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// One result per input, in input order: the provider's answer for its phone, or `invalid`.
    pub fn results(&self, answers: &[ItemResult]) -> Vec<ParticipantResult> {
        self.items
            .iter()
            .map(|(input, phone)| match phone {
                None => ParticipantResult {
                    participant: input.clone(),
                    phone: None,
                    status: ItemStatus::Invalid,
                    invite_link: None,
                    message: Some("not a phone number or user JID".into()),
                },
                Some(p) => {
                    let answer = answers.iter().find(|a| a.key == p.as_str());
                    ParticipantResult {
                        participant: input.clone(),
                        phone: Some(p.as_str().to_string()),
                        status: answer.map_or(ItemStatus::Error, |a| a.status),
                        invite_link: answer.and_then(|a| a.invite_link.clone()),
                        message: answer.and_then(|a| a.message.clone()),
                    }
                }
            })
            .collect()
    }
}

/// The outcome for one requested participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantResult {
    /// The input as given.
    pub participant: String,
    /// Digits, when the input could be read.
    pub phone: Option<String>,
    pub status: ItemStatus,
    pub invite_link: Option<String>,
    pub message: Option<String>,
}
