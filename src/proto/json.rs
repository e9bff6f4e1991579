//! JSON values exactly as JavaScript's `JSON.parse` sees them.
//!
//! Starfish hashes and signs canonical JSON produced by JavaScript, so the
//! value model here follows JavaScript rather than `serde_json`:
//!
//! * every number is an IEEE-754 double (`12345678901234567890` becomes
//!   `12345678901234567168`, `1e400` becomes `Infinity`);
//! * strings may hold lone UTF-16 surrogates (`"\ud800"` is valid input), so
//!   they are stored as WTF-8 bytes ([`JsString`]);
//! * duplicate object keys keep the position of their first occurrence and
//!   the value of their last one;
//! * object output follows JavaScript property order: canonical array-index
//!   keys (`"0"`, `"1"`, ...) first in ascending order, then the others in
//!   insertion order ([`to_js_json`]).
//!
//! The printer lives here too ([`write_value`] with a [`KeyOrder`]):
//! JavaScript numbers and string escapes, keys in JavaScript or sorted
//! order. `canonical` builds `stableStringify` on it; this module uses
//! nothing of `canonical`, so the two do not import each other.
//!
//! The parser is recursive but bounded: past `max_depth` it switches to an
//! iterative syntax check, so hostile input can neither overflow the stack
//! nor hide a syntax error behind a depth error.

use std::fmt;

/// A JavaScript string: UTF-8, except that lone surrogates are allowed and
/// encoded as three-byte sequences (WTF-8). Byte order equals code-point order,
/// which is the order `stableStringify` sorts keys in.
///
/// Short strings (most object keys) are stored inline, without an
/// allocation of their own.
#[derive(Clone)]
pub struct JsString(Repr);

/// Longest string stored inline.
const INLINE: usize = 22;

#[derive(Clone)]
enum Repr {
    Inline(u8, [u8; INLINE]),
    Heap(Box<[u8]>),
}

impl JsString {
    fn from_bytes(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..b.len()].copy_from_slice(b);
            JsString(Repr::Inline(b.len() as u8, buf))
        } else {
            JsString(Repr::Heap(b.into()))
        }
    }
    /// The WTF-8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(n, buf) => &buf[..*n as usize],
            Repr::Heap(b) => b,
        }
    }
    /// The string, when it holds no lone surrogate.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()).ok()
    }
    /// The string with lone surrogates replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
    /// Build from bytes taken from (parts of) other `JsString`s, split
    /// only at ASCII bytes, so they are still WTF-8.
    #[cfg_attr(not(feature = "object-schema"), allow(dead_code))]
    pub(crate) fn from_wtf8_bytes(bytes: &[u8]) -> Self {
        JsString::from_bytes(bytes)
    }
    /// Build from WTF-8 bytes produced by this module.
    fn from_wtf8(bytes: Vec<u8>) -> Self {
        if bytes.len() <= INLINE {
            JsString::from_bytes(&bytes)
        } else {
            JsString(Repr::Heap(bytes.into_boxed_slice()))
        }
    }
}

impl Default for JsString {
    fn default() -> Self {
        JsString::from_bytes(b"")
    }
}

