//! The Starfish application as an HTTP [`Handler`]: routes a request, runs
//! the access decision, and hands the work to the sync rules and the store.
//! It holds no business rule of its own; it only wires the router, the
//! auth resolver, [`crate::sync`] and the store together, and turns results
//! into responses through [`super::response`].
//!
//! A plain pull of a document stored in our own envelope (no keyring, no
//! field filtering, no `ttlMs`) is answered from the stored bytes: from
//! [`Store::peek`] when the value is in memory (no hand-off to the blocking
//! pool), as a [`Prepared`] answer whose ETag and `data` are ranges of the
//! stored value (see `spliced_pull`).

use super::client_ip::{client_ip, TrustedProxies};
use super::response::{self, json_ok, json_status, not_found, Failure};
use super::router::{query_param, Action, Router, Target};
use super::{take_body_bytes, BoxFuture, Handler, PeerAddr, Piece, Prepared, Request, Response};
use crate::auth::restrictions::{Action as Op, Restrictions};
use crate::auth::roles::{effective_roles, Access};
use crate::auth::{normalize_host, Auth, AuthError, AuthRequest, HeaderLookup, Resolver};
use crate::config::{CollectionConfig, PerCollection, SyncConfig};
use crate::proto::hash::sha256_hex;
use crate::proto::json::{Object, Value};
use crate::proto::scope;
use crate::store::{SharedDoc, Store};
use crate::sync::append::{self, AppendSettings};
use crate::sync::batch::{self, BatchOptions, BatchRules};
use crate::sync::config_endpoint::{self, ConfigEndpoint};
use crate::sync::fields::FieldPermissions;
use crate::sync::rate_limit::{self, Caller, RateAction, RateLimits};
use crate::sync::schema::CollectionSchema;
use crate::sync::{doc, keys, list, locks::KeyLocks, push, ttl, SyncError};
use http_types::StatusCode;
use std::sync::Arc;

/// What a plugin hook decides.
#[derive(Clone, Debug, PartialEq)]
pub enum PluginDecision {
    /// Carry on with the normal handling.
    Proceed,
    /// Answer `{"error":"<message>"}` with this status.
    Reject(u16, String),
    /// Answer this JSON body with this status (e.g. a relayed primary answer).
    Respond(u16, Value),
}

/// Server plugin hooks (the official `beforePull` / `interceptPush`). They
/// run only on the standalone pull and push routes, after local auth and
/// before the document-key check, and see the collection name only.
pub trait Plugin: Send + Sync + 'static {
    fn before_pull<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, PluginDecision>;
    fn intercept_push<'a>(
        &'a self,
        collection: &'a str,
        raw_body: &'a [u8],
    ) -> BoxFuture<'a, PluginDecision>;
}

/// Options of the application layer (beyond the config file).
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    /// Mount prefix, e.g. `/v1` (`""` for the root).
    pub base_path: String,
    /// `maxCollectionsPerBatch` (100).
    pub max_collections_per_batch: usize,
    pub batch: BatchOptions,
    /// Run store calls on the blocking thread pool (needed for the
    /// filesystem store; the memory store never blocks).
    pub blocking_store: bool,
    /// Proxies whose `X-Forwarded-For` names the client (`--trusted-proxy`).
    pub trusted_proxies: TrustedProxies,
    /// Buckets per rate-limit counter (`--rate-limit-buckets`).
    pub rate_limit_buckets: usize,
    /// `GET /config` (`--config-endpoint`); `None`: 404 like the official
    /// default.
    pub config_endpoint: Option<ConfigEndpoint>,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            base_path: "/v1".to_owned(),
            max_collections_per_batch: batch::DEFAULT_MAX_COLLECTIONS_PER_BATCH,
            batch: BatchOptions::default(),
            blocking_store: false,
            trusted_proxies: TrustedProxies::default(),
            rate_limit_buckets: rate_limit::DEFAULT_MAX_BUCKETS,
            config_endpoint: None,
        }
    }
}

/// The server application.
pub struct Service {
    router: Router,
    store: Arc<dyn Store>,
    resolver: Arc<dyn Resolver>,
    locks: Arc<KeyLocks>,
    rate_limits: RateLimits,
    options: ServiceOptions,
    clock: fn() -> i64,
    plugins: Vec<Arc<dyn Plugin>>,
    /// `restrictions` at every level (always enforced).
    restrictions: Arc<Restrictions>,
    /// `fieldPermissions` per collection.
    fields: Arc<PerCollection<FieldPermissions>>,
    /// `objectSchema` per collection, compiled once.
    schemas: PerCollection<CollectionSchema>,
}

