//! End-to-end tests: each starts the real `wagroups` binary and talks HTTP to it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_graph;
mod harness;
mod receiver;

mod admin_cli;
mod cloud_groups;
mod cloud_numbers;
mod doubletick;
mod durability;
mod graph;
mod groups;
mod hardening;
mod idempotency;
mod management;
mod operations;
mod sandbox;
mod tenancy;
mod wawp;
mod webhooks;
mod wuts;

/// A secret that signed nothing.
fn receiver_secret_other() -> String {
    "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".to_string()
}
