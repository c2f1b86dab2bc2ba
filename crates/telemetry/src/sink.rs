//! The writer behind the access log and security events.
//!
//! The request path never waits on I/O and never wakes a thread per line.
//! A line is serialised into a per-thread buffer; on the runtime's worker
//! threads, which opt in ([`thread_idle`]), that buffer is handed to the
//! shared one only when it fills or when the thread goes idle, so the
//! shared buffer's lock (a full memory fence) is taken about once per
//! hundred lines under load and at once when traffic pauses. Other threads
//! append each line under the lock. A background thread swaps the shared
//! buffer out and writes it every 100ms, or sooner when it grows large. If
//! the writer cannot keep up (a blocked pipe), lines beyond a cap are
//! dropped and counted rather than waited for.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::metrics::Counter;

/// How often buffered lines are written when traffic is light.
const INTERVAL: Duration = Duration::from_millis(100);
/// Wake the writer early past this much buffered data. Small, so that
/// each write is short: the writer shares a core with the request path
/// (a one-core deployment, or a pinned process), and a long write into the
/// page cache stalls every request behind it, which shows in the tail
/// latency; many short writes cost about the same in all.
const EARLY_WRITE: usize = 32 * 1024;
/// Drop lines past this much unwritten data.
const MAX_BUFFERED: usize = 16 * 1024 * 1024;
/// A worker thread hands its lines over once it holds this many bytes.
const THREAD_BATCH: usize = 32 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkTarget {
    Stdout,
    Stderr,
    File(PathBuf),
    Off,
}

enum Control {
    /// A new target, and the lines written before the switch (for the old one).
    Switch(Option<Box<dyn Write + Send>>, Vec<u8>),
    Flush(mpsc::Sender<()>),
}

struct Inner {
    buf: Mutex<Vec<u8>>,
    wake: Condvar,
    enabled: AtomicBool,
    dropped: Counter,
    control: Mutex<mpsc::Sender<Control>>,
}

/// A handle to the log writer; cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

fn open(target: &SinkTarget) -> io::Result<Option<Box<dyn Write + Send>>> {
    Ok(match target {
        SinkTarget::Stdout => Some(Box::new(io::stdout())),
        SinkTarget::Stderr => Some(Box::new(io::stderr())),
        SinkTarget::File(p) => {
            let f: File = OpenOptions::new().create(true).append(true).open(p)?;
            Some(Box::new(f))
        }
        SinkTarget::Off => None,
    })
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
    /// Lines a worker thread holds back, per sink; `None` on threads that
    /// have not opted in.
    static HELD: RefCell<Option<HeldLines>> = const { RefCell::new(None) };
}

/// What one thread holds, handed over when the thread ends, whatever way.
struct HeldLines(Vec<Held>);

impl Drop for HeldLines {
    fn drop(&mut self) {
        for h in &mut self.0 {
            let lines = std::mem::take(&mut h.lines);
            h.inner.append(&mut h.buf, lines);
        }
    }
}

struct Held {
    inner: Arc<Inner>,
    buf: Vec<u8>,
    lines: u64,
}

impl Inner {
    /// Moves `buf` (holding `lines` lines) into the shared buffer, or drops
    /// it when the writer is too far behind.
    fn append(&self, buf: &mut Vec<u8>, lines: u64) {
        if buf.is_empty() {
            return;
        }
        let mut shared = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        if shared.len() + buf.len() > MAX_BUFFERED {
            self.dropped.add(lines);
        } else {
            shared.extend_from_slice(buf);
            if shared.len() >= EARLY_WRITE {
                self.wake.notify_one();
            }
        }
        buf.clear();
    }
}

/// For the runtime's worker threads, called whenever one goes idle (and
/// when it stops): hands the lines the thread holds to their sinks, and
/// from then on lets it hold lines back. A thread that calls this must keep
/// calling it when idle, or its last lines wait until it does.
pub fn thread_idle() {
    HELD.with(|held| {
        if let Ok(mut held) = held.try_borrow_mut() {
            held.get_or_insert_with(|| HeldLines(Vec::new()));
        }
    });
    flush_held();
}

