//! Property tests for the protocol core: canonical JSON is a fixed point,
//! number printing agrees with an independent reference, the glob matcher
//! agrees with a naive backtracking matcher and stays linear on adversarial
//! input, and nothing panics on arbitrary input. Also: an append to a stored
//! append-only log (which splices bytes instead of parsing) stores what
//! parsing the log and appending to it would.

use proptest::prelude::*;
use starfish::proto::{
    canonical::{js_number, stable_stringify},
    cap, encoding,
    json::{self, parse, parse_with_depth, Object, ParseError, Value},
    request_sig::{self, RequestToSign},
    scope,
};

// ---------- arbitrary JSON ----------

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,6}",
        any::<String>(),
        prop::collection::vec(
            prop_oneof![
                Just('\u{0}'),
                Just('"'),
                Just('\\'),
                Just('\u{2028}'),
                Just('\u{ffff}'),
                Just('😀'),
                Just('é')
            ],
            0..5
        )
        .prop_map(|v| v.into_iter().collect()),
    ]
}

fn arb_number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        any::<i64>().prop_map(|i| i as f64),
        (-1000i32..1000).prop_map(f64::from),
        Just(1e21),
        Just(-0.0),
        Just(5e-324),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number().prop_map(Value::Number),
        arb_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((arb_string(), inner), 0..6).prop_map(|kv| Value::Object(
                kv.into_iter()
                    .map(|(k, v)| (k.into(), v))
                    .collect::<Object>()
            )),
        ]
    })
}

/// Convert a serde_json value (an independent, well-tested parser) into
/// ours, as JavaScript would hold it.
fn from_serde(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap()),
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(from_serde).collect()),
        serde_json::Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.as_str().into(), from_serde(v)))
                .collect(),
        ),
    }
}

// ---------- number printing reference ----------

/// ECMAScript Number::toString built from Rust's shortest round-trip
/// scientific formatting (`{:e}`), an implementation independent of ryu-js.
fn reference_js_number(x: f64) -> String {
    if !x.is_finite() {
        return "null".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    if x < 0.0 {
        return format!("-{}", reference_js_number(-x));
    }
    let sci = format!("{x:e}"); // d[.ddd]e[-]N
    let (mant, exp) = sci.split_once('e').unwrap();
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    let n = exp.parse::<i32>().unwrap() + 1; // x = 0.d1..dk * 10^n
    if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let sign = if e >= 0 { "+" } else { "-" };
        if k == 1 {
            format!("{digits}e{sign}{}", e.abs())
        } else {
            format!("{}.{}e{sign}{}", &digits[..1], &digits[1..], e.abs())
        }
    }
}

/// Our output must equal the reference, except where two shortest digit
/// strings are equally close to `x`: ECMAScript then takes the even last
/// digit, while Rust's formatter may take the other one. Both must still
/// round-trip and have the same length.
fn check_against_reference(x: f64) {
    let (ours, reference) = (js_number(x), reference_js_number(x));
    if ours == reference {
        return;
    }
    assert_eq!(ours.len(), reference.len(), "{x:e}: {ours} vs {reference}");
    assert_eq!(ours.parse::<f64>().unwrap(), x, "{ours} must round-trip");
    assert_eq!(
        reference.parse::<f64>().unwrap(),
        x,
        "{reference} must round-trip"
    );
    let last_digit = |s: &str| s.split('e').next().unwrap().bytes().last().unwrap() - b'0';
    assert_eq!(
        last_digit(&ours) % 2,
        0,
        "{x:e}: a tie takes the even digit, got {ours} (reference {reference})"
    );
}

#[test]
fn number_printing_ties_take_the_even_digit() {
    // Found by the property test: node prints 1199931390033941.2 here.
    let x = f64::from_bits(4_832_658_526_101_307_477);
    assert_eq!(js_number(x), "1199931390033941.2");
    check_against_reference(x);
}

// ---------- glob reference ----------

