//! The route table: mount prefix, namespaces, method + path → [`Action`].
//!
//! Pure and allocation-light: matching walks the config in the official
//! registration order (health; config; root collections, each with its
//! pull, list and push routes; root bundles; root batch; then each
//! namespace's collections, bundles and batch) and returns the first
//! match. Matching is on raw path segments; only values bound to a
//! `{param}` are percent-decoded. No match (unknown path, wrong method,
//! trailing slash, empty segment) is the plain-text 404.

use crate::config::{bundle_groups, CollectionConfig, Segment, SyncConfig};
use crate::sync::list;
use std::sync::Arc;

/// What a request asks for.
#[derive(Debug, Clone)]
pub enum Action<'c> {
    Health,
    /// `GET /config` (answered only when the config endpoint is on).
    Config,
    /// `GET /list/...` of a `listable` collection; `params` are the bound
    /// parameters of the storage path without its last segment.
    List(Target<'c>),
    /// Pull of a standalone collection.
    Pull(Target<'c>),
    /// Push to a standalone collection.
    Push(Target<'c>),
    /// Pull of a whole bundle; `target.collection` is its first member.
    BundlePull {
        target: Target<'c>,
        members: Vec<&'c CollectionConfig>,
    },
    /// Push to one bundle member.
    BundlePush(Target<'c>),
    /// Batch pull over the collections of one scope.
    Batch {
        namespace: Option<&'c str>,
    },
}

/// A matched collection route.
#[derive(Debug, Clone)]
pub struct Target<'c> {
    pub namespace: Option<&'c str>,
    pub collection: &'c CollectionConfig,
    /// `{param}` bindings, percent-decoded, in route order.
    pub params: Vec<(String, String)>,
}

impl Target<'_> {
    /// The decoded `{identity}` parameter, if the route has one.
    pub fn identity_param(&self) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == "identity")
            .map(|(_, v)| v.as_str())
    }
}

/// The router over one config and mount prefix.
#[derive(Debug, Clone)]
pub struct Router {
    config: Arc<SyncConfig>,
    mount: String,
}

/// A mount prefix as the router uses it: no trailing `/`, a leading `/`
/// unless empty (`"v1/"` and `"/v1"` are `"/v1"`; `"/"` and `""` are `""`).
pub fn normalize_mount(mount: &str) -> String {
    let trimmed = mount.trim_end_matches('/');
    if trimmed.is_empty() || trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    }
}

impl Router {
    /// `mount` is `""` for the root, or a prefix such as `/v1` (a trailing
    /// `/` is dropped, a missing leading `/` added).
    pub fn new(config: Arc<SyncConfig>, mount: &str) -> Self {
        Router {
            config,
            mount: normalize_mount(mount),
        }
    }

    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// Route a request by method and (normalised, query-less) path.
    pub fn route(&self, method: &str, path: &str) -> Option<Action<'_>> {
        let rest = path.strip_prefix(self.mount.as_str())?;
        let rest = rest.strip_prefix('/')?;
        let segs: Vec<&str> = rest.split('/').collect();
        let get = matches!(method, "GET" | "HEAD");
        let post = method == "POST";
        if !get && !post {
            return None;
        }
        if get && segs == ["health"] {
            return Some(Action::Health);
        }
        if get && segs == ["config"] {
            return Some(Action::Config);
        }
        if let Some(a) = self.route_scope(None, &self.config.collections, &segs, get) {
            return Some(a);
        }
        let (ns_name, inner) = segs.split_first()?;
        let (name, ns) = self.config.namespaces.iter().find(|(n, _)| n == ns_name)?;
        self.route_scope(Some(name.as_str()), &ns.collections, inner, get)
    }

    fn route_scope<'c>(
        &'c self,
        namespace: Option<&'c str>,
        cols: &'c [CollectionConfig],
        segs: &[&str],
        get: bool,
    ) -> Option<Action<'c>> {
        let (first, rest) = segs.split_first()?;
        let target = |collection: &'c CollectionConfig, raw: &[&str]| {
            collection.match_route(raw).map(|bound| Target {
                namespace,
                collection,
                params: bound
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), decode_param(v)))
                    .collect(),
            })
        };
        match (*first, get) {
            ("pull", true) => {
                for c in cols.iter().filter(|c| c.bundle.is_none() && !c.push_only) {
                    if let Some(t) = target(c, rest) {
                        return Some(Action::Pull(t));
                    }
                }
                for (_, members) in bundle_groups(cols) {
                    if let Some(t) = target(members[0], rest) {
                        return Some(Action::BundlePull { target: t, members });
                    }
                }
                None
            }
            ("push", false) => {
                for c in cols.iter().filter(|c| c.bundle.is_none() && !c.pull_only) {
                    if let Some(t) = target(c, rest) {
                        return Some(Action::Push(t));
                    }
                }
                let (member, base) = rest.split_last()?;
                for (_, members) in bundle_groups(cols) {
                    for m in members.iter().filter(|m| !m.pull_only && m.name == *member) {
                        if let Some(t) = target(m, base) {
                            return Some(Action::BundlePush(t));
                        }
                    }
                }
                None
            }
            ("list", true) => cols.iter().filter(|c| list::is_listable(c)).find_map(|c| {
                list_params(c, rest).map(|params| {
                    Action::List(Target {
                        namespace,
                        collection: c,
                        params,
                    })
                })
            }),
            ("batch", true) if rest == ["pull"] => Some(Action::Batch { namespace }),
            _ => None,
        }
    }
}

