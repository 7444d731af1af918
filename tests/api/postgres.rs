//! The log in PostgreSQL, against a real PostgreSQL server this test starts (`initdb` in a
//! temporary directory, a free port, as user `postgres` when run as root) and stops: several
//! nodes (the real binary) writing at once, a node killed with -9 mid-write, the database
//! restarted under writes, a write on one node read on another with `min_seq`, and a node
//! whose shared secret differs refused at start.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consent_ledger::service::access::Role;
use serde_json::{json, Value};

use crate::helpers::{bin, feed, new_keys, newsletter, staff, start_server_with, Server};

/// Set (to a server's `postgres://` URL without a database) when the suite runs again with
/// its log in PostgreSQL: `spawn_app` then gives each test a database of its own.
pub const BACKEND_ENV: &str = "CONSENT_LEDGER_TEST_POSTGRES";

/// A new, empty database on the server at `server` (`postgres://user@host:port`); its URL.
pub fn new_database(server: &str) -> String {
    let name = format!("t_{}", uuid::Uuid::now_v7().simple());
    let port = server.rsplit(':').next().expect("port");
    let out = Command::new(pg_bin().join("createdb"))
        .args(["-h", "127.0.0.1", "-p", port, "-U", "postgres", &name])
        .output()
        .expect("createdb");
    assert!(out.status.success(), "createdb: {}", String::from_utf8_lossy(&out.stderr));
    format!("{server}/{name}")
}

/// A PostgreSQL cluster of its own, stopped when dropped.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

