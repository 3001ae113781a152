//! Accepting connections, bounded: at most [`MAX_CONNECTIONS`] at once, each given
//! [`HEADER_TIMEOUT`] to send a request's headers (on a kept-alive connection, the next
//! request's), and, when the bound is reached, the connection that has waited longest
//! without completing a request is closed to make room for the new one. A flood of idle
//! or half-sent connections therefore holds a bounded number of descriptors and never
//! locks out a client that sends its request (a health check, `paravox ctl`, the
//! dashboard); a failed accept (out of descriptors) waits a moment instead of spinning.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::AbortHandle;
use tower_service::Service;
use tracing::{debug, warn};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in flight may finish after the server is asked to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// The pause after an accept fails (no descriptors left, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A request body that records whether it was read to its end.
struct Tracked {
    inner: Incoming,
    finished: Arc<AtomicBool>,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(context);
        let ended = match &polled {
            std::task::Poll::Ready(None) => true,
            std::task::Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            this.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// One open connection.
#[derive(Debug)]
struct Open {
    accepted: Instant,
    /// Set once a request has arrived on it.
    served: Arc<AtomicBool>,
    abort: Option<AbortHandle>,
}

/// The open connections, by number.
#[derive(Debug, Default)]
struct Connections {
    next: u64,
    open: BTreeMap<u64, Open>,
    evicted: u64,
}

impl Connections {
    /// Registers a new connection, closing the one that made least use of its place
    /// when the bound is reached: the oldest that never completed a request, else the
    /// oldest.
    fn admit(&mut self, served: Arc<AtomicBool>) -> u64 {
        if self.open.len() >= MAX_CONNECTIONS {
            let idle = self
                .open
                .iter()
                .filter(|(_, open)| !open.served.load(Ordering::Relaxed))
                .min_by_key(|(_, open)| open.accepted)
                .map(|(id, _)| *id);
            let victim = idle.or_else(|| self.open.keys().next().copied());
            if let Some(open) = victim.and_then(|id| self.open.remove(&id)) {
                if let Some(abort) = open.abort {
                    abort.abort();
                }
                self.evicted += 1;
                if self.evicted.is_power_of_two() {
                    warn!(
                        limit = MAX_CONNECTIONS,
                        closed = self.evicted,
                        "API connections at their limit: closing the longest-idle ones"
                    );
                }
            }
        }
        let id = self.next;
        self.next += 1;
        self.open.insert(
            id,
            Open {
                accepted: Instant::now(),
                served,
                abort: None,
            },
        );
        id
    }
}

fn lock(connections: &Mutex<Connections>) -> std::sync::MutexGuard<'_, Connections> {
    connections.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serves `app` on `listener` until `stopped` fires, then lets requests in flight finish
/// for a moment.
/// The kernel send buffer of an API connection. Left to autotuning it grows to
/// megabytes, which a client that stops reading (a frozen browser tab listening to a
/// stream) fills with seconds of stale audio before the server notices; bounded, the
/// monitor's own queue fills within a second and drops instead.
const SEND_BUFFER_BYTES: libc::c_int = 128 * 1024;

fn bound_send_buffer(stream: &tokio::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let size = SEND_BUFFER_BYTES;
    // SAFETY: a valid socket descriptor and an int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            std::ptr::from_ref(&size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot bound a connection's send buffer");
    }
}

pub async fn serve(listener: TcpListener, app: Router, mut stopped: oneshot::Receiver<()>) {
    // Tells every connection to finish its request in flight and close.
    let (stop, stopping) = watch::channel(false);
    let connections = Arc::new(Mutex::new(Connections::default()));
    let mut failed_accepts: u64 = 0;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                failed_accepts += 1;
                if failed_accepts.is_power_of_two() {
                    warn!(%error, failed = failed_accepts, "the API cannot accept a connection");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        bound_send_buffer(&stream);
        // Small messages (a monitor's 20 ms of audio, a pong) go out at once instead of
        // waiting on Nagle for the client's delayed acknowledgement.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
        let served = Arc::new(AtomicBool::new(false));
        let id = lock(&connections).admit(served.clone());
        let service = {
            let app = app.clone();
            hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                served.store(true, Ordering::Relaxed);
                let mut app = app.clone();
                async move {
                    let sent_body = !hyper::body::Body::is_end_stream(request.body());
                    let finished = Arc::new(AtomicBool::new(false));
                    let request = request.map(|inner| {
                        axum::body::Body::new(Tracked {
                            inner,
                            finished: finished.clone(),
                        })
                    });
                    let mut response = app.call(request).await?;
                    if sent_body && !finished.load(Ordering::Acquire) {
                        // Answered without reading the whole body (a refused token, a
                        // wrong media type): the connection cannot carry another request,
                        // so say so rather than let the client reuse it and find it closed.
                        response.headers_mut().insert(
                            axum::http::header::CONNECTION,
                            axum::http::HeaderValue::from_static("close"),
                        );
                    }
                    Ok::<_, std::convert::Infallible>(response)
                }
            })
        };
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let registry = connections.clone();
        let mut stopping = stopping.clone();
        let task = tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = async { stopping.wait_for(|stop| *stop).await.map(drop) } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                debug!(%error, "API connection ended");
            }
            lock(&registry).open.remove(&id);
        });
        if let Some(open) = lock(&connections).open.get_mut(&id) {
            open.abort = Some(task.abort_handle());
        }
    }
    drop(listener);
    stop.send_replace(true);
    let drained = async {
        while !lock(&connections).open.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        warn!("API requests still running at shutdown; abandoning them");
        for open in lock(&connections).open.values() {
            if let Some(abort) = &open.abort {
                abort.abort();
            }
        }
    }
}