/// Hands the lines this thread holds (if it holds any) to their sinks.
fn flush_held() {
    HELD.with(|held| {
        let Ok(mut held) = held.try_borrow_mut() else {
            return;
        };
        let Some(HeldLines(list)) = held.as_mut() else {
            return;
        };
        for h in list.iter_mut() {
            let lines = std::mem::take(&mut h.lines);
            h.inner.append(&mut h.buf, lines);
        }
        // A sink nobody else holds any more is let go.
        list.retain(|h| Arc::strong_count(&h.inner) > 1);
    });
}

impl LogSink {
    /// Starts the writer thread. `dropped` counts lines lost to a writer
    /// that cannot keep up.
    pub fn start(target: &SinkTarget, dropped: Counter) -> io::Result<LogSink> {
        let out = open(target)?;
        let (tx, rx) = mpsc::channel();
        let inner = Arc::new(Inner {
            buf: Mutex::new(Vec::with_capacity(64 * 1024)),
            wake: Condvar::new(),
            enabled: AtomicBool::new(out.is_some()),
            dropped,
            control: Mutex::new(tx),
        });
        let writer = inner.clone();
        std::thread::Builder::new()
            .name("portcullis-log".into())
            .spawn(move || run(&writer, rx, out))?;
        Ok(LogSink { inner })
    }

    /// False when the target is `off`: callers skip building lines at all.
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::Relaxed)
    }

    /// Appends one line (a newline is added) built by `build`. A line whose
    /// builder fails is left out.
    pub fn write_with<E>(&self, build: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) {
        if !self.is_enabled() {
            return;
        }
        // A thread that holds lines adds this one to its batch.
        let Err(build) = HELD.with(|held| self.hold(held, build)) else {
            return;
        };
        SCRATCH.with(|scratch| {
            let Ok(mut line) = scratch.try_borrow_mut() else {
                return;
            };
            line.clear();
            if build(&mut line).is_ok() {
                line.push(b'\n');
                self.inner.append(&mut line, 1);
            }
        });
    }

    /// Adds a line to this thread's batch for this sink, handing the batch
    /// over when it is full. Gives `build` back when the thread holds no
    /// lines.
    fn hold<F, E>(&self, held: &RefCell<Option<HeldLines>>, build: F) -> Result<(), F>
    where
        F: FnOnce(&mut Vec<u8>) -> Result<(), E>,
    {
        let Ok(mut held) = held.try_borrow_mut() else {
            return Err(build);
        };
        let Some(HeldLines(list)) = held.as_mut() else {
            return Err(build);
        };
        let i = match list.iter().position(|h| Arc::ptr_eq(&h.inner, &self.inner)) {
            Some(i) => i,
            None => {
                list.push(Held {
                    inner: self.inner.clone(),
                    buf: Vec::with_capacity(THREAD_BATCH + 4096),
                    lines: 0,
                });
                list.len() - 1
            }
        };
        let Some(h) = list.get_mut(i) else {
            return Err(build);
        };
        let start = h.buf.len();
        if build(&mut h.buf).is_err() {
            h.buf.truncate(start);
            return Ok(());
        }
        h.buf.push(b'\n');
        h.lines += 1;
        if h.buf.len() >= THREAD_BATCH {
            let lines = std::mem::take(&mut h.lines);
            h.inner.append(&mut h.buf, lines);
        }
        Ok(())
    }

    /// Appends one line given as bytes.
    pub fn write_line(&self, line: &[u8]) {
        self.write_with(|b| {
            b.extend_from_slice(line);
            Ok::<(), ()>(())
        });
    }

    fn send(&self, c: Control) -> io::Result<()> {
        let sent = self
            .inner
            .control
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(c);
        self.inner.wake.notify_one();
        sent.map_err(|_| io::Error::other("the log writer has stopped"))
    }

    /// Points the log somewhere else. The new target is opened here, so an
    /// error (e.g. an unwritable file) is reported and the old one kept.
    pub fn switch(&self, target: &SinkTarget) -> io::Result<()> {
        let out = open(target)?;
        flush_held();
        let earlier =
            std::mem::take(&mut *self.inner.buf.lock().unwrap_or_else(|e| e.into_inner()));
        self.inner.enabled.store(out.is_some(), Ordering::Relaxed);
        self.send(Control::Switch(out, earlier))
    }

    /// Waits until every buffered line is written (used at shutdown and in
    /// tests), at most `timeout`.
    pub fn flush(&self, timeout: Duration) {
        flush_held();
        let (done_tx, done_rx) = mpsc::channel();
        if self.send(Control::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(timeout);
        }
    }
}

