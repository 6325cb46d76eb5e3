//! Arrival times taken at the socket: each connection notes when it last read bytes.
//!
//! A response's arrival is the moment its bytes reached tokenscope. The engine reads that
//! moment off its connection's [`ReadStamp`]: the time of the latest socket read before the
//! response was decoded. That read brought the response's last bytes or came after it, so
//! the stamp is never earlier than the arrival; and it is taken before HTTP/2, gRPC and the
//! engine's own bookkeeping, so responses queued behind one another once read are recorded by
//! the reads that brought them in, not by when each was worked through.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::codegen::http::Uri;

/// When a connection last read bytes from its socket.
#[derive(Debug)]
pub struct ReadStamp {
    base: Instant,
    /// Nanoseconds after `base`.
    last_ns: AtomicU64,
}

impl Default for ReadStamp {
    fn default() -> Self {
        Self { base: Instant::now(), last_ns: AtomicU64::new(0) }
    }
}

impl ReadStamp {
    fn stamp(&self) {
        self.last_ns.store(self.base.elapsed().as_nanos() as u64, Ordering::Release);
    }

    /// The time of the latest read that brought bytes.
    pub fn last(&self) -> Instant {
        self.base + Duration::from_nanos(self.last_ns.load(Ordering::Acquire))
    }
}

/// How long responses waited in tokenscope between the socket read that timed them and their
/// record: the engine's backlog, which the recorded arrival times leave out. Kept as counts in
/// eight buckets per power of two of nanoseconds, so a quantile is known to within 12.5%.
#[derive(Debug)]
pub struct Waits {
    counts: Box<[AtomicU64]>,
    max_ns: AtomicU64,
}

/// Buckets per power of two, as a power of two.
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;

impl Default for Waits {
    fn default() -> Self {
        let buckets = Self::bucket(u64::MAX) + 1;
        Self { counts: (0..buckets).map(|_| AtomicU64::new(0)).collect(), max_ns: AtomicU64::new(0) }
    }
}

impl Waits {
    fn bucket(ns: u64) -> usize {
        if ns < SUB {
            return ns as usize;
        }
        let exp = 63 - ns.leading_zeros();
        let sub = (ns >> (exp - SUB_BITS)) & (SUB - 1);
        ((exp - SUB_BITS + 1) as u64 * SUB + sub) as usize
    }

    /// The largest wait that falls in `bucket`.
    fn bucket_top(bucket: usize) -> u64 {
        let bucket = bucket as u64;
        if bucket < SUB {
            return bucket;
        }
        let (exp, sub) = (bucket / SUB - 1, bucket % SUB);
        let top = (u128::from(SUB + sub + 1) << exp) - 1;
        top.min(u128::from(u64::MAX)) as u64
    }

    /// Counts a response that waited `wait`.
    pub fn add(&self, wait: Duration) {
        let ns = wait.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.counts[Self::bucket(ns)].fetch_add(1, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Adds another's counts to these.
    pub fn merge(&self, other: &Waits) {
        for (mine, theirs) in self.counts.iter().zip(other.counts.iter()) {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.max_ns.fetch_max(other.max_ns.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The wait that a share `q` of responses did not exceed, rounded up to its bucket's top
    /// (at most 12.5% over) and never above the longest; none when nothing was counted.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        let bucket = counts.iter().position(|&count| {
            seen += count;
            seen >= rank
        })?;
        Some(Duration::from_nanos(Self::bucket_top(bucket).min(self.max_ns.load(Ordering::Relaxed))))
    }

    /// The longest wait counted.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns.load(Ordering::Relaxed))
    }
}

/// A socket that stamps every read that brings bytes.
#[derive(Debug)]
pub struct Stamped<S> {
    inner: S,
    stamp: Arc<ReadStamp>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Stamped<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.stamp.stamp();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stamped<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Opens TCP connections (Nagle off) whose reads stamp one [`ReadStamp`]; a channel that
/// reconnects goes on stamping the same one. For an `https://` address, tonic runs TLS over
/// the stamped socket, so the stamp is the read of the encrypted bytes.
#[derive(Debug, Clone)]
pub struct StampingConnector {
    stamp: Arc<ReadStamp>,
    /// How long a TCP connection may take to open.
    timeout: Duration,
}

impl StampingConnector {
    pub fn new(timeout: Duration) -> Self {
        Self { stamp: Arc::default(), timeout }
    }

