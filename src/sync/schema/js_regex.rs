//! JavaScript regular expressions (the `u` flag, as Ajv compiles
//! `pattern` and `patternProperties`) on top of `regex-lite`.
//!
//! The JavaScript pattern is parsed with the ECMAScript `u`-mode grammar and
//! re-emitted as an equivalent `regex-lite` pattern in which every
//! character and class is spelled out, so the JavaScript meaning is kept
//! where the two syntaxes differ: `.` excludes `\r`, U+2028 and U+2029 too,
//! `\s` is JavaScript's white-space set, `\d`/`\w`/`\b` are ASCII, `[^]`
//! matches anything, `[]` nothing. `regex-lite` guarantees matching time
//! linear in the input, so a hostile document cannot make a pattern
//! backtrack exponentially.
//!
//! Refused ([`RegexError`]): what JavaScript itself rejects in `u` mode
//! (Ajv then fails to compile the schema), and the valid JavaScript that
//! has no linear-time equivalent: look-arounds, back-references, `\p{..}`
//! property escapes, lone surrogates.

use std::fmt;

/// Why a pattern was not compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegexError {
    /// JavaScript rejects it too (`new RegExp(p, "u")` throws).
    Syntax(String),
    /// Valid JavaScript that starfish-rs does not support.
    Unsupported(&'static str),
}

impl fmt::Display for RegexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegexError::Syntax(m) => write!(f, "invalid regular expression: {m}"),
            RegexError::Unsupported(what) => write!(f, "unsupported regular expression: {what}"),
        }
    }
}

impl std::error::Error for RegexError {}

/// A compiled JavaScript regular expression (`u` flag).
#[derive(Clone, Debug)]
pub struct JsRegex {
    source: String,
    re: regex_lite::Regex,
}

impl JsRegex {
    pub fn new(source: &str) -> Result<JsRegex, RegexError> {
        let translated = translate(source)?;
        let re = regex_lite::Regex::new(&translated)
            .map_err(|_| RegexError::Unsupported("beyond the regex engine's size limits"))?;
        Ok(JsRegex {
            source: source.to_owned(),
            re,
        })
    }

    /// `RegExp.prototype.test`: a match anywhere in `s`.
    pub fn test(&self, s: &str) -> bool {
        self.re.is_match(s)
    }

    /// The JavaScript source.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// A set of code points as sorted, disjoint, inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq)]
struct CharSet(Vec<(u32, u32)>);

const MAX_CP: u32 = 0x10FFFF;

impl CharSet {
    fn single(c: u32) -> CharSet {
        CharSet(vec![(c, c)])
    }
    fn from_ranges(r: &[(u32, u32)]) -> CharSet {
        let mut s = CharSet(r.to_vec());
        s.normalize();
        s
    }
    fn digits() -> CharSet {
        CharSet::from_ranges(&[(0x30, 0x39)])
    }
    fn word() -> CharSet {
        CharSet::from_ranges(&[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)])
    }
    /// JavaScript `WhiteSpace` and `LineTerminator`.
    fn space() -> CharSet {
        CharSet::from_ranges(&[
            (0x09, 0x0D),
            (0x20, 0x20),
            (0xA0, 0xA0),
            (0x1680, 0x1680),
            (0x2000, 0x200A),
            (0x2028, 0x2029),
            (0x202F, 0x202F),
            (0x205F, 0x205F),
            (0x3000, 0x3000),
            (0xFEFF, 0xFEFF),
        ])
    }
    /// `.`: everything but line terminators.
    fn dot() -> CharSet {
        CharSet::from_ranges(&[(0x0A, 0x0A), (0x0D, 0x0D), (0x2028, 0x2029)]).complement()
    }
    fn add(&mut self, other: &CharSet) {
        self.0.extend_from_slice(&other.0);
        self.normalize();
    }
    fn normalize(&mut self) {
        // Insertion sort: classes have few ranges (and no sort code to link).
        for i in 1..self.0.len() {
            let mut j = i;
            while j > 0 && self.0[j - 1] > self.0[j] {
                self.0.swap(j - 1, j);
                j -= 1;
            }
        }
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(self.0.len());
        for &(a, b) in &self.0 {
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        self.0 = out;
    }
    fn complement(&self) -> CharSet {
        let mut out = Vec::new();
        let mut next = 0u32;
        for &(a, b) in &self.0 {
            if a > next {
                out.push((next, a - 1));
            }
            next = b + 1;
        }
        if next <= MAX_CP {
            out.push((next, MAX_CP));
        }
        CharSet(out)
    }
    /// A `regex-lite` class (surrogates, which no Rust string holds, left out).
    fn emit(&self, out: &mut String) {
        let mut ranges = Vec::new();
        for &(a, b) in &self.0 {
            if b < 0xD800 || a > 0xDFFF {
                ranges.push((a, b));
            } else {
                if a < 0xD800 {
                    ranges.push((a, 0xD7FF));
                }
                if b > 0xDFFF {
                    ranges.push((0xE000, b));
                }
            }
        }
        if ranges.is_empty() {
            out.push_str(r"[^\x{0}-\x{10FFFF}]");
            return;
        }
        out.push('[');
        for (a, b) in ranges {
            if a == b {
                out.push_str(&format!(r"\x{{{a:X}}}"));
            } else {
                out.push_str(&format!(r"\x{{{a:X}}}-\x{{{b:X}}}"));
            }
        }
        out.push(']');
    }
}

fn syntax(m: &str) -> RegexError {
    RegexError::Syntax(m.to_owned())
}

/// An escape's meaning.
enum Escaped {
    Char(u32),
    Set(CharSet),
    /// `\b` or `\B` outside a class.
    Assertion(&'static str),
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

const MAX_GROUP_DEPTH: usize = 64;

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn disjunction(&mut self, out: &mut String) -> Result<(), RegexError> {
        self.alternative(out)?;
        while self.eat('|') {
            out.push('|');
            self.alternative(out)?;
        }
        Ok(())
    }

    fn alternative(&mut self, out: &mut String) -> Result<(), RegexError> {
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                return Ok(());
            }
            self.term(out)?;
        }
        Ok(())
    }

