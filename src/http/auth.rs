//! Bearer API-key authentication as an actix extractor, and role checks.

use std::future::{ready, Ready};

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};

use service::access::{Identity, Principal, Role};

use super::error::{ApiError, Kind};
use super::AppState;

/// The authenticated caller of a request (the identity its key's verification holds).
pub struct Caller(pub std::sync::Arc<Identity>);

impl Caller {
    /// Refuses the request unless the key is a controller's with one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<&Principal, ApiError> {
        let Identity::Controller(p) = &*self.0 else {
            return Err(ApiError::new(Kind::Forbidden, "an operator key reaches no controller's data"));
        };
        if p.has_any(roles) {
            Ok(p)
        } else {
            let names: Vec<&str> = roles
                .iter()
                .map(|r| match r {
                    Role::Check => "check",
                    Role::Record => "record",
                    Role::Audit => "audit",
                    Role::Admin => "admin",
                    Role::SmsWebhook => "sms-webhook",
                    Role::Downstream => "downstream",
                    Role::Operator => "operator",
                })
                .collect();
            Err(ApiError::new(Kind::Forbidden, format!("this operation needs the role {}", names.join(" or "))))
        }
    }
}

impl Caller {
    /// Refuses the request unless the key is the operator's (deployment-wide operations).
    pub fn require_operator(&self) -> Result<(), ApiError> {
        match *self.0 {
            Identity::Operator => Ok(()),
            Identity::Controller(_) => Err(ApiError::new(
                Kind::Forbidden,
                "this operation needs an operator key (consent-ledger apikey create --operator)",
            )),
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
            Some(t) => match state.keys.authenticate_checked(t) {
                Ok(Some(p)) => Ok(Caller(p)),
                Ok(None) => Err(ApiError::new(Kind::Unauthorized, "the API key is not valid")),
                Err(e) => Err(e.into()),
            },
        };
        ready(result)
    }
}
