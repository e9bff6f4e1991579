//! # starfish
//!
//! A Rust implementation of the Starfish JSON document sync protocol,
//! wire-compatible with the official TypeScript implementation
//! (`@drakkar.software/starfish-*` 3.0.0-alpha.65), built for constrained
//! edge hardware.
//!
//! ## Layout
//!
//! | module | owns |
//! |---|---|
//! | [`proto`] | the sans-I/O protocol core: canonical JSON, hashes, cap-certs, request signatures, scope globs, identities, merge |
//! | [`config`] | the sync config: loader, validation with the official messages, routes from storage paths |
//! | [`auth`] | who is calling: the resolver seam, cap-cert resolver, nonce cache, access decision |
//! | [`store`] | document storage: the `Store` trait, key validation, memory and filesystem backends |
//! | [`sync`] | pull, push, bundles and batch pull as business rules over a store; list, rate limits, TTL, the `/config` view |
//! | [`http`] | our own HTTP/1 server (strict framing, keep-alive, pipelining, deadlines, graceful shutdown), the router and the service |
//! | [`server`] | assembling config, store, auth and HTTP into a running server |
//! | [`logger`] | a tiny stderr logger for the `log` facade |
//! | [`metrics`] | counters and histograms (atomics) and their Prometheus text exposition; a store wrapper that times store calls |
//! | [`client`] | the client: `Client` (namespace, signing, keep-alive pool over async-h1), `SyncManager`, device credentials, the CLI subcommands |
//! | [`tls`] | TLS (feature `tls`): rustls with the `ring` provider, server certificates (reloadable), client trust roots, handshake failure reasons |
//! | [`replica`] | the replica: settings, the sync manager and scheduler, the server plugin, the signing primary client |
//! | [`timer_wheel`] | a hierarchical timing wheel as plain data (the replica's scheduler) |
//! | [`fuzzing`] | entry points for fuzz targets and corpus replay tests (property checks that panic) |
//!
//! See `DESIGN.md` for how the rooms fit together.
//!
//! ## Example
//!
//! ```
//! use starfish::proto::{hash::document_hash, json::parse};
//! let doc = parse(br#"{"theme":"dark"}"#).unwrap();
//! assert_eq!(
//!     document_hash(&doc),
//!     "0f4f87db4567232a7f1756aa1534ec1314777b39c3bf5209f87cf9739321cddc"
//! );
//! ```
#![forbid(unsafe_code)]

pub mod auth;
#[cfg(feature = "client")]
pub mod client;
pub mod config;
pub mod fuzzing;
pub mod http;
pub mod logger;
pub mod metrics;
pub mod proto;
pub mod replica;
pub mod server;
pub mod store;
pub mod sync;
pub mod timer_wheel;
#[cfg(feature = "tls")]
pub mod tls;
