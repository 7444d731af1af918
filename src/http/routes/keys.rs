//! `GET /v1/keys`: the ledger's public keys in C2SP verifier-key form. Public.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;

use crate::AppState;

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
    /// First seq this key signed.
    pub first_seq: u64,
    /// Last seq this key signed (absent for the current key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

/// The public keys that sign events, newest first, each with the seqs it signed.
#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "log",
    operation_id = "list_keys",
    responses((status = 200, description = "The ledger's public keys", body = KeyList))
)]
#[get("/v1/keys")]
pub async fn list_keys(state: web::Data<AppState>) -> HttpResponse {
    let keys = state
        .service
        .keys()
        .into_iter()
        .map(|k| KeyView {
            key_id: k.key_id,
            vkey: k.vkey,
            name: k.name,
            algorithm: "ed25519".into(),
            public_key: k.public_key,
            current: k.current,
            first_seq: k.first_seq,
            last_seq: k.last_seq,
        })
        .collect();
    HttpResponse::Ok().json(KeyList { keys })
}