impl PartialEq for JsString {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for JsString {}

impl std::hash::Hash for JsString {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for JsString {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for JsString {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl From<&str> for JsString {
    fn from(s: &str) -> Self {
        JsString::from_bytes(s.as_bytes())
    }
}

impl From<String> for JsString {
    fn from(s: String) -> Self {
        JsString::from_wtf8(s.into_bytes())
    }
}

impl fmt::Debug for JsString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string_lossy(), f)
    }
}

impl fmt::Display for JsString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

impl PartialEq<str> for JsString {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for JsString {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// A JSON object: entries in insertion order, keys unique.
#[derive(Clone, Default, Debug)]
pub struct Object {
    entries: Vec<(JsString, Value)>,
    /// The positions in key order, when [`Object::from_entries`] already
    /// computed them (large objects without repeated keys), so hashing
    /// does not sort the keys a second time. Cleared by any change to the
    /// set of keys. Boxed so it costs one pointer: `Object`, and so
    /// `Value`, stay 32 bytes (a `Vec` or boxed slice here makes every
    /// value 40).
    #[allow(clippy::box_collection)]
    sorted: Option<Box<Vec<u32>>>,
}

impl PartialEq for Object {
    fn eq(&self, other: &Object) -> bool {
        self.entries == other.entries
    }
}

impl Object {
    pub fn new() -> Self {
        Object::default()
    }
    pub fn with_capacity(n: usize) -> Self {
        Object {
            entries: Vec::with_capacity(n),
            sorted: None,
        }
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The position of `key`, by a linear scan (counted in [`super::work`]).
    fn position(&self, key: &[u8]) -> Option<usize> {
        let pos = self.entries.iter().position(|(k, _)| k.as_bytes() == key);
        super::work::add(pos.map_or(self.entries.len(), |p| p + 1));
        pos
    }
    /// Look a key up. Linear in the number of entries: fine for the few
    /// lookups a request makes; build objects with [`Object::from_entries`]
    /// (or `collect`).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.get_bytes(key.as_bytes())
    }
    /// Look a key up by its WTF-8 bytes.
    pub fn get_bytes(&self, key: &[u8]) -> Option<&Value> {
        self.position(key).map(|p| &self.entries[p].1)
    }
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.position(key.as_bytes())
            .map(|p| &mut self.entries[p].1)
    }
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
    /// Set a key. An existing key keeps its position (JavaScript semantics).
    /// Linear in the number of entries: to build an object key by key, use
    /// [`Object::from_entries`] (or `collect`), which is not.
    pub fn insert(&mut self, key: impl Into<JsString>, value: Value) {
        let key = key.into();
        match self.position(key.as_bytes()) {
            Some(p) => self.entries[p].1 = value,
            None => {
                self.sorted = None;
                self.entries.push((key, value));
            }
        }
    }
    /// Append without checking for an existing key; the caller guarantees
    /// uniqueness.
    pub(crate) fn push_unique(&mut self, key: JsString, value: Value) {
        self.sorted = None;
        self.entries.push((key, value));
    }
    /// Remove a key, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let pos = self.position(key.as_bytes())?;
        self.sorted = None;
        Some(self.entries.remove(pos).1)
    }
    /// Remove a key given as WTF-8 bytes, returning its value.
    pub fn remove_bytes(&mut self, key: &[u8]) -> Option<Value> {
        let pos = self.entries.iter().position(|(k, _)| k.as_bytes() == key)?;
        Some(self.entries.remove(pos).1)
    }
    /// Entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&JsString, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
    pub fn into_entries(self) -> Vec<(JsString, Value)> {
        self.entries
    }
    /// Entries in JavaScript property order: array-index keys ascending, then
    /// the rest in insertion order.
    pub fn iter_js_order(&self) -> Vec<(&JsString, &Value)> {
        let mut idx: Vec<(u32, &JsString, &Value)> = Vec::new();
        let mut rest = Vec::with_capacity(self.entries.len());
        for (k, v) in &self.entries {
            match array_index(k.as_bytes()) {
                Some(i) => idx.push((i, k, v)),
                None => rest.push((k, v)),
            }
        }
        if idx.is_empty() {
            return rest;
        }
        idx.sort_by_key(|e| e.0);
        let mut out: Vec<(&JsString, &Value)> = idx.into_iter().map(|(_, k, v)| (k, v)).collect();
        out.extend(rest);
        out
    }
}

/// `Some(n)` when `key` is a canonical array index (`0`..=`4294967294`, no
/// leading zeros), which JavaScript orders before all other keys.
fn array_index(key: &[u8]) -> Option<u32> {
    if key.is_empty() || key.len() > 10 || (key.len() > 1 && key[0] == b'0') {
        return None;
    }
    let mut n: u64 = 0;
    for &b in key {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    if n <= 4_294_967_294 {
        Some(n as u32)
    } else {
        None
    }
}

impl FromIterator<(JsString, Value)> for Object {
    /// JavaScript assignment semantics (see [`Object::from_entries`]).
    fn from_iter<I: IntoIterator<Item = (JsString, Value)>>(iter: I) -> Self {
        Object::from_entries(iter.into_iter().collect())
    }
}

impl Object {
    /// An object from entries in assignment order, with JavaScript
    /// semantics for repeated keys: a key keeps the position of its first
    /// occurrence and the value of its last. O(n log n): small objects are
    /// checked pairwise, larger ones by sorting positions by key (each
    /// key's first 8 bytes ride along, so most comparisons stay in the
    /// sorted array) and reading repeats off adjacent runs.
    pub fn from_entries(mut entries: Vec<(JsString, Value)>) -> Object {
        const SCAN_LIMIT: usize = 16;
        let n = entries.len();
        // (i, j): entry j repeats the key first seen at i; ascending j per i.
        let mut later: Vec<(usize, usize)> = Vec::new();
        let mut sorted = None;
        if n <= SCAN_LIMIT {
            super::work::add(n * n / 2);
            for j in 1..n {
                // The smallest such i is the first occurrence.
                if let Some(i) = (0..j).find(|&i| entries[i].0 == entries[j].0) {
                    later.push((i, j));
                }
            }
        } else {
            super::work::add(n);
            let order = sorted_positions(&entries);
            let key = |i: u32| entries[i as usize].0.as_bytes();
            let mut g = 0;
            while g < order.len() {
                let mut e = g + 1;
                while e < order.len() && key(order[e]) == key(order[g]) {
                    later.push((order[g] as usize, order[e] as usize));
                    e += 1;
                }
                g = e;
            }
            sorted = Some(Box::new(order));
        }
        if later.is_empty() {
            return Object { entries, sorted };
        }
        // Move each repeat's value to the first occurrence (in order, so the
        // last one wins), then drop the repeats.
        let mut dropped = vec![false; n];
        for (i, j) in later {
            let v = std::mem::replace(&mut entries[j].1, Value::Null);
            entries[i].1 = v;
            dropped[j] = true;
        }
        let mut n = 0;
        entries.retain(|_| {
            n += 1;
            !dropped[n - 1]
        });
        Object {
            entries,
            sorted: None,
        }
    }
}

impl std::borrow::Borrow<[u8]> for JsString {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// The first 8 bytes of a key as a big-endian integer (zero-padded): its
/// order agrees with the byte order of the keys wherever they differ there.
#[inline]
fn key_prefix(k: &[u8]) -> u64 {
    // Byte by byte for short keys: a partial copy into a buffer read back
    // as one integer costs a memcpy call and a store-forwarding stall.
    match k.first_chunk::<8>() {
        Some(b) => u64::from_be_bytes(*b),
        None => k
            .iter()
            .enumerate()
            .fold(0, |v, (i, &b)| v | u64::from(b) << (56 - 8 * i)),
    }
}

/// Positions of `entries` ordered by key bytes, equal keys by position.
/// O(n log n): the positions are ordered by each key's first 8 bytes
/// without comparing keys (small objects: sorted as plain integers; larger
/// ones: a stable byte-wise radix sort, linear), then only runs that share
/// those 8 bytes are ordered by their whole keys.
pub(crate) fn sorted_positions(entries: &[(JsString, Value)]) -> Vec<u32> {
    /// Below this many entries an integer sort beats the radix passes'
    /// fixed cost (eight 256-entry tables).
    const RADIX_FROM: usize = 256;
    let prefixes: Vec<u64> = entries
        .iter()
        .map(|(k, _)| key_prefix(k.as_bytes()))
        .collect();
    let mut out: Vec<u32> = if entries.len() < RADIX_FROM {
        let mut ix: Vec<u128> = prefixes
            .iter()
            .enumerate()
            .map(|(i, &p)| (u128::from(p) << 32) | i as u128)
            .collect();
        ix.sort_unstable();
        ix.iter().map(|&x| x as u32).collect()
    } else {
        radix_positions(&prefixes)
    };
    let mut g = 0;
    while g < out.len() {
        let p = prefixes[out[g] as usize];
        let mut e = g + 1;
        while e < out.len() && prefixes[out[e] as usize] == p {
            e += 1;
        }
        if e - g > 1 {
            // Positions are ascending here; a stable sort keeps them so
            // within equal keys.
            out[g..e].sort_by(|&a, &b| {
                entries[a as usize]
                    .0
                    .as_bytes()
                    .cmp(entries[b as usize].0.as_bytes())
            });
        }
        g = e;
    }
    out
}

/// Positions `0..prefixes.len()` ordered by prefix, equal prefixes by
/// position: a least-significant-byte-first radix sort (each pass is
/// stable), skipping the bytes every prefix shares (short keys leave their
/// low bytes zero). At most 9 linear passes.
fn radix_positions(prefixes: &[u64]) -> Vec<u32> {
    let n = prefixes.len();
    let mut counts = [[0u32; 256]; 8];
    for &p in prefixes {
        for (b, c) in counts.iter_mut().enumerate() {
            c[((p >> (8 * b)) & 0xff) as usize] += 1;
        }
    }
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut next = vec![0u32; n];
    for (b, c) in counts.iter().enumerate() {
        if c.iter().any(|&x| x as usize == n) {
            continue;
        }
        let mut at = [0u32; 256];
        let mut sum = 0;
        for (a, &x) in at.iter_mut().zip(c.iter()) {
            *a = sum;
            sum += x;
        }
        for &i in &order {
            let d = ((prefixes[i as usize] >> (8 * b)) & 0xff) as usize;
            next[at[d] as usize] = i;
            at[d] += 1;
        }
        std::mem::swap(&mut order, &mut next);
    }
    order
}

impl Object {
    /// Entries in key order with their positions (see [`Object::iter_sorted`]).
    fn sorted_entries(&self) -> impl Iterator<Item = (usize, &(JsString, Value))> {
        let order: std::borrow::Cow<'_, [u32]> = match &self.sorted {
            Some(s) if s.len() == self.entries.len() => std::borrow::Cow::Borrowed(s),
            _ => std::borrow::Cow::Owned(sorted_positions(&self.entries)),
        };
        (0..order.len()).map(move |m| {
            let i = order[m] as usize;
            (i, &self.entries[i])
        })
    }
    /// Entry positions in JavaScript property order (see
    /// [`Object::iter_js_order`]).
    fn js_order_positions(&self) -> Vec<usize> {
        let mut idx: Vec<(u32, usize)> = Vec::new();
        let mut rest = Vec::with_capacity(self.entries.len());
        for (i, (k, _)) in self.entries.iter().enumerate() {
            match array_index(k.as_bytes()) {
                Some(a) => idx.push((a, i)),
                None => rest.push(i),
            }
        }
        if idx.is_empty() {
            return rest;
        }
        idx.sort_by_key(|e| e.0);
        let mut out: Vec<usize> = idx.into_iter().map(|(_, i)| i).collect();
        out.extend(rest);
        out
    }
    /// The entries ordered by key bytes (code-point order), as
    /// `stableStringify` prints them.
    pub fn iter_sorted(&self) -> impl Iterator<Item = (&JsString, &Value)> {
        let order: std::borrow::Cow<'_, [u32]> = match &self.sorted {
            Some(s) if s.len() == self.entries.len() => std::borrow::Cow::Borrowed(s),
            _ => std::borrow::Cow::Owned(sorted_positions(&self.entries)),
        };
        (0..order.len()).map(move |i| {
            let (k, v) = &self.entries[order[i] as usize];
            (k, v)
        })
    }
}

/// A JSON value as JavaScript holds it.
#[derive(Clone, PartialEq, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(JsString),
    Array(Vec<Value>),
    Object(Object),
}