/// Who is calling, as one collection's handler sees it.
struct Authorized {
    /// `None` on the public fast path.
    auth: Option<Auth>,
    /// Effective roles for the collection; empty on the public fast path
    /// (the official router never resolves the caller there).
    roles: Vec<String>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Headers<'a>(&'a Request);

impl HeaderLookup for Headers<'_> {
    fn header(&self, lower_name: &str) -> Option<&str> {
        self.0.header(lower_name).map(|v| v.last().as_str())
    }
}

/// Per-request facts the handlers need.
struct Ctx<'a> {
    req: &'a Request,
    method: String,
    path_and_query: String,
    host: String,
    body: Vec<u8>,
    now: i64,
}

impl Ctx<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.req.header(name).map(|v| v.last().as_str())
    }
    fn query(&self, name: &str) -> Option<String> {
        self.req.url().query().and_then(|q| query_param(q, name))
    }
}

impl Service {
    pub fn new(
        config: Arc<SyncConfig>,
        store: Arc<dyn Store>,
        resolver: Arc<dyn Resolver>,
        options: ServiceOptions,
    ) -> Self {
        let restrictions = Restrictions::from_config(&config);
        let fields = PerCollection::build(&config, |_, c| {
            FieldPermissions::from_config(c.extended.field_permissions.as_ref())
        });
        for (ns, name, f) in fields.iter() {
            for field in f.malformed_fields() {
                log::warn!(
                    "[Starfish] {}collection \"{name}\": fieldPermissions.{field} is malformed (the official server fails with 500); nobody may read or write it",
                    ns.map(|n| format!("namespace \"{n}\" ")).unwrap_or_default()
                );
            }
        }
        let schemas = PerCollection::build(&config, |_, c| {
            c.extended
                .object_schema
                .as_ref()
                .map(CollectionSchema::compile)
        });
        for (ns, name, s) in schemas.iter() {
            if let Some(reason) = s.unusable_reason() {
                log::warn!(
                    "[Starfish] {}collection \"{name}\": objectSchema cannot be compiled ({reason}); pushes with object data are answered 500 as the official server does",
                    ns.map(|n| format!("namespace \"{n}\" ")).unwrap_or_default()
                );
            }
        }
        Service {
            rate_limits: RateLimits::from_config(&config, options.rate_limit_buckets),
            router: Router::new(config, &options.base_path),
            store,
            resolver,
            locks: Arc::new(KeyLocks::new()),
            options,
            clock: now_ms,
            plugins: Vec::new(),
            restrictions: Arc::new(restrictions),
            fields: Arc::new(fields),
            schemas,
        }
    }

    /// Add a plugin (hooks run in the order plugins were added).
    pub fn with_plugin(mut self, plugin: Arc<dyn Plugin>) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// The per-key write locks (shared with anything else that writes
    /// documents, such as the replica).
    pub fn locks(&self) -> Arc<KeyLocks> {
        self.locks.clone()
    }

