//! Assembling and running a server: config, store, auth, the HTTP service
//! and the listener (plain HTTP, or HTTPS with `--tls-cert`/`--tls-key`),
//! with graceful shutdown on SIGINT/SIGTERM and, over TLS, the certificate
//! re-read on SIGHUP.
//!
//! [`Server::bind`] does all the fallible set-up and binds the socket;
//! [`Server::run`] serves until a signal (or [`Server::run_until`] until any
//! future). The HTTP layer is [`crate::http`]; this module only wires.

use crate::auth::cap::{CapResolver, CapResolverConfig};
use crate::config::{default_config, parse_config, ConfigError, LoadedConfig, SyncConfig};
use crate::http::service::{Service, ServiceOptions};
use crate::http::{serve_on, ServerConfig};
use crate::replica::{ReplicaManager, ReplicaPlugin, SchedulerOptions};
use crate::store::{FsStore, MemoryStore, Store, StoreError};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Where documents live.
#[derive(Clone, Debug)]
pub enum StoreChoice {
    /// The crash-safe filesystem store in this directory.
    Dir(PathBuf),
    /// In memory; lost on exit.
    Memory,
}

/// `--tls-cert FILE --tls-key FILE`: serve HTTPS with this PEM certificate
/// chain (leaf first) and PEM private key (RSA, ECDSA or Ed25519).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything `starfish serve` can be told.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Config file; `None` runs the embedded default config.
    pub config: Option<PathBuf>,
    pub listen: SocketAddr,
    pub store: StoreChoice,
    /// Mount prefix (`/v1` by default; `/` or `""` for the root).
    pub base_path: String,
    pub auth: CapResolverConfig,
    pub http: ServerConfig,
    /// Set the HTTP body bound explicitly (otherwise the larger of the HTTP
    /// default and the largest collection `maxBodyBytes`).
    pub max_body_bytes: Option<usize>,
    /// Executor threads serving connections (default: available cores).
    pub threads: usize,
    /// Replica settings file (`--replica FILE`): pull collections from a
    /// primary and serve them locally.
    pub replica: Option<PathBuf>,
    /// Serve HTTPS instead of HTTP (needs the `tls` feature).
    pub tls: Option<TlsFiles>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            config: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            store: StoreChoice::Dir(PathBuf::from("starfish-data")),
            base_path: "/v1".to_owned(),
            auth: CapResolverConfig::default(),
            http: ServerConfig::default(),
            max_body_bytes: None,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            replica: None,
            tls: None,
        }
    }
}

/// Why a server could not start.
#[derive(Debug)]
pub enum ServeError {
    ReadConfig(PathBuf, std::io::Error),
    Config(ConfigError),
    Store(StoreError),
    Bind(SocketAddr, std::io::Error),
    Io(std::io::Error),
    Replica(String),
    /// The TLS certificate or key could not be loaded.
    Tls(String),
}

