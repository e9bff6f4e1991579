//! Assembling and running a server: config, store, auth, the HTTP service
//! and the listener (plain HTTP, or HTTPS with `--tls-cert`/`--tls-key`),
//! with graceful shutdown on SIGINT/SIGTERM and, over TLS, the certificate
//! re-read on SIGHUP.
//!
//! [`Server::bind`] does all the fallible set-up and binds the socket;
//! [`Server::run`] serves until a signal (or [`Server::run_until`] until any
//! future). The HTTP layer is [`crate::http`]; this module only wires.

use crate::auth::cap::{CapResolver, CapResolverConfig};
use crate::auth::revocation::RevocationFile;
use crate::config::{default_config, parse_config, ConfigError, LoadedConfig, SyncConfig};
use crate::http::client_ip::TrustedProxies;
use crate::http::cors::CorsError;
use crate::http::metrics::MetricsEndpoint;
use crate::http::router::normalize_mount;
use crate::http::service::{Service, ServiceOptions};
use crate::http::{serve_on, Handler, Middleware, ServerConfig};
use crate::metrics::{MeteredStore, Metrics};
use crate::replica::{ReplicaManager, ReplicaPlugin, SchedulerOptions};
use crate::store::quota::{self, QuotaLimits, QuotaStore};
use crate::store::{CacheStore, FsStore, MemoryStore, Store, StoreError};
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
    /// A PostgreSQL database (`postgres://USER@HOST/DB`), shared by every
    /// node started on it (feature `postgres`).
    #[cfg(feature = "postgres")]
    Postgres(String),
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
    /// Signed cap revocation lists (`--revocations FILE`), re-read when the
    /// file changes and on SIGHUP.
    pub revocations: Option<PathBuf>,
    /// Serve HTTPS instead of HTTP (needs the `tls` feature).
    pub tls: Option<TlsFiles>,
    /// CORS, security headers, request timeout (all off by default).
    pub middleware: Middleware,
    /// Metrics (off by default).
    pub metrics: MetricsOptions,
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
    /// Storage quotas and the free-disk floor (`--max-store-bytes`,
    /// `--max-documents`, `--min-free-bytes`); all off by default.
    pub quota: QuotaLimits,
    /// Budget of the hot-document cache in front of the filesystem store
    /// (`--cache-bytes`, [`CacheStore`]); 0 turns it off. Not used for the
    /// memory store (already in memory) nor PostgreSQL (written by other
    /// nodes too).
    pub cache_bytes: usize,
}

/// What ends a listener's `serve_on` (one type for the main and the
/// metrics listener).
type Shutdown<'a> = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Whether and where to serve metrics.
#[derive(Clone, Debug, Default)]
pub struct MetricsOptions {
    /// Count requests, connections, store calls and replica syncs, and
    /// answer `GET /metrics` on the main listener (`--metrics`).
    pub enabled: bool,
    /// Serve `GET /metrics` on this address instead of the main listener
    /// (`--metrics-listen ADDR`; implies `enabled`).
    pub listen: Option<SocketAddr>,
}

impl MetricsOptions {
    fn on(&self) -> bool {
        self.enabled || self.listen.is_some()
    }
}

/// How often the revocation file is checked for changes.
pub const REVOCATION_POLL: std::time::Duration = std::time::Duration::from_secs(1);

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
            revocations: None,
            tls: None,
            middleware: Middleware::default(),
            metrics: MetricsOptions::default(),
            trusted_proxies: TrustedProxies::default(),
            rate_limit_buckets: DEFAULT_MAX_BUCKETS,
            config_endpoint: None,
            ttl_sweep: Some(DEFAULT_SWEEP_INTERVAL),
            quota: QuotaLimits::default(),
            cache_bytes: crate::store::cache::DEFAULT_CACHE_BYTES,
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
    Revocations(String),
    /// The TLS certificate or key could not be loaded.
    Tls(String),
    Cors(CorsError),
}

