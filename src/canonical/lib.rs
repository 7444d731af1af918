//! RFC 8785 JSON Canonicalization Scheme: the exact bytes that are signed, hashed and stored.

use serde::Serialize;

mod jcs;

#[derive(Debug, thiserror::Error)]
#[error("value cannot be canonicalised: {0}")]
pub struct CanonicalError(String);

/// The RFC 8785 canonical bytes of `value`, as `serde_json` would serialize it (a float that
/// is not finite is `null`, as `serde_json` writes it; a raw JSON fragment is refused).
pub fn to_canonical_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    thread_local! {
        /// The formatter's buffers, reused by the thread's next serialization.
        static BUFFERS: std::cell::RefCell<jcs::Buffers> = std::cell::RefCell::default();
    }
    let mut out = Vec::with_capacity(512);
    let mut write = |buffers: &mut jcs::Buffers| {
        buffers.reset();
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, jcs::JcsFormatter(buffers));
        value.serialize(&mut serializer).map_err(|e| CanonicalError(e.to_string()))
    };
    // A value whose serialization asks for canonical bytes of its own gets fresh buffers.
    BUFFERS.with(|b| match b.try_borrow_mut() {
        Ok(mut buffers) => write(&mut buffers),
        Err(_) => write(&mut jcs::Buffers::default()),
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn canon(v: &Value) -> String {
        String::from_utf8(to_canonical_bytes(v).unwrap()).unwrap()
    }

    #[test]
    fn keys_are_sorted_by_utf16_code_units() {
        // RFC 8785 section 3.2.3 sorting example.
        let v: Value = serde_json::from_str(
            r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#,
        )
        .unwrap();
        let expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(canon(&v), expected);
    }

    #[test]
    fn strings_use_minimal_escapes() {
        // RFC 8785 section 3.2.2.2: only " \ and control characters are escaped, with the
        // short forms where they exist and lower-case \u00xx otherwise.
        let v = json!({"s": "\u{0}\u{8}\t\n\u{c}\r\u{1f}\"\\/€"});
        assert_eq!(canon(&v), "{\"s\":\"\\u0000\\b\\t\\n\\f\\r\\u001f\\\"\\\\/€\"}");
    }

    #[test]
    fn numbers_follow_ecmascript() {
        // RFC 8785 appendix B samples.
        let cases: &[(&str, &str)] = &[
            ("0", "0"),
            ("-0", "0"),
            ("1e21", "1e+21"),
            ("1e-7", "1e-7"),
            ("123456789012345680000", "123456789012345680000"),
            ("0.000001", "0.000001"),
            ("9007199254740992", "9007199254740992"),
            ("1.5", "1.5"),
            ("333333333.3333333", "333333333.3333333"),
        ];
        for (input, out) in cases {
            let v: Value = serde_json::from_str(input).unwrap();
            assert_eq!(canon(&v), *out, "input {input}");
        }
    }

    #[test]
    fn rfc8785_section_3_2_2_example() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let v: Value = serde_json::from_str(input).unwrap();
        assert_eq!(
            canon(&v),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("\\PC{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Any JSON a parser can give: numbers of every kind, names and strings with escapes,
    /// controls and characters outside the BMP, deep nesting.
    fn arb_any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            (-(1i64 << 54)..(1i64 << 54)).prop_map(|n| json!(n)),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner.clone(), 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::collection::btree_map("[a-c\\u{80}\\u{20ac}\\u{1f600}\\u{fb33}\r\"]{0,3}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A struct with members in an order that is not sorted, as the ledger's documents are.
    #[derive(Debug, Clone, serde::Serialize)]
    struct Doc {
        z: u64,
        a: Option<String>,
        #[serde(rename = "\u{e9}")]
        accented: i32,
        wide: i128,
        tiny: i8,
        m: std::collections::HashMap<String, Vec<f64>>,
        e: Kind,
        nested: Option<Box<Doc>>,
    }

    #[derive(Debug, Clone, serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Plain,
        Wrapped(u8),
        Shaped { y: bool, x: char },
    }

    fn arb_doc() -> impl Strategy<Value = Doc> {
        let kind = prop_oneof![
            Just(Kind::Plain),
            any::<u8>().prop_map(Kind::Wrapped),
            (any::<bool>(), any::<char>()).prop_map(|(y, x)| Kind::Shaped { y, x }),
        ];
        let leaf = (
            any::<u64>(),
            any::<Option<String>>(),
            any::<i32>(),
            any::<i128>(),
            any::<i8>(),
            prop::collection::hash_map(any::<String>(), prop::collection::vec(-1e30f64..1e30, 0..3), 0..3),
            kind,
        );
        (leaf.clone(), prop::option::of(leaf)).prop_map(|((z, a, accented, wide, tiny, m, e), inner)| Doc {
            z,
            a,
            accented,
            wide,
            tiny,
            m,
            e,
            nested: inner.map(|(z, a, accented, wide, tiny, m, e)| {
                Box::new(Doc { z, a, accented, wide, tiny, m, e, nested: None })
            }),
        })
    }

    /// The cases the property tests below once shrank to: members of nested objects kept
    /// apart, and names outside the BMP sorted before those near its top, U+E000 and up (by
    /// UTF-16 code units, not by code points), at any depth.
    #[test]
    fn nested_objects_and_names_beyond_the_bmp() {
        let cases = [
            json!({"": {"": null}}),
            json!({"b": {"y": 1, "x": {"q": [], "p": {}}}, "a": [{"d": 1, "c": 2}]}),
            json!({"": {"\u{fb33}": null, "\u{1f600}": null}}),
            json!({"\u{fffc}": [], "\u{1134b}": [], "z": {"\u{1134b}": 1, "\u{fffc}": 2}}),
        ];
        for v in cases {
            assert_eq!(to_canonical_bytes(&v).unwrap(), serde_json_canonicalizer::to_vec(&v).unwrap(), "{v}");
        }
        assert_eq!(
            String::from_utf8(to_canonical_bytes(&json!({"\u{1134b}": 1, "\u{fffc}": 2})).unwrap()).unwrap(),
            "{\"\u{1134b}\":1,\"\u{fffc}\":2}",
            "U+1134B is D804 DF4B in UTF-16, before FFFC"
        );
    }

    #[test]
    fn a_failed_serialization_leaves_nothing_for_the_next() {
        // Stops halfway, inside an object: a map key that is not a string.
        let bad = json!({"b": 1, "a": {"z": [1, 2]}});
        let mut inner = std::collections::BTreeMap::new();
        inner.insert((1, 2), "pair keys are not JSON");
        let halfway = (bad.clone(), inner);
        assert!(to_canonical_bytes(&halfway).is_err());
        let next = json!({"y": {"b": true}, "x": "after"});
        assert_eq!(to_canonical_bytes(&next).unwrap(), serde_json_canonicalizer::to_vec(&next).unwrap());
        assert_eq!(to_canonical_bytes(&bad).unwrap(), br#"{"a":{"z":[1,2]},"b":1}"#);
    }

    #[test]
    fn a_value_that_asks_for_canonical_bytes_while_serialized_gets_its_own() {
        /// Serializes as the canonical text of what it holds (as a signed envelope might).
        struct Envelope(Value);
        impl serde::Serialize for Envelope {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let inner = to_canonical_bytes(&self.0).map_err(serde::ser::Error::custom)?;
                s.serialize_str(std::str::from_utf8(&inner).map_err(serde::ser::Error::custom)?)
            }
        }
        let outer =
            std::collections::BTreeMap::from([("z", Envelope(json!({"b": 2, "a": 1}))), ("a", Envelope(json!(3)))]);
        assert_eq!(to_canonical_bytes(&outer).unwrap(), br#"{"a":"3","z":"{\"a\":1,\"b\":2}"}"#);
    }

    proptest! {
        /// The same bytes as an independent RFC 8785 implementation (`serde_json_canonicalizer`,
        /// which this crate used before), for any JSON value and for structs, enums and maps.
        #[test]
        fn same_bytes_as_an_independent_implementation(v in arb_any_json()) {
            prop_assert_eq!(to_canonical_bytes(&v).unwrap(), serde_json_canonicalizer::to_vec(&v).unwrap());
        }

        #[test]
        fn same_bytes_for_structs_enums_and_maps(d in arb_doc()) {
            prop_assert_eq!(to_canonical_bytes(&d).unwrap(), serde_json_canonicalizer::to_vec(&d).unwrap());
        }

        /// Canonical bytes parse back to the same value and are a fixed point.
        #[test]
        fn canonical_form_is_stable(v in arb_json()) {
            let bytes = to_canonical_bytes(&v).unwrap();
            let back: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(to_canonical_bytes(&back).unwrap(), bytes);
        }

        /// Canonical bytes contain no insignificant whitespace.
        #[test]
        fn no_whitespace_outside_strings(v in arb_json()) {
            let bytes = to_canonical_bytes(&v).unwrap();
            let mut in_str = false;
            let mut esc = false;
            for b in bytes {
                if in_str {
                    if esc { esc = false } else if b == b'\\' { esc = true } else if b == b'"' { in_str = false }
                } else {
                    prop_assert!(!matches!(b, b' ' | b'\n' | b'\t' | b'\r'));
                    if b == b'"' { in_str = true }
                }
            }
        }
    }
}
