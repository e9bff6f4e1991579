//! Object schemas (`objectSchema`, EXTENDED): the pushed `data` object is
//! validated against the collection's JSON Schema, as the official server
//! does with Ajv 8 (`new Ajv()`: draft-07, strict mode, no formats, first
//! error only), answering
//! `400 {"error":"Schema validation failed: <msg>","path":[...],"validator":"<keyword>"}`.
//!
//! Why our own validator: a general JSON Schema crate is several times our
//! binary budget and reports different errors; the official answer depends
//! on exactly which error Ajv reports first and how it words it. This module
//! implements the keywords the default Ajv instance accepts (draft-07:
//! `type` (+ `nullable`), `enum`, `const`, `multipleOf`, `maximum`,
//! `exclusiveMaximum`, `minimum`, `exclusiveMinimum`, `maxLength`,
//! `minLength`, `pattern`, `maxItems`, `minItems`, `uniqueItems`, `items`,
//! `additionalItems`, `contains`, `maxProperties`, `minProperties`,
//! `required`, `properties`, `patternProperties`, `additionalProperties`,
//! `dependencies`, `propertyNames`, `if`/`then`/`else`, `allOf`, `anyOf`,
//! `oneOf`, `not`, local `$ref`, plus the annotations) and reproduces:
//!
//! * Ajv's evaluation order (keyword groups: untyped, number, string,
//!   array, object; the type check up front or inside the group), so the
//!   first error is Ajv's first error;
//! * Ajv's messages, `instancePath` (JSON-pointer escaped, then split on
//!   `/` as the official router does) and keyword names;
//! * Ajv's error bookkeeping: inside `anyOf`/`oneOf`/`not`/`if`/`contains`/
//!   `propertyNames` errors accumulate ("composite" mode), elsewhere the
//!   first error returns, and a failing `contains` outside composite mode
//!   reports only itself;
//! * Ajv's compile-time refusals: the draft-07 meta-schema, strict mode
//!   (unknown keywords, `if` without `then`/`else`, ...), unknown formats
//!   (no format is registered, so any `format` fails), unresolvable `$ref`.
//!   A schema Ajv cannot compile makes every push with object data fail
//!   with `500 {"error":"Internal schema validation error"}`, as officially.
//!
//! The schema is compiled once, at config load ([`CollectionSchema::compile`]).
//! Differences (COMPATIBILITY.md): `$ref` only to JSON pointers in the same
//! schema (no nested `$id` scopes, no anchors); patterns without
//! look-arounds, back-references or `\p{..}` ([`js_regex`]); `$async`
//! schemas are refused; a property named like an `Object.prototype`
//! member is treated as present for `required`/`dependencies` (as Ajv
//! does) and as a function value for `properties`.

pub mod js_regex;

use super::SyncError;
use crate::proto::canonical::{js_number, stable_stringify};
use crate::proto::json::{JsString, Object, Value};
use js_regex::JsRegex;

/// A collection's `objectSchema`, compiled at config load.
#[derive(Debug)]
pub enum CollectionSchema {
    Ready(ObjectSchema),
    /// Ajv would not compile it (the reason is logged at start-up).
    Unusable(String),
}

impl CollectionSchema {
    pub fn compile(raw: &Value) -> CollectionSchema {
        match ObjectSchema::compile(raw) {
            Ok(s) => CollectionSchema::Ready(s),
            Err(e) => CollectionSchema::Unusable(e.0),
        }
    }

    /// Why Ajv would not compile the schema (`None`: it is usable).
    pub fn unusable_reason(&self) -> Option<&str> {
        match self {
            CollectionSchema::Unusable(reason) => Some(reason),
            CollectionSchema::Ready(_) => None,
        }
    }

    /// The push-time check of an object `data`.
    pub fn check(&self, data: &Object) -> Result<(), SyncError> {
        self.check_inst(Inst::Object(data))
    }

    /// The same check for any JSON value (the official router only ever
    /// validates objects; tests use the rest).
    pub fn check_value(&self, data: &Value) -> Result<(), SyncError> {
        self.check_inst(Inst::Json(data))
    }

    fn check_inst(&self, data: Inst<'_>) -> Result<(), SyncError> {
        match self {
            CollectionSchema::Unusable(_) => Err(SyncError::SchemaUnusable),
            CollectionSchema::Ready(s) => match s.validate_inst(data) {
                Ok(()) => Ok(()),
                Err(Invalid::Error(e)) => Err(SyncError::SchemaInvalid {
                    message: e.message,
                    path: e.path,
                    keyword: e.keyword,
                }),
                // JavaScript overflows its stack: the official catch-all 500.
                Err(Invalid::TooDeep) => Err(SyncError::SchemaUnusable),
            },
        }
    }
}

/// Why a schema does not compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError(pub String);

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CompileError {}

fn fail<T>(m: impl Into<String>) -> Result<T, CompileError> {
    Err(CompileError(m.into()))
}

/// Ajv's first error.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaError {
    pub message: String,
    /// The official `path`: `instancePath.split("/").filter(Boolean)`.
    pub path: Vec<JsString>,
    pub keyword: String,
}

/// Why validation did not pass.
#[derive(Debug)]
enum Invalid {
    Error(SchemaError),
    /// Schema recursion without end (JavaScript overflows its stack).
    TooDeep,
}

// ---------------------------------------------------------------------------
// Compiled form

type NodeId = usize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JsonType {
    Null,
    Boolean,
    Number,
    Integer,
    String,
    Array,
    Object,
}

