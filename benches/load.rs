//! Load benchmark against the real server over HTTP on loopback (not a test: it asserts no
//! timing). Run with `cargo bench --bench load`; tune with environment variables:
//! `SECONDS` (per phase, default 10), `CONNS` (concurrent clients, default 32),
//! `SUBJECTS` (seeded subjects, default 10000), `PHASES` (default `check,append,append-batch,bulk`),
//! `BULK_LINES` (lines of the NDJSON bulk check, default 1 000 000), `BULK_DISTINCT=1` (every
//! bulk line a different address instead of cycling over the seeded ones).
//!
//! It starts the server in this process on a fresh temporary store (2 HTTP workers), seeds
//! it, then runs each phase with `CONNS` concurrent keep-alive clients and prints throughput
//! and latency percentiles.
//!
//! With `DATABASE_URL` (an empty PostgreSQL database) the log lives there instead, and
//! `NODES` (default 1) nodes, each with its own replica and HTTP server in this process,
//! share it: appends are spread over the nodes (over the first `WRITERS` of them, if set),
//! checks and bulk go to the first. The
//! `catchup` phase then opens one more node on an empty directory and times how fast it
//! applies the whole log.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use consent_ledger::domain::ControllerId;
use consent_ledger::http::{Application, HttpOptions};
use consent_ledger::ledger::{DataDir, Ledger, Options};
use consent_ledger::service::access::{KeyStore, Role};
use consent_ledger::service::Service;
use serde_json::json;

/// On a database ledger: the locked group commits so far (those that held the head's lock,
/// those that waited for it) and the seconds they waited and held it (`/metrics` of this
/// process, which every node here shares).
async fn lock_figures(client: &reqwest::Client, base: &str) -> Option<[f64; 4]> {
    let text = client.get(format!("{base}/metrics")).send().await.ok()?.text().await.ok()?;
    let series = |name: &str| -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    Some([
        series("consent_ledger_database_lock_held_seconds_count")?,
        series("consent_ledger_database_lock_wait_seconds_count")?,
        series("consent_ledger_database_lock_wait_seconds_sum")?,
        series("consent_ledger_database_lock_held_seconds_sum")?,
    ])
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Stats {
    ops: u64,
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

impl Stats {
    fn print(&mut self, name: &str, unit_per_op: u64) {
        self.latencies_us.sort_unstable();
        let pct = |p: f64| {
            let i = ((self.latencies_us.len() as f64 * p) as usize).min(self.latencies_us.len().saturating_sub(1));
            self.latencies_us.get(i).copied().unwrap_or(0) as f64 / 1000.0
        };
        let rate = self.ops as f64 * unit_per_op as f64 / self.elapsed.as_secs_f64();
        println!(
            "{name:<14} {rate:>10.0}/s  requests {:>8}  p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
            self.ops,
            pct(0.50),
            pct(0.99),
            pct(0.999),
            pct(1.0)
        );
    }
}

async fn run_phase<F, Fut>(conns: usize, seconds: u64, make: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut handles = Vec::new();
    for c in 0..conns {
        let make = make.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                if !make(c, i).await {
                    break;
                }
                lat.push(t.elapsed().as_micros() as u64);
                i += 1;
            }
            lat
        }));
    }
    let mut latencies_us = Vec::new();
    for h in handles {
        latencies_us.extend(h.await.unwrap_or_default());
    }
    Stats { ops: latencies_us.len() as u64, latencies_us, elapsed: start.elapsed() }
}

