//! Query strings read into a route's parameters, as actix's `web::Query` reads them
//! (`serde_urlencoded`), but a refusal names the parameter whose value did not read: serde's
//! own words for a number or a choice that does not parse ("invalid digit found in string")
//! do not say which of a query's values it was.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use crate::error::{redact, ApiError, Kind};

/// A route's query parameters, read by [`read`].
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> std::ops::Deref for Query<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(read(req.query_string()).map(Query))
    }
}

/// Reads `query` into `T`; a refusal is an `invalid-query` problem in serde's words (values
/// the client sent left out), after the parameter whose value did not read.
pub fn read<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    serde_urlencoded::from_str(query).map_err(|e| {
        let said = e.to_string();
        let detail = match culprit::<T>(query, &said) {
            Some(name) => format!("`{name}`: {}", redact(&said)),
            None => redact(&said),
        };
        ApiError::new(Kind::InvalidQuery, detail)
    })
}

/// Most pairs a refusal is searched for its parameter in (a longer query is refused in
/// serde's words alone).
const MOST_PAIRS: usize = 64;

/// The name of the parameter whose value `T` refused with `said`, when serde's words do not
/// name it already. serde reads the pairs in order and stops at the first value that does not
/// read, so a query's first `k` pairs are refused in the same words exactly when the culprit
/// is among them (a shorter prefix reads, or is refused for a missing parameter): found by
/// bisection. `None` when the words already name a parameter, or the name is not one a route
/// could have (so nothing the client sent is repeated beyond a parameter's name).
fn culprit<T: DeserializeOwned>(query: &str, said: &str) -> Option<String> {
    if ["missing field", "unknown field", "duplicate field"].iter().any(|named| said.starts_with(named)) {
        return None;
    }
    let pairs: Vec<&str> = query.split('&').collect();
    if pairs.len() > MOST_PAIRS {
        return None;
    }
    let refused_alike =
        |k: usize| serde_urlencoded::from_str::<T>(&pairs[..k].join("&")).is_err_and(|e| e.to_string() == said);
    // The shortest prefix refused alike: `hi` always is (it is the whole query).
    let (mut lo, mut hi) = (0, pairs.len());
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if refused_alike(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let (name, _) = serde_urlencoded::from_str::<Vec<(String, String)>>(pairs[hi - 1]).ok()?.into_iter().next()?;
    let ours = !name.is_empty() && name.len() <= 32 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ours.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        purpose: String,
        after: Option<u64>,
        limit: Option<usize>,
        signed: Option<bool>,
    }

    fn refused(query: &str) -> String {
        read::<Params>(query).unwrap_err().detail.unwrap_or_default()
    }

    #[test]
    fn a_value_that_does_not_read_is_refused_naming_its_parameter() {
        assert_eq!(refused("purpose=a&after=-1"), "`after`: invalid digit found in string");
        assert_eq!(refused("after=1&limit=x&purpose=a"), "`limit`: invalid digit found in string");
        assert_eq!(
            refused("purpose=a&after=1&limit=2&signed=maybe"),
            "`signed`: provided string was not `true` or `false`"
        );
        // The first that does not read, when two do not.
        assert_eq!(refused("limit=&after=x&purpose=a"), "`limit`: cannot parse integer from empty string");
        // Names percent-encoded are read as the route reads them.
        assert_eq!(refused("purpose=a&aft%65r=x"), "`after`: invalid digit found in string");
    }

    #[test]
    fn refusals_that_name_their_parameter_or_concern_none_are_left_in_serde_s_words() {
        assert_eq!(refused("after=1"), "missing field `purpose`");
        assert_eq!(
            refused("purpose=a&jane%40example.org=1"),
            "unknown field `…`, expected one of `purpose`, `after`, `limit`, `signed`"
        );
        assert_eq!(refused("purpose=a&purpose=b"), "duplicate field `purpose`");
        assert!(read::<Params>("purpose=a&after=7").is_ok_and(|p| p.after == Some(7)));
    }
}
