//! wagroups domain core: types, validation, group rules, the event vocabulary and the
//! ports (store and provider traits). Nothing in this crate performs I/O itself.

mod enums;

pub mod admin;
pub mod command;
pub mod error;
pub mod event;
pub mod group;
pub mod idempotency;
pub mod ids;
pub mod inbox;
pub mod model;
pub mod ops;
pub mod participants;
pub mod phone;
pub mod plan;
pub mod provider;
pub mod reconcile;
pub mod schema;
pub mod secret;
pub mod service;
pub mod store;
pub mod tenancy;
pub mod time;
pub mod validate;
pub mod webhook;
pub mod webhook_service;

pub use error::{DomainError, ValidationError};