impl Value {
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }
    pub fn as_object_mut(&mut self) -> Option<&mut Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    /// The string value, when it is a string without lone surrogates.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => s.as_str(),
            _ => None,
        }
    }
    pub fn as_js_string(&self) -> Option<&JsString> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    /// JavaScript `Number.isInteger`.
    pub fn is_integer(&self) -> bool {
        matches!(self, Value::Number(n) if n.is_finite() && n.trunc() == *n)
    }
    /// Nesting depth as the server counts it: scalars 0, each object or
    /// array level 1 more than its deepest child.
    pub fn depth(&self) -> usize {
        match self {
            Value::Array(a) => 1 + a.iter().map(Value::depth).max().unwrap_or(0),
            Value::Object(o) => 1 + o.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.into())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s.into())
    }
}
impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<Object> for Value {
    fn from(o: Object) -> Self {
        Value::Object(o)
    }
}

/// Why a JSON text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not valid JSON (the byte offset where parsing stopped).
    Syntax(usize),
    /// Valid JSON, but nested deeper than the limit.
    TooDeep,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Syntax(at) => write!(f, "invalid JSON at byte {at}"),
            ParseError::TooDeep => f.write_str("JSON nested too deeply"),
        }
    }
}

impl std::error::Error for ParseError {}

