//! `spawn_app()` gives every test a fresh server and store, and a `TestApp` with one method
//! per endpoint.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use consent_ledger::domain::ControllerId;
use consent_ledger::http::{Application, HttpOptions};
use consent_ledger::ledger::{DataDir, Ledger};
use consent_ledger::service::access::{KeyStore, Role};
use consent_ledger::service::Service;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub dir: TempDir,
    pub admin: String,
    pub record: String,
    pub check: String,
    pub audit: String,
    /// A key of another controller with every role.
    pub other: String,
    /// The database of a run with the log in PostgreSQL (`postgres.rs`), which keeps the
    /// API keys (the app's server reads them there, as a node does) and the SMS providers'
    /// tokens.
    pub database: Option<String>,
    server: Option<(actix_web::dev::ServerHandle, std::thread::JoinHandle<()>)>,
    service: Option<Arc<Service>>,
}

/// The databases of the apps of a run with the log in PostgreSQL, by data directory: a node
/// reads its API keys from the database only, so the tests make them there.
static DATABASES: std::sync::Mutex<Vec<(std::path::PathBuf, String)>> = std::sync::Mutex::new(Vec::new());

/// The key store the server of the ledger in `dir` reads: the database's when an app of a
/// run on PostgreSQL serves it, otherwise the directory's files. Opened on a thread of its own
/// (the database driver runs a runtime of its own, which cannot start inside a test's).
fn key_store(dir: &std::path::Path) -> KeyStore {
    with_keys(dir, |ks| ks)
}

/// Runs `f` with the key store of the ledger in `dir` (see [`key_store`]), on a thread of its own.
pub fn with_keys<T: Send + 'static>(dir: &std::path::Path, f: impl FnOnce(KeyStore) -> T + Send + 'static) -> T {
    let url = DATABASES.lock().expect("databases").iter().find(|(d, _)| d == dir).map(|(_, u)| u.clone());
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        f(match url {
            Some(url) => KeyStore::on_database(&url).expect("the database's key store"),
            None => KeyStore::open(DataDir::new(dir).api_keys()).expect("key store"),
        })
    })
    .join()
    .expect("keys")
}

pub fn new_keys(dir: &std::path::Path, controller: &str, roles: &[Role]) -> String {
    let (controller, roles) = (ControllerId::parse(controller).expect("controller"), roles.to_vec());
    with_keys(dir, move |ks| ks.create(&controller, &roles).expect("key"))
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(HttpOptions { workers: Some(1), ..Default::default() }).await
}

/// A fresh server and store with these HTTP options.
pub async fn spawn_app_with(options: HttpOptions) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = DataDir::new(dir.path());
    let mut database = None;
    let ledger = match std::env::var(crate::postgres::BACKEND_ENV) {
        // The suite run again with its log in PostgreSQL (see `postgres.rs`): a database of
        // its own for each test.
        Ok(server) => {
            let url = crate::postgres::new_database(&server);
            database = Some(url.clone());
            let options = consent_ledger::ledger::Options {
                database: Some(url.clone()),
                ..consent_ledger::ledger::Options::new("test.example/consent-ledger")
            };
            // The database driver runs a runtime of its own: open outside this test's.
            let root = data.root().to_path_buf();
            let open = std::thread::spawn(move || {
                let data = DataDir::new(root);
                consent_ledger::ledger::init_database(&data, &url, "test.example/consent-ledger").expect("init");
                Ledger::open_with(&data, options)
            });
            DATABASES.lock().expect("databases").push((dir.path().to_path_buf(), database.clone().expect("url")));
            open.join().expect("open").expect("open ledger")
        }
        Err(_) => Ledger::open(&data, "test.example/consent-ledger").expect("open ledger"),
    };
    let keys = Arc::new(key_store(dir.path()));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let service = Arc::new(Service::new(ledger));
    // The server runs on a thread of its own, so a test can stop it (and close the store)
    // when it ends, whatever its own runtime is doing.
    let (tx, rx) = std::sync::mpsc::channel();
    let for_server = service.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let app = Application::build(listener, for_server, keys, options).expect("build");
            tx.send((app.port(), app.handle())).expect("send handle");
            let _ = app.run_until_stopped().await;
        });
    });
    let (port, handle) = rx.recv().expect("server started");
    let address = format!("http://127.0.0.1:{port}");
    let all = [Role::Check, Role::Record, Role::Audit, Role::Admin];
    let (admin, record, check, audit, other) = (
        new_keys(dir.path(), "council", &[Role::Admin]),
        new_keys(dir.path(), "council", &[Role::Record]),
        new_keys(dir.path(), "council", &[Role::Check]),
        new_keys(dir.path(), "council", &[Role::Audit]),
        new_keys(dir.path(), "other-council", &all),
    );
    if database.is_some() {
        let files = std::fs::read_dir(data.api_keys()).map(|d| d.count()).unwrap_or(0);
        assert_eq!(files, 0, "on PostgreSQL the keys are the database's, as a node reads them");
    }
    TestApp {
        address,
        client: reqwest::Client::new(),
        admin,
        record,
        check,
        audit,
        other,
        database,
        dir,
        server: Some((handle, thread)),
        service: Some(service),
    }
}

