//! Ctrl-C as a cancellation token. It lives below both the commands and the long-running
//! engines (the demo waits on it to keep its dashboard up) so that neither imports the other.

use tokio_util::sync::CancellationToken;

/// A token cancelled on Ctrl-C, so long commands stop cleanly and still report.
pub fn ctrl_c_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("lvt: stopping (Ctrl-C)");
            t.cancel();
        }
    });
    token
}

/// A token cancelled on Ctrl-C or SIGTERM, for the long-running agent that a service manager
/// stops with SIGTERM.
pub fn terminate_token() -> CancellationToken {
    let token = ctrl_c_token();
    #[cfg(unix)]
    {
        let t = token.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut term) = signal(SignalKind::terminate())
                && term.recv().await.is_some()
            {
                eprintln!("lvt: stopping (SIGTERM)");
                t.cancel();
            }
        });
    }
    token
}

/// A message for every SIGHUP the process receives (the agent reloads its configuration on
/// it). Without Unix signals the channel stays empty.
pub fn hangup_signals() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hangups) = signal(SignalKind::hangup()) {
            while hangups.recv().await.is_some() {
                // A reload is already waiting: one more would do the same.
                let _ = tx.try_send(());
            }
        }
    });
    #[cfg(not(unix))]
    drop(tx);
    rx
}