/// The default parse depth bound for [`parse`].
pub const DEFAULT_MAX_DEPTH: usize = 256;

/// Parse JSON text as `JSON.parse` does, with nesting bounded by
/// [`DEFAULT_MAX_DEPTH`]. Invalid UTF-8 inside strings becomes U+FFFD, as
/// it would after `TextDecoder`.
pub fn parse(text: &[u8]) -> Result<Value, ParseError> {
    parse_with_depth(text, DEFAULT_MAX_DEPTH)
}

/// Parse a request body: a leading UTF-8 BOM is dropped first (as
/// `TextDecoder` does), then as [`parse_with_depth`].
pub fn parse_body(body: &[u8], max_depth: usize) -> Result<Value, ParseError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    parse_with_depth(body, max_depth)
}

/// Parse JSON text; containers nested deeper than `max_depth` (the outermost
/// container is depth 1) give [`ParseError::TooDeep`] if, and only if, the
/// whole text is otherwise valid JSON.
pub fn parse_with_depth(text: &[u8], max_depth: usize) -> Result<Value, ParseError> {
    let mut p = Parser {
        s: text,
        i: 0,
        max_depth,
        too_deep: false,
        utf8: std::str::from_utf8(text).is_ok(),
    };
    p.ws();
    let v = p.value(0);
    match v {
        Ok(v) => {
            p.ws();
            if p.i != p.s.len() {
                return Err(ParseError::Syntax(p.i));
            }
            Ok(v)
        }
        Err(_) if p.too_deep => match validate(text) {
            Ok(()) => Err(ParseError::TooDeep),
            Err(at) => Err(ParseError::Syntax(at)),
        },
        Err(e) => Err(e),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    max_depth: usize,
    too_deep: bool,
    /// The whole text is valid UTF-8 (checked once), so a plain string run
    /// needs no check of its own.
    utf8: bool,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && is_ws(self.s[self.i]) {
            self.i += 1;
        }
    }

    fn err<T>(&self) -> Result<T, ParseError> {
        Err(ParseError::Syntax(self.i))
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn lit(&mut self, word: &[u8], v: Value) -> Result<Value, ParseError> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(v)
        } else {
            self.err()
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.peek() {
            Some(b'{') => {
                if depth + 1 > self.max_depth {
                    self.too_deep = true;
                    return self.err();
                }
                self.object(depth + 1)
            }
            Some(b'[') => {
                if depth + 1 > self.max_depth {
                    self.too_deep = true;
                    return self.err();
                }
                self.array(depth + 1)
            }
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.lit(b"true", Value::Bool(true)),
            Some(b'f') => self.lit(b"false", Value::Bool(false)),
            Some(b'n') => self.lit(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            _ => self.err(),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.i += 1;
        let mut out = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Value::Array(out));
        }
        loop {
            self.ws();
            out.push(self.value(depth)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Array(out));
                }
                _ => return self.err(),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.i += 1;
        let mut out: Vec<(JsString, Value)> = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Value::Object(Object::new()));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return self.err();
            }
            let key = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return self.err();
            }
            self.i += 1;
            self.ws();
            let v = self.value(depth)?;
            out.push((key, v));
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Object(Object::from_entries(out)));
                }
                _ => return self.err(),
            }
        }
    }

    fn number(&mut self) -> Result<f64, ParseError> {
        let start = self.i;
        let end = scan_number(self.s, self.i).ok_or(ParseError::Syntax(self.i))?;
        self.i = end;
        // Short integers (below 2^53, so exact) without the float parser.
        let text = &self.s[start..end];
        let (neg, digits) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, text),
        };
        if digits.len() <= 15 && digits.iter().all(u8::is_ascii_digit) {
            let n = digits
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')) as f64;
            return Ok(if neg { -n } else { n });
        }
        // The grammar was checked, so the text is ASCII and Rust's parser
        // (correctly rounded, overflow to infinity) accepts it.
        let text =
            std::str::from_utf8(&self.s[start..end]).map_err(|_| ParseError::Syntax(start))?;
        text.parse::<f64>().map_err(|_| ParseError::Syntax(start))
    }

    fn hex4(&mut self) -> Result<u16, ParseError> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .ok_or(ParseError::Syntax(self.i))?;
        let mut n: u16 = 0;
        for &c in h {
            let d = (c as char).to_digit(16).ok_or(ParseError::Syntax(self.i))?;
            n = n * 16 + d as u16;
        }
        self.i += 4;
        Ok(n)
    }

    fn string(&mut self) -> Result<JsString, ParseError> {
        self.i += 1; // opening quote
                     // The usual case, a run of plain bytes up to the closing quote:
                     // one exact allocation.
        let start = self.i;
        let mut end = start;
        while end < self.s.len() && !STRING_SPECIAL[self.s[end] as usize] {
            end += 1;
        }
        if self.s.get(end) == Some(&b'"')
            && (self.utf8 || std::str::from_utf8(&self.s[start..end]).is_ok())
        {
            self.i = end + 1;
            return Ok(JsString::from_bytes(&self.s[start..end]));
        }
        let mut out: Vec<u8> = Vec::new();
        loop {
            // Copy a run of plain bytes.
            let run_start = self.i;
            while self.i < self.s.len() && !STRING_SPECIAL[self.s[self.i] as usize] {
                self.i += 1;
            }
            push_lossy(&mut out, &self.s[run_start..self.i]);
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(JsString::from_wtf8(out));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let esc = self.peek().ok_or(ParseError::Syntax(self.i))?;
                    self.i += 1;
                    match esc {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let u = self.hex4()?;
                            if (0xD800..0xDC00).contains(&u)
                                && self.s.get(self.i..self.i + 2) == Some(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xDC00..0xE000).contains(&lo) {
                                    let cp = 0x10000
                                        + ((u32::from(u) - 0xD800) << 10)
                                        + (u32::from(lo) - 0xDC00);
                                    push_code_point(&mut out, cp);
                                    continue;
                                }
                                self.i = save;
                            }
                            push_code_point(&mut out, u32::from(u));
                        }
                        _ => return Err(ParseError::Syntax(self.i - 1)),
                    }
                }
                _ => return self.err(), // control character or end of input
            }
        }
    }
}

