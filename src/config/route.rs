//! `storagePath` templates: route segments, path parameters and document keys
//! (wire.md §2.1).
//!
//! The official router turns every `{name}` (`name` = `[A-Za-z0-9_]+`) into a
//! Hono `:name`, anywhere in the string, and hands the result to Hono, which
//! only treats a *whole segment* starting with `:` as a parameter. So:
//!
//! * `users/{identity}/settings` → `Literal("users")`, `Param("identity")`,
//!   `Literal("settings")`;
//! * `file-{id}.json` → `Literal("file-:id.json")`: it only matches that
//!   exact text and `{id}` is never substituted;
//! * `{a-b}` (not `\w+`) → `Literal("{a-b}")`;
//! * a segment that Hono sees as a parameter but that is not a whole
//!   `{name}` template parameter (`{id}.json` → `:id.json`, a raw `:x`, a
//!   `*`) → [`Segment::Unbound`]: it matches any one non-empty segment and
//!   binds nothing the document key uses.
//!
//! Hono's optional (`:x?`) and regex (`:x{re}`) parameter forms can only
//! arise from pathological storage paths and are treated as
//! [`Segment::Unbound`].

/// One `/`-separated segment of a route built from a `storagePath`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Matches exactly this text (after the `{name}` → `:name` rewrite).
    Literal(String),
    /// A `{name}` path parameter; matches one non-empty segment.
    Param(String),
    /// A segment Hono treats as a parameter although it is not a template
    /// parameter; matches one non-empty segment, its value is unused.
    Unbound(String),
}

impl Segment {
    /// Whether a raw request path segment matches this route segment.
    /// Literal comparison is exact; percent-decoding is the caller's job.
    pub fn matches(&self, raw: &str) -> bool {
        match self {
            Segment::Literal(s) => s == raw,
            Segment::Param(_) | Segment::Unbound(_) => !raw.is_empty(),
        }
    }
}

/// Whether `c` is a JavaScript regex `\w` character.
fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `Some(name)` when `seg` is exactly `{name}` with `name` matching `\w+`.
pub(crate) fn whole_param(seg: &str) -> Option<&str> {
    let name = seg.strip_prefix('{')?.strip_suffix('}')?;
    (!name.is_empty() && name.chars().all(is_word)).then_some(name)
}

/// Every `{name}` (`\w+`) occurrence in `template`, in order, duplicates
/// included (JavaScript `template.match(/\{(\w+)\}/g)`).
pub(crate) fn template_params(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let len = after.find(|c: char| !is_word(c)).unwrap_or(after.len());
        if len > 0 && after[len..].starts_with('}') {
            out.push(&after[..len]);
            rest = &after[len + 1..];
        } else {
            rest = after;
        }
    }
    out
}

/// JavaScript `storagePath.replace(/\{(\w+)\}/g, ":$1")`.
pub(crate) fn hono_rewrite(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let len = after.find(|c: char| !is_word(c)).unwrap_or(after.len());
        if len > 0 && after[len..].starts_with('}') {
            out.push(':');
            out.push_str(&after[..len]);
            rest = &after[len + 1..];
        } else {
            out.push('{');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The route segments of a storage path (see the module docs).
pub fn route_segments(storage_path: &str) -> Vec<Segment> {
    storage_path
        .split('/')
        .map(|seg| {
            if let Some(name) = whole_param(seg) {
                return Segment::Param(name.to_owned());
            }
            let hono = hono_rewrite(seg);
            if hono.starts_with(':') || hono == "*" {
                Segment::Unbound(hono)
            } else {
                Segment::Literal(hono)
            }
        })
        .collect()
}

/// Whether `name` is a canonical array index, which JavaScript orders before
/// every other object key.
fn array_index(name: &str) -> Option<u32> {
    if name.is_empty() || name.len() > 10 || (name.len() > 1 && name.starts_with('0')) {
        return None;
    }
    let n: u64 = name.parse().ok()?;
    u32::try_from(n).ok().filter(|&n| n != u32::MAX)
}

/// `resolveDocumentKey(template, extractPathParams(template, params))`:
/// keep the bound parameters whose names occur as `{name}` in `template`,
/// order them as the official object would be iterated (array-index names
/// ascending first, then first-occurrence order), and replace every
/// `{name}` occurrence with the value, one parameter after the other (so a
/// value containing another `{name}` is itself substituted later, exactly
/// like the official plain-text replacement).
pub fn resolve_document_key<N: AsRef<str>, V: AsRef<str>>(
    template: &str,
    params: &[(N, V)],
) -> String {
    let mut names: Vec<&str> = Vec::new();
    for name in template_params(template) {
        if !names.contains(&name) && params.iter().any(|(n, _)| n.as_ref() == name) {
            names.push(name);
        }
    }
    names.sort_by_key(|n| match array_index(n) {
        Some(i) => (0, i),
        None => (1, 0),
    });
    let mut key = template.to_owned();
    for name in names {
        // The last binding of a repeated name wins, as in an object literal.
        let value = params
            .iter()
            .rev()
            .find(|(n, _)| n.as_ref() == name)
            .map(|(_, v)| v.as_ref())
            .unwrap_or_default();
        key = key.replace(&format!("{{{name}}}"), value);
    }
    key
}