/// Naive backtracking matcher with the same token meaning: `**` any run,
/// `*` any run without `/`, everything else literal.
fn naive_glob(p: &[char], t: &[char]) -> bool {
    if p.is_empty() {
        return t.is_empty();
    }
    if p[0] == '*' {
        let any = p.get(1) == Some(&'*');
        let rest = if any { &p[2..] } else { &p[1..] };
        for i in 0..=t.len() {
            if naive_glob(rest, &t[i..]) {
                return true;
            }
            if i < t.len() && !any && t[i] == '/' {
                return false;
            }
        }
        return false;
    }
    !t.is_empty() && p[0] == t[0] && naive_glob(&p[1..], &t[1..])
}

fn naive(p: &str, t: &str) -> bool {
    naive_glob(
        &p.chars().collect::<Vec<_>>(),
        &t.chars().collect::<Vec<_>>(),
    )
}

/// The official `pathGlobMatch` loop, transcribed step by step (one
/// backtrack point, re-scanning on every mismatch): the reference the
/// linear matcher must agree with on every input.
fn official_glob_loop(pattern: &str, target: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Any,
        Seg,
        Lit(char),
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars().peekable();
    while let Some(c) = it.next() {
        if c == '*' {
            if it.peek() == Some(&'*') {
                it.next();
                toks.push(Tok::Any);
            } else {
                toks.push(Tok::Seg);
            }
        } else {
            toks.push(Tok::Lit(c));
        }
    }
    let target: Vec<char> = target.chars().collect();
    let (mut i, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, Tok, usize)> = None;
    while i < target.len() {
        match toks.get(t) {
            Some(Tok::Lit(c)) if *c == target[i] => {
                i += 1;
                t += 1;
            }
            Some(k @ (Tok::Any | Tok::Seg)) => {
                star = Some((t, *k, i));
                t += 1;
            }
            _ => match star.as_mut() {
                Some((st, kind, si)) => {
                    if *kind == Tok::Seg && target[*si] == '/' {
                        return false;
                    }
                    *si += 1;
                    i = *si;
                    t = *st + 1;
                }
                None => return false,
            },
        }
    }
    while matches!(toks.get(t), Some(Tok::Any | Tok::Seg)) {
        t += 1;
    }
    t == toks.len()
}

fn glob_alphabet() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![Just('a'), Just('b'), Just('/'), Just('*')],
        0..8,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn target_alphabet() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![Just('a'), Just('b'), Just('/')], 0..10)
        .prop_map(|v| v.into_iter().collect())
}

/// The append oracle: parse the stored log, push the element, rebuild the
/// envelope, print it as JavaScript would.
fn expected_after_append(stored: &[u8], item: &Object, ts: f64) -> Vec<u8> {
    let Ok(Value::Object(mut doc)) = parse(stored) else {
        panic!("stored doc is an object")
    };
    let Some(Value::Object(mut data)) = doc.remove("data") else {
        panic!("stored data is an object")
    };
    let mut el = Object::new();
    el.insert("ts", Value::Number(ts));
    el.insert("data", Value::Object(item.clone()));
    let Some(Value::Array(items)) = data.get_mut("items") else {
        panic!("stored items")
    };
    items.push(Value::Object(el));
    let mut nl = Object::new();
    nl.insert("n", Value::Number(items.len() as f64));
    nl.insert("last", Value::Object(item.clone()));
    let mut out = Object::new();
    out.insert("v", Value::Number(1.0));
    out.insert("data", Value::Object(data));
    out.insert("ts", Value::Number(ts));
    out.insert(
        "hash",
        starfish::proto::hash::document_hash(&Value::Object(nl)).into(),
    );
    json::to_js_json(&Value::Object(out))
}

