//! API keys: each belongs to one controller and carries roles. Keys are stored hashed
//! (SHA-256 of the secret), one file per key under `<data>/apikeys/`, so `apikey create` works
//! while a server is running and the server sees a new key at once.
//!
//! A key reads `clk_<16 hex id>_<43 base64url secret>`; only the id names the file.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::ControllerId;
use crate::signing::write_secret_file;

/// How long a verified key is trusted from memory before its file is read again.
const CACHE_TTL: Duration = Duration::from_secs(10);

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Ask whether a contact or share is permitted (mailing systems).
    Check,
    /// Record events (staff, portals).
    Record,
    /// Read history and export (auditors, DPO).
    Audit,
    /// Manage purposes, notices and keys.
    Admin,
    /// Only deliver inbound SMS to `POST /v1/inbound/sms` (a provider's webhook secret).
    SmsWebhook,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub controller: ControllerId,
    pub roles: Vec<Role>,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has(*r))
    }
}

#[derive(Serialize, Deserialize)]
struct KeyRecord {
    controller: ControllerId,
    roles: Vec<Role>,
    secret_sha256: String,
    created_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("api key store: {0}")]
    Io(#[from] std::io::Error),
    #[error("at least one role is needed")]
    NoRoles,
}

pub struct KeyStore {
    dir: PathBuf,
    cache: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

impl KeyStore {
    pub fn open(dir: PathBuf) -> Result<Self, KeyStoreError> {
        fs::create_dir_all(&dir)?;
        Ok(Self { dir, cache: Mutex::new(HashMap::new()) })
    }

    /// Creates a key and returns it; this is the only time the secret exists in plain form.
    pub fn create(&self, controller: &ControllerId, roles: &[Role]) -> Result<String, KeyStoreError> {
        if roles.is_empty() {
            return Err(KeyStoreError::NoRoles);
        }
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut id);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let id = hex::encode(id);
        let secret = B64URL.encode(secret);
        let mut roles = roles.to_vec();
        roles.sort_by_key(|r| *r as u8);
        roles.dedup();
        let record = KeyRecord {
            controller: controller.clone(),
            roles,
            secret_sha256: hex::encode(sha256(secret.as_bytes())),
            created_at: Utc::now(),
        };
        let text = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
        write_secret_file(&self.dir.join(format!("{id}.json")), &text)?;
        Ok(format!("clk_{id}_{secret}"))
    }

    /// The principal a presented key stands for, if it is a valid key.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let token_hash = sha256(token.as_bytes());
        if let Ok(cache) = self.cache.lock() {
            if let Some((p, at)) = cache.get(&token_hash) {
                if at.elapsed() < CACHE_TTL {
                    return Some(p.clone());
                }
            }
        }
        let rest = token.strip_prefix("clk_")?;
        let (id, secret) = rest.split_once('_')?;
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return None;
        }
        let text = fs::read(self.dir.join(format!("{id}.json"))).ok()?;
        let record: KeyRecord = serde_json::from_slice(&text).ok()?;
        let want = hex::decode(&record.secret_sha256).ok()?;
        let got = sha256(secret.as_bytes());
        // Constant-time comparison of the two digests.
        if want.len() != 32 || want.iter().zip(got.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
            return None;
        }
        let p = Principal { controller: record.controller, roles: record.roles };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(token_hash, (p.clone(), Instant::now()));
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_key_authenticates_and_tampered_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore::open(dir.path().to_path_buf()).unwrap();
        let c = ControllerId::parse("council").unwrap();
        let key = ks.create(&c, &[Role::Check]).unwrap();
        let p = ks.authenticate(&key).unwrap();
        assert_eq!(p.controller, c);
        assert!(p.has(Role::Check) && !p.has(Role::Record));
        let mut bad = key.clone();
        bad.pop();
        bad.push('A');
        assert!(ks.authenticate(&bad).is_none() || bad == key);
        assert!(ks.authenticate("clk_../../etc_x").is_none());
        // The secret is not stored in plain form.
        let stored: String = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        // `clk_{hex id}_{secret}`: the secret is everything after the second underscore (it may
        // hold underscores of its own).
        let secret = key.splitn(3, '_').nth(2).unwrap();
        assert!(secret.len() >= 40 && !stored.contains(secret));
    }
}
