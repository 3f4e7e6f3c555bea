//! HTTP/1.1 connections, with the limits a server facing untrusted clients needs.
//!
//! - **Header timeout**: a new connection's first request head must arrive whole within it
//!   of the opening, a keep-alive connection's next head within it of its first byte; a
//!   partly sent head is answered `408` and the connection closed, a silent new connection is
//!   just closed.
//! - **Body timeout**: the whole request body must arrive within it of the head; reading it
//!   then fails, and the handler answers `408`.
//! - **Idle timeout**: a keep-alive connection with no request under way is closed after it.
//!   A connection stays busy from a request's arrival until hyper has flushed its response,
//!   and a close is decided only while it is not busy (and taken back if a request came in
//!   before the socket saw it), so no request is ever cut short by these limits.
//! - **Connection cap**: at most `max_connections` open. A new connection over the cap takes
//!   the place of the connection idle the longest (never-used ones first), which is closed
//!   cleanly (an idle HTTP/1.1 connection may be closed at any time). When every connection
//!   is in a request, new ones wait in the listen backlog until one ends.
//! - Errors hyper answers by itself (a malformed request head: `400`, `414`, `431`) get a
//!   JSON body in the shape of the dialect whose path the request named.
//!
//! Memory per idle connection is bounded by hyper's buffers (`max_buf_size`) and the task.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    io,
    pin::{Pin, pin},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderValue, Request, Response, StatusCode, header},
};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::Notify,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use crate::error::{ApiError, DialectKind};

/// Limits of the HTTP server (`serve --http-*`).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// The largest request head (request line and headers), in bytes: `431` over it.
    pub max_header_bytes: usize,
}

/// File descriptors kept back from the connection cap by default: the databases, webhook
/// deliveries' outgoing connections, and the runtime's own.
pub const FD_RESERVE: u64 = 256;
/// The default cap on connections, when the open-file limit allows it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

impl HttpLimits {
    /// Defaults for a process that may open `nofile` files: the connection cap leaves room
    /// for everything else the server opens.
    pub fn for_open_files(nofile: u64) -> HttpLimits {
        let room = nofile.saturating_sub(FD_RESERVE.max(nofile / 4)).max(16);
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            max_connections: (room as usize).min(DEFAULT_MAX_CONNECTIONS),
            max_header_bytes: 16 * 1024,
        }
    }
}

/// A request body that did not arrive within the body timeout.
#[derive(Debug)]
pub struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive within the body timeout")
    }
}

impl std::error::Error for BodyTimeout {}

/// How long a connection being closed (by a timeout, an eviction) may take to end before its
/// socket is simply dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How long requests under way may finish after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

fn clock() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    clock().elapsed().as_millis() as u64
}

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

const KEEP: u8 = 0;
const CLOSE_QUIETLY: u8 = 1;
const CLOSE_WITH_408: u8 = 2;

/// What a connection is doing, shared by its socket, its service and its watchdog.
struct ConnState {
    /// `IDLE` (waiting for a request: a new connection, or keep-alive between requests),
    /// `HEAD` (a keep-alive connection got the start of a next request head), `BUSY` (a
    /// request is being handled or its response sent, until the response is flushed).
    phase: AtomicU8,
    /// When the phase began, in ms of [`clock`] (for a new connection: its opening).
    since: AtomicU64,
    /// Requests handed to the service so far.
    served: AtomicU64,
    /// A new connection sent bytes (of its first head).
    first_bytes: AtomicBool,
    /// When the response of the request under way was handed to hyper whole (ms of
    /// [`clock`], 0 while not): the connection stays busy until hyper has flushed it.
    response_done_at: AtomicU64,
    /// `KEEP`, or how the socket is to end: its next read (while not busy) is an end of
    /// stream.
    close: AtomicU8,
    /// The dialect of the path the current request head names (as far as it was seen).
    dialect: AtomicU8,
    /// Chosen for eviction (counted once).
    evicting: AtomicBool,
    evict: Notify,
}

/// Whether `bytes` begin like a request line (`METHOD SP …`): tells the first bytes of a next
/// request from body bytes hyper reads (and drops) after answering without reading a body.
fn looks_like_request_start(bytes: &[u8]) -> bool {
    let method = bytes.iter().take_while(|b| b.is_ascii_uppercase()).count();
    (1..=16).contains(&method) && bytes.get(method) == Some(&b' ')
}

