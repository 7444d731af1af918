//! API keys: each belongs to one controller and carries roles. Keys are stored hashed
//! (SHA-256 of the secret), one file per key under `<data>/apikeys/`, so `apikey create` works
//! while a server is running and the server sees a new key at once.
//!
//! A key reads `clk_<16 hex id>_<43 base64url secret>`; only the id names the file.
//!
//! `apikey list` shows every key (id, controller, roles, created, last used; never a secret)
//! and `apikey revoke ID` moves its file aside (`<id>.revoked.json`, kept for the record): a
//! running server stops taking it within [`CACHE_TTL`]. A server notes when a key was last
//! used in `<id>.last-used` (at most once a minute per key).

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ServiceError;
use domain::{ControllerId, Token};
use metrics::{PerThread, Throttle};

/// Why the operator role is refused to a controller's key.
const OPERATOR_ROLE: &str = "the operator role is given by `apikey create --operator`, to a key of no controller";
use signing::write_secret_file;

/// How long a verified key is trusted from memory before its file is read again: a revoked
/// key stops working within this time.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// How long a key that failed is refused from memory, so a flood of bad keys does not read
/// the disk for each request.
const FAILED_TTL: Duration = Duration::from_secs(1);
/// Most failed keys remembered; past it the memory of failures is cleared.
const FAILED_MAX: usize = 10_000;
/// How often a key's last use is written down.
const LAST_USED_EVERY: Duration = Duration::from_secs(60);

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
    /// A downstream system's key (`apikey create --role downstream --system ID`): reads that
    /// system's feed, acknowledges what it applied, and looks up blind indexes.
    Downstream,
    /// Deployment-wide operations (backups): a key of the operator, which belongs to no
    /// controller and reaches no controller's data (`apikey create --operator`).
    Operator,
}

/// Who a valid key stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A controller's key with its roles.
    Controller(Principal),
    /// The operator of the deployment.
    Operator,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub controller: ControllerId,
    pub roles: Vec<Role>,
    /// The key's id (the 16 hex digits after `clk_`), which events it records name.
    pub key_id: String,
    /// The downstream system a `downstream` key is bound to.
    pub system: Option<Token>,
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
    /// None for the operator's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    controller: Option<ControllerId>,
    roles: Vec<Role>,
    secret_sha256: String,
    created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<DateTime<Utc>>,
    /// The downstream system a `downstream` key is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    system: Option<Token>,
}

/// A key as `apikey list` shows it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyListing {
    pub id: String,
    /// None for an operator key.
    pub controller: Option<ControllerId>,
    pub roles: Vec<Role>,
    pub created_at: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key verified recently: who it stands for, when it was verified and when its use was
/// last written down.
struct Verified {
    /// Shared with the requests that present the key through this thread slot (no copy of
    /// it a request).
    principal: Arc<Identity>,
    id: String,
    at: Instant,
    noted: Option<Instant>,
}

/// Where the key records live: files in the data directory, or, on a database ledger, the
/// database, so that every node takes the same keys and a revocation reaches them all.
enum Records {
    Files(PathBuf),
    Database(std::sync::Arc<ledger::shared_keys::SharedKeys>),
}

pub struct KeyStore {
    records: Records,
    /// Keys verified recently, by the key as presented: a map per thread slot, so that a
    /// request's lookup and its clone of the identity write only lines of its own core (each
    /// slot verifies a key once per [`CACHE_TTL`]). Keyed by the key itself, not its SHA-256,
    /// so that a request to a key verified within the moment hashes nothing (two SHA-256
    /// blocks a request otherwise); the key is in the process's memory with every request
    /// that presents it anyway, and only keys that verified are held (never a guess).
    cache: PerThread<Mutex<HashMap<Box<str>, Verified, foldhash::fast::RandomState>>>,
    /// Keys that failed recently, by their SHA-256 (anything a client sends goes here).
    failed: Mutex<HashMap<[u8; 32], Instant>>,
    /// When each key's use was last written down.
    noted: Mutex<HashMap<String, Instant>>,
    /// A test's stand-in for a database that cannot be reached: `verify` fails while set.
    #[cfg(test)]
    unreadable: std::sync::atomic::AtomicBool,
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

impl KeyStore {
    pub fn open(dir: PathBuf) -> Result<Self, ServiceError> {
        fs::create_dir_all(&dir)?;
        Ok(Self::on(Records::Files(dir)))
    }