fn pg_bin() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.join("initdb").exists() {
            return p;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    found.sort();
    found.pop().expect("PostgreSQL is installed (.ci/setup installs it)")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

impl PgCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let cluster = Self { dir, bin: pg_bin(), port };
        if is_root() {
            let ok = Command::new("chown").arg("-R").arg("postgres").arg(cluster.dir.path()).status().expect("chown");
            assert!(ok.success());
        }
        let out = cluster
            .pg("initdb", &["-D", &cluster.data(), "-A", "trust", "-U", "postgres", "--no-sync"])
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        cluster.start_again();
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    fn pg(&self, tool: &str, args: &[&str]) -> Command {
        let mut c = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        };
        c.args(args).stdout(Stdio::null());
        c
    }

    pub fn url(&self) -> String {
        format!("{}/postgres", self.server())
    }

    /// The server's URL without a database.
    pub fn server(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// A cluster that takes TLS connections only, with a server certificate for 127.0.0.1
    /// issued by a CA of its own; returns the CA's certificate file too.
    pub fn start_tls_only() -> (Self, PathBuf) {
        let cluster = Self::start();
        cluster.stop();
        let d = cluster.dir.path();
        let run = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(d).output().expect("openssl");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(d.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").expect("ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        let data = PathBuf::from(cluster.data());
        for f in ["server.crt", "server.key"] {
            std::fs::copy(d.join(f), data.join(f)).expect("copy");
        }
        std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
            .expect("hba");
        let conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
        std::fs::write(data.join("postgresql.conf"), format!("{conf}\nssl = on\n")).expect("conf");
        if is_root() {
            let ok = Command::new("chown").arg("-R").arg("postgres").arg(d).status().expect("chown");
            assert!(ok.success());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data.join("server.key"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        cluster.start_again();
        let ca = d.join("ca.crt");
        (cluster, ca)
    }

    /// One value of a query, as `psql` prints it.
    pub fn query(&self, sql: &str) -> String {
        let port = self.port.to_string();
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", "postgres", "-Atc", sql])
            .output()
            .expect("psql");
        assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn start_again(&self) {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        let log = self.dir.path().join("log").to_string_lossy().into_owned();
        let st =
            self.pg("pg_ctl", &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"]).status().expect("pg_ctl");
        assert!(st.success(), "pg_ctl start");
    }

    pub fn stop(&self) {
        let _ = self.pg("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]).status();
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.pg("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]).status();
    }
}

/// A node: the real binary serving a data directory against the cluster; killed when dropped.
struct Node {
    server: Server,
    dir: PathBuf,
}

impl Node {
    fn start(dir: &Path, url: &str) -> Self {
        let server = start_server_with(dir, &["--database-url", url, "--checkpoint-interval-ms", "200"]);
        Self { server, dir: dir.to_path_buf() }
    }
    fn address(&self) -> &str {
        &self.server.address
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.server.stop();
    }
}

const SHARED: [&str; 4] = ["signing-key.json", "keyring.json", "blind-index.key", "token.key"];

/// `init` in the first directory, then the shared files copied to the others (as an operator
/// would), and one key with every role, made once in the database for every node.
fn init_nodes(url: &str, dirs: &[&Path]) -> String {
    let out = bin()
        .args(["init", "--database-url", url, "--log-name", "pg.test/ledger", "--data-dir"])
        .arg(dirs[0])
        .output()
        .expect("init");
    assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
    for d in &dirs[1..] {
        for f in SHARED {
            std::fs::copy(dirs[0].join(f), d.join(f)).expect("copy shared file");
        }
    }
    db_key(url, &["--role", "admin", "--role", "record", "--role", "check", "--role", "audit"])
}

/// A key of controller `council` made with `apikey create --database-url`.
fn db_key(url: &str, roles: &[&str]) -> String {
    let out = bin()
        .args(["apikey", "create", "--database-url", url, "--controller", "council"])
        .args(roles)
        .output()
        .expect("apikey create");
    assert!(out.status.success(), "apikey: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Defines the newsletter purpose through the node at `address`.
async fn define_newsletter(client: &reqwest::Client, address: &str, key: &str) {
    let r = client.put(format!("{address}/v1/purposes/newsletter")).bearer_auth(key).json(&newsletter()).send().await;
    assert!(r.expect("put").status().is_success());
}

async fn post(client: &reqwest::Client, address: &str, key: &str, body: &Value) -> reqwest::Response {
    client.post(format!("{address}/v1/events")).bearer_auth(key).json(body).send().await.expect("post")
}

fn grant(subject: &str) -> Value {
    json!({"type": "consent.granted", "subject": subject, "purpose": "newsletter", "actor": staff()})
}

/// A check of a subject nobody recorded, after the node holds `min_seq` when given.
async fn check(client: &reqwest::Client, address: &str, key: &str, min_seq: Option<u64>) -> reqwest::Response {
    let wait = min_seq.map(|s| format!("&min_seq={s}")).unwrap_or_default();
    client
        .get(format!("{address}/v1/check?purpose=newsletter&channel=email&subject=nobody{wait}"))
        .bearer_auth(key)
        .send()
        .await
        .expect("check")
}

async fn log_size(client: &reqwest::Client, address: &str, key: &str) -> u64 {
    let r: Value = check(client, address, key, None).await.json().await.expect("json");
    r["log_size"].as_u64().expect("log_size")
}

fn verify(dir: &Path) {
    let out = bin().arg("verify").arg("--data-dir").arg(dir).output().expect("verify");
    assert!(out.status.success(), "verify {}: {}", dir.display(), String::from_utf8_lossy(&out.stdout));
}

/// An export of a node's replica verifies offline against the published key: every event's
/// signature, and the tree head against every signed checkpoint the database holds, whichever
/// node signed it. Returns how many checkpoints it held.
/// With `kept`, the export must also be consistent with that checkpoint, kept from before.
fn export_verifies(dir: &Path, vkey: &str, kept: Option<&str>) -> usize {
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("export.ndjson");
    let out = bin()
        .args(["export", "--controller", "council", "--data-dir"])
        .arg(dir)
        .arg("--out")
        .arg(&file)
        .output()
        .expect("export");
    assert!(out.status.success(), "export: {}", String::from_utf8_lossy(&out.stderr));
    let mut verify = bin();
    verify.args(["verify", "--key", vkey, "--export"]).arg(&file);
    if let Some(note) = kept {
        let kept_file = work.path().join("kept.checkpoint");
        std::fs::write(&kept_file, note).expect("write");
        verify.arg("--checkpoint").arg(&kept_file);
    }
    let out = verify.output().expect("verify");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}");
    assert!(kept.is_none() || said.contains("consistent with the kept checkpoint"), "{said}");
    said.split("matches ").nth(1).and_then(|t| t.split(' ').next()).and_then(|n| n.parse().ok()).expect("a count")
}

async fn vkey_of(client: &reqwest::Client, address: &str) -> String {
    let keys: Value = client.get(format!("{address}/v1/keys")).send().await.expect("keys").json().await.expect("json");
    keys["keys"][0]["vkey"].as_str().expect("vkey").to_owned()
}

/// Writers on every node at once, each answer kept; returns the receipts acknowledged.
async fn write_everywhere(
    client: &reqwest::Client,
    addresses: &[String],
    key: &str,
    per_writer: usize,
    tag: &str,
) -> Vec<Value> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (n, address) in addresses.iter().enumerate() {
        for w in 0..4 {
            let (client, address, key, acked) = (client.clone(), address.clone(), key.to_owned(), acked.clone());
            let tag = tag.to_owned();
            tasks.push(tokio::spawn(async move {
                for i in 0..per_writer {
                    let sent = client
                        .post(format!("{address}/v1/events"))
                        .bearer_auth(&key)
                        .json(&grant(&format!("{tag}-{n}-{w}-{i}")))
                        .send()
                        .await;
                    // A node killed mid-write answers nothing more: its writers stop.
                    let Ok(r) = sent else { break };
                    if r.status().is_success() {
                        let body = r.json::<Value>().await.expect("json");
                        acked.lock().expect("lock").push(body);
                    }
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let out = acked.lock().expect("lock").clone();
    out
}

/// Writers on every node until `for_how_long` has passed; returns the receipts acknowledged
/// and how many writes were refused (a 503).
async fn write_until(
    client: &reqwest::Client,
    addresses: &[String],
    key: &str,
    for_how_long: Duration,
    tag: &str,
) -> (Vec<Value>, usize) {
    let deadline = std::time::Instant::now() + for_how_long;
    let mut tasks = Vec::new();
    for (n, address) in addresses.iter().enumerate() {
        for w in 0..2 {
            let (client, address, key, tag) = (client.clone(), address.clone(), key.to_owned(), tag.to_owned());
            tasks.push(tokio::spawn(async move {
                let (mut acked, mut refused, mut i) = (Vec::new(), 0, 0);
                while std::time::Instant::now() < deadline {
                    i += 1;
                    let r = post(&client, &address, &key, &grant(&format!("{tag}-{n}-{w}-{i}"))).await;
                    match r.status().as_u16() {
                        201 => acked.push(r.json::<Value>().await.expect("json")),
                        503 => {
                            refused += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        other => panic!("a write answered {other}"),
                    }
                }
                (acked, refused)
            }));
        }
    }
    let (mut acked, mut refused) = (Vec::new(), 0);
    for t in tasks {
        let (a, r) = t.await.expect("writer");
        acked.extend(a);
        refused += r;
    }
    (acked, refused)
}

/// The value of the first series of a `/metrics` text named `name` (a count).
fn series(text: &str, name: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {text}"));
    line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a count")
}

#[tokio::test]
async fn three_nodes_on_one_database_write_at_once_and_agree() {
    let pg = PgCluster::start();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let paths: Vec<&Path> = dirs.iter().map(|d| d.path()).collect();
    let key = init_nodes(&pg.url(), &paths);
    let nodes: Vec<Node> = paths.iter().map(|p| Node::start(p, &pg.url())).collect();
    let client = reqwest::Client::new();
    let addresses: Vec<String> = nodes.iter().map(|n| n.address().to_owned()).collect();

    // A purpose defined on one node is usable on another at once.
    define_newsletter(&client, &addresses[0], &key).await;
    let r = post(&client, &addresses[1], &key, &grant("first")).await;
    assert_eq!(r.status(), 201, "an event on node B right after the purpose on node A");

    // A retry of an event on another node answers the original receipt, as a retry (200).
    let mut with_id = grant("retried");
    with_id["id"] = json!("01930000-0000-7000-8000-00000000abcd");
    let first = post(&client, &addresses[0], &key, &with_id).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    let again = post(&client, &addresses[2], &key, &with_id).await;
    assert_eq!(again.status(), 200, "the retry on another node is not a new event");
    assert_eq!(again.json::<Value>().await.expect("json")["event"], first["event"]);

    let acked = write_everywhere(&client, &addresses, &key, 25, "s").await;
    assert_eq!(acked.len(), 3 * 4 * 25, "every write on every node was acknowledged");

    // A key made once works on every node; revoked once, every node stops taking it.
    let checker = db_key(&pg.url(), &["--role", "check"]);
    for a in &addresses {
        assert_eq!(check(&client, a, &checker, None).await.status(), 200);
    }
    let id = checker.split('_').nth(1).expect("id").to_owned();
    let out = bin().args(["apikey", "revoke", "--database-url", &pg.url(), &id]).output().expect("revoke");
    assert!(out.status.success(), "revoke: {}", String::from_utf8_lossy(&out.stderr));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for a in &addresses {
        assert_eq!(check(&client, a, &checker, None).await.status(), 401, "a revoked key is refused everywhere");
    }

    // A Twilio token set once is every node's: an unsigned form is refused on any node.
    let webhook = db_key(&pg.url(), &["--role", "sms-webhook"]);
    let mut set = bin()
        .args(["sms", "twilio-token", "--database-url", &pg.url(), "--controller", "council"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("sms twilio-token");
    std::io::Write::write_all(&mut set.stdin.take().expect("stdin"), b"twilio-auth-token\n").expect("token");
    assert!(set.wait().expect("wait").success());
    let params: Vec<(String, String)> =
        [("From", "+447700900123"), ("To", "+447700900999"), ("Body", "STOP"), ("MessageSid", "SM1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    for a in &addresses {
        let url = format!("{a}/v1/inbound/sms?key={webhook}");
        let unsigned = client.post(&url).form(&params).send().await.expect("form");
        assert_eq!(unsigned.status(), 401, "an unsigned form on a node that was not told the token");
        let good = consent_ledger::service::sms::twilio_signature(b"twilio-auth-token", &url, &params);
        let signed = client.post(&url).form(&params).header("X-Twilio-Signature", good).send().await.expect("form");
        assert_eq!(signed.status(), 200);
    }

    // A write on A, then a check on B with min_seq: B answers with it.
    let last = post(
        &client,
        &addresses[0],
        &key,
        &json!({"type": "consent.withdrawn", "subject": "first", "purpose": "newsletter", "actor": staff()}),
    )
    .await
    .json::<Value>()
    .await
    .expect("json");
    let seq = last["event"]["seq"].as_u64().expect("seq");
    let check: Value = client
        .get(format!("{}/v1/check?purpose=newsletter&channel=email&subject=first&min_seq={seq}", addresses[2]))
        .bearer_auth(&key)
        .send()
        .await
        .expect("check")
        .json()
        .await
        .expect("json");
    assert_eq!(check["permitted"], false, "node C sees the withdrawal made on node A: {check}");

    // Every node holds the same gapless log with every acknowledged event exactly once.
    // The purpose, two grants, the one STOP (its message id delivered to three nodes, recorded
    // once), the writers' events and the withdrawal.
    let total = 4 + acked.len() as u64 + 1;
    for n in &nodes {
        let _ = log_size(&client, n.address(), &key).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let first = feed(&client, &addresses[0], &key).await;
    assert_eq!(first.len() as u64, total);
    for (i, e) in first.iter().enumerate() {
        assert_eq!(e["event"]["seq"].as_u64(), Some(i as u64 + 1), "seqs are gapless");
    }
    for a in &addresses[1..] {
        assert_eq!(feed(&client, a, &key).await, first, "every node holds the same log");
    }
    let ids: std::collections::HashSet<&str> = first.iter().filter_map(|e| e["event"]["id"].as_str()).collect();
    for r in &acked {
        assert!(ids.contains(r["event"]["id"].as_str().expect("id")));
    }
    assert_eq!(ids.len() as u64, total, "no event twice");

    // Checkpoints, signed by whichever node held the lease, are one consistent series, and
    // each node's replica verifies (bytes, hashes, signatures, projections, checkpoints).
    let checkpoint = client.get(format!("{}/v1/log/checkpoint", addresses[1])).send().await.expect("cp");
    assert!(checkpoint.status().is_success());
    // The node reports the database and how far behind it its replica is.
    let metrics =
        client.get(format!("{}/metrics", addresses[2])).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("consent_ledger_database_up 1\n"), "{metrics}");
    assert!(metrics.contains("consent_ledger_replica_lag "), "{metrics}");
    // Every locked commit says how long it waited for the head and held it.
    let mut held = 0;
    for address in &addresses {
        let text = client.get(format!("{address}/metrics")).send().await.expect("metrics").text().await.expect("text");
        let count = |name: &str| series(&text, name);
        let locked = count("consent_ledger_database_commits_total{head=\"locked\"}");
        assert!(count("consent_ledger_database_lock_held_seconds_count") >= locked, "{text}");
        assert!(count("consent_ledger_database_lock_wait_seconds_count") >= locked, "{text}");
        held += count("consent_ledger_database_lock_held_seconds_count");
    }
    assert!(held > 0, "three nodes writing at once took turns on the head's lock");
    let vkey = vkey_of(&client, &addresses[0]).await;
    drop(nodes);
    for p in &paths {
        verify(p);
    }
    assert!(export_verifies(paths[2], &vkey, None) >= 2, "checkpoints were signed as the log grew");
}

#[tokio::test]
async fn a_killed_node_loses_nothing_acknowledged_and_the_database_restarting_loses_nothing() {
    let pg = PgCluster::start();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let paths: Vec<&Path> = dirs.iter().map(|d| d.path()).collect();
    let key = init_nodes(&pg.url(), &paths);
    // B starts first, so it holds the checkpoint lease when it is killed.
    let mut b = Node::start(paths[1], &pg.url());
    let a = Node::start(paths[0], &pg.url());
    let lease_before = pg.query("SELECT holder FROM checkpoint_lease");
    let client = reqwest::Client::new();
    define_newsletter(&client, a.address(), &key).await;

    // Writers on both; B is killed with -9 in the middle.
    let addresses = vec![a.address().to_owned(), b.address().to_owned()];
    let writing = {
        let (client, key) = (client.clone(), key.clone());
        tokio::spawn(async move { write_everywhere(&client, &addresses, &key, 40, "k").await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    b.server.stop();
    let acked = writing.await.expect("writers");
    assert!(acked.len() >= 4 * 40, "A went on writing: {}", acked.len());
    let b = Node::start(&b.dir.clone(), &pg.url());
    let seq_max = acked.iter().filter_map(|r| r["event"]["seq"].as_u64()).max().expect("a seq");
    assert!(
        check(&client, b.address(), &key, Some(seq_max)).await.status().is_success(),
        "the restarted node caught up"
    );
    let held: std::collections::HashSet<String> = feed(&client, b.address(), &key)
        .await
        .iter()
        .filter_map(|e| e["event"]["id"].as_str().map(str::to_owned))
        .collect();
    for r in &acked {
        assert!(held.contains(r["event"]["id"].as_str().expect("id")), "an acknowledged event is missing");
    }

    // The database goes down under writes on both nodes: writes are refused with 503 and
    // Retry-After, readiness fails; once it is back, writes go on, and every write either
    // side acknowledged, before, during or after, is in the log.
    let load = {
        let (client, key) = (client.clone(), key.clone());
        let addresses = vec![a.address().to_owned(), b.address().to_owned()];
        tokio::spawn(async move { write_until(&client, &addresses, &key, Duration::from_millis(2500), "d").await })
    };
    let unused = db_key(&pg.url(), &["--role", "check"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg.stop();
    let r = post(&client, a.address(), &key, &grant("while-down")).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    // Checks go on from the replica with a key the node knows; a key it never saw cannot be
    // read now: 503 to retry, never a 401 that would say the key is not valid.
    assert_eq!(check(&client, a.address(), &key, None).await.status(), 200, "checks answer while the database is down");
    assert_eq!(check(&client, a.address(), &unused, None).await.status(), 503);
    let ready = client.get(format!("{}/readyz", a.address())).send().await.expect("readyz");
    assert_eq!(ready.status(), 503, "not ready while the database is down");
    tokio::time::sleep(Duration::from_millis(300)).await;
    pg.start_again();
    let (during, refused) = load.await.expect("load");
    assert!(refused > 0, "writes were refused while the database was down");
    assert!(!during.is_empty(), "writes were acknowledged around the outage");
    let mut ok = false;
    for _ in 0..50 {
        if post(&client, a.address(), &key, &grant("after")).await.status() == 201 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ok, "writes resume once the database is back");
    let size = log_size(&client, a.address(), &key).await;
    assert!(check(&client, b.address(), &key, Some(size)).await.status().is_success());
    let all: std::collections::HashSet<String> = feed(&client, b.address(), &key)
        .await
        .iter()
        .filter_map(|e| e["event"]["id"].as_str().map(str::to_owned))
        .collect();
    for r in acked.iter().chain(&during) {
        assert!(all.contains(r["event"]["id"].as_str().expect("id")), "an acknowledged event is missing");
    }
    let vkey = vkey_of(&client, a.address()).await;
    // Another node took the lease over from the killed one and went on signing checkpoints,
    // each consistent with the ones before.
    let mut taken_over = false;
    for _ in 0..50 {
        let (holder, newest) =
            (pg.query("SELECT holder FROM checkpoint_lease"), pg.query("SELECT max(size) FROM log_checkpoints"));
        if holder != lease_before && newest == size.to_string() {
            taken_over = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(taken_over, "the lease moved on and the whole log was checkpointed");
    drop((a, b));
    for p in &paths {
        verify(p);
    }
    let n = export_verifies(paths[0], &vkey, None);
    assert!(n >= 2, "{n} checkpoints; the database has {}", pg.query("SELECT count(*) FROM log_checkpoints"));
}

#[tokio::test]
async fn a_node_whose_shared_secret_differs_is_refused_by_name() {
    let pg = PgCluster::start();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let paths: Vec<&Path> = dirs.iter().map(|d| d.path()).collect();
    init_nodes(&pg.url(), &paths);
    // A directory `init --database-url` made is a node before it first serves: a key made
    // in its files would never be read by the node, so the command refuses and names the flag.
    let out = bin()
        .args(["apikey", "create", "--controller", "council", "--role", "check", "--data-dir"])
        .arg(paths[0])
        .env_remove("CONSENT_LEDGER_DATABASE_URL")
        .output()
        .expect("apikey");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("--database-url"), "{said}");
    assert!(!paths[0].join("apikeys").exists(), "no key file was written");
    // Served without the database, it would take events that never reach the log.
    let out = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(paths[0])
        .env_remove("CONSENT_LEDGER_DATABASE_URL")
        .output()
        .expect("serve");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && said.contains("--database-url"), "{said}");
    std::fs::write(paths[1].join("token.key"), [7u8; 32]).expect("write");
    let out = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &pg.url(), "--data-dir"])
        .arg(paths[1])
        .output()
        .expect("serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("token.key"), "the refusal names the file: {err}");
    std::fs::remove_file(paths[1].join("blind-index.key")).expect("rm");
    let out = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &pg.url(), "--data-dir"])
        .arg(paths[1])
        .output()
        .expect("serve");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("blind-index.key"));
    assert!(!paths[1].join("blind-index.key").exists(), "a missing shared secret is never created");
}

/// A node writing alone commits each group in one statement after its own replica, not
/// holding the log's head across round trips (`/metrics` counts how each commit went); that
/// statement writes only while the head is the one the group was signed after, and an id the
/// log holds fails it whole, under the head's lock too.
#[tokio::test]
async fn a_lone_node_commits_without_the_lock_and_a_moved_head_writes_nothing() {
    use consent_ledger::pglog::{Expected, LogRow, Node as TreeNode, PgLog};
    let pg = PgCluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = init_nodes(&pg.url(), &[dir.path()]);
    let node = Node::start(dir.path(), &pg.url());
    let client = reqwest::Client::new();
    define_newsletter(&client, node.address(), &key).await;
    for i in 0..5 {
        assert_eq!(post(&client, node.address(), &key, &grant(&format!("alone{i}"))).await.status(), 201);
    }
    let metrics = client.get(format!("{}/metrics", node.address())).send().await.expect("metrics");
    let metrics = metrics.text().await.expect("text");
    let counter = |name: &str| series(&metrics, name);
    assert!(counter("consent_ledger_database_commits_total{head=\"unlocked\"}") >= 6, "{metrics}");
    assert_eq!(counter("consent_ledger_database_commits_total{head=\"locked\"}"), 0, "{metrics}");
    assert_eq!(counter("consent_ledger_database_head_moved_total"), 0, "{metrics}");
    drop(node);
    verify(dir.path());

    let size: u64 = pg.query("SELECT size FROM ledger_head").parse().expect("size");
    let edge = pg.query("SELECT encode(frontier, 'hex') FROM ledger_head");
    let last: i64 = pg.query("SELECT last_recorded_micros FROM ledger_head").parse().expect("last");
    let unhex = |h: String| -> Vec<u8> {
        (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex")).collect()
    };
    let held = unhex(pg.query("SELECT encode(id_key, 'hex') FROM log_events WHERE seq = 1"));
    let edge = unhex(edge);
    let url = pg.url();
    /// A stand-in event: the log layer stores bytes and reads none of them.
    fn row(seq: u64, id: &[u8]) -> LogRow {
        LogRow {
            seq,
            id_key: id.to_vec(),
            key_id: vec![1],
            signature: vec![2; 64],
            leaf_hash: vec![3; 32],
            event: b"{}".to_vec(),
        }
    }
    let held_again = held.clone();
    tokio::task::spawn_blocking(move || {
        let mut log = PgLog::connect(&url).expect("connect");
        let node = TreeNode { level: 0, index: size, hash: vec![4; 32] };
        let stale = Expected { size: size - 1, last_recorded_micros: last, frontier: &edge };
        let wrote = log.append_after(stale, &[row(size, b"x-stale")], &[], last + 1, b"edge", "t").expect("stale");
        assert!(!wrote, "a group signed after an older head writes nothing");
        let other_tree = Expected { size, last_recorded_micros: last, frontier: b"another tree" };
        let wrote = log.append_after(other_tree, &[row(size + 1, b"x-stale")], &[], last + 1, b"edge", "t");
        assert!(!wrote.expect("other tree"), "a group signed after another tree's edge writes nothing");
        let current = Expected { size, last_recorded_micros: last, frontier: &edge };
        let e = log.append_after(current, &[row(size + 1, &held)], &[], last + 1, b"edge", "t").expect_err("held id");
        assert!(e.is_duplicate(), "{e}");
        let wrote = log
            .append_after(current, &[row(size + 1, b"x-new")], std::slice::from_ref(&node), last + 1, b"edge", "t")
            .expect("current");
        assert!(wrote, "a group signed after the current head is written");
    })
    .await
    .expect("appends");
    assert_eq!(pg.query("SELECT size FROM ledger_head"), (size + 1).to_string());
    assert_eq!(pg.query("SELECT count(*) FROM log_events"), (size + 1).to_string());
    assert_eq!(pg.query("SELECT count(*) FROM log_events WHERE id_key = 'x-stale'::bytea"), "0");
    assert_eq!(pg.query("SELECT seq FROM log_events WHERE id_key = 'x-new'::bytea"), (size + 1).to_string());

    // Under the head's lock, the write goes with its commit: a write that fails (an id the log
    // holds) commits nothing and leaves the head unlocked; a group dropped unwritten releases
    // it; the next group is written.
    let (url, size) = (pg.url(), size + 1);
    let mut log = tokio::task::spawn_blocking(move || {
        let mut log = PgLog::connect(&url).expect("connect");
        let mut other = PgLog::connect(&url).expect("connect");
        let append = log.begin_append().expect("lock");
        assert_eq!(append.head.size, size);
        let last = append.head.last_recorded_micros;
        let e = append.commit(&[row(size + 1, &held_again)], &[], last + 1, b"edge", "t").expect_err("held id");
        assert!(e.is_duplicate(), "{e}");
        let append = other.begin_append().expect("the lock is free again");
        assert_eq!(append.head.size, size, "nothing of the failed write committed");
        drop(append);
        let append = log.begin_append().expect("the same connection locks again");
        append.commit(&[row(size + 1, b"x-locked")], &[], last + 1, b"edge", "t").expect("written");
        log
    })
    .await
    .expect("locked appends");
    assert_eq!(pg.query("SELECT size FROM ledger_head"), (size + 1).to_string());
    assert_eq!(pg.query("SELECT seq FROM log_events WHERE id_key = 'x-locked'::bytea"), (size + 1).to_string());
    assert_eq!(pg.query("SELECT count(*) FROM log_events"), (size + 1).to_string());

    // A lock's connection that the server closed while it idled is opened again.
    let closed =
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'consent-ledger'";
    assert_ne!(pg.query(closed), "0");
    tokio::task::spawn_blocking(move || {
        let append = log.begin_append().expect("locks on a new connection");
        let last = append.head.last_recorded_micros;
        append.commit(&[row(size + 2, b"x-after")], &[], last + 1, b"edge", "t").expect("written");
    })
    .await
    .expect("after a closed connection");
    assert_eq!(pg.query("SELECT seq FROM log_events WHERE id_key = 'x-after'::bytea"), (size + 2).to_string());
}

#[tokio::test]
async fn an_embedded_ledger_migrated_into_postgres_keeps_its_receipts_and_checkpoints() {
    let pg = PgCluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = new_keys(dir.path(), "council", &[Role::Admin, Role::Record, Role::Check, Role::Audit]);
    let client = reqwest::Client::new();

    // An embedded ledger with some history and a signed checkpoint.
    let mut embedded = start_server_with(dir.path(), &["--checkpoint-interval-ms", "100"]);
    let address = embedded.address.clone();
    define_newsletter(&client, &address, &key).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let r: Value = post(&client, &address, &key, &grant(&format!("m-{i}"))).await.json().await.expect("json");
        ids.push(r["event"]["id"].as_str().expect("id").to_owned());
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let receipt_before: Value = client
        .get(format!("{address}/v1/events/{}/receipt", ids[3]))
        .bearer_auth(&key)
        .send()
        .await
        .expect("receipt")
        .json()
        .await
        .expect("json");
    let kept = client.get(format!("{address}/v1/log/checkpoint")).send().await.expect("cp").text().await.expect("text");
    assert!(kept.contains("\n21\n"), "a checkpoint covers the whole log: {kept}");
    let keys: Value = client.get(format!("{address}/v1/keys")).send().await.expect("keys").json().await.expect("json");
    let vkey = keys["keys"][0]["vkey"].as_str().expect("vkey").to_owned();
    embedded.stop();

    let out =
        bin().args(["migrate", "--database-url", &pg.url(), "--data-dir"]).arg(dir.path()).output().expect("migrate");
    assert!(out.status.success(), "migrate: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("21 events"));

    // The same directory now serves as a node; a second node starts from the shared files.
    let other = tempfile::tempdir().expect("tempdir");
    for f in SHARED {
        std::fs::copy(dir.path().join(f), other.path().join(f)).expect("copy");
    }
    // The key made before the move was moved into the database: it works on the new node.
    let a = Node::start(dir.path(), &pg.url());
    let b = Node::start(other.path(), &pg.url());
    for i in 20..25 {
        let r = post(&client, b.address(), &key, &grant(&format!("m-{i}"))).await;
        assert_eq!(r.status(), 201);
    }
    // The receipt of an event recorded before the move is the same, on the new node too.
    let receipt_after: Value = client
        .get(format!("{}/v1/events/{}/receipt", b.address(), ids[3]))
        .bearer_auth(&key)
        .send()
        .await
        .expect("receipt")
        .json()
        .await
        .expect("json");
    assert_eq!(receipt_before["receipt"]["event"]["id"], ids[3].as_str(), "{receipt_before}");
    assert_eq!(receipt_after["receipt"], receipt_before["receipt"]);

    // An export from the new node verifies offline against the key and is consistent with
    // the checkpoint kept before the move.
    tokio::time::sleep(Duration::from_millis(600)).await;
    drop((a, b));
    export_verifies(other.path(), &vkey, Some(&kept));
    verify(other.path());

    // The database's own log verifies without any node, and each kind of rewrite in it is
    // named (each undone before the next).
    let verify_database = || {
        let out = bin().args(["verify", "--database-url", &pg.url()]).output().expect("verify");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, said) = verify_database();
    assert!(ok && said.contains("ok: 26 events in the database verified"), "{said}");
    // A database that holds no ledger is named as such, and nothing is created in it.
    let empty = new_database(&pg.server());
    let out = bin().args(["verify", "--database-url", &empty]).output().expect("verify");
    let refused = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && refused.contains("holds no ledger"), "{refused}");
    let port = pg.port.to_string();
    let name = empty.rsplit('/').next().expect("name");
    let tables = Command::new(pg_bin().join("psql"))
        .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", name, "-Atc"])
        .arg("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        .output()
        .expect("psql");
    assert_eq!(String::from_utf8_lossy(&tables.stdout).trim(), "0", "verify created nothing");
    let signed: u64 =
        said.split("Merkle nodes, ").nth(1).and_then(|t| t.split(' ').next()?.parse().ok()).expect("a count");
    assert!(signed >= 2, "the checkpoint kept before the move and the nodes' own: {said}");
    let hex = |sql: &str| pg.query(&format!("SELECT encode({sql}, 'hex')"));
    let node = hex("(SELECT hash FROM log_nodes WHERE level = 0 AND idx = 7)");
    let signature = hex("(SELECT signature FROM log_events WHERE seq = 5)");
    let id_key = hex("(SELECT id_key FROM log_events WHERE seq = 9)");
    let frontier = hex("(SELECT frontier FROM ledger_head)");
    let inner = hex("(SELECT hash FROM log_nodes WHERE level = 1 AND idx = 2)");
    let first_checkpoint = pg.query("SELECT min(size) FROM log_checkpoints WHERE size > 0");
    let cases = [
        (
            "UPDATE log_nodes SET hash = sha256(hash) WHERE level = 1 AND idx = 2".to_owned(),
            format!("UPDATE log_nodes SET hash = decode('{inner}', 'hex') WHERE level = 1 AND idx = 2"),
            "Merkle node level 1 index 2: differs from the tree".to_owned(),
        ),
        (
            "DELETE FROM log_nodes WHERE level = 0 AND idx = 7".to_owned(),
            format!("INSERT INTO log_nodes (level, idx, hash) VALUES (0, 7, decode('{node}', 'hex'))"),
            "Merkle node level 0 index 7: is missing".to_owned(),
        ),
        (
            "INSERT INTO log_nodes (level, idx, hash) VALUES (2, 50, sha256('x'))".to_owned(),
            "DELETE FROM log_nodes WHERE level = 2 AND idx = 50".to_owned(),
            "Merkle node level 2 index 50: is in log_nodes but no subtree".to_owned(),
        ),
        (
            "UPDATE log_events SET signature = sha512(signature) WHERE seq = 5".to_owned(),
            format!("UPDATE log_events SET signature = decode('{signature}', 'hex') WHERE seq = 5"),
            "event seq 5: signature does not verify".to_owned(),
        ),
        (
            "UPDATE log_events SET id_key = sha256(id_key) WHERE seq = 9".to_owned(),
            format!("UPDATE log_events SET id_key = decode('{id_key}', 'hex') WHERE seq = 9"),
            "event seq 9: its id key".to_owned(),
        ),
        (
            "UPDATE ledger_head SET frontier = overlay(frontier placing sha256(frontier) from 9 for 32)".to_owned(),
            format!("UPDATE ledger_head SET frontier = decode('{frontier}', 'hex')"),
            "the head row: the tree's edge".to_owned(),
        ),
        (
            format!("UPDATE log_checkpoints SET note = replace(note, E'\\n\\n', E'\\nx\\n\\n') WHERE size = {first_checkpoint}"),
            format!("UPDATE log_checkpoints SET note = replace(note, E'\\nx\\n\\n', E'\\n\\n') WHERE size = {first_checkpoint}"),
            format!("checkpoint of size {first_checkpoint}: its signed note does not open"),
        ),
    ];
    for (tamper, undo, named) in cases {
        pg.query(&tamper);
        let (ok, said) = verify_database();
        assert!(!ok && said.contains(&named), "after {tamper}: {said}");
        pg.query(&undo);
        let (ok, said) = verify_database();
        assert!(ok, "after {undo}: {said}");
    }
    // The database holds the keyring (the key that signed everything, current), the schema
    // at its latest version, and every event once.
    assert_eq!(
        pg.query("SELECT vkey || ' ' || first_seq || ' ' || coalesce(last_seq::text, '-') FROM ledger_keyring"),
        format!("{vkey} 1 -")
    );
    assert_eq!(pg.query("SELECT max(version) FROM schema_migrations"), "1");
    assert_eq!(pg.query("SELECT count(*) FROM api_keys"), "1", "the key made before the move");
    assert_eq!(pg.query("SELECT count(*) || ' ' || max(seq) FROM log_events"), "26 26");

    // A node's directory served without the database is refused: a replica takes no events
    // of its own (a key rotation or a write there would fork the log).
    let out = bin().args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(other.path()).output().expect("serve");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--database-url"));
    // Its API keys and SMS providers' tokens are the database's: a key revoked in the node's
    // files alone would go on working, so the commands refuse its files and name the flag.
    for args in [
        &["apikey", "revoke", "0123456789abcdef"][..],
        &["apikey", "list"],
        &["apikey", "create", "--controller", "council", "--role", "check"],
        &["sms", "twilio-token", "--controller", "council", "--remove"],
    ] {
        let out = bin()
            .args(args)
            .arg("--data-dir")
            .arg(other.path())
            .env_remove("CONSENT_LEDGER_DATABASE_URL")
            .output()
            .expect("run");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && said.contains("--database-url"), "{args:?}: {said}");
    }
    assert!(!other.path().join("providers").exists(), "no token file was written");

    // A second migration into the same database is refused: it holds a ledger.
    let out =
        bin().args(["migrate", "--database-url", &pg.url(), "--data-dir"]).arg(other.path()).output().expect("migrate");
    assert!(!out.status.success());
}

/// The modules of the suite that run again with the log in PostgreSQL: everything a client
/// of the API sees (recording, checks single and bulk, history, preferences, links, the log's
/// proofs and receipts, access, metrics, imports, downstream systems, notices, addresses,
/// representatives, subject access, the audit export, the contract, and the
/// hardening tests about what a client sends). Left out: what is about the embedded store itself
/// (disk full, tampering with RocksDB, kill -9 rounds, backups of the data directory, the
/// storage model) and the browser and schemathesis runs, which take their own minutes.
const SUITE_ON_POSTGRES: &[&str] = &[
    "events::",
    "validation::",
    "scenario::",
    "preferences::",
    "mailing::",
    "bulk::",
    "log::",
    "access::",
    "metrics::",
    // The imports over HTTP and suppression lists (the commands' tests run on a stopped
    // embedded ledger).
    "imports::a",
    "downstream::",
    "notices::",
    "addresses::",
    "representatives::",
    "subject_access::",
    "audit::",
    "contract::",
    "robustness::",
    // The hardening tests a client sees (the others are about the data directory's files).
    "hardening::an_old_unsubscribe_link",
    "hardening::yes_to_an_unrelated_text",
    "hardening::an_address_in_the_wrong_field",
    "hardening::gov_uk_notify_and_twilio",
    "hardening::event_ids_are_each_controllers_own",
    "hardening::a_long_history_comes_in_pages",
    "hardening::a_batch_over_the_limit",
];

#[test]
fn the_api_suite_passes_with_its_log_in_postgres() {
    if std::env::var(BACKEND_ENV).is_ok() {
        return; // this is the run below
    }
    let pg = PgCluster::start();
    let mut cmd = Command::new(std::env::current_exe().expect("this test binary"));
    cmd.args(SUITE_ON_POSTGRES).args(["--test-threads", "2"]).env(BACKEND_ENV, pg.server());
    let out = cmd.output().expect("run the suite");
    let said = String::from_utf8_lossy(&out.stdout);
    let summary = said.lines().filter(|l| l.starts_with("test result:")).collect::<Vec<_>>().join("\n");
    assert!(out.status.success(), "the suite on PostgreSQL:\n{said}\n{}", String::from_utf8_lossy(&out.stderr));
    let passed: usize = summary
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[1] == "passed;")
        .and_then(|w| w[0].parse().ok())
        .unwrap_or(0);
    assert!(passed >= 70, "a representative part ran: {summary}");
    eprintln!("on PostgreSQL: {summary}");
}

#[test]
fn a_database_that_takes_tls_only_is_reached_with_its_ca_and_refused_without() {
    let (pg, ca) = PgCluster::start_tls_only();
    let init = |url: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = bin()
            .args(["init", "--database-url", url, "--log-name", "pg.test/ledger", "--data-dir"])
            .arg(dir.path())
            .output()
            .expect("init");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // Without TLS the server refuses; with TLS but not trusting its CA, we refuse.
    let (ok, _) = init(&format!("{}?sslmode=disable", pg.url()));
    assert!(!ok, "a plain connection is refused by a TLS-only server");
    let (ok, said) = init(&format!("{}?sslmode=require", pg.url()));
    assert!(!ok, "an unknown CA is not trusted");
    assert!(said.to_lowercase().contains("certificate") || said.contains("database"), "{said}");
    // With the CA (libpq's spelling), the certificate and its address verify.
    let url = format!("{}?sslmode=verify-full&sslrootcert={}", pg.url(), ca.display());
    let (ok, said) = init(&url);
    assert!(ok, "TLS with the server's CA: {said}");
    // A group commit's own connection, the one that locks the head, goes over TLS the same way.
    let mut log = consent_ledger::pglog::PgLog::connect(&url).expect("connected over TLS");
    let append = log.begin_append().expect("the head locked over TLS");
    drop(append);
    assert!(log.begin_append().is_ok(), "and released");
}