proptest! {
    // Each case builds a log and appends through a store: fewer cases.
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]
    #[test]
    fn appends_store_what_parse_and_push_would(
        other in prop::collection::vec((arb_string(), arb_value()), 0..4),
        elements in prop::collection::vec(arb_value(), 0..5),
        item in prop::collection::vec((arb_string(), arb_value()), 0..4),
        envelope_extra in arb_value(),
    ) {
        use starfish::store::{MemoryStore, Store};
        use starfish::sync::append::{self, AppendPush, AppendSettings};
        let mut data: Object = other.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let items: Vec<Value> = elements
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                let mut el = Object::new();
                el.insert("ts", Value::Number(i as f64 * 10.0));
                el.insert("data", d);
                Value::Object(el)
            })
            .collect();
        let n = items.len();
        data.insert("items", Value::Array(items));
        let mut doc = Object::new();
        doc.insert("v", Value::Number(1.0));
        doc.insert("data", Value::Object(data));
        doc.insert("extra", envelope_extra);
        doc.insert("hash", Value::from("h"));
        let stored = json::to_js_json(&Value::Object(doc));
        let store = MemoryStore::new();
        store.put("k", &stored).unwrap();
        let settings = AppendSettings::from_value(&parse(br#"{"requireAuthorSignature":false}"#).unwrap()).unwrap();
        let item: Object = item.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let item = starfish::proto::sanitize::deep_sanitize(item);
        let push = AppendPush { item: item.clone(), author: None, ts: None };
        let now = 5i64;
        let done = append::append(&store, "k", &push, &settings, now).unwrap();
        let ts = if n == 0 { now as f64 } else { (now as f64).max((n - 1) as f64 * 10.0 + 1.0) };
        prop_assert_eq!(done.ts, ts);
        let written = store.get("k").unwrap().unwrap();
        let reprinted = json::to_js_json(&parse(&written).unwrap());
        let expected = expected_after_append(&stored, &item, ts);
        prop_assert_eq!(String::from_utf8_lossy(&reprinted), String::from_utf8_lossy(&expected));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]


    #[test]
    fn canonical_is_a_fixed_point(v in arb_value()) {
        let c = stable_stringify(&v);
        let reparsed = parse(c.as_bytes()).unwrap();
        prop_assert_eq!(stable_stringify(&reparsed), c);
    }

    #[test]
    fn js_json_output_reparses_to_the_same_canonical_form(v in arb_value()) {
        let text = json::to_js_json(&v);
        let reparsed = parse(&text).unwrap();
        prop_assert_eq!(stable_stringify(&reparsed), stable_stringify(&v));
    }

    #[test]
    fn parser_agrees_with_serde_json(v in arb_value()) {
        // serde_json prints our generated value; both parsers must read it the same.
        let text = String::from_utf8(json::to_js_json(&v)).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ours = parse(text.as_bytes()).unwrap();
        prop_assert_eq!(stable_stringify(&ours), stable_stringify(&from_serde(&theirs)));
    }

    #[test]
    fn number_printing_matches_reference(bits in any::<u64>()) {
        let x = f64::from_bits(bits);
        check_against_reference(x);
    }

    #[test]
    fn number_printing_round_trips_with_shortest_digits(x in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let s = js_number(x);
        let back: f64 = s.parse().unwrap();
        prop_assert!(back == x || (x == 0.0 && back == 0.0), "{} -> {} -> {}", x, s, back);
        // Shortest: dropping the last significant digit never still round-trips.
        let sci = format!("{:e}", x.abs());
        let digits = sci.split('e').next().unwrap().replace('.', "");
        if digits.len() > 1 {
            let shorter = format!("{}.{}e{}", &digits[..1], &digits[1..digits.len() - 1], sci.split('e').nth(1).unwrap());
            let shorter: f64 = shorter.parse().unwrap();
            prop_assert!(shorter != x.abs());
        }
    }

    #[test]
    fn objects_from_entries_follow_javascript_assignment(
        keys in prop::collection::vec(0u16..400, 0..700),
        long in any::<bool>(),
    ) {
        // Up to 700 entries: both the integer sort (under 256) and the
        // radix sort order the positions.
        // Keys that share their first 8 bytes when `long`, to exercise the
        // full comparison behind the prefix.
        let key = |k: u16| if long { format!("prefix--{k}") } else { format!("{k}") };
        let entries: Vec<(json::JsString, Value)> = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| (key(k).into(), Value::Number(i as f64)))
            .collect();
        let mut naive = Object::new();
        for (k, v) in entries.clone() {
            naive.insert(k, v);
        }
        let built = Object::from_entries(entries.clone());
        prop_assert_eq!(&built, &naive);
        let collected: Object = entries.into_iter().collect();
        prop_assert_eq!(&collected, &naive);
        // And the parser agrees.
        let text = format!(
            "{{{}}}",
            keys.iter().enumerate().map(|(i, &k)| format!("\"{}\":{i}", key(k))).collect::<Vec<_>>().join(",")
        );
        prop_assert_eq!(parse(text.as_bytes()).unwrap(), Value::Object(naive));
    }

    #[test]
    fn sorted_iteration_is_byte_order(codes in prop::collection::vec(any::<u32>(), 0..700)) {
        // Keys of 0 to 10 characters (ASCII, NUL, 2-, 3- and 4-byte UTF-8),
        // some behind a shared 8-byte prefix, in small and large objects:
        // stableStringify's order is plain byte order.
        const ALPHA: [char; 6] = ['a', 'b', '\u{0}', 'é', '\u{ffff}', '😀'];
        let key = |c: u32| {
            let mut k = if c & 1 == 1 { String::from("prefix--") } else { String::new() };
            let mut x = c >> 1;
            for _ in 0..(x % 11) {
                x /= 6;
                k.push(ALPHA[(x % 6) as usize]);
            }
            k
        };
        let o: Object = codes
            .iter()
            .map(|&c| (json::JsString::from(key(c)), Value::Null))
            .collect();
        let mut expected: Vec<&[u8]> = o.iter().map(|(k, _)| k.as_bytes()).collect();
        expected.sort();
        let got: Vec<&[u8]> = o.iter_sorted().map(|(k, _)| k.as_bytes()).collect();
        prop_assert_eq!(got, expected);
        // The order kept from building the object follows later changes.
        let mut o = o;
        o.insert("added", Value::Null);
        if let Some(first) = codes.first() {
            o.remove(&key(*first));
        }
        let mut expected: Vec<&[u8]> = o.iter().map(|(k, _)| k.as_bytes()).collect();
        expected.sort();
        let got: Vec<&[u8]> = o.iter_sorted().map(|(k, _)| k.as_bytes()).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn glob_gives_the_official_loops_answer(
        p in prop::collection::vec(prop_oneof![Just('a'), Just('b'), Just('é'), Just('/'), Just('*')], 0..12)
            .prop_map(|v| v.into_iter().collect::<String>()),
        t in prop::collection::vec(prop_oneof![Just('a'), Just('b'), Just('é'), Just('/')], 0..14)
            .prop_map(|v| v.into_iter().collect::<String>()),
    ) {
        prop_assert_eq!(scope::glob_match(&p, &t), official_glob_loop(&p, &t), "{:?} vs {:?}", p, t);
    }

    #[test]
    fn glob_matches_are_sound(p in glob_alphabet(), t in target_alphabet()) {
        // The official single-backtrack matcher never accepts what a full
        // backtracking matcher rejects.
        if scope::glob_match(&p, &t) {
            prop_assert!(naive(&p, &t), "{:?} matched {:?}", p, t);
        }
    }

    #[test]
    fn glob_agrees_with_reference_without_single_stars(p in glob_alphabet(), t in target_alphabet()) {
        // With only `**` stars the single backtrack point loses nothing.
        let p = p.replace('*', "**").replace("****", "**");
        prop_assert_eq!(scope::glob_match(&p, &t), naive(&p, &t), "{:?} vs {:?}", p, t);
    }

    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse(&bytes);
        let _ = parse_with_depth(&bytes, 3);
    }

    #[test]
    fn parse_never_panics_on_jsonish_text(s in "[\\[\\]{}\",:0-9eE.+\\-a-z\\\\u ]{0,64}") {
        let _ = parse(s.as_bytes());
        let _ = parse_with_depth(s.as_bytes(), 2);
    }

    #[test]
    fn auth_inputs_never_panic(header in any::<String>(), b64 in "[A-Za-z0-9+/= ]{0,40}", path in any::<String>(), globs in prop::collection::vec(any::<String>(), 0..4)) {
        let _ = cap::parse_authorization(&header, 8192);
        let _ = cap::parse_authorization(&format!("Cap {b64}"), 8192);
        let _ = encoding::b64_decode(&header);
        let _ = encoding::hex_decode(&header);
        let _ = scope::percent_decode(&path);
        let _ = scope::match_scope_path(&path, Some(&globs));
        let _ = scope::strip_action_prefix(&path);
        let _ = scope::is_batch_pull_path(&path, true);
        let _ = request_sig::parse_ts_header(&header);
        let req = RequestToSign { method: "GET", path_and_query: &path, host: &header, body: b"", ts: 1.0, nonce_b64: &b64 };
        prop_assert!(!request_sig::verify_request(&req, &b64, &header));
    }

    #[test]
    fn cap_verification_never_panics(v in arb_value(), now in any::<i64>()) {
        let cert = cap::CapCert::from_value(v);
        let _ = cap::verify_cap_cert(&cert, now / 2, 300);
        let _ = cert.signing_input();
        let _ = cert.is_root_device_cap();
    }

    #[test]
    fn any_mutation_of_a_minted_cap_fails(field in 0usize..4, seed in any::<[u8; 32]>()) {
        let pub_hex = request_sig::public_key_hex(&seed);
        let cert = cap::mint_device_cap(&seed, &pub_hex, &pub_hex, &"11".repeat(32), cap::root_all_scope(),
            cap::MintOptions { nbf: 1_700_000_000, ttl_sec: 600, nonce: [9; 16] }).unwrap();
        prop_assert!(cap::verify_cap_cert(&cert, 1_700_000_001, 300).is_ok());
        let Value::Object(mut o) = cert.value().clone() else { unreachable!() };
        match field {
            0 => o.insert("exp", Value::Number(1_700_000_700.0)),
            1 => o.insert("extra", Value::Bool(true)),
            2 => o.insert("nonce", Value::from(encoding::b64_encode(&[8; 16]))),
            _ => o.insert("scope", Value::Object(Object::new())),
        }
        prop_assert!(cap::verify_cap_cert(&cap::CapCert::from_value(Value::Object(o)), 1_700_000_001, 300).is_err());
    }
}