fn main() {
    let seconds = env_or("SECONDS", 10) as u64;
    let conns = env_or("CONNS", 32);
    let subjects = env_or("SUBJECTS", 10_000);
    let phases = std::env::var("PHASES").unwrap_or_else(|_| "check,append,append-batch,bulk".into());

    let database = std::env::var("DATABASE_URL").ok();
    let nodes = if database.is_some() { env_or("NODES", 1).max(1) } else { 1 };
    let dirs: Vec<tempfile::TempDir> = (0..nodes + 1).map(|_| tempfile::tempdir().expect("tempdir")).collect();
    let shared = ["signing-key.json", "keyring.json", "blind-index.key", "token.key"];
    if let Some(url) = &database {
        consent_ledger::ledger::init_database(&DataDir::new(dirs[0].path()), url, "bench/consent-ledger")
            .expect("init");
        for d in &dirs[1..] {
            for f in shared {
                std::fs::copy(dirs[0].path().join(f), d.path().join(f)).expect("copy");
            }
        }
    }
    let open = |i: usize| {
        let options = Options { database: database.clone(), ..Options::new("bench/consent-ledger") };
        Ledger::open_with(&DataDir::new(dirs[i].path()), options).expect("ledger")
    };
    let keys = Arc::new(KeyStore::open(DataDir::new(dirs[0].path()).api_keys()).expect("keys"));
    let controller = ControllerId::parse("council").expect("controller");
    let key = keys.create(&controller, &[Role::Admin, Role::Record, Role::Check]).expect("key");
    let mut services = Vec::new();
    let mut apps = Vec::new();
    let mut bases = Vec::new();
    for i in 0..nodes {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let options = HttpOptions { workers: Some(2), ..Default::default() };
        let service = Arc::new(Service::new(open(i)));
        let app = Application::build(listener, service.clone(), keys.clone(), options).expect("app");
        bases.push(format!("http://127.0.0.1:{}", app.port()));
        services.push(service);
        apps.push(app);
    }
    let handles: Vec<_> = apps.iter().map(|a| a.handle()).collect();
    let base = bases[0].clone();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let catchup_dir = dirs[nodes].path().to_path_buf();
    let catchup_database = database.clone();
    rt.block_on(async move {
        for app in apps {
            tokio::spawn(app.run_until_stopped());
        }
        let client = reqwest::Client::builder().pool_max_idle_per_host(conns).build().expect("client");
        let purpose = json!({"title": "Newsletter", "basis": "consent", "marketing": true, "channels": ["email", "post", "sms"], "consent_valid_days": 730});
        let r = client.put(format!("{base}/v1/purposes/newsletter")).bearer_auth(&key).json(&purpose).send().await.expect("purpose");
        assert!(r.status().is_success());

        // Seed: each subject has a linked email and a grant; every third also a withdrawal.
        let seed_start = Instant::now();
        for chunk in (0..subjects).collect::<Vec<_>>().chunks(300) {
            let mut events = Vec::new();
            for &s in chunk {
                events.push(json!({"type": "contact.linked", "subject": format!("S-{s}"), "contact": {"channel": "email", "address": format!("person{s}@example.org")}, "actor": {"kind": "system"}}));
                events.push(json!({"type": "consent.granted", "subject": format!("S-{s}"), "purpose": "newsletter", "actor": {"kind": "system"}}));
                if s % 3 == 0 {
                    events.push(json!({"type": "consent.withdrawn", "subject": format!("S-{s}"), "purpose": "newsletter", "channel": "email", "actor": {"kind": "system"}}));
                }
            }
            let r = client.post(format!("{base}/v1/events/batch")).bearer_auth(&key).json(&events).send().await.expect("seed");
            assert!(r.status().is_success(), "seed failed: {}", r.text().await.unwrap_or_default());
        }
        println!("seeded {subjects} subjects in {:.1} s; {conns} connections, {seconds} s per phase", seed_start.elapsed().as_secs_f64());

        for phase in phases.split(',') {
            match phase {
                "check" => {
                    let (client, base, key) = (client.clone(), base.clone(), key.clone());
                    let mut stats = run_phase(conns, seconds, move |c, i| {
                        let (client, base, key) = (client.clone(), base.clone(), key.clone());
                        async move {
                            let s = (c as u64 * 7919 + i * 104_729) % subjects as u64;
                            let url = format!("{base}/v1/check?purpose=newsletter&channel=email&email=person{s}%40example.org");
                            match client.get(url).bearer_auth(&key).send().await {
                                Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                                _ => false,
                            }
                        }
                    })
                    .await;
                    stats.print("check (email)", 1);
                }
                "append" | "append-batch" => {
                    let per = if phase == "append" { 1 } else { env_or("BATCH", 10) };
                    // WRITERS=n sends the appends to the first n nodes only (all by default).
                    let writers = env_or("WRITERS", bases.len()).clamp(1, bases.len());
                    let before = lock_figures(&client, &base).await;
                    let (writer, bases, key) = (client.clone(), bases[..writers].to_vec(), key.clone());
                    let mut stats = run_phase(conns, seconds, move |c, i| {
                        let (client, base, key) = (writer.clone(), bases[c % bases.len()].clone(), key.clone());
                        async move {
                            let ev = |k: usize| json!({"type": "consent.granted", "subject": format!("W-{c}-{i}-{k}"), "purpose": "newsletter", "actor": {"kind": "system"}});
                            let req = if per == 1 {
                                client.post(format!("{base}/v1/events")).json(&ev(0))
                            } else {
                                client.post(format!("{base}/v1/events/batch")).json(&(0..per).map(ev).collect::<Vec<_>>())
                            };
                            match req.bearer_auth(&key).send().await {
                                Ok(r) if r.status() == 201 => r.bytes().await.is_ok(),
                                _ => false,
                            }
                        }
                    })
                    .await;
                    stats.print(if per == 1 { "append" } else { "append (batch)" }, per as u64);
                    if let (Some(b), Some(a)) = (before, lock_figures(&client, &base).await) {
                        let mean_ms = |count: usize, sum: usize| (a[sum] - b[sum]) / (a[count] - b[count]) * 1000.0;
                        if a[0] > b[0] {
                            println!(
                                "  locked commits {:.0}: lock wait {:.2} ms, held {:.2} ms (means; all nodes)",
                                a[0] - b[0],
                                mean_ms(1, 2),
                                mean_ms(0, 3)
                            );
                        }
                    }
                }
                "bulk" => {
                    // One NDJSON request of BULK_LINES addresses: cycling over the seeded ones, or
                    // with BULK_DISTINCT=1 every line a different address (the seeded ones first,
                    // then addresses the ledger has never seen), as a campaign list would be.
                    let lines = env_or("BULK_LINES", 1_000_000);
                    let distinct = env_or("BULK_DISTINCT", 0) == 1;
                    let mut body = String::with_capacity(lines * 64);
                    for i in 0..lines {
                        let s = if distinct { i } else { (i * 7919) % subjects };
                        body.push_str(&format!("{{\"email\":\"person{s}@example.org\",\"purpose\":\"newsletter\"}}\n"));
                    }
                    let start = Instant::now();
                    let resp = client
                        .post(format!("{base}/v1/checks"))
                        .bearer_auth(&key)
                        .header("content-type", "application/x-ndjson")
                        .body(body)
                        .send()
                        .await
                        .expect("bulk");
                    // Read the answers as a mailing system would, as they stream in.
                    // Answers are counted by how they start, so the figure is known to be of
                    // real decisions, not of error lines.
                    let mut resp = resp;
                    let (mut answers, mut permitted, mut errors) = (0usize, 0usize, 0usize);
                    const START: usize = 17; // enough to tell `{"permitted":true` from the rest
                    let mut line_start: Vec<u8> = Vec::with_capacity(START);
                    while let Some(chunk) = resp.chunk().await.expect("bulk body") {
                        for b in chunk.iter() {
                            if *b == b'\n' {
                                answers += 1;
                                line_start.clear();
                            } else if line_start.len() < START {
                                line_start.push(*b);
                                if line_start.len() == START {
                                    permitted += usize::from(line_start.starts_with(b"{\"permitted\":true"));
                                    errors += usize::from(line_start.starts_with(b"{\"error\""));
                                }
                            }
                        }
                    }
                    let secs = start.elapsed().as_secs_f64();
                    assert_eq!(answers, lines, "one answer per line");
                    assert_eq!(errors, 0, "every line is answered with a decision");
                    println!("{:<14} {permitted} of {lines} permitted", "bulk answers");
                    println!("{:<14} {:>10.0}/s  {lines} lines in {secs:.2} s", "bulk (ndjson)", lines as f64 / secs);
                }
                "catchup" => {
                    let Some(url) = catchup_database.clone() else {
                        eprintln!("catchup needs DATABASE_URL");
                        continue;
                    };
                    let dir = catchup_dir.clone();
                    let (events, secs) = tokio::task::spawn_blocking(move || {
                        let start = Instant::now();
                        let options = Options { database: Some(url), ..Options::new("bench/consent-ledger") };
                        let ledger = Ledger::open_with(&DataDir::new(&dir), options).expect("new node");
                        (ledger.committed_seq(), start.elapsed().as_secs_f64())
                    })
                    .await
                    .expect("catch-up");
                    println!("{:<14} {:>10.0}/s  {events} events applied by a new node in {secs:.2} s", "catch-up", events as f64 / secs);
                }
                other => eprintln!("unknown phase {other}"),
            }
        }
        // Stop the server so the store is closed before the process exits (RocksDB aborts a
        // process that exits with a database open).
        for handle in handles {
            handle.stop(false).await;
        }
    });
    for service in services {
        for _ in 0..200 {
            if Arc::strong_count(&service) == 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(service);
    }
}
