//! Bearer API-key authentication as an actix extractor, and role checks.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};

use crate::service::access::{Principal, Role};

use super::error::{ApiError, Kind};
use super::AppState;

/// The authenticated caller of a request.
pub struct Caller(pub Principal);

impl Caller {
    /// Refuses the request unless the key has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<&Principal, ApiError> {
        if self.0.has_any(roles) {
            Ok(&self.0)
        } else {
            let names: Vec<&str> = roles
                .iter()
                .map(|r| match r {
                    Role::Check => "check",
                    Role::Record => "record",
                    Role::Audit => "audit",
                    Role::Admin => "admin",
                    Role::SmsWebhook => "sms-webhook",
                })
                .collect();
            Err(ApiError::new(Kind::Forbidden, format!("this operation needs the role {}", names.join(" or "))))
        }
    }
}

/// The key of an `Authorization: Bearer <key>` header.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::bare(Kind::Internal)));
        };
        let result = match bearer(req) {
            None => Err(ApiError::new(Kind::Unauthorized, "send Authorization: Bearer <api key>")),
            Some(t) => match state.keys.authenticate(t) {
                Some(p) => Ok(Caller(p)),
                None => Err(ApiError::new(Kind::Unauthorized, "the API key is not valid")),
            },
        };
        ready(result)
    }
}