/// Append bytes, replacing invalid UTF-8 with U+FFFD (as `TextDecoder` does).
fn push_lossy(out: &mut Vec<u8>, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => out.extend_from_slice(s.as_bytes()),
        Err(_) => out.extend_from_slice(String::from_utf8_lossy(bytes).as_bytes()),
    }
}

/// Append a code point (surrogates included) as WTF-8.
pub(crate) fn push_code_point(out: &mut Vec<u8>, cp: u32) {
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.push(0xC0 | (cp >> 6) as u8);
        out.push(0x80 | (cp & 0x3F) as u8);
    } else if cp < 0x10000 {
        out.push(0xE0 | (cp >> 12) as u8);
        out.push(0x80 | ((cp >> 6) & 0x3F) as u8);
        out.push(0x80 | (cp & 0x3F) as u8);
    } else {
        out.push(0xF0 | (cp >> 18) as u8);
        out.push(0x80 | ((cp >> 12) & 0x3F) as u8);
        out.push(0x80 | ((cp >> 6) & 0x3F) as u8);
        out.push(0x80 | (cp & 0x3F) as u8);
    }
}

/// End offset of a JSON number starting at `i`, or `None`.
fn scan_number(s: &[u8], mut i: usize) -> Option<usize> {
    let digits = |s: &[u8], mut i: usize| {
        let st = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        (i > st).then_some(i)
    };
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    match s.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(s, i)?,
        _ => return None,
    }
    if s.get(i) == Some(&b'.') {
        i = digits(s, i + 1)?;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        i = digits(s, i)?;
    }
    Some(i)
}

