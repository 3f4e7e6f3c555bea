//! WhatsApp providers behind the core's `Provider` port: the simulated network (the
//! default, for development and tests without a WhatsApp account).

pub mod simulated;

use std::sync::Arc;

use wagroups_core::{
    model::{Number, ProviderKind},
    provider::{Provider, ProviderRegistry},
};

/// Finds the provider a number is bound to.
#[derive(Clone)]
pub struct Providers {
    pub simulated: Arc<simulated::SimNetwork>,
}

impl ProviderRegistry for Providers {
    /// `None` when this build has no provider for the number's kind.
    fn for_number(&self, number: &Number) -> Option<Arc<dyn Provider>> {
        match number.provider {
            ProviderKind::Simulated => Some(self.simulated.clone() as Arc<dyn Provider>),
            ProviderKind::CloudApi => None,
        }
    }
}