impl JsonType {
    fn parse(s: &str) -> Option<JsonType> {
        Some(match s {
            "null" => JsonType::Null,
            "boolean" => JsonType::Boolean,
            "number" => JsonType::Number,
            "integer" => JsonType::Integer,
            "string" => JsonType::String,
            "array" => JsonType::Array,
            "object" => JsonType::Object,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Number,
    String,
    Array,
    Object,
}

impl Group {
    fn of(t: JsonType) -> Option<Group> {
        match t {
            JsonType::Number => Some(Group::Number),
            JsonType::String => Some(Group::String),
            JsonType::Array => Some(Group::Array),
            JsonType::Object => Some(Group::Object),
            _ => None,
        }
    }
    fn keywords(self) -> &'static [&'static str] {
        match self {
            Group::Number => &[
                "maximum",
                "minimum",
                "exclusiveMaximum",
                "exclusiveMinimum",
                "multipleOf",
                "format",
            ],
            Group::String => &["maxLength", "minLength", "pattern", "format"],
            Group::Array => &[
                "maxItems",
                "minItems",
                "additionalItems",
                "items",
                "contains",
                "uniqueItems",
            ],
            Group::Object => &[
                "maxProperties",
                "minProperties",
                "required",
                "propertyNames",
                "additionalProperties",
                "dependencies",
                "properties",
                "patternProperties",
            ],
        }
    }
}

#[derive(Debug)]
enum Node {
    Bool(bool),
    Schema(Box<Keywords>),
    /// Being compiled (a `$ref` cycle points here).
    Pending,
}

#[derive(Debug, Default)]
struct Keywords {
    /// `$ref` with no sibling rule: only the reference is evaluated.
    ref_only: Option<RefKw>,
    types: Vec<JsonType>,
    /// `String(schema.type)` for the message.
    type_text: String,
    /// The type is checked before every keyword (Ajv `checkTypes`).
    type_upfront: bool,
    untyped: Vec<Untyped>,
    /// `Some` when a keyword of the group is present (even one that
    /// compiled to nothing).
    number: Option<Vec<NumberKw>>,
    string: Option<Vec<StringKw>>,
    array: Option<Vec<ArrayKw>>,
    object: Option<Vec<ObjectKw>>,
}

#[derive(Clone, Copy, Debug)]
struct RefKw {
    target: NodeId,
    /// Compiled by Ajv as its own function (errors inside it follow
    /// non-composite rules).
    separate: bool,
}

#[derive(Debug)]
enum Untyped {
    Ref(RefKw),
    Const(Value),
    Enum(Vec<Value>),
    /// `None`: an always-valid schema, so `not` always fails.
    Not(Option<NodeId>),
    AnyOf(Vec<NodeId>),
    /// `None` entries are always-valid branches.
    OneOf(Vec<Option<NodeId>>),
    AllOf(Vec<NodeId>),
    If {
        cond: NodeId,
        then: Option<NodeId>,
        otherwise: Option<NodeId>,
    },
}

#[derive(Debug)]
enum NumberKw {
    Maximum(f64),
    Minimum(f64),
    ExclusiveMaximum(f64),
    ExclusiveMinimum(f64),
    MultipleOf(f64),
}

#[derive(Debug)]
enum StringKw {
    MaxLength(f64),
    MinLength(f64),
    Pattern(JsRegex),
}

#[derive(Debug)]
enum ArrayKw {
    MaxItems(f64),
    MinItems(f64),
    /// `additionalItems: false` with an `items` tuple of this length.
    NoAdditionalItems(usize),
    /// `additionalItems` schema for items past the tuple.
    AdditionalItems(usize, NodeId),
    /// `items` as one schema for every item.
    Items(NodeId),
    /// `items` as a tuple (always-valid positions are `None`).
    Tuple(Vec<Option<NodeId>>),
    /// `None`: always-valid schema, only the length counts.
    Contains(Option<NodeId>),
    /// With the item types Ajv uses for its hash-based check (`None`:
    /// deep comparison).
    UniqueItems(Option<Vec<JsonType>>),
}

#[derive(Debug)]
enum ObjectKw {
    MaxProperties(f64),
    MinProperties(f64),
    Required(Vec<JsString>),
    PropertyNames(NodeId),
    AdditionalProperties {
        props: Vec<JsString>,
        patterns: Vec<JsRegex>,
        /// `None`: `false`.
        schema: Option<NodeId>,
    },
    Dependencies {
        props: Vec<(JsString, Vec<JsString>)>,
        schemas: Vec<(JsString, NodeId)>,
    },
    Properties(Vec<(JsString, NodeId)>),
    PatternProperties(Vec<(JsRegex, Option<NodeId>)>),
}

/// A compiled `objectSchema`.
#[derive(Debug)]
pub struct ObjectSchema {
    nodes: Vec<Node>,
    root: NodeId,
}

// ---------------------------------------------------------------------------
// Keyword tables

/// Keywords the default Ajv instance knows (`RULES.keywords`).
const KNOWN: [&str; 53] = [
    "$async",
    "$schema",
    "$id",
    "$defs",
    "$vocabulary",
    "$comment",
    "definitions",
    "id",
    "$ref",
    "maximum",
    "minimum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "multipleOf",
    "maxLength",
    "minLength",
    "pattern",
    "maxProperties",
    "minProperties",
    "required",
    "maxItems",
    "minItems",
    "uniqueItems",
    "type",
    "nullable",
    "const",
    "enum",
    "not",
    "anyOf",
    "oneOf",
    "allOf",
    "if",
    "then",
    "else",
    "propertyNames",
    "additionalProperties",
    "dependencies",
    "properties",
    "patternProperties",
    "additionalItems",
    "items",
    "contains",
    "format",
    "title",
    "description",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "examples",
    "contentMediaType",
    "contentEncoding",
    "contentSchema",
];

/// Keywords with a rule (`RULES.all`): a schema without any is always valid.
const RULES: [&str; 37] = [
    "$comment",
    "id",
    "$ref",
    "maximum",
    "minimum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "multipleOf",
    "maxLength",
    "minLength",
    "pattern",
    "maxProperties",
    "minProperties",
    "required",
    "maxItems",
    "minItems",
    "uniqueItems",
    "type",
    "nullable",
    "const",
    "enum",
    "not",
    "anyOf",
    "oneOf",
    "allOf",
    "if",
    "then",
    "else",
    "propertyNames",
    "additionalProperties",
    "dependencies",
    "properties",
    "patternProperties",
    "additionalItems",
    "items",
    "contains",
    "format",
];

fn key_is(k: &JsString, names: &[&str]) -> bool {
    names.iter().any(|n| k.as_bytes() == n.as_bytes())
}

/// The draft-07 meta-schema ids Ajv knows (trailing `#` or `#/` optional).
fn is_draft7_meta(id: &str) -> bool {
    let base = id
        .strip_suffix("#/")
        .or_else(|| id.strip_suffix('#'))
        .unwrap_or(id);
    base == "http://json-schema.org/draft-07/schema"
}

// ---------------------------------------------------------------------------
// Meta-schema validation (the draft-07 meta-schema, as Ajv's `validateSchema`)

fn is_schema(v: &Value) -> bool {
    matches!(v, Value::Object(_) | Value::Bool(_))
}

fn non_negative_integer(v: &Value) -> bool {
    v.is_integer() && v.as_f64().is_some_and(|n| n >= 0.0)
}

/// No two items deep-equal (config load only; lists are short).
fn unique(items: &[Value]) -> bool {
    items
        .iter()
        .enumerate()
        .all(|(i, a)| items[..i].iter().all(|b| !deep_equal(a, b)))
}

fn string_array(v: &Value) -> bool {
    matches!(v, Value::Array(a) if a.iter().all(|x| matches!(x, Value::String(_))) && unique(a))
}

fn meta_check(v: &Value, at: &str) -> Result<(), CompileError> {
    let o = match v {
        Value::Bool(_) => return Ok(()),
        Value::Object(o) => o,
        _ => return fail(format!("schema is invalid: {at} must be object,boolean")),
    };
    let bad = |k: &JsString, what: &str| fail(format!("schema is invalid: {at}/{k} {what}"));
    for (k, val) in o.iter() {
        let key = k.as_bytes();
        let ok = match key {
            b"$id" | b"$schema" | b"$ref" | b"$comment" | b"title" | b"description"
            | b"pattern" | b"format" | b"contentMediaType" | b"contentEncoding" => {
                matches!(val, Value::String(_))
            }
            b"readOnly" | b"uniqueItems" => matches!(val, Value::Bool(_)),
            b"examples" => matches!(val, Value::Array(_)),
            b"multipleOf" => val.as_f64().is_some_and(|n| n > 0.0),
            b"maximum" | b"exclusiveMaximum" | b"minimum" | b"exclusiveMinimum" => {
                matches!(val, Value::Number(_))
            }
            b"maxLength" | b"minLength" | b"maxItems" | b"minItems" | b"maxProperties"
            | b"minProperties" => non_negative_integer(val),
            b"required" => string_array(val),
            b"enum" => matches!(val, Value::Array(a) if !a.is_empty() && unique(a)),
            b"type" => match val {
                Value::String(s) => s.as_str().and_then(JsonType::parse).is_some(),
                Value::Array(a) => {
                    !a.is_empty()
                        && unique(a)
                        && a.iter()
                            .all(|t| t.as_str().and_then(JsonType::parse).is_some())
                }
                _ => false,
            },
            b"additionalItems"
            | b"contains"
            | b"additionalProperties"
            | b"propertyNames"
            | b"if"
            | b"then"
            | b"else"
            | b"not" => {
                meta_check(val, &format!("{at}/{k}"))?;
                true
            }
            b"items" => match val {
                Value::Array(a) if !a.is_empty() => {
                    for (i, s) in a.iter().enumerate() {
                        meta_check(s, &format!("{at}/items/{i}"))?;
                    }
                    true
                }
                v if is_schema(v) => {
                    meta_check(v, &format!("{at}/items"))?;
                    true
                }
                _ => false,
            },
            b"allOf" | b"anyOf" | b"oneOf" => match val {
                Value::Array(a) if !a.is_empty() => {
                    for (i, s) in a.iter().enumerate() {
                        meta_check(s, &format!("{at}/{k}/{i}"))?;
                    }
                    true
                }
                _ => false,
            },
            b"definitions" | b"properties" | b"patternProperties" => match val {
                Value::Object(m) => {
                    for (name, s) in m.iter() {
                        meta_check(s, &format!("{at}/{k}/{name}"))?;
                    }
                    true
                }
                _ => false,
            },
            b"dependencies" => match val {
                Value::Object(m) => {
                    for (name, d) in m.iter() {
                        if matches!(d, Value::Array(_)) {
                            if !string_array(d) {
                                return bad(k, "must be valid");
                            }
                        } else {
                            meta_check(d, &format!("{at}/dependencies/{name}"))?;
                        }
                    }
                    true
                }
                _ => false,
            },
            _ => true,
        };
        if !ok {
            return bad(k, "is invalid");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Compilation (what Ajv generates code for)

struct Compiler<'a> {
    root: &'a Value,
    nodes: Vec<Node>,
    /// `$ref` fragment → compiled target.
    by_pointer: Vec<(String, RefKw)>,
}

/// Bare `$ref` schemas followed in a row before giving up (a cycle).
const MAX_REF_CHAIN: usize = 32;

/// Ajv `alwaysValidSchema` (which also runs the strict unknown-keyword
/// check on the schema's own keys).
fn always_valid(v: &Value) -> Result<bool, CompileError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Object(o) if o.is_empty() => Ok(true),
        Value::Object(o) => {
            check_unknown(o)?;
            Ok(!o.iter().any(|(k, _)| key_is(k, &RULES)))
        }
        _ => fail("schema must be object or boolean"),
    }
}

fn check_unknown(o: &Object) -> Result<(), CompileError> {
    for (k, _) in o.iter() {
        if !key_is(k, &KNOWN) {
            return fail(format!("strict mode: unknown keyword: \"{k}\""));
        }
    }
    Ok(())
}

/// Ajv `allSchemaProperties`: the keys, `__proto__` excepted.
fn schema_props(v: Option<&Value>) -> Vec<(&JsString, &Value)> {
    match v {
        Some(Value::Object(o)) => o
            .iter_js_order()
            .into_iter()
            .filter(|(k, _)| k.as_bytes() != b"__proto__")
            .collect(),
        _ => Vec::new(),
    }
}

fn has_ref(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.iter().any(|(k, v)| k.as_bytes() == b"$ref" || has_ref(v)),
        Value::Array(a) => a.iter().any(has_ref),
        _ => false,
    }
}

fn regex(p: &str) -> Result<JsRegex, CompileError> {
    JsRegex::new(p).map_err(|e| CompileError(e.to_string()))
}

/// The JavaScript `new RegExp(pat)` (no `u`) test Ajv's strict check uses;
/// our `u`-mode engine stands in (the patterns that differ are exotic).
fn matching_property_check(pat: &JsRegex, props: Option<&Value>) -> Result<(), CompileError> {
    for (name, _) in schema_props(props) {
        if pat.test(&name.to_string_lossy()) {
            return fail(format!(
                "strict mode: property {name} matches pattern {} (use allowMatchingProperties)",
                pat.source()
            ));
        }
    }
    Ok(())
}

fn get_types(o: &Object) -> Result<Vec<JsonType>, CompileError> {
    let mut types: Vec<JsonType> = match o.get("type") {
        None => Vec::new(),
        Some(Value::String(s)) => s.as_str().and_then(JsonType::parse).into_iter().collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|t| t.as_str().and_then(JsonType::parse))
            .collect(),
        Some(_) => return fail("type must be JSONType or JSONType[]"),
    };
    let nullable = o.get("nullable");
    if types.contains(&JsonType::Null) {
        if matches!(nullable, Some(Value::Bool(false))) {
            return fail("type: null contradicts nullable: false");
        }
    } else {
        if types.is_empty() && nullable.is_some() {
            return fail("\"nullable\" cannot be used without \"type\"");
        }
        if matches!(nullable, Some(Value::Bool(true))) {
            types.push(JsonType::Null);
        }
    }
    Ok(types)
}

