//! Identity restrictions (`restrictions`, EXTENDED) at the server, namespace
//! and collection level.
//!
//! The official server enforces them only when the
//! `@drakkar.software/starfish-restrictions` plugin is installed
//! (`createRestrictionsPlugin({ config })`); starfish-rs always enforces
//! them (COMPATIBILITY.md). The rules and their evaluation are the
//! plugin's (3.0.0-alpha.62, the only published version):
//!
//! * a server-level restriction applies everywhere; a namespace-level one
//!   to that namespace; a collection-level one to that collection in its
//!   scope (a root collection's rule does not reach a namespaced collection
//!   of the same name). A restriction listing `actions` applies to those
//!   actions only (`pull`, `push`, `list`).
//! * **deny wins**: a caller listed by any applicable `deny` rule is
//!   refused; otherwise the caller must be listed by **every** applicable
//!   `allow` rule. Anonymous callers never match a `deny` list and never
//!   satisfy an `allow` list.
//! * a refusal is `403 {"error":"identity restricted"}`.
//!
//! With the plugin installed the official router also skips the public
//! fast path everywhere (identities must be resolved to be restricted), so
//! a signed request to a public collection is verified. starfish-rs does
//! the same whenever the config declares at least one restriction
//! ([`Restrictions::is_active`]).

use crate::config::SyncConfig;
use crate::proto::json::Value;

/// The status of a refusal.
pub const RESTRICTED_STATUS: u16 = 403;
/// The error message of a refusal.
pub const RESTRICTED_MESSAGE: &str = "identity restricted";

/// What a request does to a collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    List,
}

impl Action {
    fn from_name(name: &str) -> Option<Action> {
        match name {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "list" => Some(Action::List),
            _ => None,
        }
    }
}

/// Which namespace a rule is scoped to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum NamespaceScope {
    /// Any namespace, and the root.
    Any,
    /// Root collections only.
    Root,
    Named(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    deny: bool,
    identities: Vec<String>,
    namespace: NamespaceScope,
    collection: Option<String>,
    action: Option<Action>,
}

impl Rule {
    fn applies(&self, action: Action, namespace: Option<&str>, collection: &str) -> bool {
        self.action.is_none_or(|a| a == action)
            && self.collection.as_deref().is_none_or(|c| c == collection)
            && match &self.namespace {
                NamespaceScope::Any => true,
                NamespaceScope::Root => namespace.is_none(),
                NamespaceScope::Named(n) => namespace == Some(n.as_str()),
            }
    }
}

/// A refused request (`403 {"error":"identity restricted"}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restricted;

impl std::fmt::Display for Restricted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(RESTRICTED_MESSAGE)
    }
}

impl std::error::Error for Restricted {}

/// Every restriction of a config, compiled into rules (the plugin's
/// `restrictionsFromConfig`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restrictions {
    rules: Vec<Rule>,
}

impl Restrictions {
    /// Compile the `restrictions` declared anywhere in `config` (already
    /// validated by the config loader). Server rules first, then root
    /// collections, then each namespace and its collections.
    pub fn from_config(config: &SyncConfig) -> Restrictions {
        let mut rules = Vec::new();
        expand(
            config.restrictions.as_ref(),
            &NamespaceScope::Any,
            None,
            &mut rules,
        );
        for col in &config.collections {
            expand(
                col.extended.restrictions.as_ref(),
                &NamespaceScope::Root,
                Some(&col.name),
                &mut rules,
            );
        }
        for (name, ns) in &config.namespaces {
            let scope = NamespaceScope::Named(name.clone());
            expand(ns.restrictions.as_ref(), &scope, None, &mut rules);
            for col in &ns.collections {
                expand(
                    col.extended.restrictions.as_ref(),
                    &scope,
                    Some(&col.name),
                    &mut rules,
                );
            }
        }
        Restrictions { rules }
    }

