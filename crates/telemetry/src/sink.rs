//! The writer behind the access log and security events: lines are handed
//! to a background thread through a bounded queue, so a slow disk or a
//! blocked pipe never stalls a request. When the queue is full, lines are
//! dropped and counted rather than waited for.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

use crate::metrics::Counter;

const QUEUE: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkTarget {
    Stdout,
    Stderr,
    File(PathBuf),
    Off,
}

enum Msg {
    Line(Vec<u8>),
    Switch(Option<Box<dyn Write + Send>>),
    Flush(mpsc::Sender<()>),
}

/// A handle to the log writer; cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    tx: SyncSender<Msg>,
    enabled: Arc<AtomicBool>,
    dropped: Counter,
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

impl LogSink {
    /// Starts the writer thread. `dropped` counts lines lost to a full queue.
    pub fn start(target: &SinkTarget, dropped: Counter) -> io::Result<LogSink> {
        let out = open(target)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let enabled = Arc::new(AtomicBool::new(out.is_some()));
        std::thread::Builder::new()
            .name("portcullis-log".into())
            .spawn(move || run(rx, out))?;
        Ok(LogSink {
            tx,
            enabled,
            dropped,
        })
    }

    /// False when the target is `off`: callers skip building lines at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Queues one line (a trailing newline is added).
    pub fn write_line(&self, mut line: Vec<u8>) {
        if !self.is_enabled() {
            return;
        }
        line.push(b'\n');
        match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }

    /// Points the log somewhere else. The new target is opened here, so an
    /// error (e.g. an unwritable file) is reported and the old one kept.
    pub fn switch(&self, target: &SinkTarget) -> io::Result<()> {
        let out = open(target)?;
        self.enabled.store(out.is_some(), Ordering::Relaxed);
        self.tx
            .send(Msg::Switch(out))
            .map_err(|_| io::Error::other("the log writer has stopped"))
    }

    /// Waits until every queued line is written (used at shutdown and in
    /// tests), at most `timeout`.
    pub fn flush(&self, timeout: Duration) {
        let (done_tx, done_rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(timeout);
        }
    }
}

fn run(rx: Receiver<Msg>, out: Option<Box<dyn Write + Send>>) {
    let mut out = out.map(|w| BufWriter::with_capacity(64 * 1024, w));
    loop {
        // Block for the next message; once the queue is drained, flush so
        // lines appear promptly even under light traffic.
        let msg = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                if let Some(w) = out.as_mut() {
                    let _ = w.flush();
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        handle(msg, &mut out);
        while let Ok(m) = rx.try_recv() {
            handle(m, &mut out);
        }
        if let Some(w) = out.as_mut() {
            let _ = w.flush();
        }
    }
    if let Some(w) = out.as_mut() {
        let _ = w.flush();
    }
}

fn handle(msg: Msg, out: &mut Option<BufWriter<Box<dyn Write + Send>>>) {
    match msg {
        Msg::Line(l) => {
            if let Some(w) = out.as_mut() {
                let _ = w.write_all(&l);
            }
        }
        Msg::Switch(next) => {
            if let Some(w) = out.as_mut() {
                let _ = w.flush();
            }
            *out = next.map(|w| BufWriter::with_capacity(64 * 1024, w));
        }
        Msg::Flush(done) => {
            if let Some(w) = out.as_mut() {
                let _ = w.flush();
            }
            let _ = done.send(());
        }
    }
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
        sink.write_line(b"one".to_vec());
        sink.switch(&SinkTarget::File(b.clone())).unwrap();
        sink.write_line(b"two".to_vec());
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
}