fn run(inner: &Inner, control: mpsc::Receiver<Control>, mut out: Option<Box<dyn Write + Send>>) {
    let mut spare: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut flushed = Vec::new();
    loop {
        {
            let buf = inner.buf.lock().unwrap_or_else(|e| e.into_inner());
            if buf.len() < EARLY_WRITE {
                drop(inner.wake.wait_timeout(buf, INTERVAL));
            }
        }
        // Control first: a switch carries the lines written before it, so
        // whatever is in the shared buffer now belongs to the new target.
        loop {
            match control.try_recv() {
                Ok(Control::Switch(next, mut earlier)) => {
                    write_out(&mut out, &mut earlier);
                    out = next;
                }
                Ok(Control::Flush(done)) => flushed.push(done),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        std::mem::swap(
            &mut *inner.buf.lock().unwrap_or_else(|e| e.into_inner()),
            &mut spare,
        );
        write_out(&mut out, &mut spare);
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

fn write_out(out: &mut Option<Box<dyn Write + Send>>, data: &mut Vec<u8>) {
    if let Some(w) = out.as_mut()
        && !data.is_empty()
    {
        let _ = w.write_all(data);
        let _ = w.flush();
    }
    data.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_lines_to_a_file_and_switches() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        let b = dir.path().join("b.log");
        let sink = LogSink::start(&SinkTarget::File(a.clone()), Counter::default()).unwrap();
        sink.write_line(b"one");
        sink.switch(&SinkTarget::File(b.clone())).unwrap();
        sink.write_line(b"two");
        sink.flush(Duration::from_secs(5));
        assert_eq!(std::fs::read_to_string(a).unwrap(), "one\n");
        assert_eq!(std::fs::read_to_string(b).unwrap(), "two\n");
        sink.switch(&SinkTarget::Off).unwrap();
        assert!(!sink.is_enabled());
        assert!(
            sink.switch(&SinkTarget::File(dir.path().join("no/such/dir.log")))
                .is_err()
        );
    }

    #[test]
    fn a_worker_thread_holds_lines_until_it_is_idle_full_or_gone() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        let sink = LogSink::start(&SinkTarget::File(a.clone()), Counter::default()).unwrap();
        let count = || {
            std::fs::read_to_string(&a)
                .unwrap_or_default()
                .lines()
                .count()
        };
        let wait_for = |n: usize| {
            for _ in 0..100 {
                if count() >= n {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            count()
        };
        let (go, idle) = mpsc::channel::<()>();
        let (wrote, written) = mpsc::channel::<()>();
        let worker = std::thread::spawn({
            let sink = sink.clone();
            move || {
                thread_idle();
                sink.write_line(b"held");
                wrote.send(()).unwrap();
                idle.recv().unwrap();
                thread_idle();
                wrote.send(()).unwrap();
                idle.recv().unwrap();
                // A full batch goes out without the thread going idle.
                for i in 0..2000 {
                    sink.write_line(format!("line {i:04} {}", "x".repeat(40)).as_bytes());
                }
                wrote.send(()).unwrap();
                idle.recv().unwrap();
                sink.write_line(b"last");
                // The thread ends holding "last".
            }
        });
        written.recv().unwrap();
        // Several writer intervals pass: the line stays with its thread.
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(count(), 0);
        go.send(()).unwrap();
        written.recv().unwrap();
        assert_eq!(wait_for(1), 1);
        go.send(()).unwrap();
        written.recv().unwrap();
        assert!(wait_for(1500) >= 1500);
        go.send(()).unwrap();
        worker.join().unwrap();
        assert_eq!(wait_for(2002), 2002);
        let text = std::fs::read_to_string(&a).unwrap();
        assert_eq!(text.lines().last(), Some("last"));
    }

    #[test]
    fn lines_appear_without_an_explicit_flush() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        let sink = LogSink::start(&SinkTarget::File(a.clone()), Counter::default()).unwrap();
        for i in 0..1000 {
            sink.write_line(format!("line {i}").as_bytes());
        }
        let mut text = String::new();
        for _ in 0..50 {
            text = std::fs::read_to_string(&a).unwrap_or_default();
            if text.lines().count() == 1000 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(text.lines().count(), 1000);
        assert_eq!(text.lines().last(), Some("line 999"));
    }
}
