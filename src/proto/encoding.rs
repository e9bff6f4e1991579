//! Hex and base64 as the official implementation reads and writes them.
//!
//! Decoding is deliberately lenient where JavaScript is (`atob`-style base64,
//! either-case hex) and strict where it is strict, so that exactly the same
//! inputs are accepted.

use std::fmt;

/// Why a hex string was refused. The `Display` texts are the official
/// implementation's error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HexError {
    OddLength,
    InvalidCharacter,
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HexError::OddLength => "hex string has odd length",
            HexError::InvalidCharacter => "hex string has invalid characters",
        })
    }
}

impl std::error::Error for HexError {}

/// Lowercase hex.
pub fn hex_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Decode hex, either case.
pub fn hex_decode(s: &str) -> Result<Vec<u8>, HexError> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return Err(HexError::OddLength);
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    b.chunks_exact(2)
        .map(|p| match (nib(p[0]), nib(p[1])) {
            (Some(h), Some(l)) => Ok(h << 4 | l),
            _ => Err(HexError::InvalidCharacter),
        })
        .collect()
}

/// Decode exactly `N` bytes of hex.
pub fn hex_decode_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    hex_decode(s).ok()?.try_into().ok()
}

/// Standard base64 with padding.
pub fn b64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// "Forgiving" base64 decoding as WHATWG `atob`: ASCII whitespace removed,
/// standard alphabet only, padding optional (up to two `=` stripped when the
/// length is a multiple of 4), length ≡ 1 (mod 4) refused, non-zero trailing
/// bits tolerated. `None` when the input is refused.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let mut chars: Vec<u8> = s
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\x0c' | b'\r'))
        .collect();
    if chars.len() % 4 == 0 {
        for _ in 0..2 {
            if chars.last() == Some(&b'=') {
                chars.pop();
            }
        }
    }
    if chars.len() % 4 == 1 {
        return None;
    }
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(chars.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in chars {
        acc = acc << 6 | u32::from(val(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Whether `c` is removed by JavaScript's `String.prototype.trim`
/// (WhiteSpace and LineTerminator code points).
pub fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{9}' | '\u{a}' | '\u{b}' | '\u{c}' | '\u{d}' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// JavaScript's `String.prototype.trim`.
pub fn js_trim(s: &str) -> &str {
    s.trim_matches(is_js_whitespace)
}

/// `s` cut to at most `max` bytes (on a character boundary) with the
/// original length appended, for log lines that show client input.
pub fn clip(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}... ({} bytes)", &s[..end], s.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc... (4 bytes)");
        assert_eq!(clip("ééé", 3), "é... (6 bytes)");
    }

    #[test]
    fn atob_rules() {
        assert_eq!(b64_decode("AQ==").unwrap(), [1]);
        assert_eq!(b64_decode("AQ").unwrap(), [1]);
        assert_eq!(b64_decode(" A Q = = ").unwrap(), [1]);
        assert_eq!(b64_decode("AR==").unwrap(), [1], "trailing bits tolerated");
        assert!(b64_decode("A").is_none());
        assert!(b64_decode("A===").is_none());
        assert!(
            b64_decode("AQ=").is_none(),
            "length 3 is not a multiple of 4"
        );
        assert!(b64_decode("AQ-_").is_none(), "no URL-safe alphabet");
        assert_eq!(b64_decode("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn hex_round_trip_and_errors() {
        assert_eq!(hex_decode("00fF").unwrap(), [0, 255]);
        assert_eq!(hex_encode(&[0, 255]), "00ff");
        assert_eq!(hex_decode("abc"), Err(HexError::OddLength));
        assert_eq!(hex_decode("zz"), Err(HexError::InvalidCharacter));
    }
}
