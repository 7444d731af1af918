//! Process-wide counters and histograms, written out in the Prometheus text format
//! (`GET /metrics`). Labels are fixed words and route names (the handler, `get_event`), never
//! a path, an identifier or an address, so nothing personal can reach a scrape.
//!
//! Everything is atomics but the HTTP table (a mutex around a small map, one per thread
//! slot); a leaf module, so the writer, the service, the projections and the HTTP layer can
//! all record into it. What every request records is kept per thread slot (`per_thread`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

mod per_thread;
mod throttle;
pub use per_thread::{Counter, PerThread};
pub use throttle::Throttle;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

/// A latency histogram with fixed buckets.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// What it has counted so far.
    fn figures(&self) -> HistogramFigures {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HistogramFigures {
            buckets: self.buckets.each_ref().map(load),
            count: load(&self.count),
            sum_micros: load(&self.sum_micros),
        }
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        self.figures().write(out, name, labels);
    }
}

/// A histogram's counts, read (and summed over the thread slots' tables).
#[derive(Default, Clone, Copy)]
struct HistogramFigures {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_micros: u64,
}

impl HistogramFigures {
    fn add(&mut self, other: &HistogramFigures) {
        self.buckets.iter_mut().zip(other.buckets).for_each(|(a, b)| *a += b);
        self.count += other.count;
        self.sum_micros = self.sum_micros.saturating_add(other.sum_micros);
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count;
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let sum = self.sum_micros as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// A route's requests by method and status class.
type RouteSeen = Vec<(String, &'static str, Histogram)>;

/// Everything measured.
#[derive(Default)]
pub struct Metrics {
    /// Group commits written (each one synced write batch).
    pub commits: AtomicU64,
    /// Events made durable.
    pub events: AtomicU64,
    /// Time of each group commit: staging, signing and the synced write.
    pub commit_latency: Histogram,
    /// Decisions answered, permitted and not.
    pub permitted: Counter,
    pub denied: Counter,
    /// Bulk NDJSON lines answered (decisions and errors alike).
    pub bulk_lines: AtomicU64,
    /// Checkpoints not signed because the new tree head was not consistent with the last
    /// signed one (should never move from 0).
    pub checkpoints_refused: AtomicU64,
    /// Webhook deliveries answered 2xx, and tries that were not (each retried).
    pub webhooks_delivered: AtomicU64,
    pub webhooks_failed: AtomicU64,
    /// On a database ledger: group commits written in one statement after the node's own
    /// replica, those written holding the head's lock, and unlocked tries that found the head
    /// moved by another node (then written under the lock).
    pub database_commits_unlocked: AtomicU64,
    pub database_commits_locked: AtomicU64,
    pub database_head_moved: AtomicU64,
    /// On a database ledger, each locked group commit: the wait for the head's lock, and the
    /// time it held it (signing, the write and the commit's flush), what other nodes wait for.
    pub database_lock_wait: Histogram,
    pub database_lock_held: Histogram,
    /// By route name, then method and status class (a handful each, so a short list); a
    /// table per thread slot, summed when read.
    http: PerThread<Mutex<BTreeMap<String, RouteSeen>>>,
}

/// The one set of metrics of this process.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// The status class of an HTTP status code, as a label.
fn class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The label of a request's method: one of a fixed set, so a client sending made-up methods
/// cannot add series.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        _ => "other",
    }
}

impl Metrics {
    /// Records one HTTP request. `route` names the route (its handler), or is `"unmatched"`.
    /// Allocates only the first time a route, method and class is seen.
    pub fn http_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let class = class(status);
        let method = method_label(method);
        let Ok(mut table) = self.http.mine().lock() else { return };
        if !table.contains_key(route) {
            table.insert(route.to_owned(), Vec::new());
        }
        let Some(seen) = table.get_mut(route) else { return };
        match seen.iter().find(|(m, c, _)| m == method && *c == class) {
            Some((_, _, h)) => h.observe(took),
            None => {
                let h = Histogram::default();
                h.observe(took);
                seen.push((method.to_owned(), class, h));
            }
        }
    }