    /// The keys of a database ledger, kept in its database (`postgres://` URL).
    pub fn on_database(url: &str) -> Result<Self, ServiceError> {
        let keys = ledger::shared_keys::SharedKeys::open(url)?;
        Ok(Self::on(Records::Database(std::sync::Arc::new(keys))))
    }

    fn on(records: Records) -> Self {
        Self {
            records,
            cache: PerThread::default(),
            failed: Mutex::new(HashMap::new()),
            noted: Mutex::default(),
            #[cfg(test)]
            unreadable: Default::default(),
        }
    }

    /// Creates a key and returns it; this is the only time the secret exists in plain form.
    pub fn create(&self, controller: &ControllerId, roles: &[Role]) -> Result<String, ServiceError> {
        if roles.is_empty() {
            return Err(ServiceError::Invalid("at least one role is needed".into()));
        }
        if roles.contains(&Role::Operator) {
            return Err(ServiceError::Invalid(OPERATOR_ROLE.into()));
        }
        if roles.contains(&Role::Downstream) {
            return Err(ServiceError::Invalid("a downstream key is bound to one system: name it with --system".into()));
        }
        self.write_new(Some(controller.clone()), roles, None)
    }

    /// Creates the key of one downstream system of a controller (role `downstream` only).
    pub fn create_for_system(&self, controller: &ControllerId, system: &Token) -> Result<String, ServiceError> {
        self.write_new(Some(controller.clone()), &[Role::Downstream], Some(system.clone()))
    }

    /// Creates a key of the operator: it belongs to no controller and may do only
    /// deployment-wide operations (backups).
    pub fn create_operator(&self) -> Result<String, ServiceError> {
        self.write_new(None, &[Role::Operator], None)
    }

    fn write_new(
        &self,
        controller: Option<ControllerId>,
        roles: &[Role],
        system: Option<Token>,
    ) -> Result<String, ServiceError> {
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
            controller,
            roles,
            secret_sha256: hex::encode(sha256(secret.as_bytes())),
            created_at: Utc::now(),
            revoked_at: None,
            system,
        };
        let text = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
        match &self.records {
            Records::Files(dir) => write_secret_file(&dir.join(format!("{id}.json")), &text)?,
            Records::Database(db) => db.insert(&id, &text)?,
        }
        Ok(format!("clk_{id}_{secret}"))
    }

    /// Who a presented key stands for, if it is a valid key.
    pub fn authenticate(&self, token: &str) -> Option<Identity> {
        self.authenticate_checked(token).ok().flatten().map(|p| (*p).clone())
    }

    /// As [`KeyStore::authenticate`], telling a key that is not valid (`Ok(None)`) from keys
    /// that cannot be read now (the database's keys while it is unreachable): then a key
    /// verified before is still taken as it was last seen, and an unknown one is an error to
    /// retry, never a refusal that would read as "your key is not valid".
    pub fn authenticate_checked(&self, token: &str) -> Result<Option<Arc<Identity>>, ServiceError> {
        let mut note = None;
        if let Ok(mut cache) = self.cache.mine().lock() {
            if let Some(v) = cache.get_mut(token) {
                if v.at.elapsed() < CACHE_TTL {
                    if v.noted.is_none_or(|n| n.elapsed() >= LAST_USED_EVERY) {
                        v.noted = Some(Instant::now());
                        note = Some(v.id.clone());
                    }
                    let p = v.principal.clone();
                    drop(cache);
                    if let Some(id) = note {
                        self.note_use(&id);
                    }
                    return Ok(Some(p));
                }
            }
        }
        let token_hash = sha256(token.as_bytes());
        if let Ok(failed) = self.failed.lock() {
            if failed.get(&token_hash).is_some_and(|at| at.elapsed() < FAILED_TTL) {
                return Ok(None);
            }
        }
        let verified = match self.verify(token) {
            Ok(v) => v,
            Err(()) => {
                let stale = self.cache.all().find_map(|c| c.lock().ok()?.get(token).map(|v| v.principal.clone()));
                return stale.map(Some).ok_or(ServiceError::NotYet(
                    "the API keys cannot be read now (their database is unreachable); retry shortly",
                ));
            }
        };
        Ok(match verified {
            Some((id, p)) => {
                let p = Arc::new(p);
                let noted = self.cache.mine().lock().ok().and_then(|mut cache| {
                    let noted = cache.get(token).and_then(|v| v.noted);
                    let due = noted.is_none_or(|n| n.elapsed() >= LAST_USED_EVERY);
                    let noted = if due { Some(Instant::now()) } else { noted };
                    cache.insert(
                        token.into(),
                        Verified { principal: p.clone(), id: id.clone(), at: Instant::now(), noted },
                    );
                    due.then_some(id)
                });
                if let Some(id) = noted {
                    self.note_use(&id);
                }
                Some(p)
            }
            None => {
                // A key that no longer verifies (revoked, its file gone) leaves every slot's
                // memory: it must not be taken as last seen while the records cannot be read.
                for slot in self.cache.all() {
                    if let Ok(mut cache) = slot.lock() {
                        cache.remove(token);
                    }
                }
                if let Ok(mut failed) = self.failed.lock() {
                    if failed.len() >= FAILED_MAX {
                        failed.clear();
                    }
                    failed.insert(token_hash, Instant::now());
                }
                None
            }
        })
    }