    fn term(&mut self, out: &mut String) -> Result<(), RegexError> {
        let c = self.peek().unwrap_or('\0');
        self.pos += 1;
        let mut atom = String::new();
        match c {
            '^' | '$' => {
                out.push(c);
                return self.no_quantifier();
            }
            '\\' => match self.escape(false)? {
                Escaped::Assertion(a) => {
                    out.push_str(a);
                    return self.no_quantifier();
                }
                Escaped::Char(cp) => CharSet::single(cp).emit(&mut atom),
                Escaped::Set(s) => s.emit(&mut atom),
            },
            '.' => CharSet::dot().emit(&mut atom),
            '[' => self.class()?.emit(&mut atom),
            '(' => self.group(&mut atom)?,
            ')' => return Err(syntax("unmatched ')'")),
            '*' | '+' | '?' => return Err(syntax("nothing to repeat")),
            '{' => return Err(syntax("nothing to repeat or lone quantifier brackets")),
            '}' | ']' => return Err(syntax("lone quantifier brackets")),
            c => CharSet::single(c as u32).emit(&mut atom),
        }
        out.push_str("(?:");
        out.push_str(&atom);
        out.push(')');
        self.quantifier(out)
    }

    /// After an assertion: JavaScript (`u` mode) forbids a quantifier.
    fn no_quantifier(&mut self) -> Result<(), RegexError> {
        match self.peek() {
            Some('*' | '+' | '?' | '{') => Err(syntax("nothing to repeat")),
            _ => Ok(()),
        }
    }

    fn number(&mut self) -> Option<u64> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == start {
            return None;
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        Some(digits.parse().unwrap_or(u64::MAX))
    }

    fn quantifier(&mut self, out: &mut String) -> Result<(), RegexError> {
        match self.peek() {
            Some(c @ ('*' | '+' | '?')) => {
                self.pos += 1;
                out.push(c);
            }
            Some('{') => {
                self.pos += 1;
                let min = self
                    .number()
                    .ok_or_else(|| syntax("incomplete quantifier"))?;
                let max = if self.eat(',') {
                    self.number()
                } else {
                    Some(min)
                };
                if !self.eat('}') {
                    return Err(syntax("incomplete quantifier"));
                }
                if max.is_some_and(|m| m < min) {
                    return Err(syntax("numbers out of order in {} quantifier"));
                }
                let cap = |n: u64| n.min(u64::from(u32::MAX));
                match max {
                    Some(m) if m == min => out.push_str(&format!("{{{}}}", cap(min))),
                    Some(m) => out.push_str(&format!("{{{},{}}}", cap(min), cap(m))),
                    None => out.push_str(&format!("{{{},}}", cap(min))),
                }
            }
            _ => return Ok(()),
        }
        if self.eat('?') {
            out.push('?');
        }
        Ok(())
    }

    fn group(&mut self, out: &mut String) -> Result<(), RegexError> {
        self.depth += 1;
        if self.depth > MAX_GROUP_DEPTH {
            return Err(RegexError::Unsupported("groups nested too deeply"));
        }
        if self.eat('?') {
            match self.peek() {
                Some(':') => self.pos += 1,
                Some('=' | '!') => return Err(RegexError::Unsupported("look-ahead")),
                Some('<') if matches!(self.peek_at(1), Some('=' | '!')) => {
                    return Err(RegexError::Unsupported("look-behind"))
                }
                Some('<') => {
                    self.pos += 1;
                    self.group_name()?;
                }
                _ => return Err(syntax("invalid group")),
            }
        }
        out.push_str("(?:");
        self.disjunction(out)?;
        if !self.eat(')') {
            return Err(syntax("unterminated group"));
        }
        out.push(')');
        self.depth -= 1;
        Ok(())
    }

