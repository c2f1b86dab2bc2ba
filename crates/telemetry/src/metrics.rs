//! A small Prometheus registry built for the hot path: handles are plain
//! atomics looked up once (per route, per upstream target) and reused, so
//! recording costs an atomic add. Label sets are bounded by construction:
//! they come from configuration names and status codes, never raw input.
//! Handles with the same name and labels are shared, so counters survive a
//! configuration reload.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Latency buckets in seconds, from half a millisecond to ten seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct HistogramInner {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramInner>);

impl Histogram {
    fn new() -> Self {
        Histogram(Arc::new(HistogramInner {
            buckets: LATENCY_BUCKETS.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }))
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // Buckets are cumulative when rendered; store per-bucket counts.
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b)
            && let Some(b) = self.0.buckets.get(i)
        {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.0.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.0.count.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Debug)]
enum Series {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

#[derive(Debug)]
struct Family {
    help: &'static str,
    kind: &'static str,
    series: BTreeMap<String, Series>,
}

/// All metrics of the process.
#[derive(Debug, Default)]
pub struct Registry {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"{}\"", escape_label(v));
    }
    s
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    fn get_or_insert(
        &self,
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        labels: &[(&str, &str)],
        make: impl FnOnce() -> Series,
    ) -> Series {
        let key = render_labels(labels);
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(name).or_insert_with(|| Family {
            help,
            kind,
            series: BTreeMap::new(),
        });
        family.series.entry(key).or_insert_with(make).clone()
    }

    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
    ) -> Counter {
        match self.get_or_insert(name, help, "counter", labels, || {
            Series::Counter(Counter::default())
        }) {
            Series::Counter(c) => c,
            _ => Counter::default(),
        }
    }

    pub fn gauge(&self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Gauge {
        match self.get_or_insert(name, help, "gauge", labels, || {
            Series::Gauge(Gauge::default())
        }) {
            Series::Gauge(g) => g,
            _ => Gauge::default(),
        }
    }

    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
    ) -> Histogram {
        match self.get_or_insert(name, help, "histogram", labels, || {
            Series::Histogram(Histogram::new())
        }) {
            Series::Histogram(h) => h,
            _ => Histogram::new(),
        }
    }

    /// Drops the series of a family whose labels no longer exist (e.g. the
    /// health of a removed upstream target), keeping those `keep` accepts.
    pub fn retain(&self, name: &'static str, mut keep: impl FnMut(&str) -> bool) {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = families.get_mut(name) {
            f.series.retain(|labels, _| keep(labels));
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::with_capacity(4096);
        for (name, f) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} {}", f.kind);
            for (labels, series) in &f.series {
                let braced = |extra: &str| -> String {
                    match (labels.is_empty(), extra.is_empty()) {
                        (true, true) => String::new(),
                        (true, false) => format!("{{{extra}}}"),
                        (false, true) => format!("{{{labels}}}"),
                        (false, false) => format!("{{{labels},{extra}}}"),
                    }
                };
                match series {
                    Series::Counter(c) => {
                        let _ = writeln!(out, "{name}{} {}", braced(""), c.get());
                    }
                    Series::Gauge(g) => {
                        let _ = writeln!(out, "{name}{} {}", braced(""), g.get());
                    }
                    Series::Histogram(h) => {
                        let mut cumulative = 0u64;
                        for (b, count) in LATENCY_BUCKETS.iter().zip(h.0.buckets.iter()) {
                            cumulative += count.load(Ordering::Relaxed);
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {cumulative}",
                                braced(&format!("le=\"{b}\""))
                            );
                        }
                        let total = h.count();
                        let _ = writeln!(out, "{name}_bucket{} {total}", braced("le=\"+Inf\""));
                        let sum = h.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
                        let _ = writeln!(out, "{name}_sum{} {sum}", braced(""));
                        let _ = writeln!(out, "{name}_count{} {total}", braced(""));
                    }
                }
            }
        }
        out
    }
}

/// Counters by status code for one route, created on first use. A route
/// sees a handful of codes, so a short list behind a read lock is enough.
#[derive(Debug)]
pub struct StatusCounters {
    registry: Arc<Registry>,
    route: Arc<str>,
    by_code: RwLock<Vec<(u16, Counter)>>,
    /// The counter for 200, the common case, reached without the lock.
    ok: std::sync::OnceLock<Counter>,
}

impl StatusCounters {
    pub fn new(registry: Arc<Registry>, route: Arc<str>) -> Self {
        StatusCounters {
            registry,
            route,
            by_code: RwLock::new(Vec::new()),
            ok: std::sync::OnceLock::new(),
        }
    }

    pub fn inc(&self, status: u16) {
        if status == 200 {
            self.ok.get_or_init(|| self.counter(200)).inc();
        } else {
            self.counter(status).inc();
        }
    }

    fn counter(&self, status: u16) -> Counter {
        {
            let list = self.by_code.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, c)) = list.iter().find(|(s, _)| *s == status) {
                return c.clone();
            }
        }
        let code = status.to_string();
        let c = self.registry.counter(
            "portcullis_requests_total",
            "Requests served, by route and status code",
            &[("route", &self.route), ("status", &code)],
        );
        let mut list = self.by_code.write().unwrap_or_else(|e| e.into_inner());
        // Another thread may have added it meanwhile; the registry hands
        // both the same counter, so either entry counts the same.
        if !list.iter().any(|(s, _)| *s == status) {
            list.push((status, c.clone()));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_labels_share_a_series() {
        let r = Registry::new();
        let a = r.counter("x_total", "x", &[("route", "a")]);
        let b = r.counter("x_total", "x", &[("route", "a")]);
        a.inc();
        b.add(2);
        assert_eq!(a.get(), 3);
        let text = r.render();
        assert!(text.contains("# TYPE x_total counter"));
        assert!(text.contains("x_total{route=\"a\"} 3"));
    }

    #[test]
    fn histograms_render_cumulative_buckets() {
        let r = Registry::new();
        let h = r.histogram("lat_seconds", "latency", &[]);
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let text = r.render();
        assert!(
            text.contains("lat_seconds_bucket{le=\"0.0005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("lat_seconds_bucket{le=\"0.005\"} 2"),
            "{text}"
        );
        assert!(text.contains("lat_seconds_bucket{le=\"10\"} 2"), "{text}");
        assert!(text.contains("lat_seconds_bucket{le=\"+Inf\"} 3"), "{text}");
        assert!(text.contains("lat_seconds_count 3"), "{text}");
    }

    #[test]
    fn label_values_are_escaped_and_status_counters_work() {
        let r = Arc::new(Registry::new());
        let s = StatusCounters::new(r.clone(), "we\"ird".into());
        s.inc(200);
        s.inc(200);
        s.inc(404);
        let text = r.render();
        assert!(
            text.contains("portcullis_requests_total{route=\"we\\\"ird\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("status=\"404\"} 1"), "{text}");
    }

    #[test]
    fn retain_drops_series() {
        let r = Registry::new();
        r.gauge("g", "g", &[("t", "a")]).set(1);
        r.gauge("g", "g", &[("t", "b")]).set(1);
        r.retain("g", |l| l.contains("\"a\""));
        let text = r.render();
        assert!(text.contains("t=\"a\"") && !text.contains("t=\"b\""));
    }
}