/// Bytes that end a run of plain string content: `"`, `\\` and controls.
pub(crate) const STRING_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Iterative syntax check with no depth limit (used once the recursive
/// parser has hit its bound). `Err` carries the offending offset.
fn validate(s: &[u8]) -> Result<(), usize> {
    let mut end = scan_value(s, 0)?;
    while end < s.len() && is_ws(s[end]) {
        end += 1;
    }
    if end == s.len() {
        Ok(())
    } else {
        Err(end)
    }
}

/// Check one JSON value starting at `start` (after optional whitespace),
/// iteratively and with no depth limit, without building it: the offset just
/// past its last byte, or the offending offset. Lets callers walk a large
/// document's structure (spans of members and elements) without parsing it.
pub fn scan_value(s: &[u8], start: usize) -> Result<usize, usize> {
    // Stack of open containers: true = object, false = array.
    let mut stack: Vec<bool> = Vec::new();
    let mut i = start;
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && is_ws(s[*i]) {
            *i += 1;
        }
    };
    let scan_string = |mut i: usize| -> Result<usize, usize> {
        i += 1;
        while i < s.len() {
            // Plain bytes first, in bulk.
            while i < s.len() && !STRING_SPECIAL[s[i] as usize] {
                i += 1;
            }
            if i == s.len() {
                break;
            }
            match s[i] {
                b'"' => return Ok(i + 1),
                b'\\' => match s.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                    Some(b'u') => {
                        let h = s.get(i + 2..i + 6).ok_or(i)?;
                        if !h.iter().all(u8::is_ascii_hexdigit) {
                            return Err(i);
                        }
                        i += 6;
                    }
                    _ => return Err(i),
                },
                c if c < 0x20 => return Err(i),
                _ => i += 1,
            }
        }
        Err(i)
    };
    // An object member's `"key" :`, from the opening quote; the offset after
    // the colon.
    let member_key = |i: usize| -> Result<usize, usize> {
        if s.get(i) != Some(&b'"') {
            return Err(i);
        }
        let mut i = scan_string(i)?;
        skip_ws(&mut i);
        if s.get(i) != Some(&b':') {
            return Err(i);
        }
        Ok(i + 1)
    };
    // Parse one value, then the separators that follow it.
    'value: loop {
        skip_ws(&mut i);
        match s.get(i) {
            Some(b'{') => {
                i += 1;
                skip_ws(&mut i);
                if s.get(i) == Some(&b'}') {
                    i += 1;
                } else {
                    stack.push(true);
                    i = member_key(i)?;
                    continue 'value;
                }
            }
            Some(b'[') => {
                i += 1;
                skip_ws(&mut i);
                if s.get(i) == Some(&b']') {
                    i += 1;
                } else {
                    stack.push(false);
                    continue 'value;
                }
            }
            Some(b'"') => i = scan_string(i)?,
            Some(b't') if s[i..].starts_with(b"true") => i += 4,
            Some(b'f') if s[i..].starts_with(b"false") => i += 5,
            Some(b'n') if s[i..].starts_with(b"null") => i += 4,
            Some(b'-' | b'0'..=b'9') => i = scan_number(s, i).ok_or(i)?,
            _ => return Err(i),
        }
        // After a complete value: close containers or move to the next item.
        loop {
            let Some(&is_obj) = stack.last() else {
                return Ok(i);
            };
            skip_ws(&mut i);
            match s.get(i) {
                Some(b',') => {
                    i += 1;
                    if is_obj {
                        skip_ws(&mut i);
                        i = member_key(i)?;
                    }
                    continue 'value;
                }
                Some(b'}') if is_obj => {
                    i += 1;
                    stack.pop();
                }
                Some(b']') if !is_obj => {
                    i += 1;
                    stack.pop();
                }
                _ => return Err(i),
            }
        }
    }
}

