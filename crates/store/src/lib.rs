//! Storage for wagroups: the SQLite implementation of the core's store ports, its
//! migrations, and the conformance suite every implementation must pass.

pub mod conformance;
mod conn;
mod db;
mod sim;
mod sqlite;

pub use sim::{SqliteSimStore, sim_database_url};
pub use sqlite::SqliteStore;