impl ConnState {
    fn new() -> ConnState {
        ConnState {
            phase: AtomicU8::new(IDLE),
            since: AtomicU64::new(now_ms()),
            served: AtomicU64::new(0),
            first_bytes: AtomicBool::new(false),
            response_done_at: AtomicU64::new(0),
            close: AtomicU8::new(KEEP),
            dialect: AtomicU8::new(0),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
        }
    }

    fn on_bytes(&self, bytes: &[u8]) {
        if self.phase.load(Ordering::Relaxed) != IDLE {
            // Busy: the request's body (or a pipelined request, which hyper takes next).
            return;
        }
        if self.served.load(Ordering::Relaxed) == 0 {
            if !self.first_bytes.swap(true, Ordering::Relaxed) {
                self.dialect.store(dialect_code(head_dialect(bytes)), Ordering::Relaxed);
            }
        } else if looks_like_request_start(bytes) {
            self.since.store(now_ms(), Ordering::Relaxed);
            self.phase.store(HEAD, Ordering::Relaxed);
            self.dialect.store(dialect_code(head_dialect(bytes)), Ordering::Relaxed);
        }
    }

    fn begin_request(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
        self.response_done_at.store(0, Ordering::Relaxed);
        self.phase.store(BUSY, Ordering::Relaxed);
    }

    /// The response's last byte was handed to hyper.
    fn response_done(&self) {
        self.response_done_at.store(now_ms().max(1), Ordering::Relaxed);
    }

    /// hyper flushed what it wrote: a response handed over whole is now on its way.
    fn flushed(&self) {
        if self.response_done_at.swap(0, Ordering::Relaxed) != 0 {
            self.end_request();
        }
    }

    fn end_request(&self) {
        self.since.store(now_ms(), Ordering::Relaxed);
        self.phase.store(IDLE, Ordering::Relaxed);
    }

    fn busy(&self) -> bool {
        self.phase.load(Ordering::Relaxed) == BUSY
    }

    fn dialect(&self) -> DialectKind {
        match self.dialect.load(Ordering::Relaxed) {
            1 => DialectKind::DoubleTick,
            2 => DialectKind::Graph,
            3 => DialectKind::Wuts,
            4 => DialectKind::Wawp,
            _ => DialectKind::Native,
        }
    }

    /// When the current phase runs out, and what to do then. A busy connection has no
    /// deadline (`None`).
    fn deadline(&self, limits: &HttpLimits) -> (Instant, Option<Expiry>) {
        let since = clock() + Duration::from_millis(self.since.load(Ordering::Relaxed));
        let recheck = Instant::now() + limits.header_timeout.min(limits.idle_timeout);
        match self.phase.load(Ordering::Relaxed) {
            BUSY => {
                // A response hyper was given but never flushed (it ended otherwise).
                let done = self.response_done_at.load(Ordering::Relaxed);
                if done != 0 && now_ms().saturating_sub(done) > 1000 {
                    self.flushed();
                }
                (recheck, None)
            }
            // A first request head must arrive whole within the header timeout of the opening.
            _ if self.served.load(Ordering::Relaxed) == 0 => (
                since + limits.header_timeout,
                Some(if self.first_bytes.load(Ordering::Relaxed) {
                    Expiry::Head
                } else {
                    Expiry::Silent
                }),
            ),
            HEAD => (since + limits.header_timeout, Some(Expiry::Head)),
            _ => (since + limits.idle_timeout, Some(Expiry::Idle)),
        }
    }

    /// How likely the connection is the one to give up its place: a new one that sent
    /// nothing first, then idle keep-alive ones, then ones part-way through a head.
    fn eviction_rank(&self) -> (u8, u64) {
        let class = match (self.served.load(Ordering::Relaxed), self.phase.load(Ordering::Relaxed)) {
            (0, _) if !self.first_bytes.load(Ordering::Relaxed) => 0,
            (n, IDLE) if n > 0 => 1,
            _ => 2,
        };
        (class, self.since.load(Ordering::Relaxed))
    }
}

#[derive(Debug, Clone, Copy)]
enum Expiry {
    /// A new connection sent nothing.
    Silent,
    /// A keep-alive connection stayed idle.
    Idle,
    /// A request head did not arrive whole.
    Head,
}