/// Whether `text` is one complete JSON value (any depth), without building
/// it: an iterative syntax check that allocates only a container stack.
pub fn is_valid(text: &[u8]) -> bool {
    validate(text).is_ok()
}

/// Serialise as `JSON.stringify` would: no whitespace, JavaScript number
/// format, JavaScript property order. Used for responses and stored files.
pub fn to_js_json(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_js_json(&mut out, v);
    out
}

/// Append `JSON.stringify(v)` to `out`.
pub fn write_js_json(out: &mut Vec<u8>, v: &Value) {
    write_value(out, v, KeyOrder::JavaScript);
}

/// How object keys are ordered on output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrder {
    /// By code point (`stableStringify`).
    Sorted,
    /// JavaScript property order (`JSON.stringify`).
    JavaScript,
}

/// Append `v` as compact JSON with JavaScript scalars and the given key order.
pub fn write_value(out: &mut Vec<u8>, v: &Value, order: KeyOrder) {
    match v {
        Value::Object(o) => write_object(out, o, order),
        Value::Array(a) => {
            out.push(b'[');
            for (n, v) in a.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_value(out, v, order);
            }
            out.push(b']');
        }
        scalar => write_scalar(out, scalar),
    }
}

/// Append an object as [`write_value`] would print it as a value (without
/// copying it into one). Sorting keys is O(k log k) per object.
pub fn write_object(out: &mut Vec<u8>, o: &Object, order: KeyOrder) {
    out.push(b'{');
    let mut member = |n: usize, k: &JsString, v: &Value| {
        if n > 0 {
            out.push(b',');
        }
        write_quoted(out, k.as_bytes());
        out.push(b':');
        write_value(out, v, order);
    };
    match order {
        KeyOrder::JavaScript => {
            for (n, (k, v)) in o.iter_js_order().into_iter().enumerate() {
                member(n, k, v);
            }
        }
        KeyOrder::Sorted => {
            for (n, (k, v)) in o.iter_sorted().enumerate() {
                member(n, k, v);
            }
        }
    }
    out.push(b'}');
}

