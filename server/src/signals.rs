//! Stop signals: Ctrl-C (SIGINT) and SIGTERM, which service managers, containers and `kill`
//! send, stop a run the same way, so that it ends cancelled with everything it measured.

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGINT or SIGTERM, after `on_stop` has been told which.
/// A second signal ends the process at once with status 130, for a user who will not wait.
/// The handlers are in place when this returns, so no signal sent after it kills the process
/// mid-write.
pub fn stop_token(on_stop: impl FnOnce(&'static str) + Send + 'static) -> CancellationToken {
    let stop = CancellationToken::new();
    let cancel = stop.clone();
    let mut signals = Signals::install();
    tokio::spawn(async move {
        let Some(name) = signals.next().await else { return };
        on_stop(name);
        cancel.cancel();
        if let Some(name) = signals.next().await {
            eprintln!("{name} again: stopping at once");
            std::process::exit(130);
        }
    });
    stop
}

/// The signals that ask the process to stop.
struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    #[cfg(unix)]
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind: SignalKind, name: &str| {
            signal(kind)
                .inspect_err(|err| tracing::warn!("{name} cannot be caught ({err}); it will stop the process at once"))
                .ok()
        };
        Self {
            interrupt: install(SignalKind::interrupt(), "SIGINT"),
            terminate: install(SignalKind::terminate(), "SIGTERM"),
        }
    }

    #[cfg(not(unix))]
    fn install() -> Self {
        Self {}
    }

    /// The next signal's name; `None` when none can be caught.
    #[cfg(unix)]
    async fn next(&mut self) -> Option<&'static str> {
        async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
            match signal {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        }
        if self.interrupt.is_none() && self.terminate.is_none() {
            return None;
        }
        tokio::select! {
            Some(()) = recv(&mut self.interrupt) => Some("SIGINT"),
            Some(()) = recv(&mut self.terminate) => Some("SIGTERM"),
            else => None,
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> Option<&'static str> {
        tokio::signal::ctrl_c().await.ok().map(|()| "Ctrl-C")
    }
}
