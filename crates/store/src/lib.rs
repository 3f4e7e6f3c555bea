//! Storage for wagroups: the SQLite implementation of the core's store ports, its
//! migrations, and the conformance suite every implementation must pass.

pub mod conformance;
mod conn;
mod sqlite;

pub use sqlite::SqliteStore;
