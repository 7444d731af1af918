//! Answers waiting for a slow reader. A bulk check keeps reading its request while the client
//! is still sending it, even when the client reads nothing until it has sent everything (as
//! most simple HTTP clients do: they would otherwise stall against a server that stops
//! reading). Answers wait in memory up to a bound, then in an unlinked temporary file (in
//! `TMPDIR`), so the server's memory stays flat whatever the client does. Only when the file
//! holds [`FILE_LIMIT`] bytes does the writer wait for the reader.
//!
//! Both halves live on one HTTP worker thread (`Rc`, no locks). Writing to the file (and
//! making it) runs on the blocking pool, off the async worker; the reader takes only bytes
//! whose write has finished.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use actix_web::web::Bytes;
use futures_util::Stream;

/// Bytes of answers held in memory before they go to the file.
pub const IN_MEMORY: usize = 4 << 20;
/// Bytes of answers the file holds at most (about five million answers).
pub const FILE_LIMIT: u64 = 1 << 30;
/// Bytes read back from the file at a time.
const FILE_READ: u64 = 256 << 10;

/// The reader went away (the client closed the connection), or the file failed.
#[derive(Debug)]
pub struct Closed;

struct Inner {
    memory: VecDeque<Bytes>,
    memory_bytes: usize,
    /// Everything in the file is newer than everything in `memory`.
    file: Option<Arc<File>>,
    /// A write to the file is under way (at offset `written`): the file is not reset.
    spilling: bool,
    written: u64,
    read: u64,
    file_limit: u64,
    in_memory: usize,
    finished: bool,
    failed: bool,
    closed: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Inner {
    fn wake_reader(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }

    fn wake_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }
}

/// Writes `bytes` at `at` in the spool's file (made first if there is none yet), on the
/// blocking pool; answers the file. Uploads spool through it too.
pub(crate) async fn spill(file: Option<Arc<File>>, bytes: Bytes, at: u64) -> io::Result<Arc<File>> {
    tokio::task::spawn_blocking(move || {
        let file = match file {
            Some(f) => f,
            None => Arc::new(tempfile::tempfile()?),
        };
        file.write_all_at(&bytes, at)?;
        Ok(file)
    })
    .await
    .map_err(io::Error::other)?
}

/// The producing half.
pub struct SpoolWriter(Rc<RefCell<Inner>>);

/// The consuming half: a stream of the bytes pushed, in order.
pub struct SpoolReader(Rc<RefCell<Inner>>);

/// A new, empty spool.
pub fn spool() -> (SpoolWriter, SpoolReader) {
    with_limits(IN_MEMORY, FILE_LIMIT)
}

/// A new, empty spool holding `in_memory` bytes in memory and `file_limit` in its file.
pub fn with_limits(in_memory: usize, file_limit: u64) -> (SpoolWriter, SpoolReader) {
    let inner = Rc::new(RefCell::new(Inner {
        memory: VecDeque::new(),
        memory_bytes: 0,
        file: None,
        written: 0,
        read: 0,
        file_limit,
        in_memory,
        spilling: false,
        finished: false,
        failed: false,
        closed: false,
        reader: None,
        writer: None,
    }));
    (SpoolWriter(inner.clone()), SpoolReader(inner))
}