fn number(o: &Object, k: &str) -> f64 {
    o.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

fn strings(v: &Value) -> Vec<JsString> {
    v.as_array()
        .unwrap_or(&[])
        .iter()
        .filter_map(|s| s.as_js_string().cloned())
        .collect()
}

/// `String(schema.type)`.
fn type_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.to_string_lossy(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| {
                t.as_js_string()
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}

/// Resolve `#/a/b` (percent-decoded, `~1`/`~0` unescaped) in `root`.
fn resolve_pointer<'v>(root: &'v Value, fragment: &str) -> Option<(&'v Value, bool)> {
    let mut cur = root;
    let mut scope_changed = false;
    if fragment.is_empty() {
        return Some((cur, false));
    }
    let rest = fragment.strip_prefix('/')?;
    for raw in rest.split('/') {
        let part = percent_decode(raw)?.replace("~1", "/").replace("~0", "~");
        cur = match cur {
            Value::Object(o) => o.get(&part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
        const PREVENT_SCOPE_CHANGE: [&str; 5] =
            ["enum", "const", "default", "examples", "properties"];
        if !PREVENT_SCOPE_CHANGE.contains(&part.as_str())
            && cur
                .as_object()
                .and_then(|o| o.get("$id"))
                .is_some_and(|id| id.as_str().is_some_and(|s| !s.is_empty()))
        {
            scope_changed = true;
        }
    }
    Some((cur, scope_changed))
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Compiler<'_> {
    fn add(&mut self, n: Node) -> NodeId {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    /// Compile a subschema Ajv generates code for. `scoped`: inside a
    /// nested `$id` (refs there are not supported).
    fn compile(&mut self, v: &Value, scoped: bool) -> Result<NodeId, CompileError> {
        let id = self.add(Node::Pending);
        self.fill(id, v, scoped)?;
        Ok(id)
    }

    fn fill(&mut self, id: NodeId, v: &Value, scoped: bool) -> Result<(), CompileError> {
        self.nodes[id] = match v {
            Value::Bool(b) => Node::Bool(*b),
            Value::Object(o) => self
                .keywords(o, scoped)?
                .map_or(Node::Bool(true), |k| Node::Schema(Box::new(k))),
            _ => return fail("schema must be object or boolean"),
        };
        Ok(())
    }

    fn compile_ref(&mut self, r: &str, scoped: bool) -> Result<RefKw, CompileError> {
        self.compile_ref_chain(r, scoped, 0)
    }

    fn compile_ref_chain(
        &mut self,
        r: &str,
        scoped: bool,
        chain: usize,
    ) -> Result<RefKw, CompileError> {
        if chain > MAX_REF_CHAIN {
            return fail("Maximum call stack size exceeded ($ref cycle)");
        }
        if scoped {
            return fail("$ref inside a nested $id scope is not supported");
        }
        let fragment = match r.split_once('#') {
            Some(("", f)) => f,
            Some((base, f))
                if self
                    .root
                    .as_object()
                    .and_then(|o| o.get("$id"))
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.split('#').next() == Some(base)) =>
            {
                f
            }
            _ => return fail(format!("can't resolve reference {r}")),
        };
        if fragment.is_empty() || fragment == "/" {
            return Ok(RefKw {
                target: 0,
                separate: true,
            });
        }
        if let Some((_, known)) = self.by_pointer.iter().find(|(f, _)| f == fragment) {
            return Ok(*known);
        }
        let (target_value, scope_changed) = resolve_pointer(self.root, fragment)
            .ok_or_else(|| CompileError(format!("can't resolve reference {r}")))?;
        if std::ptr::eq(target_value, self.root) {
            return Ok(RefKw {
                target: 0,
                separate: true,
            });
        }
        // A schema that is itself a bare `$ref` is followed (Ajv
        // `getJsonPointer`), so its own target is what gets compiled.
        if let Value::Object(o) = target_value {
            if let Some(Value::String(next)) = o.get("$ref") {
                if !o
                    .iter()
                    .any(|(k, _)| k.as_bytes() != b"$ref" && key_is(k, &RULES))
                {
                    let next = next.to_string_lossy();
                    return self.compile_ref_chain(&next, scope_changed, chain + 1);
                }
            }
        }
        // Ajv inlines a target without `$ref` inside; others are compiled
        // as functions of their own.
        let known = RefKw {
            target: self.add(Node::Pending),
            separate: has_ref(target_value),
        };
        // Registered before compiling, so a cycle resolves to it.
        self.by_pointer.push((fragment.to_owned(), known));
        self.fill(known.target, target_value, scope_changed)?;
        Ok(known)
    }

    /// `None` when the schema has no rule at all (always valid).
    fn keywords(&mut self, o: &Object, scoped: bool) -> Result<Option<Keywords>, CompileError> {
        check_unknown(o)?;
        let scoped = scoped
            || (!std::ptr::eq(o, self.root.as_object().unwrap_or(o))
                && o.get("$id")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty()));
        if !o.iter().any(|(k, _)| key_is(k, &RULES)) {
            return Ok(None);
        }
        if o.get("$async")
            .is_some_and(|a| !matches!(a, Value::Bool(false)))
        {
            return fail("$async schemas are not supported");
        }
        if o.contains_key("id") {
            return fail("NOT SUPPORTED: keyword \"id\", use \"$id\" for schema ID");
        }
        if o.contains_key("format") {
            return fail("unknown format (no format is registered)");
        }
        if o.get("nullable")
            .is_some_and(|n| !matches!(n, Value::Bool(_)))
        {
            return fail("nullable value must be [\"boolean\"]");
        }
        let mut kw = Keywords::default();
        if let Some(Value::String(r)) = o.get("$ref") {
            let only = !o
                .iter()
                .any(|(k, _)| k.as_bytes() != b"$ref" && key_is(k, &RULES));
            if only {
                kw.ref_only = Some(self.compile_ref(&r.to_string_lossy(), scoped)?);
                return Ok(Some(kw));
            }
        }
        kw.types = get_types(o)?;
        kw.type_text = type_text(o.get("type"));
        let used = |g: Group| g.keywords().iter().any(|k| o.contains_key(k));
        let single_used = kw.types.len() == 1 && Group::of(kw.types[0]).is_some_and(&used);
        kw.type_upfront = !kw.types.is_empty() && !single_used;
        // The untyped group, in Ajv's order.
        if let Some(Value::String(r)) = o.get("$ref") {
            kw.untyped.push(Untyped::Ref(
                self.compile_ref(&r.to_string_lossy(), scoped)?,
            ));
        }
        if let Some(c) = o.get("const") {
            kw.untyped.push(Untyped::Const(c.clone()));
        }
        if let Some(Value::Array(e)) = o.get("enum") {
            kw.untyped.push(Untyped::Enum(e.clone()));
        }
        if let Some(n) = o.get("not") {
            let node = if always_valid(n)? {
                None
            } else {
                Some(self.compile(n, scoped)?)
            };
            kw.untyped.push(Untyped::Not(node));
        }
        if let Some(Value::Array(branches)) = o.get("anyOf") {
            // Ajv stops looking at the first always-valid branch.
            let mut skip = false;
            for b in branches {
                if always_valid(b)? {
                    skip = true;
                    break;
                }
            }
            if !skip {
                let ids = branches
                    .iter()
                    .map(|b| self.compile(b, scoped))
                    .collect::<Result<Vec<_>, _>>()?;
                kw.untyped.push(Untyped::AnyOf(ids));
            }
        }
        if let Some(Value::Array(branches)) = o.get("oneOf") {
            let mut ids = Vec::new();
            for b in branches {
                ids.push(if always_valid(b)? {
                    None
                } else {
                    Some(self.compile(b, scoped)?)
                });
            }
            kw.untyped.push(Untyped::OneOf(ids));
        }
        if let Some(Value::Array(branches)) = o.get("allOf") {
            let mut ids = Vec::new();
            for b in branches {
                if !always_valid(b)? {
                    ids.push(self.compile(b, scoped)?);
                }
            }
            kw.untyped.push(Untyped::AllOf(ids));
        }
        if let Some(cond) = o.get("if") {
            if !o.contains_key("then") && !o.contains_key("else") {
                return fail("strict mode: \"if\" without \"then\" and \"else\" is ignored");
            }
            let clause = |name: &str, c: &mut Self| -> Result<Option<NodeId>, CompileError> {
                match o.get(name) {
                    Some(s) if !always_valid(s)? => Ok(Some(c.compile(s, scoped)?)),
                    _ => Ok(None),
                }
            };
            let then = clause("then", self)?;
            let otherwise = clause("else", self)?;
            if then.is_some() || otherwise.is_some() {
                let cond = self.compile(cond, scoped)?;
                kw.untyped.push(Untyped::If {
                    cond,
                    then,
                    otherwise,
                });
            }
        } else {
            for k in ["then", "else"] {
                if o.contains_key(k) {
                    return fail(format!("strict mode: \"{k}\" without \"if\" is ignored"));
                }
            }
        }
        if used(Group::Number) {
            // In Ajv's order, whatever the order in the schema.
            type Make = fn(f64) -> NumberKw;
            let kinds: [(&str, Make); 5] = [
                ("maximum", NumberKw::Maximum),
                ("minimum", NumberKw::Minimum),
                ("exclusiveMaximum", NumberKw::ExclusiveMaximum),
                ("exclusiveMinimum", NumberKw::ExclusiveMinimum),
                ("multipleOf", NumberKw::MultipleOf),
            ];
            kw.number = Some(
                kinds
                    .iter()
                    .filter(|(k, _)| o.contains_key(k))
                    .map(|(k, make)| make(number(o, k)))
                    .collect(),
            );
        }
        if used(Group::String) {
            let mut v = Vec::new();
            if o.contains_key("maxLength") {
                v.push(StringKw::MaxLength(number(o, "maxLength")));
            }
            if o.contains_key("minLength") {
                v.push(StringKw::MinLength(number(o, "minLength")));
            }
            if let Some(Value::String(p)) = o.get("pattern") {
                let p = p
                    .as_str()
                    .ok_or_else(|| CompileError("lone surrogate in pattern".into()))?;
                v.push(StringKw::Pattern(regex(p)?));
            }
            kw.string = Some(v);
        }
        if used(Group::Array) {
            kw.array = Some(self.array_keywords(o, scoped)?);
        }
        if used(Group::Object) {
            kw.object = Some(self.object_keywords(o, scoped)?);
        }
        Ok(Some(kw))
    }

    fn array_keywords(&mut self, o: &Object, scoped: bool) -> Result<Vec<ArrayKw>, CompileError> {
        let mut v = Vec::new();
        if o.contains_key("maxItems") {
            v.push(ArrayKw::MaxItems(number(o, "maxItems")));
        }
        if o.contains_key("minItems") {
            v.push(ArrayKw::MinItems(number(o, "minItems")));
        }
        if let Some(extra) = o.get("additionalItems") {
            let Some(Value::Array(tuple)) = o.get("items") else {
                return fail(
                    "strict mode: \"additionalItems\" is ignored when \"items\" is not an array of schemas",
                );
            };
            match extra {
                Value::Bool(false) => v.push(ArrayKw::NoAdditionalItems(tuple.len())),
                s @ Value::Object(_) if !always_valid(s)? => v.push(ArrayKw::AdditionalItems(
                    tuple.len(),
                    self.compile(s, scoped)?,
                )),
                _ => {}
            }
        }
        match o.get("items") {
            Some(Value::Array(tuple)) => {
                let mut ids = Vec::new();
                for s in tuple {
                    ids.push(if always_valid(s)? {
                        None
                    } else {
                        Some(self.compile(s, scoped)?)
                    });
                }
                v.push(ArrayKw::Tuple(ids));
            }
            Some(s) if !always_valid(s)? => v.push(ArrayKw::Items(self.compile(s, scoped)?)),
            _ => {}
        }
        if let Some(c) = o.get("contains") {
            v.push(ArrayKw::Contains(if always_valid(c)? {
                None
            } else {
                Some(self.compile(c, scoped)?)
            }));
        }
        if matches!(o.get("uniqueItems"), Some(Value::Bool(true))) {
            let item_types = match o.get("items") {
                Some(Value::Object(items)) => get_types(items)?,
                _ => Vec::new(),
            };
            let optimized = !item_types.is_empty()
                && !item_types
                    .iter()
                    .any(|t| matches!(t, JsonType::Object | JsonType::Array));
            v.push(ArrayKw::UniqueItems(optimized.then_some(item_types)));
        }
        Ok(v)
    }

    fn object_keywords(&mut self, o: &Object, scoped: bool) -> Result<Vec<ObjectKw>, CompileError> {
        let mut v = Vec::new();
        if o.contains_key("maxProperties") {
            v.push(ObjectKw::MaxProperties(number(o, "maxProperties")));
        }
        if o.contains_key("minProperties") {
            v.push(ObjectKw::MinProperties(number(o, "minProperties")));
        }
        if let Some(r) = o.get("required") {
            let r = strings(r);
            if !r.is_empty() {
                v.push(ObjectKw::Required(r));
            }
        }
        if let Some(s) = o.get("propertyNames") {
            if !always_valid(s)? {
                v.push(ObjectKw::PropertyNames(self.compile(s, scoped)?));
            }
        }
        if let Some(s) = o.get("additionalProperties") {
            if !always_valid(s)? {
                let props = schema_props(o.get("properties"))
                    .into_iter()
                    .map(|(k, _)| k.clone())
                    .collect();
                let patterns = schema_props(o.get("patternProperties"))
                    .into_iter()
                    .map(|(k, _)| regex(&k.to_string_lossy()))
                    .collect::<Result<Vec<_>, _>>()?;
                let schema = match s {
                    Value::Bool(false) => None,
                    s => Some(self.compile(s, scoped)?),
                };
                v.push(ObjectKw::AdditionalProperties {
                    props,
                    patterns,
                    schema,
                });
            }
        }
        if let Some(Value::Object(deps)) = o.get("dependencies") {
            let mut props = Vec::new();
            let mut schemas = Vec::new();
            for (k, d) in deps.iter_js_order() {
                if k.as_bytes() == b"__proto__" {
                    continue;
                }
                match d {
                    Value::Array(_) => {
                        let list = strings(d);
                        if !list.is_empty() {
                            props.push((k.clone(), list));
                        }
                    }
                    s => {
                        if !always_valid(s)? {
                            schemas.push((k.clone(), self.compile(s, scoped)?));
                        }
                    }
                }
            }
            v.push(ObjectKw::Dependencies { props, schemas });
        }
        if o.contains_key("properties") {
            let mut props = Vec::new();
            for (k, s) in schema_props(o.get("properties")) {
                if !always_valid(s)? {
                    props.push((k.clone(), self.compile(s, scoped)?));
                }
            }
            v.push(ObjectKw::Properties(props));
        }
        if o.contains_key("patternProperties") {
            let pats = schema_props(o.get("patternProperties"));
            let mut all_valid = true;
            let mut valid_flags = Vec::new();
            for (_, s) in &pats {
                let av = always_valid(s)?;
                all_valid &= av;
                valid_flags.push(av);
            }
            if !pats.is_empty() && !all_valid {
                let mut compiled = Vec::new();
                for ((k, s), av) in pats.into_iter().zip(valid_flags) {
                    let re = regex(&k.to_string_lossy())?;
                    matching_property_check(&re, o.get("properties"))?;
                    let node = if av {
                        None
                    } else {
                        Some(self.compile(s, scoped)?)
                    };
                    compiled.push((re, node));
                }
                v.push(ObjectKw::PatternProperties(compiled));
            }
        }
        Ok(v)
    }
}

impl ObjectSchema {
    /// Compile as `new Ajv().compile(schema)` would, or say why not.
    pub fn compile(raw: &Value) -> Result<ObjectSchema, CompileError> {
        if let Some(o) = raw.as_object() {
            match o.get("$schema") {
                None => {}
                Some(Value::String(s)) if s.as_str().is_some_and(is_draft7_meta) => {}
                Some(Value::String(s)) => {
                    return fail(format!("no schema with key or ref \"{s}\""))
                }
                Some(_) => return fail("$schema must be a string"),
            }
            if o.get("$async")
                .is_some_and(|a| !matches!(a, Value::Bool(false)))
            {
                return fail("$async schemas are not supported");
            }
        }
        meta_check(raw, "data")?;
        let mut c = Compiler {
            root: raw,
            nodes: Vec::new(),
            by_pointer: Vec::new(),
        };
        let root = c.compile(raw, false)?;
        debug_assert_eq!(root, 0);
        Ok(ObjectSchema {
            nodes: c.nodes,
            root,
        })
    }

    fn validate_inst(&self, data: Inst<'_>) -> Result<(), Invalid> {
        let mut ev = Eval {
            schema: self,
            path: Vec::new(),
            depth: 0,
            active_refs: Vec::new(),
        };
        ev.node(self.root, data, false).map_err(|f| match f {
            Fail::Error(e) => Invalid::Error(ev.finish(e)),
            Fail::TooDeep => Invalid::TooDeep,
        })
    }
}

// ---------------------------------------------------------------------------
// Evaluation

/// A value under validation: JSON, or the function an inherited
/// `Object.prototype` member reads as in JavaScript.
#[derive(Clone, Copy)]
enum Inst<'a> {
    Json(&'a Value),
    /// The top-level document object, borrowed without wrapping.
    Object(&'a Object),
    Function,
}

impl<'a> Inst<'a> {
    fn object(self) -> Option<&'a Object> {
        match self {
            Inst::Json(Value::Object(o)) | Inst::Object(o) => Some(o),
            _ => None,
        }
    }
    fn json(self) -> Option<&'a Value> {
        match self {
            Inst::Json(v) => Some(v),
            _ => None,
        }
    }
    /// The identity of the data (objects by their entries, so both
    /// representations of one object agree).
    fn addr(self) -> usize {
        match self {
            Inst::Json(Value::Object(o)) | Inst::Object(o) => o as *const Object as usize,
            Inst::Json(v) => v as *const Value as usize,
            Inst::Function => 0,
        }
    }
    fn finite_number(self) -> Option<f64> {
        match self {
            Inst::Json(Value::Number(n)) if n.is_finite() => Some(*n),
            _ => None,
        }
    }
    fn is(self, t: JsonType) -> bool {
        match t {
            JsonType::Null => matches!(self, Inst::Json(Value::Null)),
            JsonType::Boolean => matches!(self, Inst::Json(Value::Bool(_))),
            JsonType::Number => self.finite_number().is_some(),
            JsonType::Integer => self.finite_number().is_some_and(|n| n.trunc() == n),
            JsonType::String => matches!(self, Inst::Json(Value::String(_))),
            JsonType::Array => matches!(self, Inst::Json(Value::Array(_))),
            JsonType::Object => self.object().is_some(),
        }
    }
    fn in_group(self, g: Group) -> bool {
        match g {
            Group::Number => self.is(JsonType::Number),
            Group::String => self.is(JsonType::String),
            Group::Array => self.is(JsonType::Array),
            Group::Object => self.is(JsonType::Object),
        }
    }
}

#[derive(Clone, Debug)]
enum Seg {
    Key(JsString),
    Index(usize),
}

/// An error before its path is materialised.
#[derive(Debug)]
struct RawError {
    message: String,
    path: Vec<Seg>,
    keyword: &'static str,
}

enum Fail {
    Error(RawError),
    TooDeep,
}

/// Nested schema applications allowed. A `$ref` cycle that consumes no
/// data (where JavaScript overflows its stack) is detected exactly
/// (`active_refs`); this bound only keeps pathological non-cyclic schemas
/// from exhausting a thread's stack (about 0.7 KiB per level in release
/// builds, a few KiB in debug builds). Documents nest at most 64 deep, and
/// a recursive schema needs two or three levels per document level.
const MAX_EVAL_DEPTH: usize = 256;

struct Eval<'s> {
    schema: &'s ObjectSchema,
    path: Vec<Seg>,
    depth: usize,
    /// `$ref` targets being evaluated, with the address of their data.
    active_refs: Vec<(NodeId, usize)>,
}