#[test]
fn glob_stays_linear_on_adversarial_patterns() {
    let n = 20_000;
    let target = "a".repeat(n);
    for pattern in [
        "**a".repeat(50) + "b",
        "*a".repeat(50) + "*b",
        "**a**a**a**a".to_string() + "b",
        // The official loop's worst case: a long literal after a star that
        // almost matches at every position (O(pattern x target) there).
        "**".to_string() + &"a".repeat(n / 2) + "b",
    ] {
        let (matched, steps) = scope::glob_match_counting(&pattern, &target);
        assert!(!matched);
        assert!(
            steps <= 3 * (n + pattern.len()) as u64,
            "{}...: {steps} steps for a {n}-char target",
            &pattern[..20]
        );
    }
    // Doubling pattern and target doubles the work.
    let work = |k: usize| {
        let pattern = format!("users/**{}b", "a".repeat(k));
        scope::glob_match_counting(&pattern, &format!("users/{}/x", "a".repeat(2 * k))).1
    };
    let (s1, s2) = (work(5_000), work(10_000));
    assert!(s2 <= 2 * s1 + 100, "{s1} -> {s2}");
}

#[test]
fn scope_check_work_is_bounded_by_its_input() {
    // Many patterns, each scanning a long path: linear in the input
    // (bounded), and the check fails closed past the bound.
    let check = |k: usize| {
        let paths: Vec<String> = (0..k).map(|i| format!("**x{i}**")).collect();
        let path = "a/".repeat(4 * k);
        let input = paths.iter().map(String::len).sum::<usize>() + path.len();
        let (allowed, units) =
            starfish::proto::work::count(|| scope::match_scope_path(&path, Some(&paths)));
        assert!(!allowed);
        (units, input as u64)
    };
    for k in [100, 200, 400, 800, 1600] {
        let (units, input) = check(k);
        assert!(
            units
                <= scope::SCOPE_WORK_FACTOR as u64 * (input + k as u64)
                    + scope::SCOPE_WORK_FLOOR
                    + 3 * input,
            "{k} patterns: {units} units for {input} input bytes"
        );
    }
    // A real cap: a few patterns, one of which matches a long path.
    let paths = vec![
        "notes/**".to_owned(),
        "users/u1/**".to_owned(),
        "!users/u1/secret".to_owned(),
    ];
    assert!(scope::match_scope_path(
        &format!("users/u1/{}", "d/".repeat(2000)),
        Some(&paths)
    ));
}