impl ServeError {
    /// The process exit status: 2 for bad configuration, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::ReadConfig(..)
            | ServeError::Config(_)
            | ServeError::Replica(_)
            | ServeError::Revocations(_)
            | ServeError::Tls(_)
            | ServeError::Cors(_) => 2,
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
            ServeError::Replica(e) | ServeError::Revocations(e) => f.write_str(e),
            ServeError::Tls(e) => write!(f, "TLS: {e}"),
            ServeError::Cors(e) => write!(f, "{e}"),
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
    handler: Arc<dyn Handler>,
    http: ServerConfig,
    threads: usize,
    description: String,
    replica: Option<Arc<ReplicaManager>>,
    revocations: Option<Arc<RevocationFile>>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<crate::tls::ServerTls>>,
    metrics: Option<Arc<Metrics>>,
    metrics_listener: Option<async_net::TcpListener>,
    sweeper: Option<Sweeper>,
    /// The replay ledger shared with other nodes, swept on a timer.
    shared_nonces: Option<Arc<dyn crate::auth::nonce::NonceLedger>>,
    /// Revocation lists shared with other nodes, and this node's store.
    shared_revocations: Option<(
        Arc<dyn crate::auth::revocation_shared::RevocationLedger>,
        Arc<crate::auth::revocation::RevocationStore>,
    )>,
}

