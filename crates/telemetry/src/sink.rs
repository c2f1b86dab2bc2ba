//! The writer behind the access log and security events.
//!
//! The request path never waits on I/O and never wakes a thread per line:
//! a line is serialised into a per-thread scratch buffer, then appended to a
//! shared buffer under a short lock. A background thread swaps the buffer
//! out and writes it every 100ms, or sooner when it grows large. If the
//! writer cannot keep up (a blocked pipe), lines beyond a cap are dropped
//! and counted rather than waited for.

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
/// Wake the writer early past this much buffered data.
const EARLY_WRITE: usize = 256 * 1024;
/// Drop lines past this much unwritten data.
const MAX_BUFFERED: usize = 16 * 1024 * 1024;

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
        SCRATCH.with(|scratch| {
            let Ok(mut line) = scratch.try_borrow_mut() else {
                return;
            };
            line.clear();
            if build(&mut line).is_err() {
                return;
            }
            line.push(b'\n');
            let mut buf = self.inner.buf.lock().unwrap_or_else(|e| e.into_inner());
            if buf.len() + line.len() > MAX_BUFFERED {
                self.inner.dropped.inc();
                return;
            }
            buf.extend_from_slice(&line);
            if buf.len() >= EARLY_WRITE {
                self.inner.wake.notify_one();
            }
        });
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
        let earlier =
            std::mem::take(&mut *self.inner.buf.lock().unwrap_or_else(|e| e.into_inner()));
        self.inner.enabled.store(out.is_some(), Ordering::Relaxed);
        self.send(Control::Switch(out, earlier))
    }

    /// Waits until every buffered line is written (used at shutdown and in
    /// tests), at most `timeout`.
    pub fn flush(&self, timeout: Duration) {
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