impl SpoolWriter {
    /// Queues `bytes` after everything pushed before. Waits only while the file is full.
    pub async fn push(&self, bytes: Bytes) -> Result<(), Closed> {
        let mut bytes = Some(bytes);
        // Either the bytes went to memory (None), or they go to the file at an offset.
        let to_file = std::future::poll_fn(|cx| {
            let mut s = self.0.borrow_mut();
            if s.closed || s.failed {
                return Poll::Ready(Err(Closed));
            }
            let len = bytes.as_ref().map_or(0, Bytes::len);
            let in_file = s.written - s.read;
            if in_file == 0 && (s.memory.is_empty() || s.memory_bytes + len <= s.in_memory) {
                if let Some(b) = bytes.take() {
                    s.memory_bytes += b.len();
                    s.memory.push_back(b);
                }
                s.wake_reader();
                Poll::Ready(Ok(None))
            } else if in_file == 0 || in_file + len as u64 <= s.file_limit {
                s.spilling = true;
                Poll::Ready(Ok(bytes.take().map(|b| (b, s.file.clone(), s.written))))
            } else {
                s.writer = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await?;
        let Some((b, file, at)) = to_file else { return Ok(()) };
        let len = b.len() as u64;
        let written = spill(file, b, at).await;
        let mut s = self.0.borrow_mut();
        s.spilling = false;
        match written {
            Ok(file) => {
                s.file = Some(file);
                s.written += len;
                s.wake_reader();
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "bulk answers could not be spooled to a temporary file");
                s.failed = true;
                s.wake_reader();
                Err(Closed)
            }
        }
    }

    /// Marks the end: the reader ends once it has taken everything.
    pub fn finish(self) {
        let mut s = self.0.borrow_mut();
        s.finished = true;
        s.wake_reader();
    }
}

impl Drop for SpoolWriter {
    /// A writer dropped without [`SpoolWriter::finish`] failed: the reader ends with an
    /// error, so the client sees a broken answer rather than a short one.
    fn drop(&mut self) {
        let mut s = self.0.borrow_mut();
        if !s.finished {
            s.failed = true;
        }
        s.wake_reader();
    }
}

impl Stream for SpoolReader {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut s = self.0.borrow_mut();
        if let Some(b) = s.memory.pop_front() {
            s.memory_bytes -= b.len();
            s.wake_writer();
            return Poll::Ready(Some(Ok(b)));
        }
        if s.read < s.written {
            let n = FILE_READ.min(s.written - s.read);
            let mut buf = vec![0u8; n as usize];
            let read = match &s.file {
                Some(f) => f.read_exact_at(&mut buf, s.read),
                None => Err(io::Error::other("spool file missing")),
            };
            if let Err(e) = read {
                s.failed = true;
                return Poll::Ready(Some(Err(e)));
            }
            s.read += n;
            if s.read == s.written && !s.spilling {
                // All taken: start the file again from its beginning.
                s.read = 0;
                s.written = 0;
                if let Some(f) = &s.file {
                    let _ = f.set_len(0);
                }
            }
            s.wake_writer();
            return Poll::Ready(Some(Ok(Bytes::from(buf))));
        }
        if s.failed {
            return Poll::Ready(Some(Err(io::Error::other("the answers could not be produced"))));
        }
        if s.finished {
            return Poll::Ready(None);
        }
        s.reader = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for SpoolReader {
    fn drop(&mut self) {
        let mut s = self.0.borrow_mut();
        s.closed = true;
        s.wake_writer();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::future::Future;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn everything_pushed_comes_out_in_order_through_memory_and_file() {
        block_on(async {
            // 10 bytes in memory, then the file.
            let (w, mut r) = with_limits(10, 1 << 20);
            let chunks: Vec<Bytes> = (0..50u8).map(|i| Bytes::from(vec![i; usize::from(i % 7) + 1])).collect();
            let mut out = Vec::new();
            for (k, c) in chunks.iter().enumerate() {
                w.push(c.clone()).await.unwrap();
                // The reader takes something now and then, so memory and file interleave.
                if k % 9 == 0 {
                    out.extend_from_slice(&r.next().await.unwrap().unwrap());
                }
            }
            assert!(w.0.borrow().file.is_some(), "the test must spill to the file");
            w.finish();
            while let Some(b) = r.next().await {
                out.extend_from_slice(&b.unwrap());
            }
            assert_eq!(out, chunks.concat());
        });
    }

    #[test]
    fn a_full_file_makes_the_writer_wait_for_the_reader() {
        block_on(async {
            let (w, mut r) = with_limits(1, 4);
            w.push(Bytes::from_static(b"ab")).await.unwrap(); // memory
            w.push(Bytes::from_static(b"cd")).await.unwrap(); // file
            w.push(Bytes::from_static(b"ef")).await.unwrap(); // file, now full
            {
                let mut third = std::pin::pin!(w.push(Bytes::from_static(b"gh")));
                let waker = futures_util::task::noop_waker();
                assert!(third.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
                assert_eq!(&r.next().await.unwrap().unwrap()[..], b"ab");
                assert_eq!(&r.next().await.unwrap().unwrap()[..], b"cdef");
                third.await.unwrap();
            }
            w.finish();
            assert_eq!(&r.next().await.unwrap().unwrap()[..], b"gh");
            assert!(r.next().await.is_none());
        });
    }

    #[test]
    fn a_writer_gone_without_finishing_breaks_the_stream_and_a_gone_reader_stops_the_writer() {
        block_on(async {
            let (w, mut r) = spool();
            w.push(Bytes::from_static(b"x")).await.unwrap();
            drop(w);
            assert_eq!(&r.next().await.unwrap().unwrap()[..], b"x");
            assert!(r.next().await.unwrap().is_err());

            let (w, r) = spool();
            drop(r);
            assert!(w.push(Bytes::from_static(b"y")).await.is_err());
        });
    }
}