impl Server {
    /// Load the config, open the store, build the service and bind.
    pub fn bind(opts: ServeOptions) -> Result<Server, ServeError> {
        if let Some(cors) = &opts.middleware.cors {
            cors.check().map_err(ServeError::Cors)?;
        }
        let loaded = load_config(opts.config.as_ref())?;
        for w in &loaded.warnings {
            log::warn!("[Starfish] config warning: {w}");
        }
        if let Some(w) = crate::sync::append::persist_false_warning(&loaded.config) {
            log::warn!("{w}");
        }
        let config = Arc::new(loaded.config);
        // The replay ledger shared with other nodes (PostgreSQL store only).
        #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
        let mut shared_nonces: Option<Arc<dyn crate::auth::nonce::NonceLedger>> = None;
        #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
        let mut shared_revocations: Option<
            Arc<dyn crate::auth::revocation_shared::RevocationLedger>,
        > = None;
        // The hot-document cache, in front of the filesystem store only.
        let mut cache: Option<Arc<CacheStore>> = None;
        let (store, blocking, store_desc): (Arc<dyn Store>, bool, String) = match &opts.store {
            StoreChoice::Memory => (Arc::new(MemoryStore::new()), false, "memory".into()),
            StoreChoice::Dir(d) => {
                let fs: Arc<dyn Store> = Arc::new(FsStore::open(d).map_err(ServeError::Store)?);
                let desc = format!("filesystem {}", d.display());
                if opts.cache_bytes == 0 {
                    (fs, true, desc)
                } else {
                    let c = Arc::new(CacheStore::new(fs, opts.cache_bytes));
                    cache = Some(c.clone());
                    let desc = format!(
                        "{desc}, {} document cache",
                        human_bytes(opts.cache_bytes as u64)
                    );
                    (c, true, desc)
                }
            }
            #[cfg(feature = "postgres")]
            StoreChoice::Postgres(url) => {
                let pg =
                    crate::store::postgres::PgStore::connect(url, 16).map_err(ServeError::Store)?;
                let desc = format!("postgres {}", pg.shown());
                shared_nonces = Some(Arc::new(pg.clone()));
                shared_revocations = Some(Arc::new(pg.clone()));
                // Every call is a database round trip: off the reactor.
                (Arc::new(pg), true, desc)
            }
        };
        let mount = normalize_mount(&opts.base_path);
        let metrics = opts
            .metrics
            .on()
            .then(|| Arc::new(Metrics::with_mount(&mount)));
        if let (Some(m), Some(c)) = (&metrics, &cache) {
            register_cache_gauges(m, c);
        }
        let store: Arc<dyn Store> = match &metrics {
            Some(m) => Arc::new(MeteredStore::new(store, m.clone())),
            None => store,
        };
        let store = with_quota(store, &opts.store, opts.quota)?;
        let mut http = opts.http.clone();
        http.max_body_bytes = opts
            .max_body_bytes
            .unwrap_or_else(|| http.max_body_bytes.max(largest_body_limit(&config)));
        http.metrics = metrics.clone();
        // Every client behind a trusted reverse proxy arrives from its
        // address: no per-address connection limit there.
        http.per_ip_exempt
            .extend(opts.trusted_proxies.blocks().iter().cloned());
        let revocations = match &opts.revocations {
            None => None,
            Some(path) => Some(Arc::new(
                RevocationFile::open(path).map_err(|e| ServeError::Revocations(e.to_string()))?,
            )),
        };
        let mut resolver = CapResolver::new(opts.auth.clone());
        if let Some(ledger) = &shared_nonces {
            resolver = resolver.with_shared_nonces(ledger.clone());
        }
        // With a shared store, the revocation lists of every node (and of
        // this node's file, if any) are consulted, and published.
        let revocation_store = match (&revocations, &shared_revocations) {
            (Some(file), _) => Some(file.store()),
            (None, Some(_)) => Some(Arc::new(crate::auth::revocation::RevocationStore::new())),
            (None, None) => None,
        };
        if let Some(store) = &revocation_store {
            resolver = resolver.with_revocations(store.clone());
        }
        let shared_revocations = shared_revocations.zip(revocation_store);
        let resolver = Arc::new(resolver);
        if let Some(m) = &metrics {
            register_auth_gauges(m, &resolver);
        }
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
                let manager =
                    replica_manager(path, &config, store, &service, blocking, metrics.clone())?;
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
        let metrics_listener = match opts.metrics.listen {
            Some(a) => {
                let l = std::net::TcpListener::bind(a).map_err(|e| ServeError::Bind(a, e))?;
                Some(async_net::TcpListener::try_from(l).map_err(ServeError::Io)?)
            }
            None => None,
        };
        debug_assert_eq!(mount, service.router().mount());
        let mut handler = opts.middleware.wrap(Arc::new(service), &mount);
        if let (Some(m), None) = (&metrics, &metrics_listener) {
            handler = Arc::new(MetricsEndpoint::in_front_of(handler, m.clone()));
        }
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
            handler,
            http,
            threads: opts.threads.max(1),
            description,
            replica,
            revocations,
            #[cfg(feature = "tls")]
            tls,
            metrics,
            metrics_listener,
            sweeper,
            shared_nonces,
            shared_revocations,
        })
    }

    /// The TLS state when serving HTTPS: [`crate::tls::ServerTls::reload`]
    /// re-reads the certificate files (what SIGHUP does under [`Server::run`]).
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<Arc<crate::tls::ServerTls>> {
        self.tls.clone()
    }

    /// The metrics registry, when metrics are on.
    pub fn metrics(&self) -> Option<Arc<Metrics>> {
        self.metrics.clone()
    }

    /// The address of the separate metrics listener, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
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
            // Loops only with the `tls` feature (SIGHUP reloads, then waits on).
            #[cfg_attr(not(feature = "tls"), allow(clippy::never_loop))]
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
        if let Some(a) = self.metrics_addr() {
            log::info!("metrics on http://{a}/metrics");
        } else if self.metrics.is_some() {
            log::info!("metrics on /metrics of the main listener");
        }
        let ex = async_executor::Executor::new();
        let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
        std::thread::scope(|scope| {
            for _ in 1..self.threads {
                let rx = stop_rx.clone();
                let ex = &ex;
                scope.spawn(move || async_io::block_on(crate::http::run_polling(ex, rx.recv())));
            }
            // Cancelled when dropped, after the server has stopped.
            let sweeper_task = self.sweeper.map(|sweeper| ex.spawn(sweeper.run()));
            let revocation_share_task = self.shared_revocations.map(|(ledger, store)| {
                ex.spawn(crate::auth::revocation_shared::share(
                    store,
                    ledger,
                    crate::auth::revocation_shared::SHARE_EVERY,
                ))
            });
            let nonce_sweep_task = self.shared_nonces.map(|ledger| {
                ex.spawn(crate::auth::nonce::sweep_shared(
                    ledger,
                    crate::auth::nonce::SHARED_SWEEP_EVERY,
                ))
            });
            let replica_task = self.replica.clone().map(|manager| {
                let rx = stop_rx.clone();
                ex.spawn(manager.run(SchedulerOptions::default(), async move {
                    let _ = rx.recv().await;
                }))
            });
            // Cancelled when dropped, after the server has stopped.
            let revocation_task = self
                .revocations
                .clone()
                .map(|file| ex.spawn(watch_revocations(file, REVOCATION_POLL)));
            // The metrics listener, if any, runs beside the main one on the
            // same executor and stops with it. Both are the same `serve_on`
            // (same handler and shutdown types): one copy of the listener and
            // connection code in the binary.
            let side = match (self.metrics_listener, &self.metrics) {
                (Some(listener), Some(m)) => {
                    let endpoint: Arc<dyn Handler> = Arc::new(MetricsEndpoint::alone(m.clone()));
                    Some((listener, Arc::new(endpoint)))
                }
                _ => None,
            };
            let main = async {
                let shutdown: Shutdown<'_> = Box::pin(shutdown);
                // Over TLS the same listener and connection loop, with a
                // handshake first (one `serve_with` instantiation for both).
                #[cfg(feature = "tls")]
                let r = match self.tls {
                    Some(tls) => {
                        crate::http::serve_tls_on(
                            &ex,
                            self.listener,
                            Arc::new(self.handler),
                            self.http,
                            tls,
                            shutdown,
                        )
                        .await
                    }
                    None => {
                        serve_on(
                            &ex,
                            self.listener,
                            Arc::new(self.handler),
                            self.http,
                            shutdown,
                        )
                        .await
                    }
                };
                #[cfg(not(feature = "tls"))]
                let r = serve_on(
                    &ex,
                    self.listener,
                    Arc::new(self.handler),
                    self.http,
                    shutdown,
                )
                .await;
                stop_tx.close();
                r
            };
            let metrics = async {
                let Some((listener, endpoint)) = side else {
                    return Ok(());
                };
                let rx = stop_rx.clone();
                let config = ServerConfig {
                    max_connections: 16,
                    shutdown_grace: std::time::Duration::from_secs(1),
                    ..ServerConfig::default()
                };
                let stop: Shutdown<'_> = Box::pin(async move {
                    let _ = rx.recv().await;
                });
                serve_on(&ex, listener, endpoint, config, stop).await
            };
            let (result, metrics) = async_io::block_on(crate::http::run_polling(
                &ex,
                futures_lite::future::zip(main, metrics),
            ));
            if let Err(e) = metrics {
                log::warn!("metrics listener: {e}");
            }
            drop(sweeper_task);
            drop(nonce_sweep_task);
            drop(revocation_share_task);
            drop(revocation_task);
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

