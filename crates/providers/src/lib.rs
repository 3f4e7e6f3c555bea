//! WhatsApp providers behind the core's `Provider` port: the simulated network (the
//! default, for development and tests without a WhatsApp account). Each registers in the
//! core's `provider::Registry` under its `ProviderKind`.

pub mod simulated;
