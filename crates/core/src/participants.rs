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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn inputs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_input_gets_a_result_in_its_place_and_duplicates_ask_once() {
        let parsed = parse_participants(&inputs(&[
            "+91 90000 00001",
            "919000000001@c.us",
            "nope",
            "919000000002",
        ]))
        .unwrap();
        assert_eq!(
            parsed.valid_phones(),
            ["919000000001", "919000000002"],
            "asked once each"
        );
        let mut answer = ItemResult::new("919000000001", ItemStatus::Invited);
        answer.invite_link = Some("https://chat.whatsapp.com/x".into());
        let results = parsed.results(&[answer]);
        let statuses: Vec<ItemStatus> = results.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [
                ItemStatus::Invited,
                ItemStatus::Invited,
                ItemStatus::Invalid,
                ItemStatus::Error
            ],
            "both spellings of one phone share its answer; no answer is an error"
        );
        assert_eq!(results[1].participant, "919000000001@c.us", "the input as given");
        assert_eq!(results[0].invite_link.as_deref(), Some("https://chat.whatsapp.com/x"));
        assert_eq!(results[2].phone, None);
    }

    #[test]
    fn too_many_participants_are_refused() {
        let many: Vec<String> = (0..=ITEMS_MAX).map(|i| format!("9190{i:08}")).collect();
        let e = parse_participants(&many).unwrap_err();
        assert_eq!(e.field, "participants");
        assert!(parse_participants(&many[..ITEMS_MAX]).is_ok());
    }

    #[test]
    fn statuses_say_whether_the_item_got_what_was_asked() {
        for s in [
            ItemStatus::Added,
            ItemStatus::AlreadyMember,
            ItemStatus::Invited,
            ItemStatus::Approved,
        ] {
            assert!(s.is_success(), "{s:?}");
        }
        for s in [
            ItemStatus::InviteRequired,
            ItemStatus::GroupFull,
            ItemStatus::Invalid,
            ItemStatus::Error,
        ] {
            assert!(!s.is_success(), "{s:?}");
        }
        // As JSON, each is its snake_case name.
        assert_eq!(
            serde_json::to_value(ItemStatus::NotOnWhatsapp).unwrap(),
            "not_on_whatsapp"
        );
        assert_eq!(ItemStatus::NotAMember.as_str(), "not_a_member");
        let back: ItemStatus = serde_json::from_str("\"cannot_remove_creator\"").unwrap();
        assert_eq!(back, ItemStatus::CannotRemoveCreator);
    }
}
