//! Scope paths: the glob matcher (`pathGlobMatch`) and the server's cap
//! scope check (`matchScopePath`), plus the two path helpers the cap
//! resolver uses to decide which path is checked.
//!
//! ```
//! use starfish::proto::scope::{glob_match, match_scope_path};
//! assert!(glob_match("users/*/settings", "users/abc/settings"));
//! let paths = vec!["vault/**".to_string(), "!vault/secret".to_string()];
//! assert!(!match_scope_path("vault/secret/child", Some(&paths)));
//! ```

/// A star of a glob pattern.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Star {
    /// `**`: any run of characters.
    Any,
    /// `*`: any run of characters without `/`.
    Seg,
}

/// `pathGlobMatch(pattern, target)`: `**` matches any run, `*` any run
/// without `/`, everything else is literal; the whole target must match.
///
/// This gives exactly the official algorithm's answers, including its
/// single backtrack point: a later `*` that meets a `/` fails the match even
/// when an earlier `**` could have absorbed it. The official loop re-scans
/// on every mismatch (O(pattern × target)); the same decisions fall out of
/// one pass: once the literal after a star is found, the loop never returns
/// to an earlier star, so each star takes the first occurrence of its
/// literal (a linear-time substring search), a `*` fails if it has to step
/// over a `/` to get there, and the last literal must end the target.
/// O(len(pattern) + len(target)).
pub fn glob_match(pattern: &str, target: &str) -> bool {
    glob_match_counting(pattern, target).0
}

/// [`glob_match`] that also reports the bytes it examined (for the
/// complexity tests; also added to [`super::work`]).
#[doc(hidden)]
pub fn glob_match_counting(pattern: &str, target: &str) -> (bool, u64) {
    let mut steps = pattern.len() as u64;
    let result = glob_steps(pattern, target, &mut steps);
    super::work::add(steps as usize);
    (result, steps)
}

fn glob_steps(pattern: &str, target: &str, steps: &mut u64) -> bool {
    // The literal before the first star must start the target.
    let first_end = pattern.find('*').unwrap_or(pattern.len());
    *steps += first_end as u64;
    let Some(mut rest) = target.strip_prefix(&pattern[..first_end]) else {
        return false;
    };
    if first_end == pattern.len() {
        return rest.is_empty();
    }
    let has_slash = |s: &str, steps: &mut u64| {
        *steps += s.len() as u64;
        s.as_bytes().contains(&b'/')
    };
    // Each star with the literal after it (up to the next star).
    let b = pattern.as_bytes();
    let mut i = first_end; // b[i] == '*'
    loop {
        let (star, lit_start) = if b.get(i + 1) == Some(&b'*') {
            (Star::Any, i + 2)
        } else {
            (Star::Seg, i + 1)
        };
        let lit_end = pattern[lit_start..]
            .find('*')
            .map_or(pattern.len(), |o| lit_start + o);
        let lit = &pattern[lit_start..lit_end];
        if lit_end == pattern.len() {
            // The last star absorbs everything up to a final copy of `lit`.
            *steps += lit.len() as u64;
            let Some(skipped) = rest.strip_suffix(lit) else {
                return false;
            };
            return !(star == Star::Seg && has_slash(skipped, steps));
        }
        let at = if lit.is_empty() {
            Some(0)
        } else {
            rest.find(lit)
        };
        let Some(at) = at else {
            *steps += rest.len() as u64;
            return false;
        };
        *steps += (at + lit.len()) as u64;
        if star == Star::Seg && has_slash(&rest[..at], steps) {
            return false;
        }
        rest = &rest[at + lit.len()..];
        i = lit_end;
    }
}

/// `decodeURIComponent`, or `None` where it would throw (a `%` not followed
/// by two hex digits, or escapes that do not decode to valid UTF-8).
pub fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(h).ok()?;
            out.push(
                u8::from_str_radix(hex, 16)
                    .ok()
                    .filter(|_| h.iter().all(u8::is_ascii_hexdigit))?,
            );
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The canonical form of a request path for scope matching: each segment
/// percent-decoded (left raw when that fails), empty and `.` segments dropped.
pub fn canonical_scope_path(request_path: &str) -> String {
    let mut out = String::with_capacity(request_path.len());
    for seg in request_path.split('/') {
        let d = percent_decode(seg).unwrap_or_else(|| seg.to_owned());
        if d.is_empty() || d == "." {
            continue;
        }
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(&d);
    }
    out
}

