//! Streaming bulk checks: NDJSON in, NDJSON out, line for line, with memory that stays flat
//! however long the list. Lines are taken in blocks as they arrive; each block is answered on
//! every core off the async workers; answers wait for the client in a spool (memory, then a
//! temporary file).

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use crate::error::{ApiError, Kind};
use crate::spool::with_limits;
use crate::AppState;
use domain::ControllerId;
use service::{CheckQuery, ServiceError};

use super::check_request::{respond, CheckRequest};

/// Lines answered per block.
const BLOCK_LINES: usize = 8192;
/// NDJSON bulk checks answered at once, across all clients; one more gets 503 with
/// `Retry-After`. With each stream's spool bounded ([`crate::spool::FILE_LIMIT`] on
/// disk, [`crate::spool::IN_MEMORY`] in memory), this bounds the spool bytes of the
/// whole server: 4 GiB of temporary files and 16 MiB of memory at most.
pub const MAX_STREAMS: usize = 4;
/// How long answers may wait for a client that reads none of them once its spool is full;
/// then the response is broken off (the client never loses a line silently: the answer stream
/// ends short, without its last line).
pub const READER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// One of the [`MAX_STREAMS`] places, given back when the stream ends.
struct StreamSlot(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl StreamSlot {
    fn take(count: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Option<Self> {
        use std::sync::atomic::Ordering;
        let mut now = count.load(Ordering::Acquire);
        loop {
            if now >= MAX_STREAMS {
                return None;
            }
            match count.compare_exchange(now, now + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(Self(count.clone())),
                Err(seen) => now = seen,
            }
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}
/// Longest line accepted, in bytes.
pub const MAX_LINE: usize = 16 * 1024;

struct Reader {
    payload: web::Payload,
    /// Bytes read and not yet cut into lines start at `pos`; the buffer is compacted only
    /// when more is read, so cutting a line never moves the rest.
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    /// Dropping the rest of an over-long line.
    skipping: bool,
}

/// One input line, or a line that was too long.
enum Line {
    Text(Vec<u8>),
    TooLong,
}

impl Reader {
    /// Reads up to a block of lines; empty when the body is finished. Lines already received
    /// are answered as soon as the client pauses (no more of the body is ready), so a client
    /// that sends one line and waits for its answer gets it.
    async fn block(&mut self) -> Vec<Line> {
        let mut lines = Vec::new();
        while lines.len() < BLOCK_LINES {
            if let Some(n) = self.buf[self.pos..].iter().position(|b| *b == b'\n') {
                let line = &self.buf[self.pos..self.pos + n];
                if self.skipping {
                    self.skipping = false;
                } else if !line.iter().all(u8::is_ascii_whitespace) {
                    lines.push(Line::Text(line.to_vec()));
                }
                self.pos += n + 1;
                continue;
            }
            if self.buf.len() - self.pos > MAX_LINE {
                self.buf.clear();
                self.pos = 0;
                if !self.skipping {
                    lines.push(Line::TooLong);
                    self.skipping = true;
                }
            }
            if self.eof {
                let rest = &self.buf[self.pos..];
                if !self.skipping && !rest.iter().all(u8::is_ascii_whitespace) {
                    lines.push(Line::Text(rest.to_vec()));
                }
                self.buf.clear();
                self.pos = 0;
                break;
            }
            let next = if lines.is_empty() {
                self.payload.next().await
            } else {
                // Take what has arrived; answer what we have if the client is pausing.
                match futures_util::FutureExt::now_or_never(self.payload.next()) {
                    Some(next) => next,
                    None => break,
                }
            };
            match next {
                Some(Ok(bytes)) => {
                    self.buf.drain(..self.pos);
                    self.pos = 0;
                    self.buf.extend_from_slice(&bytes);
                }
                Some(Err(_)) | None => self.eof = true,
            }
        }
        lines
    }
}

/// Answers a run of lines: each parsed on its own, then all the good ones decided together
/// (one batched read of their facts), then written in order.
fn answer_lines(state: &AppState, controller: &ControllerId, lines: &[Line], now: DateTime<Utc>) -> Vec<u8> {
    let parsed: Vec<Result<CheckQuery, ApiError>> = lines
        .iter()
        .map(|line| match line {
            Line::TooLong => Err(ApiError::new(Kind::InvalidJson, format!("the line is longer than {MAX_LINE} bytes"))),
            Line::Text(text) => serde_json::from_slice::<CheckRequest>(text)
                .map_err(|e| ApiError::new(Kind::InvalidJson, crate::error::redact(&e.to_string())))?
                .parse(),
        })
        .collect();
    let queries: Vec<&CheckQuery> = parsed.iter().flatten().collect();
    let answers = state
        .service
        .check_batch(controller, &queries, now)
        .unwrap_or_else(|e| (0..queries.len()).map(|_| Err(ServiceError::Internal(e.to_string()))).collect());
    // The good lines, in order, with their questions and answers.
    let mut answered = queries.iter().zip(answers);
    let mut out = Vec::with_capacity(lines.len() * 256);
    for p in &parsed {
        let result = p.as_ref().map_err(Clone::clone).and_then(|_| {
            let (q, answer) = answered.next().ok_or_else(|| ApiError::bare(Kind::Internal))?;
            Ok(respond(state, q, answer?))
        });
        let written = match result {
            Ok(answer) => answer.write_json(&mut out),
            Err(e) => serde_json::to_writer(&mut out, &serde_json::json!({ "error": e.problem() })),
        };
        if written.is_err() {
            out.extend_from_slice(br#"{"error":{"type":"/problems/internal","title":"Internal error","status":500}}"#);
        }
        out.push(b'\n');
    }
    out
}

/// A part of a block whose thread failed: the block cannot be answered line for line.
#[derive(Debug)]
struct BlockFailed;

/// Answers a block on every core, in order. A part that fails fails the whole block: its
/// lines are never dropped silently, which would shift later answers onto the wrong lines.
fn answer_block(state: &AppState, controller: &ControllerId, lines: &[Line]) -> Result<Vec<u8>, BlockFailed> {
    metrics::METRICS.bulk_lines.fetch_add(lines.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let now = service::now();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).max(1);
    let per = lines.len().div_ceil(threads).max(1);
    let parts: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> =
            lines.chunks(per).map(|chunk| s.spawn(move || answer_lines(state, controller, chunk, now))).collect();
        handles.into_iter().map(|h| h.join().map_err(|_| BlockFailed)).collect::<Result<_, _>>()
    })?;
    Ok(parts.concat())
}

/// The streaming response of `POST /v1/checks` with an NDJSON body. A task on this worker
/// reads and answers the lines as they arrive, and the answers wait in a [`spool`] for the
/// client to take them, so a client that sends its whole list before it reads (most do)
/// does not stall the server, and one that reads as it sends gets answers at once.
pub fn stream_checks(
    state: web::Data<AppState>,
    controller: ControllerId,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let slot = StreamSlot::take(&state.bulk_streams).ok_or_else(|| {
        ApiError::new(Kind::Busy, format!("{MAX_STREAMS} bulk checks are being answered; retry shortly"))
    })?;
    let mut reader = Reader { payload, buf: Vec::new(), pos: 0, eof: false, skipping: false };
    let limits = state.bulk_limits;
    let (answers, out) = with_limits(limits.in_memory, limits.file_limit);
    actix_web::rt::spawn(async move {
        let _slot = slot;
        loop {
            let lines = reader.block().await;
            if lines.is_empty() {
                answers.finish();
                return;
            }
            let (state, controller) = (state.clone(), controller.clone());
            let Ok(Ok(block)) = web::block(move || answer_block(&state, &controller, &lines)).await else {
                // Dropping the spool unfinished breaks the response: no answer goes missing
                // unnoticed.
                tracing::error!("a block of bulk checks could not be answered");
                return;
            };
            match tokio::time::timeout(limits.reader_timeout, answers.push(web::Bytes::from(block))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return, // the client went away
                Err(_) => {
                    tracing::warn!(timeout = ?limits.reader_timeout, "a bulk check's client read no answers; breaking it off");
                    return;
                }
            }
        }
    });
    Ok(HttpResponse::Ok().content_type("application/x-ndjson").streaming(out))
}
