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
//! The parser is recursive but bounded: past `max_depth` it switches to an
//! iterative syntax check, so hostile input can neither overflow the stack
//! nor hide a syntax error behind a depth error.

use std::fmt;

/// A JavaScript string: UTF-8, except that lone surrogates are allowed and
/// encoded as three-byte sequences (WTF-8). Byte order equals code-point order,
/// which is the order `stableStringify` sorts keys in.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct JsString(Box<[u8]>);

impl JsString {
    /// The WTF-8 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// The string, when it holds no lone surrogate.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
    /// The string with lone surrogates replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
    /// Build from WTF-8 bytes produced by this module.
    fn from_wtf8(bytes: Vec<u8>) -> Self {
        JsString(bytes.into_boxed_slice())
    }
}

impl From<&str> for JsString {
    fn from(s: &str) -> Self {
        JsString(s.as_bytes().into())
    }
}

impl From<String> for JsString {
    fn from(s: String) -> Self {
        JsString(s.into_bytes().into_boxed_slice())
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
        &*self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for JsString {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == other.as_bytes()
    }
}

/// A JSON object: entries in insertion order, keys unique.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct Object {
    entries: Vec<(JsString, Value)>,
}

impl Object {
    pub fn new() -> Self {
        Object::default()
    }
    pub fn with_capacity(n: usize) -> Self {
        Object {
            entries: Vec::with_capacity(n),
        }
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Look a key up.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.get_bytes(key.as_bytes())
    }
    /// Look a key up by its WTF-8 bytes.
    pub fn get_bytes(&self, key: &[u8]) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_bytes() == key)
            .map(|(_, v)| v)
    }
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k.as_bytes() == key.as_bytes())
            .map(|(_, v)| v)
    }
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
    /// Set a key. An existing key keeps its position (JavaScript semantics).
    pub fn insert(&mut self, key: impl Into<JsString>, value: Value) {
        let key = key.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }
    /// Append without checking for an existing key; the caller guarantees
    /// uniqueness.
    pub(crate) fn push_unique(&mut self, key: JsString, value: Value) {
        self.entries.push((key, value));
    }
    /// Remove a key, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let pos = self
            .entries
            .iter()
            .position(|(k, _)| k.as_bytes() == key.as_bytes())?;
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
    fn from_iter<I: IntoIterator<Item = (JsString, Value)>>(iter: I) -> Self {
        let mut o = Object::new();
        for (k, v) in iter {
            o.insert(k, v);
        }
        o
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
        let mut out = Object::new();
        // Small objects dedupe by linear scan; large ones through an index.
        let mut index: Option<std::collections::HashMap<JsString, usize>> = None;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Value::Object(out));
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
            if out.len() >= 32 && index.is_none() {
                index = Some(
                    out.entries
                        .iter()
                        .enumerate()
                        .map(|(i, (k, _))| (k.clone(), i))
                        .collect(),
                );
            }
            match &mut index {
                Some(ix) => match ix.get(&key) {
                    Some(&pos) => out.entries[pos].1 = v,
                    None => {
                        ix.insert(key.clone(), out.entries.len());
                        out.push_unique(key, v);
                    }
                },
                None => out.insert(key, v),
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Object(out));
                }
                _ => return self.err(),
            }
        }
    }

    fn number(&mut self) -> Result<f64, ParseError> {
        let start = self.i;
        let end = scan_number(self.s, self.i).ok_or(ParseError::Syntax(self.i))?;
        self.i = end;
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
    crate::proto::canonical::write_value(out, v, crate::proto::canonical::KeyOrder::JavaScript);
}