impl Drop for TestApp {
    /// Stops the server and closes the store before the temporary directory goes, so no
    /// RocksDB instance outlives its test (RocksDB aborts a process that exits with one open).
    fn drop(&mut self) {
        if let Some((handle, thread)) = self.server.take() {
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    rt.block_on(handle.stop(false));
                }
            })
            .join();
            let _ = thread.join();
        }
        if let Ok(mut databases) = DATABASES.lock() {
            databases.retain(|(d, _)| d != self.dir.path());
        }
        if let Some(service) = self.service.take() {
            for _ in 0..200 {
                if Arc::strong_count(&service) == 1 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            drop(service);
        }
    }
}

/// Asserts an RFC 9457 problem answer with `status` and returns its body.
pub async fn assert_problem(resp: Response, status: StatusCode) -> Value {
    assert_eq!(resp.status(), status);
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned());
    assert_eq!(ct.as_deref(), Some("application/problem+json"));
    let body: Value = resp.json().await.expect("problem body");
    assert!(body["type"].as_str().is_some_and(|t| t.starts_with("/problems/")), "{body}");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["title"].is_string());
    body
}

pub fn newsletter() -> Value {
    json!({"title": "The Voice newsletter", "description": "News a few times a year.", "basis": "consent",
           "marketing": true, "channels": ["email", "post", "sms"], "consent_valid_days": 730})
}

pub fn repairs() -> Value {
    json!({"title": "Repair and appointment messages", "basis": "contract", "marketing": false,
           "channels": ["sms", "phone", "email"]})
}

