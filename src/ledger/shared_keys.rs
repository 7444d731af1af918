//! The API key records and SMS providers' tokens of a database ledger, kept in the database
//! so that every node takes the same keys and a revocation reaches them all. The service's
//! key store decides what a record holds (a hash of the secret, the controller, the roles);
//! this only keeps them.

use std::sync::{Arc, Mutex};

use super::db_conn::{DatabaseState, Remote};

/// A handle on the database's API key table; cheap to share between threads (one connection,
/// used under a lock: a key is read from it once per second at most, the store caches).
pub struct SharedKeys {
    remote: Mutex<Remote>,
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("the API keys' database: {e}"))
}

impl SharedKeys {
    /// The key table of the database at `url` (brought to the current schema).
    pub fn open(url: &str) -> std::io::Result<Self> {
        let keys = Self { remote: Mutex::new(Remote::new(url, Arc::new(DatabaseState::default()))) };
        keys.with(|c| c.migrate())?;
        Ok(keys)
    }

    /// Runs `f` on the connection, on a thread of its own: the driver keeps a runtime of its
    /// own, which may not be entered from a request's (the caller waits; a lookup happens
    /// at most once per key per second, the key store caches).
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut pglog::PgLog) -> Result<T, pglog::PgError> + Send,
    ) -> std::io::Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut remote = self.remote.lock().map_err(io)?;
                let result = f(remote.conn().map_err(io)?);
                match result {
                    Ok(v) => Ok(v),
                    Err(e) => {
                        remote.failed(&e);
                        Err(io(e))
                    }
                }
            })
            .join()
            .unwrap_or_else(|_| Err(io("a key lookup stopped")))
        })
    }

    pub fn insert(&self, id: &str, record: &[u8]) -> std::io::Result<()> {
        self.with(|c| c.insert_api_key(id, record))
    }

    /// The record of key `id` and whether it was revoked.
    pub fn get(&self, id: &str) -> std::io::Result<Option<(Vec<u8>, bool)>> {
        self.with(|c| c.api_key(id))
    }

    /// Every key: id, record, revoked, last use.
    pub fn all(&self) -> std::io::Result<Vec<pglog::ApiKeyRow>> {
        self.with(|c| c.api_keys())
    }

    /// Stores the revoked record of key `id` (the first revocation stays); false when there is
    /// no such key.
    pub fn revoke(&self, id: &str, record: &[u8]) -> std::io::Result<bool> {
        self.with(|c| c.revoke_api_key(id, record))
    }

    pub fn note_use(&self, id: &str, at: &str) -> std::io::Result<()> {
        self.with(|c| c.note_api_key_use(id, at))
    }

    /// A controller's token at an SMS provider (`twilio`), if set.
    pub fn provider_token(&self, controller: &str, provider: &str) -> std::io::Result<Option<Vec<u8>>> {
        let (controller, provider) = (controller.to_owned(), provider.to_owned());
        self.with(move |c| c.provider_token(&controller, &provider))
    }

    /// Sets (or with `None` removes) a controller's token at an SMS provider.
    pub fn set_provider_token(&self, controller: &str, provider: &str, token: Option<&[u8]>) -> std::io::Result<()> {
        self.with(|c| c.set_provider_token(controller, provider, token))
    }
}

impl Drop for SharedKeys {
    /// The driver closes its connection by blocking on a runtime of its own, which may not
    /// happen on a thread that drives another (a request's, a test's): close it on one of its
    /// own.
    fn drop(&mut self) {
        if let Ok(remote) = self.remote.get_mut() {
            let taken = std::mem::replace(remote, Remote::new("", Arc::new(DatabaseState::default())));
            let _ = std::thread::spawn(move || drop(taken)).join();
        }
    }
}
