//! The replica: pull collections from a primary Starfish server on a
//! schedule or on read, and serve them locally in one of four write modes
//! (`pull_only`, `push_through`, `bidirectional`, `push_only`).
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the settings file and its validation against the sync config |
//! | [`manager`] | one sync, `on_pull`, the push-through proxy, the scheduler |
//! | [`plugin`] | the server hooks: write-mode gates and triggers |
//! | [`http`] | the primary over HTTP: the signing client, cap renewal |

pub mod config;
#[cfg(feature = "client")]
pub mod http;
pub mod manager;
pub mod plugin;

pub use config::{RemoteConfig, ReplicaAuth, ReplicaConfig, WriteMode};
pub use manager::{
    Primary, PrimaryResponse, ReplicaError, ReplicaManager, SchedulerOptions, SyncOutcome,
};
pub use plugin::ReplicaPlugin;