    /// Whether any rule exists. When true, identities are resolved even on
    /// public collections (the plugin's authorize hook is "installed").
    pub fn is_active(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The plugin's `authorize` hook. `identity` is the caller's user id
    /// (`None` or `""` for anonymous callers).
    pub fn check(
        &self,
        identity: Option<&str>,
        action: Action,
        namespace: Option<&str>,
        collection: &str,
    ) -> Result<(), Restricted> {
        let identity = identity.filter(|i| !i.is_empty());
        for rule in &self.rules {
            if !rule.applies(action, namespace, collection) {
                continue;
            }
            let listed = identity.is_some_and(|i| rule.identities.iter().any(|x| x == i));
            if rule.deny == listed {
                return Err(Restricted);
            }
        }
        Ok(())
    }
}

/// One restriction → one rule per listed action (or one for all actions).
fn expand(
    list: Option<&Value>,
    namespace: &NamespaceScope,
    collection: Option<&str>,
    out: &mut Vec<Rule>,
) {
    let Some(list) = list.and_then(Value::as_array) else {
        return;
    };
    for r in list {
        let Some(o) = r.as_object() else { continue };
        let deny = o.get("mode").and_then(Value::as_str) == Some("deny");
        let identities: Vec<String> = o
            .get("identities")
            .and_then(Value::as_array)
            .unwrap_or(&[])
            .iter()
            .filter_map(|v| v.as_js_string().map(|s| s.to_string_lossy()))
            .collect();
        let actions: Vec<Option<Action>> = match o.get("actions").and_then(Value::as_array) {
            Some(a) if !a.is_empty() => a
                .iter()
                .map(|v| v.as_str().and_then(Action::from_name))
                .collect(),
            _ => vec![None],
        };
        for action in actions {
            out.push(Rule {
                deny,
                identities: identities.clone(),
                namespace: namespace.clone(),
                collection: collection.map(str::to_owned),
                action,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;

    fn compile(text: &str) -> Restrictions {
        Restrictions::from_config(&parse_config(text.as_bytes()).unwrap().config)
    }

    const CONFIG: &str = r#"{
        "restrictions":[{"mode":"deny","identities":["banned"]}],
        "collections":[
          {"name":"notes","storagePath":"notes/{id}","readRoles":["public"],"writeRoles":["public"],
           "restrictions":[{"mode":"deny","identities":["spammer"],"actions":["push"]}]},
          {"name":"vip","storagePath":"vip/{id}","readRoles":["public"],"writeRoles":["public"],
           "restrictions":[{"mode":"allow","identities":["alice","bob"]},
                           {"mode":"allow","identities":["alice","carol"],"actions":["push","list"]}]}
        ],
        "namespaces":{"acme":{
          "restrictions":[{"mode":"allow","identities":["alice"]}],
          "collections":[{"name":"notes","storagePath":"n/{id}","readRoles":["public"],"writeRoles":["public"]}]}}
    }"#;

    #[test]
    fn deny_wins_and_every_allow_must_list_the_caller() {
        let r = compile(CONFIG);
        assert!(r.is_active());
        let root = None;
        // server-wide deny
        assert_eq!(
            r.check(Some("banned"), Action::Pull, root, "notes"),
            Err(Restricted)
        );
        // collection deny, push only
        assert!(r
            .check(Some("spammer"), Action::Pull, root, "notes")
            .is_ok());
        assert_eq!(
            r.check(Some("spammer"), Action::Push, root, "notes"),
            Err(Restricted)
        );
        // anonymous never matches a deny list ...
        assert!(r.check(None, Action::Push, root, "notes").is_ok());
        assert!(r.check(Some(""), Action::Push, root, "notes").is_ok());
        // ... and never satisfies an allow list
        assert_eq!(r.check(None, Action::Pull, root, "vip"), Err(Restricted));
        // every applicable allow rule must list the caller
        assert!(r.check(Some("bob"), Action::Pull, root, "vip").is_ok());
        assert_eq!(
            r.check(Some("bob"), Action::Push, root, "vip"),
            Err(Restricted)
        );
        assert!(r.check(Some("alice"), Action::List, root, "vip").is_ok());
        assert_eq!(
            r.check(Some("carol"), Action::Pull, root, "vip"),
            Err(Restricted)
        );
        // namespace rules stay in their namespace; collection rules in theirs
        assert_eq!(
            r.check(Some("spammer"), Action::Push, Some("acme"), "notes"),
            Err(Restricted),
            "acme allows alice only"
        );
        assert!(r
            .check(Some("alice"), Action::Push, Some("acme"), "notes")
            .is_ok());
        assert!(
            r.check(Some("bob"), Action::Pull, root, "notes").is_ok(),
            "the acme allow-list does not reach the root"
        );
        assert_eq!(
            r.check(Some("banned"), Action::Pull, Some("acme"), "notes"),
            Err(Restricted),
            "server-wide rules reach namespaces"
        );
    }

    #[test]
    fn configs_without_restrictions_are_inert() {
        let r = compile(
            r#"{"restrictions":[],"collections":[{"name":"a","storagePath":"a","readRoles":["public"],"writeRoles":["public"]}]}"#,
        );
        assert!(!r.is_active());
        assert!(r.check(None, Action::Push, None, "a").is_ok());
    }
}