    /// Records one webhook delivery try.
    pub fn webhook_delivered(&self, ok: bool) {
        let counter = if ok { &self.webhooks_delivered } else { &self.webhooks_failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the decisions of one check call (one request, or one block of a bulk list):
    /// an addition per call (to the calling thread's slot), not per decision.
    pub fn decisions(&self, permitted: u64, denied: u64) {
        if permitted > 0 {
            self.permitted.add(permitted);
        }
        if denied > 0 {
            self.denied.add(denied);
        }
    }

    /// The text exposition, with the gauges the caller reads at scrape time.
    pub fn render(&self, gauges: &Gauges) -> String {
        let Gauges { log_size, checkpoint_size, storage_full, database, facts_cache: cache, store_cache } = *gauges;
        let mut out = String::with_capacity(4096);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        header(&mut out, "consent_ledger_log_size", "gauge", "Events in the log (durable).");
        let _ = writeln!(out, "consent_ledger_log_size {log_size}");
        header(&mut out, "consent_ledger_checkpoint_size", "gauge", "Tree size of the latest signed checkpoint.");
        let _ = writeln!(out, "consent_ledger_checkpoint_size {checkpoint_size}");
        header(&mut out, "consent_ledger_commits_total", "counter", "Group commits written.");
        let _ = writeln!(out, "consent_ledger_commits_total {}", load(&self.commits));
        header(&mut out, "consent_ledger_events_total", "counter", "Events made durable by this process.");
        let _ = writeln!(out, "consent_ledger_events_total {}", load(&self.events));
        header(
            &mut out,
            "consent_ledger_commit_seconds",
            "histogram",
            "Time of a group commit, synced write included.",
        );
        self.commit_latency.write(&mut out, "consent_ledger_commit_seconds", "");
        header(&mut out, "consent_ledger_decisions_total", "counter", "Permission decisions answered.");
        let _ = writeln!(out, "consent_ledger_decisions_total{{permitted=\"true\"}} {}", self.permitted.get());
        let _ = writeln!(out, "consent_ledger_decisions_total{{permitted=\"false\"}} {}", self.denied.get());
        header(&mut out, "consent_ledger_webhook_deliveries_total", "counter", "Webhook delivery tries, by outcome.");
        let _ = writeln!(
            out,
            "consent_ledger_webhook_deliveries_total{{delivered=\"true\"}} {}",
            load(&self.webhooks_delivered)
        );
        let _ = writeln!(
            out,
            "consent_ledger_webhook_deliveries_total{{delivered=\"false\"}} {}",
            load(&self.webhooks_failed)
        );
        header(
            &mut out,
            "consent_ledger_checkpoints_refused_total",
            "counter",
            "Checkpoints not signed: the new tree head was not consistent with the last signed one.",
        );
        let _ = writeln!(out, "consent_ledger_checkpoints_refused_total {}", load(&self.checkpoints_refused));
        header(&mut out, "consent_ledger_storage_full", "gauge", "1 while the disk is full and writes are refused.");
        let _ = writeln!(out, "consent_ledger_storage_full {}", u8::from(storage_full));
        if let Some((up, size)) = database {
            header(&mut out, "consent_ledger_database_up", "gauge", "1 while the log's database answers.");
            let _ = writeln!(out, "consent_ledger_database_up {}", u8::from(up));
            header(
                &mut out,
                "consent_ledger_database_log_size",
                "gauge",
                "Events in the database's log when last read.",
            );
            let _ = writeln!(out, "consent_ledger_database_log_size {size}");
            header(
                &mut out,
                "consent_ledger_replica_lag",
                "gauge",
                "Events the database holds that this node has not applied.",
            );
            let _ = writeln!(out, "consent_ledger_replica_lag {}", size.saturating_sub(log_size));
            header(
                &mut out,
                "consent_ledger_database_commits_total",
                "counter",
                "Group commits written to the database: in one statement after this node's replica (unlocked), or holding the log's head (locked).",
            );
            let _ = writeln!(
                out,
                "consent_ledger_database_commits_total{{head=\"unlocked\"}} {}",
                load(&self.database_commits_unlocked)
            );
            let _ = writeln!(
                out,
                "consent_ledger_database_commits_total{{head=\"locked\"}} {}",
                load(&self.database_commits_locked)
            );
            header(
                &mut out,
                "consent_ledger_database_head_moved_total",
                "counter",
                "Unlocked commits that found another node's commit first (then signed again under the lock).",
            );
            let _ = writeln!(out, "consent_ledger_database_head_moved_total {}", load(&self.database_head_moved));
            header(
                &mut out,
                "consent_ledger_database_lock_wait_seconds",
                "histogram",
                "Wait of a locked group commit for the log's head row (other nodes' commits).",
            );
            self.database_lock_wait.write(&mut out, "consent_ledger_database_lock_wait_seconds", "");
            header(
                &mut out,
                "consent_ledger_database_lock_held_seconds",
                "histogram",
                "Time a locked group commit held the log's head row: signing, the write and the commit's flush.",
            );
            self.database_lock_held.write(&mut out, "consent_ledger_database_lock_held_seconds", "");
        }
        header(
            &mut out,
            "consent_ledger_facts_cache_entries",
            "gauge",
            "Targets whose facts rows the cache holds (what checks read without the store).",
        );
        let _ = writeln!(out, "consent_ledger_facts_cache_entries {}", cache.entries);
        header(
            &mut out,
            "consent_ledger_facts_cache_bytes",
            "gauge",
            "Memory the facts cache takes (its tables, and its entries with removed ones not yet passed), at most its budget (thirteen sixteenths of serve --cache-mb).",
        );
        let _ = writeln!(out, "consent_ledger_facts_cache_bytes {}", cache.bytes);
        header(&mut out, "consent_ledger_facts_cache_budget_bytes", "gauge", "The facts cache's budget.");
        let _ = writeln!(out, "consent_ledger_facts_cache_budget_bytes {}", cache.budget);
        header(
            &mut out,
            "consent_ledger_facts_cache_lookups_total",
            "counter",
            "Facts rows looked up in the cache: found (hit) or read from the store (miss).",
        );
        let _ = writeln!(out, "consent_ledger_facts_cache_lookups_total{{result=\"hit\"}} {}", cache.hits);
        let _ = writeln!(out, "consent_ledger_facts_cache_lookups_total{{result=\"miss\"}} {}", cache.misses);
        if let Some((used, capacity)) = store_cache {
            header(
                &mut out,
                "consent_ledger_store_cache_bytes",
                "gauge",
                "Memory the store's block cache holds: blocks read, memtables, index and filter blocks.",
            );
            let _ = writeln!(out, "consent_ledger_store_cache_bytes {used}");
            header(
                &mut out,
                "consent_ledger_store_cache_capacity_bytes",
                "gauge",
                "The store's block cache's capacity (three sixteenths of serve --cache-mb).",
            );
            let _ = writeln!(out, "consent_ledger_store_cache_capacity_bytes {capacity}");
        }
        header(&mut out, "consent_ledger_bulk_lines_total", "counter", "Lines of bulk NDJSON checks answered.");
        let _ = writeln!(out, "consent_ledger_bulk_lines_total {}", load(&self.bulk_lines));
        header(
            &mut out,
            "consent_ledger_http_request_seconds",
            "histogram",
            "HTTP requests by route (handler name), method and status class.",
        );
        let mut summed: BTreeMap<(&str, &str, &str), HistogramFigures> = BTreeMap::new();
        let tables: Vec<_> = self.http.all().filter_map(|t| t.lock().ok()).collect();
        for table in &tables {
            for (route, seen) in table.iter() {
                for (method, status, h) in seen {
                    summed.entry((route, method, status)).or_default().add(&h.figures());
                }
            }
        }
        for ((route, method, status), figures) in summed {
            let labels = format!("route=\"{}\",method=\"{method}\",status=\"{status}\"", escape(route));
            figures.write(&mut out, "consent_ledger_http_request_seconds", &labels);
        }
        out
    }
}

/// What the caller reads at scrape time for [`Metrics::render`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub log_size: u64,
    pub checkpoint_size: u64,
    pub storage_full: bool,
    /// On a node whose log is in PostgreSQL: whether the database answered last, and its
    /// log size when this node last looked.
    pub database: Option<(bool, u64)>,
    pub facts_cache: CacheFigures,
    /// The embedded store's block cache: bytes held (memtables, index and filter blocks
    /// included) and its capacity, when the store has one.
    pub store_cache: Option<(u64, u64)>,
}

/// What a cache holds and how it answered.
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheFigures {
    pub entries: u64,
    pub bytes: u64,
    pub budget: u64,
    pub hits: u64,
    pub misses: u64,
}

/// The `# HELP` and `# TYPE` lines of a metric.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_the_text_is_well_formed() {
        let m = Metrics::default();
        m.commit_latency.observe(Duration::from_micros(50));
        m.commit_latency.observe(Duration::from_millis(3));
        m.commit_latency.observe(Duration::from_secs(2));
        m.http_request("get_event", "GET", 404, Duration::from_millis(1));
        m.http_request("get_event", "GET", 404, Duration::from_millis(1));
        m.decisions(1, 0);
        let gauges = Gauges {
            log_size: 7,
            checkpoint_size: 5,
            database: Some((true, 9)),
            facts_cache: CacheFigures { entries: 3, bytes: 900, budget: 1000, hits: 40, misses: 2 },
            store_cache: Some((70, 128)),
            ..Gauges::default()
        };
        let text = m.render(&gauges);
        assert!(text.contains("consent_ledger_replica_lag 2\n"), "{text}");
        assert!(!m.render(&Gauges { database: None, ..gauges }).contains("consent_ledger_replica_lag"));
        assert!(text.contains("consent_ledger_facts_cache_lookups_total{result=\"hit\"} 40\n"), "{text}");
        assert!(text.contains("consent_ledger_facts_cache_bytes 900\n"), "{text}");
        assert!(text.contains("consent_ledger_store_cache_bytes 70\n"), "{text}");
        assert!(text.contains("consent_ledger_store_cache_capacity_bytes 128\n"), "{text}");
        assert!(!m.render(&Gauges { store_cache: None, ..gauges }).contains("consent_ledger_store_cache"));
        assert!(text.contains("consent_ledger_commit_seconds_bucket{le=\"0.0001\"} 1\n"), "{text}");
        assert!(text.contains("consent_ledger_commit_seconds_bucket{le=\"0.005\"} 2\n"), "{text}");
        assert!(text.contains("consent_ledger_commit_seconds_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("consent_ledger_commit_seconds_count 3\n"), "{text}");
        assert!(text.contains(
            "consent_ledger_http_request_seconds_count{route=\"get_event\",method=\"GET\",status=\"4xx\"} 2\n"
        ));
        assert!(text.contains("consent_ledger_decisions_total{permitted=\"true\"} 1\n"));
        assert!(text.contains("consent_ledger_log_size 7\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(line.starts_with("consent_ledger_"), "{line}");
        }
    }

    #[test]
    fn requests_and_decisions_recorded_on_many_threads_are_summed_in_one_series() {
        let m = std::sync::Arc::new(Metrics::default());
        let threads: Vec<_> = (0..per_thread::SLOTS + 2)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    m.http_request("get_check", "GET", 200, Duration::from_micros(80));
                    m.http_request("get_check", "GET", 200, Duration::from_millis(2));
                    m.decisions(1, 2);
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let n = per_thread::SLOTS + 2;
        let text = m.render(&Gauges::default());
        let series = "consent_ledger_http_request_seconds";
        let labels = "route=\"get_check\",method=\"GET\",status=\"2xx\"";
        assert!(text.contains(&format!("{series}_bucket{{{labels},le=\"0.0001\"}} {n}\n")), "{text}");
        assert!(text.contains(&format!("{series}_bucket{{{labels},le=\"+Inf\"}} {}\n", 2 * n)), "{text}");
        assert!(text.contains(&format!("{series}_count{{{labels}}} {}\n", 2 * n)), "{text}");
        assert_eq!(text.matches(&format!("{series}_count{{")).count(), 1, "one series: {text}");
        assert!(text.contains(&format!("consent_ledger_decisions_total{{permitted=\"false\"}} {}\n", 2 * n)));
    }
}
