//! The serving loop: accepts TCP connections and serves the router over HTTP/1.1 with the
//! bounds that keep slow or hostile clients from taking the server offline.
//!
//! - A client must send a request's headers within [`Limits::header_read_timeout`] (this also
//!   bounds how long a kept-alive connection may sit idle between requests), and its body
//!   within [`Limits::body_timeout`].
//! - At most [`Limits::max_connections`] connections are open. When a new one arrives at the
//!   limit, the oldest connection with no request in flight (a slow client that has not
//!   finished its headers, or an idle keep-alive) is closed to make room, so a health check
//!   or a real user always gets in while slow clients are shed; only when every connection is
//!   busy with a request does accepting wait for one to finish.
//! - Every request carries [`ConnectInfo`] with the peer's address (the rate limits of
//!   logins are keyed by it).
//!
//! Both the binary and the tests serve through [`run`].

use axum::body::Bytes;
use axum::body::HttpBody;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tower_service::Service;

/// Bounds on what one connection may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request's headers, counted from the connection's start or the end of
    /// the previous response (so also the keep-alive idle timeout).
    pub header_read_timeout: Duration,
    /// Time to send a request's whole body, counted from the end of its headers.
    pub body_timeout: Duration,
    /// Open connections at most; keep it below the process's file-descriptor limit.
    pub max_connections: usize,
}

/// File descriptors kept for the store, logs and outgoing connections.
const RESERVED_FDS: usize = 256;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(),
        }
    }
}

/// 10,000, or fewer when the process may not open that many files (Linux's soft
/// `RLIMIT_NOFILE`, read from /proc), so that `accept` never fails for want of descriptors.
pub fn default_max_connections() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits").ok().and_then(|limits| {
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse::<usize>().ok()
    });
    match soft {
        Some(soft) => soft.saturating_sub(RESERVED_FDS).clamp(16, 10_000),
        None => 10_000,
    }
}

/// Connections the kernel queues before they are accepted (Linux caps it at
/// `net.core.somaxconn`): a burst of connects is queued rather than dropped, so a health
/// check's connect is not retried a second later.
const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `address` (`host:port`, the first address it resolves to) with a deep backlog.
pub async fn bind(address: &str) -> std::io::Result<TcpListener> {
    let addr = tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on"))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// One open connection: how many of its requests are in flight, and how to close it.
struct Slot {
    in_flight: AtomicUsize,
    evict: Notify,
}

/// The open connections in the order they were accepted.
#[derive(Default)]
struct Connections {
    open: Mutex<BTreeMap<u64, Arc<Slot>>>,
    /// Signalled when a connection closes (for an accept loop waiting at the limit).
    closed: Notify,
}

impl Connections {
    fn len(&self) -> usize {
        self.open.lock().expect("connections").len()
    }

    /// Closes the oldest connection with no request in flight (it stops counting at once);
    /// false when all are busy.
    fn evict_oldest_idle(&self) -> bool {
        let mut open = self.open.lock().expect("connections");
        let idle = open
            .iter()
            .find(|(_, s)| s.in_flight.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id);
        match idle.and_then(|id| open.remove(&id)) {
            Some(slot) => {
                slot.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish (connections are closed once idle) before returning.
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let connections = Arc::new(Connections::default());
    let (close_tx, close_rx) = watch::channel(());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        while connections.len() >= limits.max_connections && !connections.evict_oldest_idle() {
            tokio::select! {
                _ = connections.closed.notified() => {}
                _ = &mut shutdown => return drain(stop_tx, close_tx, close_rx).await,
            }
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait a moment.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return drain(stop_tx, close_tx, close_rx).await,
        };
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let slot = Arc::new(Slot {
            in_flight: AtomicUsize::new(0),
            evict: Notify::new(),
        });
        connections
            .open
            .lock()
            .expect("connections")
            .insert(next_id, slot.clone());
        let task = Connection {
            id: next_id,
            peer,
            slot,
            connections: connections.clone(),
            router: router.clone(),
            limits,
        };
        tokio::spawn(task.serve(stream, stop_rx.clone(), close_rx.clone()));
    }
}

/// Stops every connection gracefully and waits until all are closed.
async fn drain(
    stop: watch::Sender<bool>,
    close_tx: watch::Sender<()>,
    close_rx: watch::Receiver<()>,
) -> std::io::Result<()> {
    let _ = stop.send(true);
    drop(close_rx);
    close_tx.closed().await;
    Ok(())
}

struct Connection {
    id: u64,
    peer: SocketAddr,
    slot: Arc<Slot>,
    connections: Arc<Connections>,
    router: Router,
    limits: Limits,
}

impl Connection {
    async fn serve(self, stream: tokio::net::TcpStream, mut stop: watch::Receiver<bool>, _open: watch::Receiver<()>) {
        let service = RequestService {
            peer: self.peer,
            slot: self.slot.clone(),
            router: self.router.clone(),
            body_timeout: self.limits.body_timeout,
        };
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(connection);
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = connection.as_mut() => break,
                _ = self.slot.evict.notified() => break, // dropping the connection closes it
                changed = stop.changed(), if !stopping => {
                    stopping = true;
                    if changed.is_ok() {
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        }
        self.connections.open.lock().expect("connections").remove(&self.id);
        self.connections.closed.notify_one();
    }
}

/// Hands each request to the router with the peer's address, counting it in flight until
/// its response has been written.
#[derive(Clone)]
struct RequestService {
    peer: SocketAddr,
    slot: Arc<Slot>,
    router: Router,
    body_timeout: Duration,
}

impl hyper::service::Service<hyper::Request<Incoming>> for RequestService {
    type Response = hyper::Response<InFlight>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let guard = InFlightGuard::new(self.slot.clone());
        let deadline = tokio::time::Instant::now() + self.body_timeout;
        let mut request = request.map(|body| axum::body::Body::new(TimedBody::new(body, deadline)));
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let mut router = self.router.clone();
        Box::pin(async move {
            let response = router.call(request).await?;
            Ok(response.map(|body| InFlight { body, _guard: guard }))
        })
    }
}

/// Marks a request in flight from its headers until its response body is dropped.
struct InFlightGuard(Arc<Slot>);

impl InFlightGuard {
    fn new(slot: Arc<Slot>) -> Self {
        slot.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(slot)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted in flight while it is being written.
pub struct InFlight {
    body: axum::body::Body,
    _guard: InFlightGuard,
}

impl HttpBody for InFlight {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that fails once its deadline passes, so a client trickling a body cannot
/// hold a connection (and a request in flight) for ever.
struct TimedBody {
    body: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl TimedBody {
    fn new(body: Incoming, deadline: tokio::time::Instant) -> Self {
        TimedBody {
            body,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(axum::Error::new)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new("the request body was not received in time")))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
