//! The `cloud-api` provider: a number's commands and writes sent to Meta's Graph API with
//! its token; what Meta confirms arrives by webhook (`crate::cloud::webhook`).

use std::sync::Arc;

use async_trait::async_trait;
use wagroups_core::{
    command::{Command, CommandPayload},
    model::Number,
    provider::{Operated, Provider, ProviderError, ProviderOp, Submitted},
    secret::{KeySlot, Secret},
};

use super::{
    config::{CloudConfig, Credential},
    graph::{Graph, GraphError},
};

pub struct CloudProvider {
    graph: Graph,
    keys: Arc<KeySlot>,
}

impl CloudProvider {
    pub fn new(graph: Graph, keys: Arc<KeySlot>) -> CloudProvider {
        CloudProvider { graph, keys }
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

/// Meta's error codes that are worth retrying later: rate limits (the Groups API's own, the
/// app's, the WABA's, throughput) and Meta's own failures.
const RETRYABLE_CODES: [i64; 5] = [131208, 4, 80007, 130429, 1];

/// What a Graph API failure means for the command or write.
pub fn provider_error(e: GraphError) -> ProviderError {
    match e {
        GraphError::Transport(m) => ProviderError::Retryable(m),
        GraphError::BadAnswer(m) => ProviderError::Retryable(m),
        GraphError::Meta {
            status, code, message, ..
        } if status >= 500 || status == 429 || RETRYABLE_CODES.contains(&code) => {
            ProviderError::Retryable(format!("Meta {code}: {message}"))
        }
        // The token was refused: worth trying again once it is replaced.
        GraphError::Meta { code: 190, message, .. } => {
            ProviderError::Retryable(format!("Meta refused the access token (190): {message}"))
        }
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

    async fn operate(
        &self,
        _number: &Number,
        _wa_group_id: &str,
        op: &ProviderOp,
        _operation_id: &str,
    ) -> Result<Operated, ProviderError> {
        Err(ProviderError::Rejected {
            code: "not_supported".into(),
            message: format!(
                "{} is not available on cloud-api numbers in this version of wagroups",
                op.kind()
            ),
        })
    }
}