/// Match the segments after `/list/` against a listable collection's list
/// route (its storage path without the last segment); the decoded
/// parameters on success. A one-segment storage path lists at `/list/`
/// exactly.
fn list_params(c: &CollectionConfig, rest: &[&str]) -> Option<Vec<(String, String)>> {
    let route = &c.route_segments()[..list::route_len(c)];
    let raw: &[&str] = match (route.is_empty(), rest) {
        (true, [""]) => &[],
        (true, _) => return None,
        (false, r) => r,
    };
    if raw.len() != route.len() || !route.iter().zip(raw).all(|(s, r)| s.matches(r)) {
        return None;
    }
    Some(
        route
            .iter()
            .zip(raw)
            .filter_map(|(s, r)| match s {
                Segment::Param(name) => Some((name.clone(), decode_param(r))),
                _ => None,
            })
            .collect(),
    )
}

/// Hono's parameter decoding: each run of `%XX` escapes is decoded as UTF-8
/// (`decodeURIComponent`); a run that does not decode is left as it is.
pub fn decode_param(raw: &str) -> String {
    if !raw.contains('%') {
        return raw.to_owned();
    }
    let b = raw.as_bytes();
    let is_escape = |i: usize| {
        i + 2 < b.len()
            && b[i] == b'%'
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
    };
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < b.len() {
        if is_escape(i) {
            let start = i;
            let mut bytes = Vec::new();
            while is_escape(i) {
                bytes.push(u8::from_str_radix(&raw[i + 1..i + 3], 16).unwrap_or(0));
                i += 3;
            }
            match String::from_utf8(bytes) {
                Ok(s) => out.push_str(&s),
                Err(_) => out.push_str(&raw[start..i]),
            }
        } else {
            let ch = raw[i..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Query parameters as Hono reads them: pairs split on `&`, then on the
/// first `=`; `+` is a space; escapes decoded (malformed ones kept); the
/// first occurrence of a name wins; a name without `=` gives `""`.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if decode_query(k) == name {
            return Some(decode_query(v));
        }
    }
    None
}

fn decode_query(s: &str) -> String {
    decode_param(&s.replace('+', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_decoding_keeps_malformed_runs() {
        assert_eq!(decode_param("a%20b"), "a b");
        assert_eq!(decode_param("%E0%A4%A"), "%E0%A4%A");
        assert_eq!(decode_param("%zz%41"), "%zzA");
        assert_eq!(decode_param("%C3%A9x%FF"), "éx%FF");
        assert_eq!(decode_param("%"), "%");
        assert_eq!(decode_param("a%4"), "a%4");
        assert_eq!(decode_param("%2F"), "/");
    }

    #[test]
    fn query_rules() {
        assert_eq!(query_param("a=1&a=2", "a").as_deref(), Some("1"));
        assert_eq!(query_param("x&y=2", "x").as_deref(), Some(""));
        assert_eq!(query_param("c=a%2Cb+c", "c").as_deref(), Some("a,b c"));
        assert_eq!(query_param("c=1", "C"), None);
    }
}
