//! The HTTP server loop: connections served by hyper under limits that keep one client from
//! starving the others.
//!
//! `axum::serve` offers no header timeout and no connection cap, which is what a slowloris
//! client exploits (open many connections, send each header a byte at a time). Here each
//! connection holds a permit of `max_connections` (more wait in the kernel's listen backlog)
//! and must send a complete request head within `header_timeout` — counted for every request,
//! so an idle keep-alive connection is closed after it too. What a request may take once its
//! head is in (body, time, in-flight requests per token) is checked by the router's layers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, warn};

/// How long connections still open at shutdown get to finish their requests.
const DRAIN: Duration = Duration::from_secs(10);
/// Bytes of a request head (request line and headers) at most.
const MAX_HEAD_BYTES: usize = 64 << 10;

pub struct ServerLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` turns true, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = stopped(&mut shutdown) => break,
        };
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                debug!(%peer, error = %err, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        warn!("connections still open after {DRAIN:?}; closing them");
    }
    Ok(())
}

/// Resolves once the shutdown flag is set (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await.map(drop);
}
