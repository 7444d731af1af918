//! A single check's own work, without HTTP (not a test: it asserts no timing). Opens a kept
//! store (one `benches/import.sh` made, as `check-vs-pg.sh STORE=DIR` serves) as `serve`
//! opens it, asks every tenant once to fill the caches, then asks checks by email for the
//! newsletter, tenants drawn at random, on `THREADS` threads at once for `SECONDS`: the
//! API key's verification, the query string read and parsed, and the service's check (the
//! purpose, the blind index, the facts of the address and of its tenant, the rules), as
//! `GET /v1/check` does them. Prints the nanoseconds each check took per thread, which a
//! change to that path moves without the HTTP server's and the load generator's noise.
//!
//! Usage: `STORE=DIR [SUBJECTS=200000] [THREADS=2] [SECONDS=5] cargo bench --bench check_path`
//! (the store is not changed but for a new API key of the check role; a server must not be
//! serving it at the time).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consent_ledger::domain::ControllerId;
use consent_ledger::http::routes::checks::CheckRequest;
use consent_ledger::ledger::{DataDir, Ledger, Options, DEFAULT_CACHE_MEMORY};
use consent_ledger::service::access::{KeyStore, Role};
use consent_ledger::service::{now, Service};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One check as `GET /v1/check` makes it; whether it was answered.
fn check(service: &Service, keys: &KeyStore, token: &str, controller: &ControllerId, tenant: u64) -> bool {
    let Ok(Some(_caller)) = keys.authenticate_checked(token) else { return false };
    let query = format!("purpose=newsletter&channel=email&email=tenant{tenant}%40example.org");
    let Ok(request) = CheckRequest::from_query(&query) else { return false };
    let Ok(q) = request.parse() else { return false };
    match service.check_batch(controller, std::slice::from_ref(&q), now()) {
        Ok(mut answers) => matches!(answers.pop(), Some(Ok(_))),
        Err(_) => false,
    }
}

fn main() {
    let Ok(store) = std::env::var("STORE") else {
        println!("check_path: set STORE to a store benches/import.sh made (see the file's header); skipped");
        return;
    };
    let subjects = env_or("SUBJECTS", 200_000);
    let threads = env_or("THREADS", 2);
    let seconds = env_or("SECONDS", 5);
    let dir = DataDir::new(&store);
    let options = Options::new("bench/consent-ledger").with_cache_memory(DEFAULT_CACHE_MEMORY);
    let service = Arc::new(Service::new(Ledger::open_with(&dir, options).expect("opening the store")));
    let keys = Arc::new(KeyStore::open(dir.api_keys()).expect("keys"));
    let controller = ControllerId::parse("bench").expect("controller");
    let token: Arc<str> = keys.create(&controller, &[Role::Check]).expect("key").into();

    let start = Instant::now();
    let answered = (0..subjects).filter(|t| check(&service, &keys, &token, &controller, *t)).count();
    assert_eq!(answered as u64, subjects, "every tenant is answered");
    println!("warmed: {subjects} tenants asked once in {:.1} s", start.elapsed().as_secs_f64());

    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (service, keys, token, controller, stop) =
                (service.clone(), keys.clone(), token.clone(), controller.clone(), stop.clone());
            std::thread::spawn(move || {
                // xorshift, seeded apart per thread.
                let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ (i + 1);
                let (mut n, start) = (0u64, Instant::now());
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    assert!(check(&service, &keys, &token, &controller, x % subjects), "a check failed");
                    n += 1;
                }
                (n, start.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for (i, h) in handles.into_iter().enumerate() {
        let (n, took) = h.join().expect("thread");
        println!("thread {i}: {n} checks, {:.0} ns each", took.as_nanos() as f64 / n as f64);
    }
}
