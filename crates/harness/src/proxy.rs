//! A fault-injecting TCP proxy: the runner places one on every link between an adapter and the
//! arbiter, source and endpoint, so a scenario can cut a link (both ways or one way), heal it,
//! or add latency, with no root and no extra tools.
//!
//! - **Cut both ways**: open connections are closed at once; new ones are accepted and held
//!   silent (as a partition looks to the client) until the link heals, then closed.
//! - **Cut one way**: bytes in that direction are dropped; the other direction flows. HTTP/2
//!   keepalives then fail, and the peers see the link as broken.
//! - **Blackhole**: every byte is dropped both ways, but open connections stay open (half-open,
//!   as a real partition leaves them) until keepalives or timeouts give up on them; new ones
//!   are accepted and stay silent.
//! - **Latency**: every chunk in a direction is delivered that much later (order kept).
//!
//! A proxy's target may change ([`Proxy::retarget`]): the lab's view of a fleet whose failover
//! services share an etcd store follows whichever leads.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// Which way bytes flow on a link: from the client (the side that connects) to the server, or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Forward,
    /// Server to client.
    Backward,
}

pub use failover_scenario::cluster::LinkChange;

/// The state of one link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkState {
    /// Both ways cut.
    pub cut: bool,
    /// Client-to-server bytes dropped.
    pub drop_forward: bool,
    /// Server-to-client bytes dropped.
    pub drop_backward: bool,
    /// Added delay client to server.
    pub latency_forward: Duration,
    /// Added delay server to client.
    pub latency_backward: Duration,
}

impl LinkState {
    /// Applies a scenario's change; `from_client`: a one-way change goes from the client (the
    /// side that connects) to the server, else back.
    pub fn change(&mut self, change: &LinkChange, from_client: bool) {
        match change {
            LinkChange::Heal => *self = LinkState::default(),
            LinkChange::Cut { one_way: false } => self.cut = true,
            LinkChange::Cut { one_way: true } if from_client => self.drop_forward = true,
            LinkChange::Cut { one_way: true } => self.drop_backward = true,
            LinkChange::Blackhole => {
                self.drop_forward = true;
                self.drop_backward = true;
            }
            LinkChange::Latency { ms, one_way } => {
                let d = Duration::from_millis(*ms);
                if !*one_way || from_client {
                    self.latency_forward = d;
                }
                if !*one_way || !from_client {
                    self.latency_backward = d;
                }
            }
        }
    }

    fn drops(&self, d: Direction) -> bool {
        self.cut
            || match d {
                Direction::Forward => self.drop_forward,
                Direction::Backward => self.drop_backward,
            }
    }
    fn latency(&self, d: Direction) -> Duration {
        match d {
            Direction::Forward => self.latency_forward,
            Direction::Backward => self.latency_backward,
        }
    }
}

/// A running proxy: listens on its own loopback port and forwards to `target`.
#[derive(Debug)]
pub struct Proxy {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Where it forwards (read at each new connection).
    target: Arc<Mutex<SocketAddr>>,
    state: watch::Sender<LinkState>,
    /// Bumped to close every open connection.
    generation: Arc<Mutex<u64>>,
    /// Bytes delivered, both ways, since the start.
    bytes: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Starts a proxy on a free port of the loopback address `ip`.
    pub async fn start(ip: std::net::Ipv4Addr, target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind((ip, 0)).await?;
        let listen = listener.local_addr()?;
        let state = watch::Sender::new(LinkState::default());
        let generation = Arc::new(Mutex::new(0));
        let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let target = Arc::new(Mutex::new(target));
        let task = tokio::spawn(accept_loop(
            listener,
            target.clone(),
            state.clone(),
            generation.clone(),
            bytes.clone(),
        ));
        Ok(Proxy {
            listen,
            target,
            state,
            generation,
            bytes,
            task,
        })
    }