fn dialect_code(d: DialectKind) -> u8 {
    match d {
        DialectKind::Native => 0,
        DialectKind::DoubleTick => 1,
        DialectKind::Graph => 2,
        DialectKind::Wuts => 3,
        DialectKind::Wawp => 4,
    }
}

/// The dialect of the path in the first bytes of a request head (`METHOD SP PATH …`).
fn head_dialect(bytes: &[u8]) -> DialectKind {
    let path = bytes
        .iter()
        .position(|b| *b == b' ')
        .map(|sp| &bytes[sp + 1..])
        .unwrap_or(&[]);
    DialectKind::for_path(
        std::str::from_utf8(&path[..path.len().min(64)])
            .unwrap_or_else(|e| std::str::from_utf8(&path[..e.valid_up_to()]).unwrap_or("")),
    )
}

/// A whole HTTP/1.1 response written by the server itself (the connection closes after it).
fn raw_response(status: StatusCode, dialect: DialectKind, e: &ApiError) -> Vec<u8> {
    let body = dialect.body(e).to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

/// hyper's own answer to a request head it could not parse: a head with no body
/// (`content-length: 0`) and a 4xx status. The application never answers an error without a
/// body, so nothing else has this shape.
fn parse_error_status(buf: &[u8]) -> Option<StatusCode> {
    let rest = buf.strip_prefix(b"HTTP/1.1 4")?;
    if !buf.ends_with(b"\r\n\r\n") || buf.len() > 512 {
        return None;
    }
    let lower = buf.to_ascii_lowercase();
    if !lower.windows(21).any(|w| w == b"\r\ncontent-length: 0\r\n") {
        return None;
    }
    let code = std::str::from_utf8(rest.get(..2)?).ok()?;
    StatusCode::from_u16(400 + code.parse::<u16>().ok()?).ok()
}

fn protocol_error(status: StatusCode, limits_header: usize) -> ApiError {
    let message = match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            format!("the request head (request line and headers) must be at most {limits_header} bytes")
        }
        StatusCode::URI_TOO_LONG => "the request URI is too long".to_string(),
        _ => "the request is not valid HTTP/1.1: its request line or a header is malformed \
              (for example a control character in a header value); nothing was done"
            .to_string(),
    };
    ApiError::new(status, "malformed_request", message)
}

/// The socket as hyper sees it: reads mark the connection's phase, a close asked for ends
/// the read side, and hyper's bodiless error answers are replaced by JSON ones.
struct TrackedIo {
    inner: TcpStream,
    state: Arc<ConnState>,
    max_header_bytes: usize,
    /// Bytes of the server's own that must reach the socket before anything else.
    pending: Vec<u8>,
    written: usize,
    sent_408: bool,
}