/// `matchScopePath(requestPath, paths)`: `None` or an empty list allows
/// everything; otherwise some allow glob must match the canonical path and no
/// `!` deny glob may match it or be an ancestor of it.
pub fn match_scope_path(request_path: &str, paths: Option<&[String]>) -> bool {
    let paths = match paths {
        Some(p) if !p.is_empty() => p,
        _ => return true,
    };
    let canon = canonical_scope_path(request_path);
    // Each glob is linear, but many patterns times a long path is not:
    // bound the whole check by a multiple of its input and fail closed
    // (outside the scope) past it. Real caps carry a few short paths and
    // stay far below the bound.
    let input: usize = paths.iter().map(String::len).sum::<usize>() + canon.len();
    let budget = SCOPE_WORK_FACTOR as u64 * (input as u64 + paths.len() as u64) + SCOPE_WORK_FLOOR;
    let mut used = 0u64;
    let mut glob = |p: &str| {
        let (m, steps) = glob_match_counting(p, &canon);
        used += steps;
        (m, used > budget)
    };
    let mut any_allow = false;
    let mut allowed = false;
    for p in paths {
        if p.starts_with('!') {
            continue;
        }
        any_allow = true;
        let (m, over) = glob(p);
        if over {
            return false;
        }
        if m {
            allowed = true;
            break;
        }
    }
    if !any_allow || !allowed {
        return false;
    }
    for d in paths.iter().filter_map(|p| p.strip_prefix('!')) {
        let (m, over) = glob(d);
        if m || over {
            return false;
        }
        let (m, over) = glob(&format!("{d}/**"));
        if m || over {
            return false;
        }
    }
    true
}

/// How many times its input length [`match_scope_path`] may spend (plus
/// [`SCOPE_WORK_FLOOR`]) before it answers "outside the scope".
pub const SCOPE_WORK_FACTOR: usize = 64;
/// Work [`match_scope_path`] may always spend.
pub const SCOPE_WORK_FLOOR: u64 = 65_536;

/// Replace every `{identity}` in each scope path with `identity`.
pub fn expand_identity(paths: &[String], identity: &str) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.replace("{identity}", identity))
        .collect()
}

/// `stripActionPrefix(p)`: the part of the path after the first `pull`,
/// `push` or `list` segment (the query dropped, one leading `/` removed).
pub fn strip_action_prefix(path_and_query: &str) -> &str {
    let path = path_and_query.split('?').next().unwrap_or("");
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let mut offset = 0;
    for seg in trimmed.split('/') {
        let next = offset + seg.len() + 1;
        if matches!(seg, "pull" | "push" | "list") {
            return trimmed.get(next..).unwrap_or("");
        }
        offset = next;
    }
    trimmed
}

/// `isBatchPullPath(p)` as the official server decides it: `/batch/pull` or
/// `/<one segment>/batch/pull`. With `recognise_mounted` (our deliberate fix),
/// `/<mount>/<ns>/batch/pull` is recognised too.
pub fn is_batch_pull_path(path_and_query: &str, recognise_mounted: bool) -> bool {
    let path = path_and_query.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let n = segs.len();
    if n < 2 || segs[n - 2] != "batch" || segs[n - 1] != "pull" {
        return false;
    }
    let not_action = |s: &str| !matches!(s, "pull" | "push" | "list");
    match n {
        2 => true,
        3 => not_action(segs[0]),
        4 if recognise_mounted => not_action(segs[0]) && not_action(segs[1]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_action_prefix_examples() {
        assert_eq!(
            strip_action_prefix("/v1/tenantA/pull/tenantA/users/X/settings"),
            "tenantA/users/X/settings"
        );
        assert_eq!(
            strip_action_prefix("/push/users/X/data/prefs?x=1"),
            "users/X/data/prefs"
        );
        assert_eq!(
            strip_action_prefix("/v1/tenantA/batch/pull"),
            "v1/tenantA/batch/pull"
                .split_once("pull")
                .map(|_| "")
                .unwrap_or("")
        );
        assert_eq!(strip_action_prefix("/health"), "health");
    }

    #[test]
    fn batch_pull_path_recognition() {
        assert!(is_batch_pull_path("/batch/pull", false));
        assert!(is_batch_pull_path("/v1/batch/pull?x", false));
        assert!(!is_batch_pull_path("/v1/ns/batch/pull", false));
        assert!(is_batch_pull_path("/v1/ns/batch/pull", true));
        assert!(!is_batch_pull_path("/pull/batch/pull", false));
        assert!(!is_batch_pull_path("/v1/pull/batch/pull", true));
        assert!(!is_batch_pull_path("/a/b/c/batch/pull", true));
    }

    #[test]
    fn the_single_backtrack_quirk_is_kept() {
        // A full backtracking matcher would accept this; the official one does not.
        assert!(!glob_match("**a*b", "xa/ab"));
    }

    #[test]
    fn percent_decoding_follows_decode_uri_component() {
        assert_eq!(percent_decode("_%6beyring").as_deref(), Some("_keyring"));
        assert_eq!(percent_decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("%E0%A4%A"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(
            percent_decode("%ED%A0%80"),
            None,
            "surrogates are not valid UTF-8"
        );
    }
}
