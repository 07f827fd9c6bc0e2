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