    pub fn stamp(&self) -> Arc<ReadStamp> {
        self.stamp.clone()
    }
}

impl tonic::codegen::Service<Uri> for StampingConnector {
    type Response = TokioIo<Stamped<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (stamp, timeout) = (self.stamp.clone(), self.timeout);
        Box::pin(async move {
            let default_port = match uri.scheme_str() {
                Some("http") => 80,
                Some("https") => 443,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "give the server's gRPC address as http://HOST:PORT, or https://HOST:PORT for TLS",
                    ));
                }
            };
            let host =
                uri.host().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address has no host"))?;
            let stream = connect(host, uri.port_u16().unwrap_or(default_port), timeout, stamp).await?;
            Ok(TokioIo::new(stream))
        })
    }
}

/// Opens a TCP connection (Nagle off) to `host` (a name, an IPv4 address or a bracketed IPv6
/// one) and `port` within `timeout`, whose reads stamp `stamp`.
pub async fn connect(
    host: &str,
    port: u16,
    timeout: Duration,
    stamp: Arc<ReadStamp>,
) -> io::Result<Stamped<TcpStream>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let connecting = TcpStream::connect((host, port));
    let stream = tokio::time::timeout(timeout, connecting).await.map_err(|_| {
        io::Error::new(io::ErrorKind::TimedOut, format!("no connection within {} s", timeout.as_secs()))
    })??;
    stream.set_nodelay(true)?;
    Ok(Stamped { inner: stream, stamp })
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn every_wait_falls_in_a_bucket_whose_top_is_at_most_an_eighth_above_it() {
        for ns in (0..5_000u64).chain([8, 9, 15, 16, 1 << 20, (1 << 20) + 1, 3_000_000_000, u64::MAX]) {
            let bucket = Waits::bucket(ns);
            let top = Waits::bucket_top(bucket);
            assert!(top >= ns && (top - ns) as f64 <= ns as f64 / 8.0 + 1.0, "{ns} in bucket {bucket} topped at {top}");
            if bucket > 0 {
                assert!(Waits::bucket_top(bucket - 1) < ns, "{ns} belongs to an earlier bucket");
            }
        }
    }

    #[test]
    fn quantiles_come_from_the_counted_waits() {
        let waits = Waits::default();
        assert_eq!(waits.quantile(0.99), None);
        for us in 1..=100 {
            waits.add(Duration::from_micros(us));
        }
        let p99 = waits.quantile(0.99).unwrap();
        assert!(p99 >= Duration::from_micros(99) && p99 <= Duration::from_micros(100), "{p99:?}");
        assert_eq!(waits.quantile(1.0), Some(Duration::from_micros(100)), "never above the longest");
        let p50 = waits.quantile(0.5).unwrap();
        assert!(p50 >= Duration::from_micros(50) && p50 <= Duration::from_nanos(56_250), "{p50:?}");
        let more = Waits::default();
        more.add(Duration::from_millis(3));
        waits.merge(&more);
        assert_eq!(waits.max(), Duration::from_millis(3));
        assert_eq!(waits.quantile(1.0), Some(Duration::from_millis(3)));
    }

    #[tokio::test]
    async fn a_read_that_brings_bytes_moves_the_stamp_and_an_empty_one_does_not() {
        let (near, mut far) = tokio::io::duplex(64);
        let stamp = Arc::new(ReadStamp::default());
        let mut stamped = Stamped { inner: near, stamp: stamp.clone() };
        let unread = stamp.last();
        far.write_all(b"token").await.unwrap();
        let before = Instant::now();
        let mut buf = [0u8; 16];
        assert_eq!(stamped.read(&mut buf).await.unwrap(), 5);
        let read = stamp.last();
        assert!(read >= before && read > unread && read <= Instant::now());
        drop(far);
        assert_eq!(stamped.read(&mut buf).await.unwrap(), 0);
        assert_eq!(stamp.last(), read, "the end of the stream brings no bytes");
    }
}