impl TrackedIo {
    /// Writes what is pending; `Ready(Ok)` once it is all out.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Replaces hyper's bodiless error answer; `Some(len)` when `buf` was one.
    fn replace_error(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Option<io::Result<usize>> {
        let status = parse_error_status(buf)?;
        let e = protocol_error(status, self.max_header_bytes);
        self.pending = raw_response(status, self.state.dialect(), &e);
        self.written = 0;
        match self.poll_pending(cx) {
            Poll::Ready(Err(e)) => Some(Err(e)),
            // The rest goes out on the next flush (hyper flushes what it wrote).
            _ => Some(Ok(buf.len())),
        }
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // A request that came in after the close was decided is served (the watchdog then
        // takes the close back).
        let close = if this.state.busy() {
            KEEP
        } else {
            this.state.close.load(Ordering::Relaxed)
        };
        match close {
            CLOSE_QUIETLY => return Poll::Ready(Ok(())),
            CLOSE_WITH_408 => {
                if !this.sent_408 {
                    this.sent_408 = true;
                    let e = ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        "the request head did not arrive within the header timeout",
                    );
                    this.pending = raw_response(StatusCode::REQUEST_TIMEOUT, this.state.dialect(), &e);
                    this.written = 0;
                }
                // Best effort: the client may not read it; the close grace bounds the wait.
                let _ = ready!(this.poll_pending(cx));
                return Poll::Ready(Ok(()));
            }
            _ => {}
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            this.state.on_bytes(new);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        if let Some(r) = this.replace_error(cx, buf) {
            return Poll::Ready(r);
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next())
            && let Some(r) = this.replace_error(cx, only)
        {
            return Poll::Ready(r);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        this.state.flushed();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A request body that fails with [`BodyTimeout`] once its deadline passes (the timer is
/// armed only if the body is not all there at once).
struct DeadlineBody {
    inner: Incoming,
    deadline: tokio::time::Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

/// Keeps the connection busy from the request's arrival until its response body is done
/// (and then until hyper has flushed it).
struct BusyGuard(Arc<ConnState>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.response_done();
    }
}

/// A response body that keeps its connection busy while it is being sent.
struct GuardedBody {
    inner: Body,
    _guard: BusyGuard,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

#[derive(Clone)]
struct Service {
    router: Router,
    state: Arc<ConnState>,
    body_timeout: Duration,
}

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<GuardedBody>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<GuardedBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, req: Request<Incoming>) -> ResponseFuture {
        self.state.begin_request();
        let guard = BusyGuard(self.state.clone());
        let deadline = tokio::time::Instant::now() + self.body_timeout;
        let dialect = DialectKind::for_path(req.uri().path());
        let req = req.map(|inner| {
            Body::new(DeadlineBody {
                inner,
                deadline,
                timer: None,
            })
        });
        let call = self.router.clone().oneshot(req);
        Box::pin(async move {
            let mut resp = call.await?;
            if crate::needs_json_error(&resp) {
                resp = crate::errors_as_json(dialect, resp).await;
            }
            if resp.status() == StatusCode::REQUEST_TIMEOUT {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(resp.map(|inner| GuardedBody { inner, _guard: guard }))
        })
    }
}

/// The open connections, for the cap and for eviction.
#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
    /// Connections chosen for eviction and not yet closed.
    evicting: AtomicUsize,
    freed: Notify,
}

impl Registry {
    fn add(&self, state: Arc<ConnState>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.conns.lock() {
            m.insert(id, state);
            metrics::gauge!("wagroups_http_connections").set(m.len() as f64);
        }
        id
    }

    fn remove(&self, id: u64) {
        if let Ok(mut m) = self.conns.lock()
            && let Some(s) = m.remove(&id)
        {
            if s.evicting.swap(false, Ordering::Relaxed) {
                self.evicting.fetch_sub(1, Ordering::Relaxed);
            }
            metrics::gauge!("wagroups_http_connections").set(m.len() as f64);
        }
        self.freed.notify_one();
    }

    /// Open connections not already on their way out.
    fn open(&self) -> usize {
        let n = self.conns.lock().map(|m| m.len()).unwrap_or(0);
        n.saturating_sub(self.evicting.load(Ordering::Relaxed))
    }

    /// Asks the connection that has waited the longest to close (by [`ConnState::eviction_rank`]);
    /// false when every connection is in a request.
    fn evict_one(&self) -> bool {
        let Ok(m) = self.conns.lock() else { return false };
        let victim = m
            .values()
            .filter(|s| !s.busy() && !s.evicting.load(Ordering::Relaxed))
            .min_by_key(|s| s.eviction_rank());
        match victim {
            Some(s) => {
                s.evicting.store(true, Ordering::Relaxed);
                self.evicting.fetch_add(1, Ordering::Relaxed);
                s.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

struct Registered<'a>(&'a Registry, u64);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.remove(self.1);
    }
}

fn closed(reason: &'static str) {
    metrics::counter!("wagroups_http_connections_closed_total", "reason" => reason).increment(1);
}

/// Serves HTTP/1.1 on `listener` until `shutdown`; then stops accepting, lets requests under
/// way finish (for up to 30 s) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let registry = Arc::new(Registry::default());
    let tracker = TaskTracker::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        // An end of stream from our side (a close decided) must not cut short a request
        // hyper had already read; a client's real half-close still gets its answer.
        .half_close(true)
        // Our own header timeout (it tells an idle connection from a slow head).
        .header_read_timeout(None)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size((limits.max_header_bytes + 8192).max(16 * 1024));
    let builder = Arc::new(builder);
    let mut warned_at: Option<Instant> = None;
    'accept: loop {
        // Room for one more: over the cap, an idle connection makes room, or we wait (a
        // busy connection that turns idle frees no slot by itself: look again soon).
        while registry.open() >= limits.max_connections {
            if registry.evict_one() {
                break;
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break 'accept,
                _ = registry.freed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                // Answers go out as written (hyper writes each response whole).
                let _ = stream.set_nodelay(true);
                stream
            }
            Err(e) => {
                if is_connection_error(&e) {
                    continue;
                }
                if warned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, open = registry.open(), "accepting a connection failed");
                    warned_at = Some(Instant::now());
                }
                // Out of file descriptors: make room and retry at once rather than leaving
                // every client waiting. Anything else: retry shortly.
                if matches!(e.raw_os_error(), Some(23 | 24)) {
                    registry.evict_one();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                } else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
        };
        let state = Arc::new(ConnState::new());
        let id = registry.add(state.clone());
        let (registry, builder, router, limits, shutdown) = (
            registry.clone(),
            builder.clone(),
            router.clone(),
            limits.clone(),
            shutdown.clone(),
        );
        tracker.spawn(async move {
            let _registered = Registered(&registry, id);
            connection(stream, state, &registry, &builder, router, &limits, &shutdown).await;
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// One connection, watched: closed when its phase runs out of time, when it is evicted, or
/// (after its request) at shutdown. A close is decided only while no request is under way,
/// and taken back if one comes in before the socket saw it.
async fn connection(
    stream: TcpStream,
    state: Arc<ConnState>,
    registry: &Registry,
    builder: &hyper::server::conn::http1::Builder,
    router: Router,
    limits: &HttpLimits,
    shutdown: &CancellationToken,
) {
    let io = TokioIo::new(TrackedIo {
        inner: stream,
        state: state.clone(),
        max_header_bytes: limits.max_header_bytes,
        pending: Vec::new(),
        written: 0,
        sent_408: false,
    });
    let service = Service {
        router,
        state: state.clone(),
        body_timeout: limits.body_timeout,
    };
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut shutting_down = false;
    // A close decided: why, and when the socket is dropped if the connection has not ended.
    let mut closing: Option<(&'static str, tokio::time::Instant)> = None;
    let close = |how: u8, reason: &'static str| {
        state.close.store(how, Ordering::Relaxed);
        Some((reason, tokio::time::Instant::now() + CLOSE_GRACE))
    };
    loop {
        // The phase may change between two looks (a request arrives, ends), so the next
        // look is never more than the shortest timeout away: then a deadline the phase
        // change brought closer is still seen before it passes.
        let wake = match closing {
            Some((_, give_up)) => give_up,
            None => tokio::time::Instant::from_std(
                state
                    .deadline(limits)
                    .0
                    .min(Instant::now() + limits.header_timeout.min(limits.idle_timeout)),
            ),
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            _ = tokio::time::sleep_until(wake) => {
                if closing.is_some() {
                    if state.busy() && !shutting_down {
                        // A request came in before the socket saw the close: it is served.
                        state.close.store(KEEP, Ordering::Relaxed);
                        if state.evicting.swap(false, Ordering::Relaxed) {
                            registry.evicting.fetch_sub(1, Ordering::Relaxed);
                        }
                        closing = None;
                        continue;
                    }
                    closing = Some(("forced", wake));
                    break;
                }
                if let (deadline, Some(expiry)) = state.deadline(limits)
                    && Instant::now() >= deadline
                {
                    closing = match expiry {
                        Expiry::Silent => close(CLOSE_QUIETLY, "header_timeout"),
                        Expiry::Idle => close(CLOSE_QUIETLY, "idle_timeout"),
                        Expiry::Head => close(CLOSE_WITH_408, "header_timeout"),
                    };
                }
            }
            _ = state.evict.notified() => {
                if closing.is_none() && !state.busy() {
                    let how = if state.phase.load(Ordering::Relaxed) == HEAD
                        || (state.served.load(Ordering::Relaxed) == 0 && state.first_bytes.load(Ordering::Relaxed))
                    {
                        CLOSE_WITH_408
                    } else {
                        CLOSE_QUIETLY
                    };
                    closing = close(how, "evicted");
                } else if state.evicting.swap(false, Ordering::Relaxed) {
                    // Busy meanwhile: it stays.
                    registry.evicting.fetch_sub(1, Ordering::Relaxed);
                }
            }
            _ = shutdown.cancelled(), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
                let limit = tokio::time::Instant::now() + SHUTDOWN_GRACE;
                closing = Some(match closing {
                    Some((reason, g)) => (reason, g.min(limit)),
                    None => ("shutdown", limit),
                });
            }
        }
    }
    if let Some((reason, _)) = closing {
        closed(reason);
    }
}