pub fn staff() -> Value {
    json!({"kind": "staff", "id": "staff-42"})
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn put_purpose(&self, key: &str, id: &str, body: &Value) -> Response {
        self.client.put(self.url(&format!("/v1/purposes/{id}"))).bearer_auth(key).json(body).send().await.expect("send")
    }

    pub async fn list_purposes(&self, key: &str) -> Response {
        self.client.get(self.url("/v1/purposes")).bearer_auth(key).send().await.expect("send")
    }

    /// Defines `newsletter` and `repairs-updates`.
    pub async fn with_purposes(&self) {
        assert_eq!(self.put_purpose(&self.admin, "newsletter", &newsletter()).await.status(), StatusCode::OK);
        assert_eq!(self.put_purpose(&self.admin, "repairs-updates", &repairs()).await.status(), StatusCode::OK);
    }

    /// `GET path` with `key`.
    pub async fn get_as(&self, key: &str, path: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(key).send().await.expect("send")
    }

    /// `GET path` with `key`, its JSON body.
    pub async fn get_json(&self, key: &str, path: &str) -> Value {
        self.get_as(key, path).await.json().await.expect("json")
    }

    pub async fn put_notice(&self, key: &str, id: &str, body: &Value) -> Response {
        self.client.put(self.url(&format!("/v1/notices/{id}"))).bearer_auth(key).json(body).send().await.expect("send")
    }

    /// Publishes notice `id` with a short text of its own; answers its receipt.
    pub async fn with_notice(&self, id: &str) -> Value {
        let body = serde_json::json!({"version": "1", "title": "How we use your information",
            "url": "https://example.org/privacy", "text": format!("Privacy notice {id}.\n\nWe use your details to...")});
        let resp = self.put_notice(&self.admin, id, &body).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json().await.expect("json")
    }

    pub async fn post_event(&self, key: &str, body: &Value) -> Response {
        self.client.post(self.url("/v1/events")).bearer_auth(key).json(body).send().await.expect("send")
    }

    /// Records an event with the record key and returns its receipt.
    pub async fn record(&self, body: Value) -> Value {
        let resp = self.post_event(&self.record, &body).await;
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert_eq!(status, StatusCode::CREATED, "{text}");
        serde_json::from_str(&text).expect("receipt")
    }

    pub async fn post_batch(&self, key: &str, body: &Value) -> Response {
        self.client.post(self.url("/v1/events/batch")).bearer_auth(key).json(body).send().await.expect("send")
    }

    pub async fn get_event(&self, key: &str, id: &str) -> Response {
        self.client.get(self.url(&format!("/v1/events/{id}"))).bearer_auth(key).send().await.expect("send")
    }

    pub async fn check_raw(&self, key: &str, query: &[(&str, &str)]) -> Response {
        self.client.get(self.url("/v1/check")).bearer_auth(key).query(query).send().await.expect("send")
    }

    /// A check with the check key that must succeed.
    pub async fn check(&self, query: &[(&str, &str)]) -> Value {
        let resp = self.check_raw(&self.check, query).await;
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert_eq!(status, StatusCode::OK, "{text}");
        serde_json::from_str(&text).expect("answer")
    }

    pub async fn post_checks(&self, key: &str, body: &Value) -> Response {
        self.client.post(self.url("/v1/checks")).bearer_auth(key).json(body).send().await.expect("send")
    }

    pub async fn history(&self, key: &str, subject: &str) -> Response {
        self.client
            .get(self.url(&format!("/v1/subjects/{subject}/history")))
            .bearer_auth(key)
            .send()
            .await
            .expect("send")
    }

    pub async fn permissions(&self, key: &str, subject: &str) -> Response {
        self.client
            .get(self.url(&format!("/v1/subjects/{subject}/permissions")))
            .bearer_auth(key)
            .send()
            .await
            .expect("send")
    }

    /// A preference link for `subject` (record key); returns the page URL.
    pub async fn preference_link(&self, subject: &str) -> String {
        let resp = self
            .client
            .post(self.url(&format!("/v1/subjects/{subject}/preference-links")))
            .bearer_auth(&self.record)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), StatusCode::CREATED);
        let v: Value = resp.json().await.expect("json");
        v["url"].as_str().expect("url").to_owned()
    }

    /// A preference link token made with this ledger's own token key, for any payload (an
    /// expired link, say).
    pub fn preference_token(&self, payload: &consent_ledger::service::PreferenceToken) -> String {
        let key = consent_ledger::tokens::TokenKey::load_or_create(&DataDir::new(self.dir.path()).token_key())
            .expect("token key");
        key.sign(consent_ledger::tokens::TokenUse::Preferences, payload)
    }

    /// Whether `signature` (base64) by the key `key_id` of `/v1/keys` signs the RFC 8785 form
    /// of `doc`.
    pub async fn verifies(&self, doc: &Value, signature: &str, key_id: &str) -> bool {
        use base64::Engine;
        use ed25519_dalek::Verifier;
        let b64 = base64::engine::general_purpose::STANDARD;
        let keys: Value = self.client.get(self.url("/v1/keys")).send().await.expect("send").json().await.expect("json");
        let Some(k) = keys["keys"].as_array().expect("keys").iter().find(|k| k["key_id"] == key_id) else {
            return false;
        };
        let pk: [u8; 32] = b64.decode(k["public_key"].as_str().expect("pk")).expect("b64").try_into().expect("32");
        let pk = ed25519_dalek::VerifyingKey::from_bytes(&pk).expect("key");
        let Ok(sig) = b64.decode(signature) else { return false };
        let Ok(sig) = <[u8; 64]>::try_from(sig) else { return false };
        pk.verify(&serde_json_canonicalizer::to_vec(doc).expect("jcs"), &ed25519_dalek::Signature::from_bytes(&sig))
            .is_ok()
    }

    /// The number of durable events, from `/readyz`.
    pub async fn log_size(&self) -> u64 {
        let v: Value = self.client.get(self.url("/readyz")).send().await.expect("send").json().await.expect("json");
        v["log_size"].as_u64().expect("log_size")
    }
}

/// The real binary, for a command.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_consent-ledger"))
}

/// Every event of the controller a server holds, in seq order, read through the paged feed.
pub async fn feed(client: &reqwest::Client, address: &str, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let page: Value = client
            .get(format!("{address}/v1/feed?after={after}&limit=1000"))
            .bearer_auth(key)
            .send()
            .await
            .expect("feed")
            .json()
            .await
            .expect("json");
        out.extend(page["events"].as_array().expect("events").iter().cloned());
        after = page["next_after"].as_u64().expect("next_after");
        if page["has_more"] != true {
            return out;
        }
    }
}

/// The real binary serving a data directory on a free port.
pub struct Server {
    pub child: Child,
    pub address: String,
}

impl Server {
    /// Stops the server (kill -9: every acknowledged event is already durable).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_server(dir: &std::path::Path) -> Server {
    start_server_with(dir, &[])
}

/// The real binary serving a data directory on a free port, with extra `serve` arguments.
pub fn start_server_with(dir: &std::path::Path, args: &[&str]) -> Server {
    let mut child = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "2"])
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read line");
    let address = line.trim().strip_prefix("listening on ").expect("listening line").to_owned();
    Server { child, address }
}
