//! End-to-end tests: each starts the real `wagroups` binary and talks HTTP to it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod admin_cli;
mod doubletick;
mod durability;
mod groups;
mod sandbox;
mod tenancy;
