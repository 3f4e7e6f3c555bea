//! Webhook delivery: the formats events are sent in (Standard Webhooks), an HTTP client that
//! refuses private targets, and the dispatcher that drains the durable delivery queue with
//! per-group order.

pub mod format;
pub mod guard;
pub mod handshake;
pub mod meta;
pub mod schedule;
pub mod sign;
mod worker;

pub use worker::{DeliveryConfig, DeliveryWorker};