    /// `GroupName` after `<`, through `>`.
    fn group_name(&mut self) -> Result<(), RegexError> {
        let mut first = true;
        loop {
            match self.peek() {
                Some('>') if !first => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(c)
                    if c == '$'
                        || c == '_'
                        || c.is_alphabetic()
                        || (!first && c.is_alphanumeric()) =>
                {
                    self.pos += 1;
                    first = false;
                }
                _ => return Err(syntax("invalid capture group name")),
            }
        }
    }

    fn hex(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let d = self.peek()?.to_digit(16)?;
            v = v * 16 + d;
            self.pos += 1;
        }
        Some(v)
    }

    /// `\u` sequences: `\uXXXX` (a surrogate pair of two escapes forms one
    /// code point) or `\u{X...}`.
    fn unicode_escape(&mut self) -> Result<u32, RegexError> {
        if self.eat('{') {
            let start = self.pos;
            let mut v: u32 = 0;
            while let Some(d) = self.peek().and_then(|c| c.to_digit(16)) {
                v = v.saturating_mul(16).saturating_add(d);
                self.pos += 1;
            }
            if self.pos == start || !self.eat('}') || v > MAX_CP {
                return Err(syntax("invalid Unicode escape"));
            }
            return Ok(v);
        }
        let v = self
            .hex(4)
            .ok_or_else(|| syntax("invalid Unicode escape"))?;
        if (0xD800..0xDC00).contains(&v)
            && self.peek() == Some('\\')
            && self.peek_at(1) == Some('u')
        {
            let save = self.pos;
            self.pos += 2;
            match self.hex(4) {
                Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                    return Ok(0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00));
                }
                _ => self.pos = save,
            }
        }
        Ok(v)
    }

    /// After `\`. `in_class` selects the class-escape grammar.
    fn escape(&mut self, in_class: bool) -> Result<Escaped, RegexError> {
        let c = self.peek().ok_or_else(|| syntax("\\ at end of pattern"))?;
        self.pos += 1;
        let ch = |cp: u32| -> Result<Escaped, RegexError> {
            if (0xD800..0xE000).contains(&cp) {
                Err(RegexError::Unsupported("lone surrogates"))
            } else {
                Ok(Escaped::Char(cp))
            }
        };
        match c {
            'b' if in_class => ch(0x08),
            'b' => Ok(Escaped::Assertion(r"\b")),
            'B' if !in_class => Ok(Escaped::Assertion(r"\B")),
            'd' => Ok(Escaped::Set(CharSet::digits())),
            'D' => Ok(Escaped::Set(CharSet::digits().complement())),
            's' => Ok(Escaped::Set(CharSet::space())),
            'S' => Ok(Escaped::Set(CharSet::space().complement())),
            'w' => Ok(Escaped::Set(CharSet::word())),
            'W' => Ok(Escaped::Set(CharSet::word().complement())),
            'p' | 'P' => Err(RegexError::Unsupported("Unicode property escapes")),
            'f' => ch(0x0C),
            'n' => ch(0x0A),
            'r' => ch(0x0D),
            't' => ch(0x09),
            'v' => ch(0x0B),
            'c' => match self.peek() {
                Some(l) if l.is_ascii_alphabetic() => {
                    self.pos += 1;
                    ch(l as u32 % 32)
                }
                _ => Err(syntax("invalid control escape")),
            },
            '0' if !self.peek().is_some_and(|d| d.is_ascii_digit()) => ch(0),
            '0'..='9' if in_class => Err(syntax("invalid class escape")),
            '1'..='9' => Err(RegexError::Unsupported("back-references")),
            '0' => Err(syntax("invalid decimal escape")),
            'k' if !in_class && self.peek() == Some('<') => {
                Err(RegexError::Unsupported("back-references"))
            }
            'x' => {
                let v = self
                    .hex(2)
                    .ok_or_else(|| syntax("invalid hexadecimal escape"))?;
                ch(v)
            }
            'u' => {
                let v = self.unicode_escape()?;
                ch(v)
            }
            '-' if in_class => ch('-' as u32),
            '^' | '$' | '\\' | '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|'
            | '/' => ch(c as u32),
            _ => Err(syntax("invalid escape")),
        }
    }

    /// After `[`: the class as a set (negation applied).
    fn class(&mut self) -> Result<CharSet, RegexError> {
        let negated = self.eat('^');
        let mut set = CharSet::default();
        loop {
            let first = match self.peek() {
                None => return Err(syntax("unterminated character class")),
                Some(']') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => self.class_atom()?,
            };
            let is_range = self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c != ']');
            if !is_range {
                match first {
                    Escaped::Char(c) => set.add(&CharSet::single(c)),
                    Escaped::Set(s) => set.add(&s),
                    Escaped::Assertion(_) => unreachable!("no assertions in classes"),
                }
                continue;
            }
            self.pos += 1;
            let second = self.class_atom()?;
            match (first, second) {
                (Escaped::Char(a), Escaped::Char(b)) => {
                    if a > b {
                        return Err(syntax("range out of order in character class"));
                    }
                    set.add(&CharSet::from_ranges(&[(a, b)]));
                }
                _ => return Err(syntax("invalid character class")),
            }
        }
        Ok(if negated { set.complement() } else { set })
    }

    fn class_atom(&mut self) -> Result<Escaped, RegexError> {
        let c = self.peek().unwrap_or('\0');
        self.pos += 1;
        if c == '\\' {
            self.escape(true)
        } else {
            Ok(Escaped::Char(c as u32))
        }
    }
}