    /// Reads and checks a key from its file: its id and identity when valid and not revoked.
    /// `Err` when the records cannot be read now (the database is unreachable).
    #[allow(clippy::result_unit_err)]
    fn verify(&self, token: &str) -> Result<Option<(String, Identity)>, ()> {
        #[cfg(test)]
        if self.unreadable.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(());
        }
        let Some((id, secret)) = token.strip_prefix("clk_").and_then(|rest| rest.split_once('_')) else {
            return Ok(None);
        };
        if !valid_id(id) {
            return Ok(None);
        }
        let text = match &self.records {
            Records::Files(dir) => fs::read(dir.join(format!("{id}.json"))).ok(),
            Records::Database(db) => match db.get(id) {
                Ok(Some((text, false))) => Some(text),
                Ok(_) => None,
                Err(e) => {
                    // Every request whose key is not held asks again while the database is
                    // unreachable: a warning every 10 s, not one a request.
                    static UNREADABLE: Throttle = Throttle::every_secs(10);
                    if let Some(left_out) = UNREADABLE.due() {
                        tracing::warn!(error = %e, left_out, "could not read an API key (at most one warning in 10 s; left_out: since the last)");
                    }
                    return Err(());
                }
            },
        };
        Ok(text.and_then(|text| Self::check(id, secret, &text)))
    }

    /// The identity of a key record, if `secret` is its secret and it is not revoked.
    fn check(id: &str, secret: &str, text: &[u8]) -> Option<(String, Identity)> {
        let record: KeyRecord = serde_json::from_slice(text).ok()?;
        if record.revoked_at.is_some() {
            return None;
        }
        let want = hex::decode(&record.secret_sha256).ok()?;
        let got = sha256(secret.as_bytes());
        // Constant-time comparison of the two digests.
        if want.len() != 32 || want.iter().zip(got.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
            return None;
        }
        let identity = match record.controller {
            Some(controller) if !record.roles.contains(&Role::Operator) => Identity::Controller(Principal {
                controller,
                roles: record.roles,
                key_id: id.to_string(),
                system: record.system,
            }),
            None if record.roles == [Role::Operator] => Identity::Operator,
            _ => return None, // neither a controller's key nor the operator's
        };
        Some((id.to_owned(), identity))
    }

    /// Writes down that key `id` was used now, on a thread of its own so the request that
    /// used it does no file I/O (best effort: a failure is logged, never fatal). At most once
    /// a minute per key.
    fn note_use(&self, id: &str) {
        // Each thread slot's cache asks at most once a minute; the key's use is written
        // down once a minute whichever asks.
        if let Ok(mut noted) = self.noted.lock() {
            if noted.get(id).is_some_and(|at| at.elapsed() < LAST_USED_EVERY) {
                return;
            }
            noted.insert(id.to_owned(), Instant::now());
        }
        let now = Utc::now().to_rfc3339();
        let write: Box<dyn FnOnce() -> std::io::Result<()> + Send> = match &self.records {
            Records::Files(dir) => {
                let path = dir.join(format!("{id}.last-used"));
                Box::new(move || fs::write(&path, now))
            }
            Records::Database(db) => {
                let (db, id) = (db.clone(), id.to_owned());
                Box::new(move || db.note_use(&id, &now))
            }
        };
        let spawned = std::thread::Builder::new().name("key-last-used".into()).spawn(move || {
            if let Err(e) = write() {
                tracing::warn!(error = %e, "could not note an API key's last use");
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not note an API key's last use");
        }
    }

    /// Every key, active and revoked, oldest first; never a secret.
    pub fn list(&self) -> Result<Vec<KeyListing>, ServiceError> {
        // Each key's id, record and last use, from wherever the records are.
        let mut found: Vec<(String, Vec<u8>, Option<String>)> = Vec::new();
        match &self.records {
            Records::Database(db) => {
                found.extend(db.all()?.into_iter().map(|(id, record, _, last_used)| (id, record, last_used)));
            }
            Records::Files(dir) => {
                for entry in fs::read_dir(dir)? {
                    let path = entry?.path();
                    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
                    let Some(id) = name.strip_suffix(".revoked.json").or_else(|| name.strip_suffix(".json")) else {
                        continue;
                    };
                    if valid_id(id) {
                        let last_used = fs::read_to_string(dir.join(format!("{id}.last-used"))).ok();
                        found.push((id.to_owned(), fs::read(&path)?, last_used));
                    }
                }
            }
        }
        let mut out: Vec<KeyListing> = found
            .into_iter()
            .filter_map(|(id, record, last_used)| {
                let record = serde_json::from_slice::<KeyRecord>(&record).ok()?;
                let last_used =
                    last_used.and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok()).map(|t| t.with_timezone(&Utc));
                Some(KeyListing {
                    id,
                    controller: record.controller,
                    roles: record.roles,
                    created_at: record.created_at,
                    last_used,
                    revoked_at: record.revoked_at,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// Revokes key `id`: its file is rewritten with the time of revocation and moved aside,
    /// so it never authenticates again (a running server stops taking it within
    /// [`CACHE_TTL`]). Revoking a revoked key changes nothing.
    pub fn revoke(&self, id: &str) -> Result<DateTime<Utc>, ServiceError> {
        if !valid_id(id) {
            return Err(ServiceError::NotFound("key"));
        }
        let dir = match &self.records {
            Records::Files(dir) => dir,
            Records::Database(db) => {
                let (text, _) = db.get(id)?.ok_or(ServiceError::NotFound("key"))?;
                let mut record: KeyRecord = serde_json::from_slice(&text).map_err(std::io::Error::other)?;
                if let Some(at) = record.revoked_at {
                    return Ok(at);
                }
                let at = *record.revoked_at.get_or_insert_with(Utc::now);
                let text = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
                db.revoke(id, &text)?;
                // The first revocation's time stands if another revoked it a moment ago.
                let (stored, _) = db.get(id)?.ok_or(ServiceError::NotFound("key"))?;
                let stored: KeyRecord = serde_json::from_slice(&stored).map_err(std::io::Error::other)?;
                return Ok(stored.revoked_at.unwrap_or(at));
            }
        };
        let revoked = dir.join(format!("{id}.revoked.json"));
        let active = dir.join(format!("{id}.json"));
        let text = match fs::read(&active) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Already revoked (or never made).
                return fs::read(&revoked)
                    .ok()
                    .and_then(|t| serde_json::from_slice::<KeyRecord>(&t).ok())
                    .and_then(|r| r.revoked_at)
                    .ok_or(ServiceError::NotFound("key"));
            }
            Err(e) => return Err(e.into()),
        };
        let mut record: KeyRecord = serde_json::from_slice(&text).map_err(std::io::Error::other)?;
        let at = *record.revoked_at.get_or_insert_with(Utc::now);
        // First the active file itself says it is revoked (written aside, then renamed over
        // it), which is what stops it; then it moves aside. A crash between the two leaves a
        // key that no longer authenticates, and revoking again finishes the move.
        let text = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
        let tmp = dir.join(format!("{id}.revoking"));
        let _ = fs::remove_file(&tmp);
        write_secret_file(&tmp, &text)?;
        fs::rename(&tmp, &active)?;
        fs::rename(&active, &revoked)?;
        signing::sync_parent(&revoked)?;
        Ok(at)
    }
}

/// A key id: 16 lower-case hex digits (so it can never name another file).
fn valid_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
        let Some(Identity::Controller(p)) = ks.authenticate(&key) else { panic!("not a controller's key") };
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

    #[test]
    fn a_revoked_key_stops_working_and_the_list_shows_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore::open(dir.path().to_path_buf()).unwrap();
        let c = ControllerId::parse("council").unwrap();
        let key = ks.create(&c, &[Role::Check]).unwrap();
        let other = ks.create(&c, &[Role::Record, Role::Audit]).unwrap();
        assert!(ks.authenticate(&key).is_some());
        // The last use is written down off the request's thread.
        let id = key.split('_').nth(1).unwrap();
        for _ in 0..100 {
            if dir.path().join(format!("{id}.last-used")).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let listed = ks.list().unwrap();
        assert_eq!(listed.len(), 2);
        let mine = listed.iter().find(|k| k.id == id).unwrap();
        assert_eq!(mine.roles, vec![Role::Check]);
        assert!(mine.last_used.is_some() && mine.revoked_at.is_none());
        let text = serde_json::to_string(&listed).unwrap();
        assert!(!text.contains(key.splitn(3, '_').nth(2).unwrap()) && !text.contains("sha256"));
        ks.revoke(id).unwrap();
        std::thread::sleep(CACHE_TTL + Duration::from_millis(50));
        assert!(ks.authenticate(&key).is_none(), "a revoked key still works");
        assert!(ks.authenticate(&other).is_some());
        assert!(ks.list().unwrap().iter().find(|k| k.id == id).unwrap().revoked_at.is_some());
        assert!(ks.revoke(id).is_ok(), "revoking twice changes nothing");
        assert!(matches!(ks.revoke("0000000000000000"), Err(ServiceError::NotFound("key"))));
        assert!(matches!(ks.revoke("../../etc/passwd"), Err(ServiceError::NotFound("key"))));
        // The operator's key belongs to no controller; the operator role is for it alone.
        let op = ks.create_operator().unwrap();
        assert_eq!(ks.authenticate(&op), Some(Identity::Operator));
        assert!(matches!(ks.create(&c, &[Role::Operator]), Err(ServiceError::Invalid(_))));
        assert!(ks.list().unwrap().iter().any(|k| k.controller.is_none() && k.roles == [Role::Operator]));
    }

    #[test]
    fn a_failed_key_is_refused_from_memory_for_a_moment() {
        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore::open(dir.path().to_path_buf()).unwrap();
        let c = ControllerId::parse("council").unwrap();
        let key = ks.create(&c, &[Role::Check]).unwrap();
        let id = key.split('_').nth(1).unwrap().to_owned();
        let wrong = format!("clk_{id}_not-the-secret");
        assert!(ks.authenticate(&wrong).is_none());
        // The key file now says the "wrong" secret is right: a second try within the moment
        // is answered from memory without reading it, so it still fails; after, it reads again.
        let path = dir.path().join(format!("{id}.json"));
        let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        record["secret_sha256"] = hex::encode(sha256(b"not-the-secret")).into();
        std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
        assert!(ks.authenticate(&wrong).is_none(), "a failed key was read from disk again at once");
        std::thread::sleep(FAILED_TTL + Duration::from_millis(50));
        assert!(ks.authenticate(&wrong).is_some());
    }

    #[test]
    fn a_key_verified_before_is_taken_while_the_records_cannot_be_read_unless_it_was_revoked_since() {
        use std::sync::atomic::Ordering::Relaxed;
        let dir = tempfile::tempdir().unwrap();
        let ks = KeyStore::open(dir.path().to_path_buf()).unwrap();
        let c = ControllerId::parse("council").unwrap();
        let kept = ks.create(&c, &[Role::Check]).unwrap();
        let revoked = ks.create(&c, &[Role::Check]).unwrap();
        let never = ks.create(&c, &[Role::Check]).unwrap();
        assert!(ks.authenticate(&kept).is_some() && ks.authenticate(&revoked).is_some());
        // Within the moment a verified key is answered from memory, the records unread.
        ks.unreadable.store(true, Relaxed);
        assert!(ks.authenticate_checked(&kept).unwrap().is_some());
        ks.unreadable.store(false, Relaxed);
        ks.revoke(revoked.split('_').nth(1).unwrap()).unwrap();
        std::thread::sleep(CACHE_TTL + Duration::from_millis(50));
        assert!(ks.authenticate(&revoked).is_none(), "a revoked key still works");
        std::thread::sleep(FAILED_TTL + Duration::from_millis(50));
        ks.unreadable.store(true, Relaxed);
        // Past the moment, with the records unreadable: the key last seen valid is taken as it
        // was, the one seen revoked is not, and one never seen is an error to retry.
        assert!(ks.authenticate_checked(&kept).unwrap().is_some());
        assert!(matches!(ks.authenticate_checked(&revoked), Err(ServiceError::NotYet(_))), "a revoked key came back");
        assert!(matches!(ks.authenticate_checked(&never), Err(ServiceError::NotYet(_))));
        // A key presented with a byte changed is never the cached one.
        let mut changed = kept.clone();
        let last = changed.pop().unwrap();
        changed.push(if last == 'A' { 'B' } else { 'A' });
        assert!(matches!(ks.authenticate_checked(&changed), Err(ServiceError::NotYet(_))));
    }
}
