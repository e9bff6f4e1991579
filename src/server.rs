//! Assembling and running a server: config, store, auth, the HTTP service
//! and the listener, with graceful shutdown on SIGINT/SIGTERM.
//!
//! [`Server::bind`] does all the fallible set-up and binds the socket;
//! [`Server::run`] serves until a signal (or [`Server::run_until`] until any
//! future). The HTTP layer is [`crate::http`]; this module only wires.

use crate::auth::cap::{CapResolver, CapResolverConfig};
use crate::config::{default_config, parse_config, ConfigError, LoadedConfig, SyncConfig};
use crate::http::client_ip::TrustedProxies;
use crate::http::service::{Service, ServiceOptions};
use crate::http::{serve_on, ServerConfig};
use crate::replica::{ReplicaManager, ReplicaPlugin, SchedulerOptions};
use crate::store::{FsStore, MemoryStore, Store, StoreError};
use crate::sync::config_endpoint::ConfigEndpoint;
use crate::sync::rate_limit::DEFAULT_MAX_BUCKETS;
use crate::sync::ttl::{SweepPlan, Sweeper, DEFAULT_SWEEP_INTERVAL};
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
    /// Proxies trusted to name the client in `X-Forwarded-For`
    /// (`--trusted-proxy`, repeatable).
    pub trusted_proxies: TrustedProxies,
    /// Buckets per rate-limit counter (`--rate-limit-buckets`).
    pub rate_limit_buckets: usize,
    /// `GET /config` mode (`--config-endpoint`); off by default.
    pub config_endpoint: Option<ConfigEndpoint>,
    /// How often expired `ttlMs` documents are removed (`--ttl-sweep-ms`);
    /// `None` never removes them (the official behaviour).
    pub ttl_sweep: Option<std::time::Duration>,
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
            trusted_proxies: TrustedProxies::default(),
            rate_limit_buckets: DEFAULT_MAX_BUCKETS,
            config_endpoint: None,
            ttl_sweep: Some(DEFAULT_SWEEP_INTERVAL),
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
}

impl ServeError {
    /// The process exit status: 2 for bad configuration, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::ReadConfig(..) | ServeError::Config(_) | ServeError::Replica(_) => 2,
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
    sweeper: Option<Sweeper>,
}

impl Server {
    /// Load the config, open the store, build the service and bind.
    pub fn bind(opts: ServeOptions) -> Result<Server, ServeError> {
        let loaded = load_config(opts.config.as_ref())?;
        for w in &loaded.warnings {
            log::warn!("[Starfish] config warning: {w}");
        }
        if let Some(w) = crate::sync::append::persist_false_warning(&loaded.config) {
            log::warn!("{w}");
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
                trusted_proxies: opts.trusted_proxies.clone(),
                rate_limit_buckets: opts.rate_limit_buckets,
                config_endpoint: opts.config_endpoint,
                ..ServiceOptions::default()
            },
        );
        let sweeper = opts.ttl_sweep.and_then(|interval| {
            let plan = SweepPlan::new(&config);
            (!plan.is_empty()).then(|| {
                log::info!(
                    "ttl sweep of {} collection(s) every {} ms",
                    plan.len(),
                    interval.as_millis() as u64
                );
                Sweeper::new(plan, store.clone(), blocking, service.locks(), interval)
            })
        });
        let replica = match &opts.replica {
            None => None,
            Some(path) => {
                let manager = replica_manager(path, &config, store, &service, blocking)?;
                service = service.with_plugin(Arc::new(ReplicaPlugin::new(manager.clone())));
                Some(manager)
            }
        };
        let routes = route_count(&config);
        let std_listener = std::net::TcpListener::bind(opts.listen)
            .map_err(|e| ServeError::Bind(opts.listen, e))?;
        let listener = async_net::TcpListener::try_from(std_listener).map_err(ServeError::Io)?;
        let addr = listener.local_addr().map_err(ServeError::Io)?;
        let description = format!(
            "listening on http://{addr}{base} ({routes} routes, {} store, anonymous {})",
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
            sweeper,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serve until SIGINT or SIGTERM, then shut down gracefully.
    pub fn run(self) -> Result<(), ServeError> {
        let signals =
            async_signal::Signals::new([async_signal::Signal::Int, async_signal::Signal::Term])
                .map_err(ServeError::Io)?;
        self.run_until(async move {
            use futures_lite::StreamExt;
            let mut signals = signals;
            if let Some(Ok(sig)) = signals.next().await {
                log::info!("received {sig:?}, shutting down");
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
            // Cancelled when dropped, after the server has stopped.
            let sweeper_task = self.sweeper.map(|sweeper| ex.spawn(sweeper.run()));
            let replica_task = self.replica.clone().map(|manager| {
                let rx = stop_rx.clone();
                ex.spawn(manager.run(SchedulerOptions::default(), async move {
                    let _ = rx.recv().await;
                }))
            });
            let result = async_io::block_on(ex.run(serve_on(
                &ex,
                self.listener,
                self.service,
                self.http,
                shutdown,
            )));
            stop_tx.close();
            drop(sweeper_task);
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
