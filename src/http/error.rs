//! RFC 9457 problem details. Every error the API returns is `application/problem+json` with a
//! stable `type` per kind of error. 5xx bodies say nothing internal; the cause goes to the log.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use domain::DomainError;
use service::ServiceError;

/// The problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A stable URI reference naming the kind of problem, e.g. `/problems/validation`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The kinds of problem, each with its status and stable type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    InvalidJson,
    InvalidQuery,
    InvalidPath,
    Validation,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    MethodNotAllowed,
    BadRequest,
    Unavailable,
    /// Too much is queued: retry after the `Retry-After` seconds.
    Busy,
    /// The disk is full: nothing was written; retry after the `Retry-After` seconds.
    StorageFull,
    Internal,
}

impl Kind {
    fn parts(self) -> (StatusCode, &'static str, &'static str) {
        use Kind::*;
        match self {
            InvalidJson => {
                (StatusCode::BAD_REQUEST, "invalid-json", "The request body is not valid for this operation")
            }
            InvalidQuery => {
                (StatusCode::BAD_REQUEST, "invalid-query", "The query string is not valid for this operation")
            }
            InvalidPath => (StatusCode::BAD_REQUEST, "invalid-path", "A path parameter is not valid"),
            Validation => (StatusCode::UNPROCESSABLE_ENTITY, "validation", "The request breaks a rule of the ledger"),
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "A valid API key is required"),
            Forbidden => (StatusCode::FORBIDDEN, "forbidden", "The API key does not allow this operation"),
            NotFound => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Conflict => (StatusCode::CONFLICT, "conflict", "The request conflicts with the log"),
            PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "The request body is too large"),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "The request body must be application/json",
            ),
            MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "The route does not take this method")
            }
            BadRequest => (StatusCode::BAD_REQUEST, "bad-request", "The request is not valid"),
            Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "The ledger is not accepting requests"),
            Busy => {
                (StatusCode::SERVICE_UNAVAILABLE, "busy", "The ledger is busy; retry after the Retry-After seconds")
            }
            StorageFull => (
                StatusCode::SERVICE_UNAVAILABLE,
                "storage-full",
                "The ledger's disk is full; nothing was written; retry after the Retry-After seconds",
            ),
            Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }
}

impl Kind {
    /// The kind for an error status that actix (not our code) answered with.
    fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Kind::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Kind::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => Kind::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Kind::UnsupportedMediaType,
            StatusCode::SERVICE_UNAVAILABLE => Kind::Unavailable,
            s if s.is_client_error() => Kind::BadRequest,
            _ => Kind::Internal,
        }
    }
}

/// Middleware hook: an error answer that actix made itself (a wrong method, an oversized raw
/// body, a malformed request line) has a plain-text body; it is replaced by problem+json of
/// the same status. Our own problems and the HTML pages of signed links are left alone.
pub fn actix_errors_as_problems<B>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::middleware::ErrorHandlerResponse;
    let content_type = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !(content_type.is_empty() || content_type.starts_with("text/plain")) {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let kind = Kind::from_status(res.status());
    let (req, _) = res.into_parts();
    let resp = ApiError::bare(kind).error_response();
    Ok(ErrorHandlerResponse::Response(actix_web::dev::ServiceResponse::new(req, resp).map_into_right_body()))
}

/// The one error type of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: Kind,
    pub detail: Option<String>,
}

