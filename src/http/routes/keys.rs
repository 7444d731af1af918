//! `GET /v1/keys`: the ledger's public keys in C2SP verifier-key form. Public.

use actix_web::{get, web, HttpResponse};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Serialize;

use crate::http::AppState;
use crate::signing::Verifier;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// Lower-case hex C2SP key id, as in receipts.
    pub key_id: String,
    /// C2SP verifier key: `name+keyid+base64(0x01 ‖ public key)`.
    pub vkey: String,
    pub name: String,
    pub algorithm: String,
    /// Base64 raw 32-byte Ed25519 public key.
    pub public_key: String,
    /// Whether new events are signed with this key.
    pub current: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

/// The public keys that sign events.
#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "log",
    operation_id = "list_keys",
    responses((status = 200, description = "The ledger's public keys", body = KeyList))
)]
#[get("/v1/keys")]
pub async fn list_keys(state: web::Data<AppState>) -> HttpResponse {
    let v = state.service.ledger().verifier();
    let key = KeyView {
        key_id: hex::encode(v.key_id()),
        vkey: v.vkey(),
        name: v.name().to_owned(),
        algorithm: "ed25519".into(),
        public_key: B64.encode(v.public_key().as_bytes()),
        current: true,
    };
    HttpResponse::Ok().json(KeyList { keys: vec![key] })
}