/// Append an object printed both ways at once: `sorted` gets the
/// [`KeyOrder::Sorted`] text (what a document hash covers), `js` the
/// [`KeyOrder::JavaScript`] text (what is stored and pulled). A member whose
/// value is not a container prints the same in both orders, so it is
/// printed once and its bytes copied; only nested containers print twice.
/// A many-key push pays for escaping and number formatting once, not twice.
pub fn write_object_both_orders(sorted: &mut Vec<u8>, js: &mut Vec<u8>, o: &Object) {
    let n = o.entries.len();
    // Byte span of each member's `"key":value` text in `sorted`, by entry.
    let mut spans: Vec<(u32, u32)> = vec![(0, 0); n];
    sorted.push(b'{');
    for (m, (i, (k, v))) in o.sorted_entries().enumerate() {
        if m > 0 {
            sorted.push(b',');
        }
        let start = sorted.len();
        write_quoted(sorted, k.as_bytes());
        sorted.push(b':');
        write_value(sorted, v, KeyOrder::Sorted);
        spans[i] = (start as u32, sorted.len() as u32);
    }
    sorted.push(b'}');
    js.reserve(sorted.len());
    js.push(b'{');
    for (m, i) in o.js_order_positions().into_iter().enumerate() {
        if m > 0 {
            js.push(b',');
        }
        let (k, v) = &o.entries[i];
        match v {
            Value::Object(_) | Value::Array(_) => {
                write_quoted(js, k.as_bytes());
                js.push(b':');
                write_value(js, v, KeyOrder::JavaScript);
            }
            _ => {
                let (a, b) = spans[i];
                js.extend_from_slice(&sorted[a as usize..b as usize]);
            }
        }
    }
    js.push(b'}');
}

/// Append a scalar (`null`, boolean, number, string). Containers are not
/// scalars; they print as `null` here and must go through a writer above.
pub(crate) fn write_scalar(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null | Value::Array(_) | Value::Object(_) => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => push_js_number(out, *n),
        Value::String(s) => write_quoted(out, s.as_bytes()),
    }
}

/// A number as JSON text the way JavaScript prints it: `NaN` and infinities
/// are `null`, `-0` is `0`, otherwise `Number.prototype.toString()`.
pub fn js_number(n: f64) -> String {
    let mut out = Vec::with_capacity(24);
    push_js_number(&mut out, n);
    String::from_utf8(out).unwrap_or_default()
}

fn push_js_number(out: &mut Vec<u8>, n: f64) {
    if !n.is_finite() {
        out.extend_from_slice(b"null");
    } else if n == 0.0 {
        out.push(b'0');
    } else {
        let mut buf = ryu_js::Buffer::new();
        out.extend_from_slice(buf.format_finite(n).as_bytes());
    }
}

/// Append a WTF-8 string quoted as `JSON.stringify` quotes it: `"` and `\`
/// escaped, control characters as `\b \t \n \f \r` or `\u00xx`, lone
/// surrogates as `\udxxx`, everything else raw.
pub fn write_quoted(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut run = 0;
    let mut i = 0;
    while i < s.len() {
        // Skip the bytes that are copied as they are (the common case).
        while i < s.len() && !NEEDS_CARE[s[i] as usize] {
            i += 1;
        }
        if i == s.len() {
            break;
        }
        let b = s[i];
        let esc: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            b'\t' => Some(b"\\t"),
            b'\n' => Some(b"\\n"),
            0x0c => Some(b"\\f"),
            b'\r' => Some(b"\\r"),
            _ => None,
        };
        if let Some(e) = esc {
            out.extend_from_slice(&s[run..i]);
            out.extend_from_slice(e);
            i += 1;
            run = i;
        } else if b < 0x20 {
            out.extend_from_slice(&s[run..i]);
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
            i += 1;
            run = i;
        } else if b == 0xED && i + 2 < s.len() && s[i + 1] >= 0xA0 {
            // A WTF-8 encoded surrogate, U+D800..U+DFFF.
            let cp = 0xD000 | (u32::from(s[i + 1] & 0x3F) << 6) | u32::from(s[i + 2] & 0x3F);
            out.extend_from_slice(&s[run..i]);
            out.extend_from_slice(b"\\u");
            for shift in [12, 8, 4, 0] {
                out.push(HEX[((cp >> shift) & 15) as usize]);
            }
            i += 3;
            run = i;
        } else {
            i += 1;
        }
    }
    out.extend_from_slice(&s[run..]);
    out.push(b'"');
}

/// Bytes that may need escaping: the ones that end a plain run inside a JSON
/// string (controls, `"`, `\\`) and 0xED, the lead byte of a possibly lone
/// surrogate.
static NEEDS_CARE: [bool; 256] = {
    let mut t = STRING_SPECIAL;
    t[0xED] = true;
    t
};

/// Quote a `&str` as `JSON.stringify` does.
pub fn quote(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    write_quoted(&mut out, s.as_bytes());
    String::from_utf8(out).unwrap_or_default()
}
