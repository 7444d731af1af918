//! RFC 8785 JSON Canonicalization Scheme: the exact bytes that are signed, hashed and stored.

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
#[error("value cannot be canonicalised: {0}")]
pub struct CanonicalError(String);

/// The RFC 8785 canonical bytes of `value`.
pub fn to_canonical_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    serde_json_canonicalizer::to_vec(value).map_err(|e| CanonicalError(e.to_string()))
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

    proptest! {
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
