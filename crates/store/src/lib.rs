//! Storage for wagroups: the SQLite implementation of the core's store ports and its
//! migrations. The conformance suite it passes lives in `wagroups-conformance`.

mod conn;
mod db;
pub mod keys;
mod sim;
mod sqlite;

pub use sim::{SqliteSimStore, sim_database_url};
pub use sqlite::SqliteStore;