    /// Bytes the link has delivered, both ways, since it started (measured, for the standby's
    /// network cost).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Where it forwards now.
    pub fn target(&self) -> SocketAddr {
        *self.target.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forwards new connections to `to` from now on, and closes every open one (their clients
    /// reconnect, reaching `to`).
    pub fn retarget(&self, to: SocketAddr) {
        {
            let mut target = self.target.lock().unwrap_or_else(PoisonError::into_inner);
            if *target == to {
                return;
            }
            *target = to;
        }
        *self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner) += 1;
        // Wakes every connection to see the new generation.
        self.state.send_modify(|_| {});
    }

    /// The link's state now.
    pub fn state(&self) -> LinkState {
        *self.state.borrow()
    }

    /// Changes the link's state; cutting both ways closes every open connection.
    pub fn set(&self, f: impl FnOnce(&mut LinkState)) {
        let before = self.state();
        let mut next = before;
        f(&mut next);
        if next.cut && !before.cut {
            *self
                .generation
                .lock()
                .unwrap_or_else(PoisonError::into_inner) += 1;
        }
        self.state.send_replace(next);
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: Arc<Mutex<SocketAddr>>,
    state: watch::Sender<LinkState>,
    generation: Arc<Mutex<u64>>,
    bytes: Arc<std::sync::atomic::AtomicU64>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let mut rx = state.subscribe();
        let born = *generation.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = generation.clone();
        let bytes = bytes.clone();
        let target = *target.lock().unwrap_or_else(PoisonError::into_inner);
        tokio::spawn(async move {
            // While cut, hold the connection silent; close it when the link heals.
            if rx.borrow().cut {
                let _ = rx.wait_for(|s| !s.cut).await;
                return;
            }
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let closed = {
                let generation = generation.clone();
                let mut rx = rx.clone();
                async move {
                    loop {
                        if *generation.lock().unwrap_or_else(PoisonError::into_inner) != born {
                            return;
                        }
                        if rx.changed().await.is_err() {
                            return;
                        }
                    }
                }
            };
            tokio::select! {
                () = pump(cr, sw, Direction::Forward, rx.clone(), &bytes) => {}
                () = pump(sr, cw, Direction::Backward, rx, &bytes) => {}
                () = closed => {}
            }
        });
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    direction: Direction,
    state: watch::Receiver<LinkState>,
    bytes: &std::sync::atomic::AtomicU64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let link = *state.borrow();
        if link.drops(direction) {
            continue;
        }
        let delay = link.latency(direction);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        bytes.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(&b[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(addr: SocketAddr, within: Duration) -> Option<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"ping").await.ok()?;
        let mut b = [0u8; 4];
        match tokio::time::timeout(within, s.read_exact(&mut b)).await {
            Ok(Ok(_)) => Some(b.to_vec()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn forwards_cuts_heals_and_delays() {
        let proxy = Proxy::start(std::net::Ipv4Addr::LOCALHOST, echo_server().await)
            .await
            .expect("proxy");
        assert_eq!(
            round_trip(proxy.listen, Duration::from_secs(2))
                .await
                .as_deref(),
            Some(&b"ping"[..])
        );
        // "ping" there and back: 8 bytes delivered.
        assert_eq!(proxy.bytes(), 8);
        proxy.set(|s| s.cut = true);
        assert_eq!(
            round_trip(proxy.listen, Duration::from_millis(300)).await,
            None
        );
        proxy.set(|s| s.cut = false);
        assert!(
            round_trip(proxy.listen, Duration::from_secs(2))
                .await
                .is_some()
        );
        proxy.set(|s| s.drop_backward = true);
        assert_eq!(
            round_trip(proxy.listen, Duration::from_millis(300)).await,
            None
        );
        // A blackhole: an open connection stays open and silent, then flows again.
        proxy.set(|s| s.drop_backward = false);
        let mut open = TcpStream::connect(proxy.listen).await.expect("connect");
        open.write_all(b"ping").await.expect("write");
        let mut b = [0u8; 4];
        open.read_exact(&mut b).await.expect("echo");
        proxy.set(|s| {
            s.drop_forward = true;
            s.drop_backward = true;
        });
        open.write_all(b"lost").await.expect("still open");
        let silent = tokio::time::timeout(Duration::from_millis(300), open.read(&mut b)).await;
        assert!(
            silent.is_err(),
            "nothing comes back, and nothing closes: {silent:?}"
        );
        proxy.set(|s| {
            s.drop_forward = false;
            s.drop_backward = false;
        });
        open.write_all(b"pong").await.expect("write");
        open.read_exact(&mut b)
            .await
            .expect("the same connection flows again");
        assert_eq!(&b, b"pong");
        proxy.set(|s| {
            s.drop_backward = false;
            s.latency_forward = Duration::from_millis(200);
        });
        let t = std::time::Instant::now();
        assert!(
            round_trip(proxy.listen, Duration::from_secs(2))
                .await
                .is_some()
        );
        assert!(t.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn cutting_closes_open_connections() {
        let proxy = Proxy::start(std::net::Ipv4Addr::LOCALHOST, echo_server().await)
            .await
            .expect("proxy");
        let mut s = TcpStream::connect(proxy.listen).await.expect("connect");
        s.write_all(b"ping").await.expect("write");
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await.expect("echo");
        proxy.set(|st| st.cut = true);
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    }
}