impl ServeError {
    /// The process exit status: 2 for bad configuration, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::ReadConfig(..)
            | ServeError::Config(_)
            | ServeError::Replica(_)
            | ServeError::Tls(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::ReadConfig(p, e) => write!(f, "cannot read config {}: {e}", p.display()),
            ServeError::Config(e) => write!(f, "{e}"),
            ServeError::Store(e) => write!(f, "cannot open store: {e}"),
            ServeError::Bind(a, e) => write!(f, "cannot listen on {a}: {e}"),
            ServeError::Io(e) => write!(f, "server error: {e}"),
            ServeError::Replica(e) => f.write_str(e),
            ServeError::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// Load and validate a config file (or the embedded default).
pub fn load_config(path: Option<&PathBuf>) -> Result<LoadedConfig, ServeError> {
    match path {
        None => Ok(default_config()),
        Some(p) => {
            let text = std::fs::read(p).map_err(|e| ServeError::ReadConfig(p.clone(), e))?;
            parse_config(&text).map_err(ServeError::Config)
        }
    }
}

/// A bound, ready-to-run server.
pub struct Server {
    listener: async_net::TcpListener,
    service: Arc<Service>,
    http: ServerConfig,
    threads: usize,
    description: String,
    replica: Option<Arc<ReplicaManager>>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<crate::tls::ServerTls>>,
}

impl Server {
    /// Load the config, open the store, build the service and bind.
    pub fn bind(opts: ServeOptions) -> Result<Server, ServeError> {
        let loaded = load_config(opts.config.as_ref())?;
        for w in &loaded.warnings {
            log::warn!("[Starfish] config warning: {w}");
        }
        let config = Arc::new(loaded.config);
        let (store, blocking, store_desc): (Arc<dyn Store>, bool, String) = match &opts.store {
            StoreChoice::Memory => (Arc::new(MemoryStore::new()), false, "memory".into()),
            StoreChoice::Dir(d) => (
                Arc::new(FsStore::open(d).map_err(ServeError::Store)?),
                true,
                format!("filesystem {}", d.display()),
            ),
        };
        let mut http = opts.http.clone();
        http.max_body_bytes = opts
            .max_body_bytes
            .unwrap_or_else(|| http.max_body_bytes.max(largest_body_limit(&config)));
        let resolver = Arc::new(CapResolver::new(opts.auth.clone()));
        let base = if opts.base_path == "/" {
            String::new()
        } else {
            opts.base_path.clone()
        };
        let mut service = Service::new(
            config.clone(),
            store.clone(),
            resolver,
            ServiceOptions {
                base_path: base.clone(),
                blocking_store: blocking,
                ..ServiceOptions::default()
            },
        );
        let replica = match &opts.replica {
            None => None,
            Some(path) => {
                let manager = replica_manager(path, &config, store, &service, blocking)?;
                service = service.with_plugin(Arc::new(ReplicaPlugin::new(manager.clone())));
                Some(manager)
            }
        };
        #[cfg(feature = "tls")]
        let tls = match &opts.tls {
            None => None,
            Some(f) => Some(Arc::new(
                crate::tls::ServerTls::from_pem_files(&f.cert, &f.key)
                    .map_err(|e| ServeError::Tls(e.to_string()))?,
            )),
        };
        #[cfg(not(feature = "tls"))]
        if opts.tls.is_some() {
            return Err(ServeError::Tls(
                "this build has no TLS (the `tls` feature): --tls-cert is unavailable".into(),
            ));
        }
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        let routes = route_count(&config);
        let std_listener = std::net::TcpListener::bind(opts.listen)
            .map_err(|e| ServeError::Bind(opts.listen, e))?;
        let listener = async_net::TcpListener::try_from(std_listener).map_err(ServeError::Io)?;
        let addr = listener.local_addr().map_err(ServeError::Io)?;
        let description = format!(
            "listening on {scheme}://{addr}{base} ({routes} routes, {} store, anonymous {})",
            store_desc,
            if opts.auth.allow_anonymous {
                "allowed"
            } else {
                "refused"
            }
        );
        Ok(Server {
            listener,
            service: Arc::new(service),
            http,
            threads: opts.threads.max(1),
            description,
            replica,
            #[cfg(feature = "tls")]
            tls,
        })
    }

    /// The TLS state when serving HTTPS: [`crate::tls::ServerTls::reload`]
    /// re-reads the certificate files (what SIGHUP does under [`Server::run`]).
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<Arc<crate::tls::ServerTls>> {
        self.tls.clone()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serve until SIGINT or SIGTERM, then shut down gracefully. Over TLS,
    /// SIGHUP re-reads the certificate and key files: new handshakes get the
    /// new certificate, open connections are not touched, and a file that
    /// cannot be loaded leaves the old certificate in use (logged).
    pub fn run(self) -> Result<(), ServeError> {
        use async_signal::Signal;
        #[cfg(feature = "tls")]
        let tls = self.tls.clone();
        #[cfg(not(feature = "tls"))]
        let tls: Option<()> = None;
        let mut kinds = vec![Signal::Int, Signal::Term];
        if tls.is_some() {
            kinds.push(Signal::Hup);
        }
        let signals = async_signal::Signals::new(kinds).map_err(ServeError::Io)?;
        self.run_until(async move {
            use futures_lite::StreamExt;
            let mut signals = signals;
            loop {
                match signals.next().await {
                    #[cfg(feature = "tls")]
                    Some(Ok(Signal::Hup)) => {
                        if let Some(tls) = &tls {
                            reload_tls(tls);
                        }
                    }
                    Some(Ok(sig)) => {
                        log::info!("received {sig:?}, shutting down");
                        return;
                    }
                    _ => return,
                }
            }
        })
    }

    /// Serve until `shutdown` resolves. Blocks the calling thread; uses
    /// `threads - 1` extra threads to drive the connection executor.
    pub fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        log::info!("{}", self.description);
        let ex = async_executor::Executor::new();
        let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
        std::thread::scope(|scope| {
            for _ in 1..self.threads {
                let rx = stop_rx.clone();
                let ex = &ex;
                scope.spawn(move || async_io::block_on(ex.run(rx.recv())));
            }
            let replica_task = self.replica.clone().map(|manager| {
                let rx = stop_rx.clone();
                ex.spawn(manager.run(SchedulerOptions::default(), async move {
                    let _ = rx.recv().await;
                }))
            });
            #[cfg(feature = "tls")]
            let result = match self.tls {
                Some(tls) => async_io::block_on(ex.run(crate::http::serve_tls_on(
                    &ex,
                    self.listener,
                    self.service,
                    self.http,
                    tls,
                    shutdown,
                ))),
                None => async_io::block_on(ex.run(serve_on(
                    &ex,
                    self.listener,
                    self.service,
                    self.http,
                    shutdown,
                ))),
            };
            #[cfg(not(feature = "tls"))]
            let result = async_io::block_on(ex.run(serve_on(
                &ex,
                self.listener,
                self.service,
                self.http,
                shutdown,
            )));
            stop_tx.close();
            // Let the replica finish the syncs in flight (bounded by its grace).
            if let Some(task) = replica_task {
                async_io::block_on(ex.run(task));
            }
            result.map_err(ServeError::Io)
        })?;
        log::info!("stopped");
        Ok(())
    }
}

/// SIGHUP: re-read the certificate files; keep the old ones on failure.
#[cfg(feature = "tls")]
fn reload_tls(tls: &crate::tls::ServerTls) {
    match tls.reload() {
        Ok(()) => {
            if let Some((cert, _)) = tls.files() {
                log::info!(
                    "received SIGHUP, reloaded TLS certificate {}",
                    cert.display()
                );
            }
        }
        Err(e) => log::warn!("received SIGHUP, keeping the current TLS certificate: {e}"),
    }
}

/// Load the replica settings, set up the signing primary client and build
/// the manager over the service's store and write locks.
#[cfg(feature = "client")]
fn replica_manager(
    path: &std::path::Path,
    config: &SyncConfig,
    store: Arc<dyn Store>,
    service: &Service,
    blocking: bool,
) -> Result<Arc<ReplicaManager>, ServeError> {
    let err = |e: String| ServeError::Replica(e);
    let text = std::fs::read(path).map_err(|e| {
        err(format!(
            "cannot read replica settings {}: {e}",
            path.display()
        ))
    })?;
    let rc = crate::replica::config::load(&text, config).map_err(|e| err(e.to_string()))?;
    let signer = crate::replica::http::signer_for(&rc).map_err(|e| err(e.to_string()))?;
    let primary =
        crate::replica::http::HttpPrimary::new(&rc, signer).map_err(|e| err(e.to_string()))?;
    let remotes = rc
        .collections
        .iter()
        .map(|r| {
            let key = config
                .collections
                .iter()
                .find(|c| c.name == r.name)
                .map(|c| c.storage_path.clone())
                .unwrap_or_default();
            (r.clone(), key)
        })
        .collect();
    log::info!(
        "replicating {} collection(s) from their primaries",
        rc.collections.len()
    );
    Ok(Arc::new(ReplicaManager::new(
        remotes,
        store,
        service.locks(),
        blocking,
        Arc::new(primary),
    )))
}

/// Without the `client` feature there is no way to reach a primary.
#[cfg(not(feature = "client"))]
fn replica_manager(
    _path: &std::path::Path,
    _config: &SyncConfig,
    _store: Arc<dyn Store>,
    _service: &Service,
    _blocking: bool,
) -> Result<Arc<ReplicaManager>, ServeError> {
    Err(ServeError::Replica(
        "this build has no HTTP client (the `client` feature): --replica is unavailable".into(),
    ))
}

fn largest_body_limit(config: &SyncConfig) -> usize {
    config
        .all_collections()
        .filter_map(|(_, c)| c.max_body_bytes)
        .filter(|n| n.is_finite() && *n > 0.0)
        .map(|n| n.min(usize::MAX as f64) as usize)
        .max()
        .unwrap_or(0)
}

/// The number of routes the config produces (health, pulls, pushes,
/// bundles, batch per scope).
pub fn route_count(config: &SyncConfig) -> usize {
    let scope = |cols: &[crate::config::CollectionConfig]| {
        let standalone = cols.iter().filter(|c| c.bundle.is_none());
        let n: usize = standalone
            .map(|c| usize::from(!c.push_only) + usize::from(!c.pull_only))
            .sum();
        let bundles = crate::config::bundle_groups(cols);
        let b: usize = bundles
            .iter()
            .map(|(_, m)| 1 + m.iter().filter(|c| !c.pull_only).count())
            .sum();
        n + b + 1
    };
    1 + scope(&config.collections)
        + config
            .namespaces
            .iter()
            .map(|(_, ns)| scope(&ns.collections))
            .sum::<usize>()
}