#[test]
fn depth_limit_distinguishes_deep_from_invalid() {
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    assert_eq!(
        parse_with_depth(deep.as_bytes(), 64),
        Err(ParseError::TooDeep)
    );
    let broken = "[".repeat(100_000) + &"]".repeat(99_999) + "}";
    assert!(matches!(
        parse_with_depth(broken.as_bytes(), 64),
        Err(ParseError::Syntax(_))
    ));
    let ok = "[".repeat(64) + &"]".repeat(64);
    assert_eq!(parse_with_depth(ok.as_bytes(), 64).unwrap().depth(), 64);
    let obj = r#"{"a":"#.repeat(65) + "1" + &"}".repeat(65);
    assert_eq!(
        parse_with_depth(obj.as_bytes(), 64),
        Err(ParseError::TooDeep)
    );
}

#[test]
fn js_object_order_puts_array_indices_first() {
    let v = parse(br#"{"b":1,"2":1,"a":[],"1":-0,"01":5,"4294967295":6,"4294967294":7}"#).unwrap();
    assert_eq!(
        String::from_utf8(json::to_js_json(&v)).unwrap(),
        r#"{"1":0,"2":1,"4294967294":7,"b":1,"a":[],"01":5,"4294967295":6}"#
    );
}

#[test]
fn duplicate_keys_keep_first_position_last_value() {
    let v = parse(br#"{"a":1,"b":2,"a":3}"#).unwrap();
    assert_eq!(
        String::from_utf8(json::to_js_json(&v)).unwrap(),
        r#"{"a":3,"b":2}"#
    );
    // Many keys go through the indexed path.
    let mut text = String::from("{");
    for i in 0..100 {
        text.push_str(&format!("\"k{i}\":{i},"));
    }
    text.push_str("\"k5\":\"last\"}");
    let v = parse(text.as_bytes()).unwrap();
    let o = v.as_object().unwrap();
    assert_eq!(o.len(), 100);
    assert_eq!(o.get("k5"), Some(&Value::from("last")));
    assert_eq!(o.iter().nth(5).unwrap().0, &"k5");
}

#[test]
fn invalid_utf8_in_strings_becomes_replacement_characters() {
    let v = parse(b"\"a\xffb\"").unwrap();
    assert_eq!(v.as_str(), Some("a\u{fffd}b"));
}

/// The key order an object keeps costs one pointer: a value stays 32 bytes
/// on 64-bit targets (every document is a tree of them).
#[test]
#[cfg(target_pointer_width = "64")]
fn a_value_stays_32_bytes() {
    assert_eq!(std::mem::size_of::<Value>(), 32);
}