impl ApiError {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Self { kind, detail: Some(detail.into()) }
    }

    pub fn bare(kind: Kind) -> Self {
        Self { kind, detail: None }
    }

    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.kind.parts();
        Problem {
            kind: format!("/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.detail.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.problem();
        write!(f, "{}: {}", p.title, p.detail.unwrap_or_default())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if self.kind == Kind::Unauthorized {
            resp.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        match self.kind {
            Kind::Busy => {
                resp.insert_header((header::RETRY_AFTER, "1"));
            }
            Kind::StorageFull => {
                resp.insert_header((header::RETRY_AFTER, "5"));
            }
            Kind::Unavailable => {
                resp.insert_header((header::RETRY_AFTER, "2"));
            }
            _ => {}
        }
        resp.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(m) => ApiError::new(Kind::Validation, m),
            ServiceError::Shape { index, error } => {
                // The domain names no route; the HTTP layer says where such an event comes from.
                let m = match error {
                    DomainError::ByPurposeCatalogue(k) => {
                        format!("{k} is recorded through PUT /v1/purposes/{{purpose}}")
                    }
                    DomainError::ByDownstream(k) => {
                        format!("{k} is recorded through PUT /v1/downstream/{{system}} or POST /v1/downstream/acknowledgements")
                    }
                    DomainError::ByNoticeCatalogue(k) => format!("{k} is recorded through PUT /v1/notices/{{id}}"),
                    DomainError::ByKeyRotation(k) => format!("{k} is recorded by `consent-ledger keys rotate`"),
                    other => other.to_string(),
                };
                ApiError::new(Kind::Validation, index.map_or(m.clone(), |i| format!("event {i}: {m}")))
            }
            ServiceError::NotFound(what) => ApiError::new(Kind::NotFound, format!("{what} not found")),
            ServiceError::LinkInvalid | ServiceError::LinkExpired => ApiError::new(Kind::NotFound, "link not found"),
            ServiceError::OutOfRange => ApiError::new(Kind::InvalidQuery, ServiceError::OutOfRange.to_string()),
            ServiceError::Conflict(m) => ApiError::new(Kind::Conflict, m),
            ServiceError::Unavailable => ApiError::bare(Kind::Unavailable),
            ServiceError::Busy => ApiError::new(Kind::Busy, "too many writes are waiting; retry shortly"),
            ServiceError::StorageFull => {
                ApiError::new(Kind::StorageFull, "the disk is full: nothing was written; retry once space is freed")
            }
            ServiceError::NotYet(m) => ApiError::new(Kind::Unavailable, m),
            ServiceError::Unauthenticated(m) => ApiError::new(Kind::Unauthorized, m),
            ServiceError::Io(cause) => {
                tracing::error!(error = %cause, "data directory file");
                ApiError::bare(Kind::Internal)
            }
            ServiceError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                ApiError::bare(Kind::Internal)
            }
        }
    }
}

/// Removes quoted values from a parser message, so a value a client sent in the wrong field
/// (perhaps an address) is never echoed back or logged.
pub fn redact(msg: &str) -> String {
    // serde quotes a value the client sent in double quotes, and a variant or field name the
    // client sent in backticks after "unknown variant" / "unknown field"; `uuid` repeats a
    // character the client sent in backticks after "found" ("found `z` at 3"); other
    // backticked names (a missing field, what was expected) are ours, and stay.
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(c) = rest.chars().next() {
        let theirs = c == '"'
            || (c == '`'
                && ["unknown variant ", "unknown field ", "found "].iter().any(|before| out.ends_with(before)));
        if !theirs {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        // The quoted value becomes `…`, between its own quotes (the closing one if any).
        out.push(c);
        out.push('…');
        match rest[1..].find(c) {
            Some(end) => {
                out.push(c);
                rest = &rest[end + 2..];
            }
            None => rest = "",
        }
    }
    out
}

/// The words of the refusal of a batch over the limit: the batch's parser stops with them, and
/// the JSON error handler answers them as a rule broken (422), not as malformed JSON.
pub fn too_many_events() -> String {
    format!("at most {} events may be recorded at once", service::MAX_EVENTS_AT_ONCE)
}

/// Maps actix's JSON body errors to problems.
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let e = match &err {
        E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => {
            ApiError::new(Kind::PayloadTooLarge, format!("the body may be at most {limit} bytes"))
        }
        E::ContentType => ApiError::bare(Kind::UnsupportedMediaType),
        E::Deserialize(d) if d.to_string().starts_with(&too_many_events()) => {
            ApiError::new(Kind::Validation, too_many_events())
        }
        E::Deserialize(d) => ApiError::new(Kind::InvalidJson, redact(&d.to_string())),
        _ => ApiError::new(Kind::InvalidJson, "the body could not be read"),
    };
    e.into()
}

/// Maps actix's path errors to problems.
pub fn path_error(err: actix_web::error::PathError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::new(Kind::InvalidPath, redact(&err.to_string())).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_quoted_values() {
        assert_eq!(
            redact("invalid type: string \"jane@example.org\", expected u64 at line 1"),
            "invalid type: string \"…\", expected u64 at line 1"
        );
        // A value sent where a variant or field name goes comes back in backticks.
        assert_eq!(
            redact("unknown variant `jane@example.org`, expected one of `email`, `sms`"),
            "unknown variant `…`, expected one of `email`, `sms`"
        );
        assert_eq!(
            redact("unknown field `jane@example.org`, expected `purpose`"),
            "unknown field `…`, expected `purpose`"
        );
        assert!(!redact("unknown variant `07700 900123`").contains("07700"));
        assert_eq!(redact("missing field `Body`"), "missing field `Body`");
    }

    #[test]
    fn redact_drops_the_character_a_uuid_refused() {
        let said = uuid::Uuid::parse_str("0z1a2c5a-d9b2-7560-9cf3-2b13e0e9ea66").unwrap_err().to_string();
        assert!(said.contains("`z`"), "uuid's words changed: {said}");
        let redacted = redact(&said);
        assert!(!redacted.contains("`z`"), "{redacted}");
        assert!(redacted.contains("found `…`"), "{redacted}");
    }
}
