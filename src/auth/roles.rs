//! The per-collection access decision (`checkAuth`, wire.md §3 step 4) and
//! the per-request `self` role.

use super::{Auth, ROLE_PUBLIC, ROLE_ROOT_DEVICE, ROLE_SELF};

/// The access rules of one collection for one operation.
#[derive(Clone, Copy, Debug)]
pub struct Access<'a> {
    /// `readRoles` for reads, `writeRoles` for writes.
    pub required: &'a [String],
    pub root_only: bool,
}

impl Access<'_> {
    /// The public fast path: no authentication at all.
    pub fn is_public(&self) -> bool {
        !self.root_only && self.required.iter().any(|r| r == ROLE_PUBLIC)
    }

    /// Allowed iff (not root-only, or the caller is a root device) and (the
    /// roles include `public`, or share a role with the caller).
    pub fn allows(&self, roles: &[String]) -> bool {
        (!self.root_only || roles.iter().any(|r| r == ROLE_ROOT_DEVICE))
            && (self.required.iter().any(|r| r == ROLE_PUBLIC)
                || self.required.iter().any(|r| roles.contains(r)))
    }
}

/// The caller's roles for one collection: the resolver's roles plus `self`
/// when the storage path has `{identity}` and the path's identity is the
/// caller's.
pub fn effective_roles(
    auth: &Auth,
    storage_path_has_identity: bool,
    identity_param: Option<&str>,
) -> Vec<String> {
    let mut roles = auth.roles.clone();
    if storage_path_has_identity
        && !auth.identity.is_empty()
        && identity_param == Some(auth.identity.as_str())
    {
        roles.push(ROLE_SELF.to_owned());
    }
    roles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn decisions() {
        let public = s(&["public"]);
        assert!(Access {
            required: &public,
            root_only: false
        }
        .is_public());
        assert!(!Access {
            required: &public,
            root_only: true
        }
        .is_public());
        let selfish = s(&["self"]);
        let a = Access {
            required: &selfish,
            root_only: false,
        };
        assert!(!a.allows(&s(&["public"])));
        assert!(a.allows(&s(&["cap:read:*", "self"])));
        let star = s(&["cap:read:*"]);
        assert!(Access {
            required: &star,
            root_only: false
        }
        .allows(&s(&["cap:read:*"])));
        assert!(!Access {
            required: &s(&["cap:read:notes"]),
            root_only: false
        }
        .allows(&s(&["cap:read:*"])));
        assert!(!Access {
            required: &star,
            root_only: true
        }
        .allows(&s(&["cap:read:*"])));
        assert!(Access {
            required: &star,
            root_only: true
        }
        .allows(&s(&["cap:read:*", "device:root"])));
    }

    #[test]
    fn self_needs_a_matching_identity() {
        let auth = Auth {
            identity: "u1".into(),
            roles: vec![],
            ..Auth::default()
        };
        assert_eq!(effective_roles(&auth, true, Some("u1")), s(&["self"]));
        assert!(effective_roles(&auth, true, Some("u2")).is_empty());
        assert!(effective_roles(&auth, false, Some("u1")).is_empty());
        assert!(effective_roles(&Auth::anonymous(), true, Some("")).len() == 1);
    }
}