/// Re-read the revocation file when it changes (checked every `poll`) and
/// on SIGHUP. Runs until dropped.
async fn watch_revocations(file: Arc<RevocationFile>, poll: std::time::Duration) {
    use futures_lite::{FutureExt, StreamExt};
    let mut hup = match async_signal::Signals::new([async_signal::Signal::Hup]) {
        Ok(s) => Some(s),
        Err(e) => {
            log::warn!("SIGHUP cannot be watched ({e}); revocation file changes are still polled");
            None
        }
    };
    loop {
        let tick = async {
            async_io::Timer::after(poll).await;
            false
        };
        let signal = async {
            match hup.as_mut() {
                Some(s) => s.next().await.is_some(),
                None => std::future::pending().await,
            }
        };
        let on_signal = tick.or(signal).await;
        let file = file.clone();
        blocking::unblock(move || {
            if on_signal {
                file.reload_logged("SIGHUP");
            } else if file.changed() {
                file.reload_logged("file changed");
            }
        })
        .await;
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
    metrics: Option<Arc<Metrics>>,
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
    let mut manager =
        ReplicaManager::new(remotes, store, service.locks(), blocking, Arc::new(primary));
    if let Some(m) = metrics {
        manager = manager.with_metrics(m);
    }
    Ok(Arc::new(manager))
}

/// Without the `client` feature there is no way to reach a primary.
#[cfg(not(feature = "client"))]
fn replica_manager(
    _path: &std::path::Path,
    _config: &SyncConfig,
    _store: Arc<dyn Store>,
    _service: &Service,
    _blocking: bool,
    _metrics: Option<Arc<Metrics>>,
) -> Result<Arc<ReplicaManager>, ServeError> {
    Err(ServeError::Replica(
        "this build has no HTTP client (the `client` feature): --replica is unavailable".into(),
    ))
}

/// The auth cache sizes, read at scrape time.
fn register_auth_gauges(metrics: &Metrics, resolver: &Arc<CapResolver>) {
    let r = resolver.clone();
    metrics.gauge_fn(
        "starfish_auth_nonce_cache_entries",
        "Live request nonces remembered against replay.",
        move || r.nonce_count() as u64,
    );
    let r = resolver.clone();
    metrics.gauge_fn(
        "starfish_auth_cap_cache_entries",
        "Verified cap-certs remembered.",
        move || r.cap_cache_len() as u64,
    );
}

/// The hot-document cache's figures, read at scrape time.
fn register_cache_gauges(metrics: &Metrics, cache: &Arc<CacheStore>) {
    let c = cache.clone();
    metrics.gauge_fn(
        "starfish_store_cache_bytes",
        "Bytes of documents (with keys and bookkeeping) held by the hot-document cache.",
        move || c.stats().bytes,
    );
    let c = cache.clone();
    metrics.gauge_fn(
        "starfish_store_cache_entries",
        "Documents held by the hot-document cache.",
        move || c.stats().entries,
    );
    let c = cache.clone();
    metrics.gauge_fn(
        "starfish_store_cache_hits",
        "Document reads answered by the hot-document cache since start-up.",
        move || c.stats().hits,
    );
    let c = cache.clone();
    metrics.gauge_fn(
        "starfish_store_cache_misses",
        "Document reads the hot-document cache passed to the filesystem since start-up.",
        move || c.stats().misses,
    );
}

/// Log the data directory's free space, and wrap the store in a
/// [`QuotaStore`] when a limit is set (measuring what is stored).
fn with_quota(
    store: Arc<dyn Store>,
    choice: &StoreChoice,
    limits: QuotaLimits,
) -> Result<Arc<dyn Store>, ServeError> {
    let dir = match choice {
        StoreChoice::Dir(d) => Some(d.as_path()),
        StoreChoice::Memory => None,
        #[cfg(feature = "postgres")]
        StoreChoice::Postgres(_) => None,
    };
    if let Some(dir) = dir {
        match quota::disk_space(dir) {
            Ok(d) => log::info!(
                "data directory {}: {} free of {}",
                dir.display(),
                human_bytes(d.available),
                human_bytes(d.total)
            ),
            Err(e) => log::warn!("data directory {}: free space unknown: {e}", dir.display()),
        }
    }
    if limits.is_off() {
        return Ok(store);
    }
    let start = std::time::Instant::now();
    let probe = dir.map(quota::free_space_of);
    if limits.min_free_bytes.is_some() && probe.is_none() {
        log::warn!("--min-free-bytes has no effect on the memory store");
    }
    let q = QuotaStore::new(store, limits, probe).map_err(ServeError::Store)?;
    let used = q.usage();
    let limit = |v: Option<u64>| v.map_or("no limit".to_owned(), |n| n.to_string());
    log::info!(
        "storage limits: {} documents stored (--max-documents {}), {} bytes (--max-store-bytes {}), \
         --min-free-bytes {}; measured in {} ms",
        used.values,
        limit(limits.max_documents),
        used.bytes,
        limit(limits.max_bytes),
        limit(limits.min_free_bytes),
        start.elapsed().as_millis()
    );
    Ok(Arc::new(q))
}

/// `1.5 GiB`-style sizes for log lines.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut tenths = u128::from(n) * 10;
    while tenths >= 10 * 1024 && unit + 1 < UNITS.len() {
        tenths /= 1024;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
    }
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