/// Translate a JavaScript `u`-mode pattern into `regex-lite` syntax.
pub fn translate(pattern: &str) -> Result<String, RegexError> {
    let mut p = Parser {
        chars: pattern.chars().collect(),
        pos: 0,
        depth: 0,
    };
    let mut out = String::with_capacity(pattern.len() * 4);
    p.disjunction(&mut out)?;
    if p.pos < p.chars.len() {
        // Only an unmatched ')' stops the top-level disjunction early.
        return Err(syntax("unmatched ')'"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        JsRegex::new(p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .test(s)
    }

    #[test]
    fn javascript_semantics() {
        assert!(m("^[a-z0-9-]+$", "ab-9"));
        assert!(!m("^[a-z0-9-]+$", "ab_9"));
        assert!(m("b", "abc"), "test() searches");
        assert!(!m("^a.c$", "a\nc"));
        assert!(!m("^a.c$", "a\rc"), ". excludes \\r in JavaScript");
        assert!(!m("^a.c$", "a\u{2028}c"));
        assert!(m("^a.c$", "a\u{1F600}c"), ". is one code point in u mode");
        assert!(m(r"^\s$", "\u{FEFF}"));
        assert!(m(r"^\s$", "\u{A0}"));
        assert!(!m(r"^\w$", "é"), "\\w is ASCII");
        assert!(!m(r"^\d$", "٣"), "\\d is ASCII");
        assert!(m(r"^[^]$", "\n"));
        assert!(!m(r"[]", "anything"));
        assert!(
            m(r"^[\d-]+$", "1-"),
            "a dash at the end of a class is literal"
        );
        assert!(m(r"^[-\d]+$", "-1"));
        assert!(m(r"^\u{1F600}\uD83D\uDE00$", "\u{1F600}\u{1F600}"));
        assert!(m(r"^\x41\u0042\cJ\0$", "AB\n\0"));
        assert!(m(r"^(?:ab|cd){2}$", "abcd"));
        assert!(m(r"^(?<y>\d{4})-\d{2}?$", "2024-05"));
        assert!(!m(r"^(?<y>\d{4})-\d{2}?$", "2024-"));
        assert!(m(r"^a{2,}?$", "aaa"));
        assert!(m(r"\bfoo\b", "a foo."));
        assert!(m(r"^[\]\-\\]+$", r"]-\"));
        assert!(m(r"^\/\.\*$", "/.*"));
        assert!(m("", "x"));
        assert!(m("^$", ""));
        assert!(m("a|", "zzz"));
        assert!(m(r"^\$\^$", "$^"));
    }

    #[test]
    fn refusals() {
        for p in [
            "(",
            ")",
            "a)",
            "[a",
            "*",
            "a**",
            "a{",
            "{1}",
            "x{2,1}",
            "}",
            "]",
            r"\",
            r"\a",
            r"\-",
            r"[z-a]",
            r"[\d-z]",
            r"[x-\d]",
            "[]]",
            r"\k",
            r"\c1",
            r"\x4",
            r"\u12",
            r"\u{110000}",
            "^*",
            r"\b+",
            "(?x)",
            r"[\1]",
            r"\01",
            "(?<1a>x)",
        ] {
            assert!(
                matches!(JsRegex::new(p), Err(RegexError::Syntax(_))),
                "{p} must be a JavaScript syntax error"
            );
        }
        for p in [
            "(?=a)",
            "(?!a)",
            "(?<=a)",
            "(?<!a)",
            r"(a)\1",
            r"(?<n>a)\k<n>",
            r"\p{L}",
            r"\uD800",
            r"[\uDC00]",
        ] {
            assert!(
                matches!(JsRegex::new(p), Err(RegexError::Unsupported(_))),
                "{p} is valid JavaScript we do not support"
            );
        }
    }
}
