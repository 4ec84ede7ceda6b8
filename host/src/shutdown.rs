//! Shutdown signalling shared by the rooms' background tasks.

use tokio::sync::watch;

/// Resolves once `flag` turns true (or its sender is gone).
///
/// `watch::Receiver::wait_for` hands back a read guard, which is not `Send`
/// and so cannot sit in a `select!` arm of a spawned task; this drops it.
pub(crate) async fn requested(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|stop| *stop).await;
}
