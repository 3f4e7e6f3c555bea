//! Meta's WhatsApp Cloud API (`cloud-api`): the provider that serves real business numbers.

pub mod config;
pub mod graph;
pub mod provider;
pub mod webhook;

pub use config::{CloudChange, CloudConfig, CloudSetup, ConfigError, Credential, Credentials};
pub use graph::{Graph, GraphError, ListedGroup};
pub use provider::CloudProvider;
