//! Webhook delivery: Standard Webhooks signing, an HTTP client that refuses private targets,
//! and the dispatcher that drains the durable delivery queue with per-group order.

pub mod guard;
pub mod schedule;
pub mod sign;
mod worker;

pub use worker::{DeliveryConfig, DeliveryWorker};