    /// The shared store.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Replace the clock (tests).
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// Run a store operation, on the blocking pool when the store blocks.
    async fn store_op<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> T + Send + 'static,
    ) -> T {
        crate::sync::store_call(&self.store, self.options.blocking_store, f).await
    }

    async fn serve(&self, mut req: Request) -> Response {
        let mut method = req.method().to_string();
        method.make_ascii_uppercase();
        // The body first, so the URL can be borrowed rather than copied.
        let body = take_body_bytes(&mut req).await;
        let url = req.url();
        let path = url.path();
        let action = match self.router.route(&method, path) {
            Some(a) => a,
            None => return not_found(),
        };
        let path_and_query = match url.query() {
            Some(q) if !q.is_empty() => format!("{path}?{q}"),
            _ => path.to_owned(),
        };
        let host = normalize_host(
            req.header(http_types::headers::HOST)
                .map(|v| v.last().as_str())
                .unwrap_or(""),
            false,
        );
        let ctx = Ctx {
            req: &req,
            method,
            path_and_query,
            host,
            body,
            now: (self.clock)(),
        };
        let result = match action {
            Action::Health => {
                let mut o = Object::new();
                o.insert("ok", Value::Bool(true));
                o.insert("ts", Value::Number(ctx.now as f64));
                Ok(json_ok(&Value::Object(o)))
            }
            Action::Config => Ok(self.config_endpoint(&ctx).await),
            Action::List(t) => self.list(&ctx, &t).await,
            Action::Pull(t) => self.pull(&ctx, &t).await,
            Action::Push(t) => self.push(&ctx, &t, None).await,
            Action::BundlePush(t) => {
                let member = t.collection.name.clone();
                self.push(&ctx, &t, Some(member)).await
            }
            Action::BundlePull { target, members } => {
                self.bundle_pull(&ctx, &target, &members).await
            }
            Action::Batch { namespace } => Ok(self.batch(&ctx, namespace).await),
        };
        if let Err(Failure::Sync(e)) = &result {
            if let Some(ip) = self.client_ip(ctx.req) {
                super::defense_log::refused(&ip, e);
            }
        }
        let res = result.unwrap_or_else(response::from_error);
        log::debug!(
            "{} {} -> {}",
            ctx.method,
            crate::proto::encoding::clip(&ctx.path_and_query, 256),
            u16::from(res.status())
        );
        res
    }

    fn auth_request<'a>(
        &'a self,
        ctx: &'a Ctx<'a>,
        headers: &'a Headers<'a>,
        identity_param: Option<&'a str>,
    ) -> AuthRequest<'a> {
        AuthRequest {
            method: &ctx.method,
            path_and_query: &ctx.path_and_query,
            mount: self.router.mount(),
            host: &ctx.host,
            headers,
            body: &ctx.body,
            identity_param,
            now_ms: ctx.now,
        }
    }

    /// The resolver's answer for this request, with what it left to a
    /// round trip (the replay ledger shared by several nodes) awaited.
    async fn authenticate(
        &self,
        ctx: &Ctx<'_>,
        identity_param: Option<&str>,
    ) -> Result<Auth, AuthError> {
        let auth = {
            let headers = Headers(ctx.req);
            self.resolver
                .resolve(&self.auth_request(ctx, &headers, identity_param))?
        };
        match auth.shared_nonce {
            None => Ok(auth),
            Some(_) => self.resolver.confirm(auth).await,
        }
    }

    /// `checkAuth` for one collection: the public fast path (skipped when
    /// restrictions exist, as with the official restrictions plugin), else
    /// the resolver, the role decision and the restrictions.
    async fn check_auth(
        &self,
        ctx: &Ctx<'_>,
        t: &Target<'_>,
        op: Op,
    ) -> Result<Authorized, Failure> {
        let write = op == Op::Push;
        let col = t.collection;
        let access = Access {
            required: if write {
                &col.write_roles
            } else {
                &col.read_roles
            },
            root_only: col.root_only,
        };
        if access.is_public() && !self.restrictions.is_active() {
            return Ok(Authorized {
                auth: None,
                roles: Vec::new(),
            });
        }
        let auth = self
            .authenticate(ctx, t.identity_param())
            .await
            .map_err(Failure::Auth)?;
        let roles = effective_roles(&auth, col.has_identity_param(), t.identity_param());
        if !access.allows(&roles) {
            return Err(Failure::Forbidden);
        }
        self.restrictions
            .check(Some(&auth.identity), op, t.namespace, &col.name)
            .map_err(|_| Failure::Restricted)?;
        // Deliberate fix: a cap without the write op cannot push, whatever
        // the role list says (the official server lets `self` through).
        if write
            && auth
                .scope_ops
                .as_ref()
                .is_some_and(|ops| !ops.iter().any(|o| o == "write"))
        {
            return Err(Failure::Forbidden);
        }
        Ok(Authorized {
            auth: Some(auth),
            roles,
        })
    }

    /// The client address of a request (see [`super::client_ip`]); `None`
    /// when the request did not come through our HTTP layer.
    pub fn client_ip(&self, req: &Request) -> Option<std::net::IpAddr> {
        let peer = req.ext().get::<PeerAddr>()?.0.ip();
        let forwarded: Vec<&str> = match req.header("x-forwarded-for") {
            Some(values) if !self.options.trusted_proxies.is_empty() => {
                values.iter().map(|v| v.as_str()).collect()
            }
            _ => Vec::new(),
        };
        Some(client_ip(peer, forwarded, &self.options.trusted_proxies))
    }

    /// Count the request against the collection's rate limit for `action`
    /// (`429 {"error":"Rate limit exceeded"}` when over). Every route that
    /// performs a push, pull or list of a collection calls this once, at
    /// the official point (after the access check).
    fn rate_check(
        &self,
        ctx: &Ctx<'_>,
        t: &Target<'_>,
        action: RateAction,
        auth: Option<&Auth>,
    ) -> Result<(), Failure> {
        let name = t.collection.name.as_str();
        if !self.rate_limits.applies(t.namespace, name, action) {
            return Ok(());
        }
        let caller = Caller {
            identity: auth.map(|a| a.identity.as_str()),
            ip: self.client_ip(ctx.req),
        };
        self.rate_limits
            .check(t.namespace, name, action, &caller, ctx.now)
            .map_err(|e| Failure::Sync(e.into()))
    }

    /// `GET /config`.
    async fn config_endpoint(&self, ctx: &Ctx<'_>) -> Response {
        let Some(mode) = self.options.config_endpoint else {
            return not_found();
        };
        let roles = match mode {
            ConfigEndpoint::Public => Vec::new(),
            ConfigEndpoint::RoleFiltered => match self.authenticate(ctx, None).await {
                Ok(a) => a.roles,
                Err(e) => {
                    log::info!(
                        "/config: the resolver refused the caller ({e}); no collections shown"
                    );
                    Vec::new()
                }
            },
        };
        json_ok(&config_endpoint::answer(self.router.config(), mode, &roles))
    }

    /// `GET /list/...` of a `listable` collection.
    async fn list(&self, ctx: &Ctx<'_>, t: &Target<'_>) -> Result<Response, Failure> {
        check_params(t)?;
        let caller = self.check_auth(ctx, t, Op::List).await?;
        self.rate_check(ctx, t, RateAction::List, caller.auth.as_ref())?;
        let limit = list::parse_limit(ctx.query("limit").as_deref())?;
        let prefix = list::list_prefix(t.collection, &t.params);
        let after = ctx.query("after");
        let body = self
            .store_op(move |s| list::run(s, &prefix, after.as_deref(), limit))
            .await
            // Not `SyncError::from`, which answers a refused key 400: the
            // refused empty prefix is the official filesystem store's plain
            // 500 (COMPATIBILITY.md).
            .map_err(SyncError::Store)?;
        Ok(json_ok(&body))
    }

    async fn pull(&self, ctx: &Ctx<'_>, t: &Target<'_>) -> Result<Response, Failure> {
        check_params(t)?;
        let caller = self.check_auth(ctx, t, Op::Pull).await?;
        let auth = caller.auth.as_ref();
        self.rate_check(ctx, t, RateAction::Pull, auth)?;
        let col = t.collection;
        let fields = self
            .fields
            .get(t.namespace, &col.name)
            .filter(|f| f.restricts_reads());
        for p in &self.plugins {
            if let Some(res) = decision_response(p.before_pull(&col.name).await) {
                return Ok(res);
            }
        }
        let key = col.resolve_key(&t.params);
        if keys::is_unsafe_key(&key) {
            return Err(SyncError::InvalidPathParameter.into());
        }
        keys::check_storable(&key)?;
        if col.is_binary() {
            return self.binary_pull(ctx, col, key).await;
        }
        if let Some(settings) = AppendSettings::of(col).filter(|s| s.persist) {
            let filter = fields.map(|f| (f, caller.roles.as_slice()));
            return self.append_pull(ctx, col, settings, key, filter).await;
        }
        let with_keyring = ctx
            .query("withKeyring")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"));
        let want_keyring = with_keyring
            && match auth.and_then(|a| a.scope_paths.as_deref()) {
                Some(paths) => scope::match_scope_path(&format!("{key}/_keyring"), Some(paths)),
                None => true,
            };
        // A plain pull (no keyring, no field filtering, no expiry) of our
        // own envelope is answered from the stored bytes as they are
        // (`spliced_pull`); from memory without a hand-off to the blocking
        // pool when the store can answer without blocking (`Store::peek`:
        // the memory store, a cache hit).
        let splice = !want_keyring && fields.is_none() && ttl::ttl_ms(col).is_none();
        let peeked = if splice { self.store.peek(&key) } else { None };
        let found = match peeked {
            Some(got) => {
                let got = got.map_err(SyncError::from)?;
                Found::of(&key, got, splice)
            }
            None => self
                .store_op(move |s| {
                    // Checked here, off the executor (and remembered with
                    // the value).
                    let found = Found::of(&key, s.get_shared(&key)?, splice);
                    Ok::<_, crate::store::StoreError>(match found {
                        Found::Decoded(mut decoded) if want_keyring => {
                            decoded.1 = Some(doc::read(s, &format!("{key}/_keyring")).ok());
                            Found::Decoded(decoded)
                        }
                        found => found,
                    })
                })
                .await
                .map_err(SyncError::from)?,
        };
        let (doc, keyring) = match found {
            Found::Spliceable(d, e) => return Ok(spliced_pull(ctx, col, &d, e)),
            Found::Decoded(decoded) => *decoded,
        };
        let doc = match doc {
            doc::Read::Doc(d) => Some(d),
            _ => None,
        };
        if let Some(body) = ttl::expired_pull_answer(col, doc.as_ref(), ctx.now) {
            let mut res = json_ok(&body);
            add_cache_control(&mut res, col);
            return Ok(res);
        }
        let keyring = keyring.map(|k| match k {
            Some(doc::Read::Doc(d)) => Some(d),
            _ => None,
        });
        let hash = doc
            .as_ref()
            .map(|d| d.hash_str().to_owned())
            .unwrap_or_default();
        let etag = (!hash.is_empty()).then(|| format!("\"{hash}\""));
        if let (Some(etag), Some(inm)) = (&etag, ctx.header("if-none-match")) {
            if etag == inm {
                return Ok(response::not_modified());
            }
        }
        let mut body =
            doc::pull_answer(doc.as_ref(), ctx.now, keyring.as_ref().map(|k| k.as_ref()));
        if let (Some(f), Some(data)) =
            (fields, body.as_object_mut().and_then(|o| o.get_mut("data")))
        {
            f.filter_read(data, &caller.roles, None);
        }
        let mut res = json_ok(&body);
        if let Some(etag) = etag {
            res.insert_header("ETag", etag);
        }
        add_cache_control(&mut res, col);
        Ok(res)
    }

    async fn binary_pull(
        &self,
        ctx: &Ctx<'_>,
        col: &CollectionConfig,
        key: String,
    ) -> Result<Response, Failure> {
        let Some((bytes, media)) = self
            .store_op(move |s| s.get_bytes(&key))
            .await
            .map_err(SyncError::from)?
        else {
            return Ok(response::empty(StatusCode::NotFound));
        };
        let etag = format!("\"{}\"", sha256_hex(&bytes));
        if ctx.header("if-none-match") == Some(etag.as_str()) {
            return Ok(response::not_modified());
        }
        let media = if media.is_empty() {
            "application/octet-stream".to_owned()
        } else {
            media
        };
        let mut res = response::bytes(StatusCode::Ok, bytes, &media);
        res.insert_header("ETag", etag);
        add_cache_control(&mut res, col);
        Ok(res)
    }

    async fn push(
        &self,
        ctx: &Ctx<'_>,
        t: &Target<'_>,
        member: Option<String>,
    ) -> Result<Response, Failure> {
        check_params(t)?;
        let caller = self.check_auth(ctx, t, Op::Push).await?;
        let col = t.collection;
        if member.is_none() {
            for p in &self.plugins {
                if let Some(res) = decision_response(p.intercept_push(&col.name, &ctx.body).await) {
                    return Ok(res);
                }
            }
        }
        let mut key = col.resolve_key(&t.params);
        if let Some(m) = &member {
            key = format!("{key}/{m}");
        } else if keys::is_unsafe_key(&key) {
            return Err(SyncError::InvalidPathParameter.into());
        }
        push::check_content_length(ctx.header("content-length"), col.max_body_bytes)?;
        self.rate_check(ctx, t, RateAction::Push, caller.auth.as_ref())?;
        if col.is_binary() && member.is_none() {
            return self.binary_push(ctx, col, key).await;
        }
        let body = push::parse_json_body(ctx.header("content-type"), &ctx.body)?;
        if let Some(data) = body.get("data").and_then(Value::as_object) {
            if let Some(f) = self.fields.get(t.namespace, &col.name) {
                f.check_write(data, &caller.roles)
                    .map_err(|e| SyncError::FieldNotWritable(e.0))?;
            }
            if let Some(schema) = self.schemas.get(t.namespace, &col.name) {
                schema.check(data)?;
            }
        }
        let presenter = caller.auth.as_ref().and_then(|a| a.presenter.as_deref());
        let write = match push::plan(col, body, &key, presenter, ctx.now)? {
            push::Plan::Write(w) => w,
            push::Plan::Done(w) => return Ok(json_ok(&push::answer(&w))),
        };
        let _guard = self.locks.lock(&key).await;
        let now = ctx.now;
        let (written, pending) = self
            .store_op(move |s| write.run_deferred(s, &key, now))
            .await?;
        // Acknowledged only once durable, and under the key's lock until
        // then (the next write of the key reads what this one wrote).
        if let Some(pending) = pending {
            pending.await.map_err(SyncError::from)?;
        }
        Ok(json_ok(&push::answer(&written)))
    }

    /// An append-only pull (`persist` collections): bounds, bounded read,
    /// `ETag` / `304`, `Cache-Control` only when a document is stored.
    async fn append_pull(
        &self,
        ctx: &Ctx<'_>,
        col: &CollectionConfig,
        settings: AppendSettings,
        key: String,
        fields: Option<(&FieldPermissions, &[String])>,
    ) -> Result<Response, Failure> {
        let [checkpoint, limit, last, full] = append_query(ctx.req.url().query());
        let params = append::PullParams {
            checkpoint: checkpoint.as_deref(),
            limit: limit.as_deref(),
            last: last.as_deref(),
            full: full.as_deref(),
        };
        let bounds =
            append::parse_bounds(&params, &settings.limits, ctx.now).map_err(SyncError::from)?;
        let mut read = self
            .store_op(move |s| append::read(s, &key, &settings.field, &bounds))
            .await
            .map_err(SyncError::from)?;
        // As the official pull: unreadable fields leave the log's `data` and
        // every element's `data`.
        if let Some((f, roles)) = fields {
            f.filter_read_object(&mut read.data, roles, Some(&read.field));
        }
        Ok(append_pull_response(ctx, col, read))
    }

    async fn binary_push(
        &self,
        ctx: &Ctx<'_>,
        col: &CollectionConfig,
        key: String,
    ) -> Result<Response, Failure> {
        let header = ctx.header("content-type").unwrap_or("");
        let media_case = header.split(';').next().unwrap_or("").trim().to_owned();
        let media = media_case.to_ascii_lowercase();
        if media.is_empty()
            || !col
                .allowed_mime_types
                .iter()
                .any(|p| mime_matches(&p.to_ascii_lowercase(), &media))
        {
            let allowed = Value::Array(
                col.allowed_mime_types
                    .iter()
                    .map(|m| Value::from(m.as_str()))
                    .collect(),
            );
            let allowed_json =
                String::from_utf8(crate::proto::json::to_js_json(&allowed)).unwrap_or_default();
            return Err(SyncError::MimeNotAllowed {
                header: header.to_owned(),
                allowed_json,
            }
            .into());
        }
        keys::check_storable(&key)?;
        let hash = sha256_hex(&ctx.body);
        let bytes = ctx.body.clone();
        let _guard = self.locks.lock(&key).await;
        self.store_op(move |s| s.put_bytes(&key, &bytes, &media_case))
            .await
            .map_err(SyncError::from)?;
        let mut o = Object::new();
        o.insert("hash", hash.into());
        Ok(json_ok(&Value::Object(o)))
    }

    async fn bundle_pull(
        &self,
        ctx: &Ctx<'_>,
        t: &Target<'_>,
        members: &[&CollectionConfig],
    ) -> Result<Response, Failure> {
        check_params(t)?;
        let needs_auth = members
            .iter()
            .any(|m| m.root_only || !m.read_roles.iter().any(|r| r == "public"));
        let (identity, roles) = if needs_auth || self.restrictions.is_active() {
            let auth = self
                .authenticate(ctx, t.identity_param())
                .await
                .map_err(Failure::Auth)?;
            let roles =
                effective_roles(&auth, t.collection.has_identity_param(), t.identity_param());
            (auth.identity, roles)
        } else {
            (String::new(), Vec::new())
        };
        let base = t.collection.resolve_key(&t.params);
        if keys::is_unsafe_key(&base) {
            return Err(SyncError::InvalidPathParameter.into());
        }
        let keys: Vec<(String, String)> = members
            .iter()
            .filter(|m| {
                Access {
                    required: &m.read_roles,
                    root_only: m.root_only,
                }
                .allows(&roles)
                    && self
                        .restrictions
                        .check(Some(&identity), Op::Pull, t.namespace, &m.name)
                        .is_ok()
            })
            .map(|m| (m.name.clone(), format!("{base}/{}", m.name)))
            .collect();
        keys.iter().try_for_each(|(_, k)| keys::check_storable(k))?;
        let docs = self
            .store_op(move |s| {
                keys.into_iter()
                    .map(|(name, key)| doc::read(s, &key).map(|d| (name, d)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(SyncError::from)?;
        let mut cols = Object::with_capacity(docs.len());
        let any = !docs.is_empty();
        for (name, d) in docs {
            let mut d = match d {
                doc::Read::Doc(d) => Some(d),
                _ => None,
            };
            if let (Some(f), Some(d)) = (self.fields.get(t.namespace, &name), d.as_mut()) {
                f.filter_read(&mut d.data, &roles, None);
            }
            cols.insert(name, doc::entry_answer(d.as_ref(), None));
        }
        let mut o = Object::with_capacity(2);
        o.insert("collections", Value::Object(cols));
        o.insert(
            "timestamp",
            Value::Number(if any { ctx.now as f64 } else { 0.0 }),
        );
        Ok(json_ok(&Value::Object(o)))
    }

    async fn batch(&self, ctx: &Ctx<'_>, namespace: Option<&str>) -> Response {
        let max = self.options.max_collections_per_batch;
        let cols: Vec<CollectionConfig> = self
            .router
            .config()
            .scope(namespace)
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        let query = batch::parse_query(
            ctx.query("collections").as_deref(),
            ctx.query("params").as_deref(),
            ctx.query("appendParams").as_deref(),
            max,
        )
        .and_then(|q| {
            q.check_append_budget(&cols, self.options.batch.max_append_elements)?;
            Ok(q)
        });
        let query = match query {
            Ok(q) => q,
            Err(e) => return json_status(400, &response::error_body(&e.message())),
        };
        let auth = match self.authenticate(ctx, None).await {
            Ok(a) => Some(a),
            Err(e) => {
                log::info!("batch pull continues anonymously after an auth failure: {e}");
                None
            }
        };
        let options = self.options.batch.clone();
        let now = ctx.now;
        let rules = BatchRules {
            namespace: namespace.map(str::to_owned),
            restrictions: self.restrictions.clone(),
            fields: self.fields.clone(),
        };
        let body = self
            .store_op(move |s| batch::run(s, &cols, &query, auth.as_ref(), &options, &rules, now))
            .await;
        json_ok(&body)
    }
}

fn decision_response(d: PluginDecision) -> Option<Response> {
    match d {
        PluginDecision::Proceed => None,
        PluginDecision::Reject(status, message) => {
            Some(json_status(status, &response::error_body(&message)))
        }
        PluginDecision::Respond(status, body) => Some(json_status(status, &body)),
    }
}

/// The append-only pull bounds of a query: `checkpoint`, `limit`, `last`,
/// `full`.
#[inline(never)]
fn append_query(query: Option<&str>) -> [Option<String>; 4] {
    ["checkpoint", "limit", "last", "full"].map(|n| query.and_then(|q| query_param(q, n)))
}

/// The answer to a bounded append-only read: `304` on a matching
/// `If-None-Match`; `Cache-Control` only when a log is stored; an expired
/// log (ttlMs) answers the official empty answer, with the `ETag` of the
/// stored hash and never a `304`.
#[inline(never)]
fn append_pull_response(ctx: &Ctx<'_>, col: &CollectionConfig, read: append::LogRead) -> Response {
    let etag = read.etag();
    let found = read.found;
    let body = if read.expired(col, ctx.now) {
        doc::pull_answer(None, ctx.now, None)
    } else {
        if etag.is_some() && etag.as_deref() == ctx.header("if-none-match") {
            return response::not_modified();
        }
        read.answer(ctx.now)
    };
    let mut res = json_ok(&body);
    if found {
        add_cache_control(&mut res, col);
    }
    if let Some(etag) = etag {
        res.insert_header("ETag", etag);
    }
    res
}

fn check_params(t: &Target<'_>) -> Result<(), SyncError> {
    if t.params.iter().all(|(_, v)| keys::is_valid_param(v)) {
        Ok(())
    } else {
        Err(SyncError::InvalidPathParameter)
    }
}

fn add_cache_control(res: &mut Response, col: &CollectionConfig) {
    if let Some(value) = cache_control(col) {
        res.insert_header("Cache-Control", value);
    }
}

/// The collection's `Cache-Control` value (`cacheDurationMs`), if any.
fn cache_control(col: &CollectionConfig) -> Option<String> {
    let ms = col.cache_duration_ms?;
    let s = crate::proto::canonical::js_number((ms / 1000.0).floor());
    Some(if col.read_roles.iter().any(|r| r == "public") {
        format!("max-age={s}")
    } else {
        format!("private, max-age={s}")
    })
}

/// What a pull read.
enum Found {
    /// Our own envelope, for a pull that may be answered from the bytes.
    Spliceable(SharedDoc, doc::Envelope),
    /// The document decoded, and the keyring when asked for (boxed: the
    /// slow path pays for the allocation, not the spliced one).
    Decoded(Box<(doc::Read, Option<Option<doc::Read>>)>),
}

impl Found {
    /// What `got` (read at `key`) gives: spliceable when `splice` allows
    /// it and the envelope is ours ([`doc::Envelope::of`], checked once
    /// per stored value), decoded otherwise (no keyring yet).
    fn of(key: &str, got: Option<SharedDoc>, splice: bool) -> Found {
        if let Some(d) = got.as_ref().filter(|_| splice) {
            if let Some(e) = doc::Envelope::of(d) {
                return Found::Spliceable(d.clone(), e);
            }
        }
        Found::Decoded(Box::new((doc::decode_stored(key, got.as_deref()), None)))
    }
}

/// A plain pull answered from the stored bytes ([`doc::Envelope`]):
/// `304` when `If-None-Match` is the stored hash's ETag; else a
/// [`Prepared`] answer whose ETag and `data` are ranges of the stored value
/// itself (written to the socket without a copy) and whose only bytes made
/// here are the tail with the hash and the timestamp. The same bytes as
/// [`doc::splice_pull_answer`] and the parse-and-print path.
fn spliced_pull(
    ctx: &Ctx<'_>,
    col: &CollectionConfig,
    stored: &SharedDoc,
    e: doc::Envelope,
) -> Response {
    let etag = &stored[e.etag()];
    let inm = ctx.req.header(http_types::headers::IF_NONE_MATCH);
    if inm.is_some_and(|v| v.last().as_str().as_bytes() == etag) {
        return response::not_modified();
    }
    let mut p = Prepared::with_capacity(3, 3);
    p.header("content-type", Piece::Static(b"application/json"))
        .header("etag", Piece::Shared(stored.clone(), e.etag()));
    if let Some(value) = cache_control(col) {
        p.header("cache-control", Piece::Owned(value.into_bytes()));
    }
    p.body(Piece::Static(doc::PULL_ANSWER_HEAD))
        .body(Piece::Shared(stored.clone(), e.data()))
        .body(Piece::Owned(doc::pull_answer_tail(
            &stored[e.hash()],
            ctx.now,
        )));
    p.into_response(StatusCode::Ok)
}

/// MIME pattern match: type and subtype non-empty on both sides, each pattern
/// part `*` or equal.
fn mime_matches(pattern: &str, media: &str) -> bool {
    let mut p = pattern.split('/');
    let mut m = media.split('/');
    let (Some(pt), Some(ps), Some(mt), Some(ms)) = (p.next(), p.next(), m.next(), m.next()) else {
        return false;
    };
    if [pt, ps, mt, ms].iter().any(|s| s.is_empty()) {
        return false;
    }
    (pt == "*" || pt == mt) && (ps == "*" || ps == ms)
}

impl Handler for Service {
    fn handle(&self, req: Request) -> BoxFuture<'_, Response> {
        Box::pin(self.serve(req))
    }
}

#[cfg(test)]
mod tests {
    use super::mime_matches;

    #[test]
    fn mime_patterns() {
        assert!(mime_matches("image/*", "image/png"));
        assert!(mime_matches("*/*", "text/plain"));
        assert!(!mime_matches("image/*", "text/plain"));
        assert!(!mime_matches("image/png", "image"));
        assert!(!mime_matches("image/", "image/png"));
    }
}
