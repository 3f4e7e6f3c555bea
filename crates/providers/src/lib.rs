//! WhatsApp providers behind the core's `Provider` port: the simulated network (the
//! default, for development and tests without a WhatsApp account) and Meta's Cloud API
//! (`cloud`). Each registers in the core's `provider::Registry` under its `ProviderKind`.

pub mod cloud;
pub mod simulated;