/// Ajv `fast-deep-equal` over JSON (object key order does not matter).
fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| deep_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => objects_equal(x, y),
        _ => a == b,
    }
}

fn objects_equal(x: &Object, y: &Object) -> bool {
    x.len() == y.len()
        && x.iter()
            .all(|(k, v)| y.get_bytes(k.as_bytes()).is_some_and(|w| deep_equal(v, w)))
}

fn inst_equal(a: Inst<'_>, b: &Value) -> bool {
    match a {
        Inst::Json(v) => deep_equal(v, b),
        Inst::Object(o) => matches!(b, Value::Object(p) if objects_equal(o, p)),
        Inst::Function => false,
    }
}

/// JavaScript `parseInt(String(x))` for the `multipleOf` check.
fn js_parse_int_of_number(x: f64) -> f64 {
    let s = js_number(x);
    crate::sync::push::parse_int_lenient(&s).unwrap_or(f64::NAN)
}

/// Ajv `ucs2length`: code points (a lone surrogate counts one).
fn ucs2_length(s: &JsString) -> usize {
    s.as_bytes().iter().filter(|b| (**b & 0xC0) != 0x80).count()
}

impl Eval<'_> {
    fn err(&self, keyword: &'static str, message: String) -> Fail {
        Fail::Error(RawError {
            message,
            path: self.path.clone(),
            keyword,
        })
    }

    fn finish(&self, e: RawError) -> SchemaError {
        let mut path = Vec::new();
        for seg in e.path {
            match seg {
                Seg::Key(k) => {
                    if k.as_bytes().is_empty() {
                        continue;
                    }
                    // JSON-pointer escaping, then the official split on "/".
                    let escaped = escape_pointer(k.as_bytes());
                    path.push(escaped);
                }
                Seg::Index(i) => path.push(JsString::from(i.to_string())),
            }
        }
        SchemaError {
            message: e.message,
            path,
            keyword: e.keyword.to_owned(),
        }
    }

    fn with_seg<T>(&mut self, seg: Seg, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(seg);
        let r = f(self);
        self.path.pop();
        r
    }

    /// Validate `data` against node `id`. `composite`: inside anyOf, oneOf,
    /// not, if, contains or propertyNames (errors accumulate there).
    fn node(&mut self, id: NodeId, data: Inst<'_>, composite: bool) -> Result<(), Fail> {
        self.depth += 1;
        if self.depth > MAX_EVAL_DEPTH {
            return Err(Fail::TooDeep);
        }
        let schema = self.schema;
        let r = match &schema.nodes[id] {
            Node::Bool(true) | Node::Pending => Ok(()),
            Node::Bool(false) => Err(self.err("false schema", "boolean schema is false".into())),
            Node::Schema(kw) => self.keywords(kw, data, composite),
        };
        self.depth -= 1;
        r
    }

    fn reference(&mut self, r: RefKw, data: Inst<'_>, composite: bool) -> Result<(), Fail> {
        // The same schema on the same data again: evaluation would never end.
        let key = (r.target, data.addr());
        if self.active_refs.contains(&key) {
            return Err(Fail::TooDeep);
        }
        self.active_refs.push(key);
        let result = self.node(r.target, data, composite && !r.separate);
        self.active_refs.pop();
        result
    }

    fn type_error(&self, kw: &Keywords) -> Fail {
        self.err("type", format!("must be {}", kw.type_text))
    }

    fn keywords(&mut self, kw: &Keywords, data: Inst<'_>, composite: bool) -> Result<(), Fail> {
        if let Some(r) = kw.ref_only {
            return self.reference(r, data, composite);
        }
        if kw.type_upfront && !kw.types.iter().any(|t| data.is(*t)) {
            return Err(self.type_error(kw));
        }
        for u in &kw.untyped {
            self.untyped(u, data, composite)?;
        }
        let single_group = (kw.types.len() == 1 && !kw.type_upfront)
            .then(|| Group::of(kw.types[0]))
            .flatten();
        let groups = [
            (Group::Number, kw.number.is_some()),
            (Group::String, kw.string.is_some()),
            (Group::Array, kw.array.is_some()),
            (Group::Object, kw.object.is_some()),
        ];
        for (g, used) in groups {
            if !used {
                continue;
            }
            if !data.in_group(g) {
                if single_group == Some(g) {
                    return Err(self.type_error(kw));
                }
                continue;
            }
            match g {
                Group::Number => {
                    let n = data.finite_number().unwrap_or(0.0);
                    for k in kw.number.iter().flatten() {
                        self.number_kw(k, n)?;
                    }
                }
                Group::String => {
                    let Some(Value::String(s)) = data.json() else {
                        continue;
                    };
                    for k in kw.string.iter().flatten() {
                        self.string_kw(k, s)?;
                    }
                }
                Group::Array => {
                    let Some(Value::Array(a)) = data.json() else {
                        continue;
                    };
                    for k in kw.array.iter().flatten() {
                        self.array_kw(k, a, composite)?;
                    }
                }
                Group::Object => {
                    let Some(o) = data.object() else { continue };
                    for k in kw.object.iter().flatten() {
                        self.object_kw(k, o, composite)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn untyped(&mut self, u: &Untyped, data: Inst<'_>, composite: bool) -> Result<(), Fail> {
        match u {
            Untyped::Ref(r) => self.reference(*r, data, composite),
            Untyped::Const(c) => {
                if inst_equal(data, c) {
                    Ok(())
                } else {
                    Err(self.err("const", "must be equal to constant".into()))
                }
            }
            Untyped::Enum(values) => {
                if values.iter().any(|v| inst_equal(data, v)) {
                    Ok(())
                } else {
                    Err(self.err("enum", "must be equal to one of the allowed values".into()))
                }
            }
            Untyped::Not(sub) => {
                let passes = match sub {
                    None => true,
                    Some(id) => self.passes(*id, data)?,
                };
                if passes {
                    Err(self.err("not", "must NOT be valid".into()))
                } else {
                    Ok(())
                }
            }
            Untyped::AnyOf(branches) => {
                let mut first = None;
                for b in branches {
                    match self.node(*b, data, true) {
                        Ok(()) => return Ok(()),
                        Err(Fail::TooDeep) => return Err(Fail::TooDeep),
                        Err(e) => {
                            first.get_or_insert(e);
                        }
                    }
                }
                Err(first
                    .unwrap_or_else(|| self.err("anyOf", "must match a schema in anyOf".into())))
            }
            Untyped::OneOf(branches) => {
                let mut first = None;
                let mut passing = 0;
                for b in branches {
                    let ok = match b {
                        None => true,
                        Some(id) => match self.node(*id, data, true) {
                            Ok(()) => true,
                            Err(Fail::TooDeep) => return Err(Fail::TooDeep),
                            Err(e) => {
                                first.get_or_insert(e);
                                false
                            }
                        },
                    };
                    if ok {
                        passing += 1;
                        if passing == 2 {
                            break;
                        }
                    }
                }
                if passing == 1 {
                    Ok(())
                } else {
                    Err(first.unwrap_or_else(|| {
                        self.err("oneOf", "must match exactly one schema in oneOf".into())
                    }))
                }
            }
            Untyped::AllOf(branches) => {
                for b in branches {
                    self.node(*b, data, composite)?;
                }
                Ok(())
            }
            Untyped::If {
                cond,
                then,
                otherwise,
            } => {
                let clause = if self.passes(*cond, data)? {
                    then
                } else {
                    otherwise
                };
                match clause {
                    Some(id) => self.node(*id, data, composite),
                    None => Ok(()),
                }
            }
        }
    }

    /// Whether `data` passes `id`, errors discarded (`createErrors: false`).
    fn passes(&mut self, id: NodeId, data: Inst<'_>) -> Result<bool, Fail> {
        match self.node(id, data, true) {
            Ok(()) => Ok(true),
            Err(Fail::TooDeep) => Err(Fail::TooDeep),
            Err(_) => Ok(false),
        }
    }

    fn number_kw(&mut self, k: &NumberKw, n: f64) -> Result<(), Fail> {
        let (bad, kw, text) = match *k {
            NumberKw::Maximum(m) => (n > m, "maximum", format!("must be <= {}", js_number(m))),
            NumberKw::Minimum(m) => (n < m, "minimum", format!("must be >= {}", js_number(m))),
            NumberKw::ExclusiveMaximum(m) => (
                n >= m,
                "exclusiveMaximum",
                format!("must be < {}", js_number(m)),
            ),
            NumberKw::ExclusiveMinimum(m) => (
                n <= m,
                "exclusiveMinimum",
                format!("must be > {}", js_number(m)),
            ),
            NumberKw::MultipleOf(m) => {
                let q = n / m;
                (
                    m == 0.0 || q != js_parse_int_of_number(q),
                    "multipleOf",
                    format!("must be multiple of {}", js_number(m)),
                )
            }
        };
        if bad {
            Err(self.err(kw, text))
        } else {
            Ok(())
        }
    }

    fn string_kw(&mut self, k: &StringKw, s: &JsString) -> Result<(), Fail> {
        match k {
            StringKw::MaxLength(m) if ucs2_length(s) as f64 > *m => Err(self.err(
                "maxLength",
                format!("must NOT have more than {} characters", js_number(*m)),
            )),
            StringKw::MinLength(m) if (ucs2_length(s) as f64) < *m => Err(self.err(
                "minLength",
                format!("must NOT have fewer than {} characters", js_number(*m)),
            )),
            StringKw::Pattern(re) if !re.test(&s.to_string_lossy()) => {
                Err(self.err("pattern", format!("must match pattern \"{}\"", re.source())))
            }
            _ => Ok(()),
        }
    }

    fn array_kw(&mut self, k: &ArrayKw, a: &[Value], composite: bool) -> Result<(), Fail> {
        let len = a.len();
        match k {
            ArrayKw::MaxItems(m) if len as f64 > *m => Err(self.err(
                "maxItems",
                format!("must NOT have more than {} items", js_number(*m)),
            )),
            ArrayKw::MinItems(m) if (len as f64) < *m => Err(self.err(
                "minItems",
                format!("must NOT have fewer than {} items", js_number(*m)),
            )),
            ArrayKw::NoAdditionalItems(n) if len > *n => Err(self.err(
                "additionalItems",
                format!("must NOT have more than {n} items"),
            )),
            ArrayKw::AdditionalItems(n, id) => {
                for (i, item) in a.iter().enumerate().skip(*n) {
                    self.with_seg(Seg::Index(i), |ev| {
                        ev.node(*id, Inst::Json(item), composite)
                    })?;
                }
                Ok(())
            }
            ArrayKw::Items(id) => {
                for (i, item) in a.iter().enumerate() {
                    self.with_seg(Seg::Index(i), |ev| {
                        ev.node(*id, Inst::Json(item), composite)
                    })?;
                }
                Ok(())
            }
            ArrayKw::Tuple(ids) => {
                for (i, (id, item)) in ids.iter().zip(a).enumerate() {
                    if let Some(id) = id {
                        self.with_seg(Seg::Index(i), |ev| {
                            ev.node(*id, Inst::Json(item), composite)
                        })?;
                    }
                }
                Ok(())
            }
            ArrayKw::Contains(sub) => {
                let own =
                    |ev: &Self| ev.err("contains", "must contain at least 1 valid item(s)".into());
                let Some(id) = sub else {
                    return if len >= 1 { Ok(()) } else { Err(own(self)) };
                };
                let mut first = None;
                for (i, item) in a.iter().enumerate() {
                    match self.with_seg(Seg::Index(i), |ev| ev.node(*id, Inst::Json(item), true)) {
                        Ok(()) => return Ok(()),
                        Err(Fail::TooDeep) => return Err(Fail::TooDeep),
                        Err(e) => {
                            first.get_or_insert(e);
                        }
                    }
                }
                // Outside composite mode the keyword's own error replaces
                // the item errors (Ajv `returnErrors`).
                match first {
                    Some(e) if composite => Err(e),
                    _ => Err(own(self)),
                }
            }
            ArrayKw::UniqueItems(types) => match unique_items_violation(a, types.as_deref()) {
                None => Ok(()),
                Some((i, j)) => Err(self.err(
                    "uniqueItems",
                    format!("must NOT have duplicate items (items ## {j} and {i} are identical)"),
                )),
            },
            _ => Ok(()),
        }
    }

    fn object_kw(&mut self, k: &ObjectKw, o: &Object, composite: bool) -> Result<(), Fail> {
        match k {
            ObjectKw::MaxProperties(m) if o.len() as f64 > *m => Err(self.err(
                "maxProperties",
                format!("must NOT have more than {} properties", js_number(*m)),
            )),
            ObjectKw::MinProperties(m) if (o.len() as f64) < *m => Err(self.err(
                "minProperties",
                format!("must NOT have fewer than {} properties", js_number(*m)),
            )),
            ObjectKw::Required(props) => {
                match props
                    .iter()
                    .find(|p| !super::fields::js_in(o, p.as_bytes()))
                {
                    Some(p) => {
                        Err(self.err("required", format!("must have required property '{p}'")))
                    }
                    None => Ok(()),
                }
            }
            ObjectKw::PropertyNames(id) => {
                for (key, _) in o.iter_js_order() {
                    let name = Value::String(key.clone());
                    self.node(*id, Inst::Json(&name), true)?;
                }
                Ok(())
            }
            ObjectKw::AdditionalProperties {
                props,
                patterns,
                schema,
            } => {
                for (key, value) in o.iter_js_order() {
                    let defined = props.iter().any(|p| p == key)
                        || patterns.iter().any(|re| re.test(&key.to_string_lossy()));
                    if defined {
                        continue;
                    }
                    match schema {
                        None => {
                            return Err(self.err(
                                "additionalProperties",
                                "must NOT have additional properties".into(),
                            ))
                        }
                        Some(id) => self.with_seg(Seg::Key(key.clone()), |ev| {
                            ev.node(*id, Inst::Json(value), composite)
                        })?,
                    }
                }
                Ok(())
            }
            ObjectKw::Dependencies { props, schemas } => {
                for (prop, deps) in props {
                    if !super::fields::js_in(o, prop.as_bytes()) {
                        continue;
                    }
                    if deps.iter().any(|d| !super::fields::js_in(o, d.as_bytes())) {
                        let names: Vec<String> = deps.iter().map(|d| d.to_string_lossy()).collect();
                        let word = if deps.len() == 1 {
                            "property"
                        } else {
                            "properties"
                        };
                        return Err(self.err(
                            "dependencies",
                            format!(
                                "must have {word} {} when property {prop} is present",
                                names.join(", ")
                            ),
                        ));
                    }
                }
                for (prop, id) in schemas {
                    if super::fields::js_in(o, prop.as_bytes()) {
                        self.node(*id, Inst::Object(o), composite)?;
                    }
                }
                Ok(())
            }
            ObjectKw::Properties(props) => {
                for (prop, id) in props {
                    let value = match o.get_bytes(prop.as_bytes()) {
                        Some(v) => Inst::Json(v),
                        None if super::fields::js_in(o, prop.as_bytes()) => Inst::Function,
                        None => continue,
                    };
                    self.with_seg(Seg::Key(prop.clone()), |ev| ev.node(*id, value, composite))?;
                }
                Ok(())
            }
            ObjectKw::PatternProperties(pats) => {
                for (re, id) in pats {
                    let Some(id) = id else { continue };
                    for (key, value) in o.iter_js_order() {
                        if re.test(&key.to_string_lossy()) {
                            self.with_seg(Seg::Key(key.clone()), |ev| {
                                ev.node(*id, Inst::Json(value), composite)
                            })?;
                        }
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn escape_pointer(key: &[u8]) -> JsString {
    if !key.iter().any(|b| *b == b'~' || *b == b'/') {
        return JsString::from_wtf8_bytes(key);
    }
    let mut out = Vec::with_capacity(key.len() + 2);
    for &b in key {
        match b {
            b'~' => out.extend_from_slice(b"~0"),
            b'/' => out.extend_from_slice(b"~1"),
            b => out.push(b),
        }
    }
    JsString::from_wtf8_bytes(&out)
}

/// Ajv's `uniqueItems`: `Some((i, j))` for the pair it reports (message
/// "items ## j and i"). With simple item types it hashes `String(item)`
/// scanning down from the end (j > i); otherwise it compares deeply, i
/// scanning down and j below it (j < i).
fn unique_items_violation(a: &[Value], types: Option<&[JsonType]>) -> Option<(usize, usize)> {
    if a.len() < 2 {
        return None;
    }
    // Each item's comparison key: `String(item)` (+ "_" for strings when
    // several types are allowed) in the hashing mode, the canonical text in
    // the deep mode (equal exactly when fast-deep-equal is).
    let key = |item: &Value| -> Option<Vec<u8>> {
        let Some(types) = types else {
            return Some(stable_stringify(item).into_bytes());
        };
        if !types.iter().any(|t| Inst::Json(item).is(*t)) {
            return None;
        }
        let mut key = match item {
            Value::Null => b"null".to_vec(),
            Value::Bool(b) => b.to_string().into_bytes(),
            Value::Number(n) => js_number(*n).into_bytes(),
            Value::String(s) => s.as_bytes().to_vec(),
            _ => return None,
        };
        if types.len() > 1 && matches!(item, Value::String(_)) {
            key.push(b'_');
        }
        Some(key)
    };
    let mut seen: std::collections::HashMap<Vec<u8>, usize> = std::collections::HashMap::new();
    if types.is_some() {
        // Ajv's loop: down from the end; the first repeated key gives i, the
        // index seen for it (above i) gives j.
        for i in (0..a.len()).rev() {
            let Some(k) = key(&a[i]) else { continue };
            if let Some(&j) = seen.get(&k) {
                return Some((i, j));
            }
            seen.insert(k, i);
        }
        None
    } else {
        // Ajv's nested loops find the largest i with an equal item below it,
        // and the nearest such j: upwards, the last repeat seen.
        let mut found = None;
        for (i, item) in a.iter().enumerate() {
            let k = key(item).unwrap_or_default();
            if let Some(j) = seen.insert(k, i) {
                found = Some((i, j));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests;
