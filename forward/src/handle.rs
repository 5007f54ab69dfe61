//! The running workers of one destination, whatever the backend kind.

use tokio::task::JoinHandle;

/// The running workers of one destination.
#[derive(Debug)]
pub struct ForwarderHandle {
    pub url: String,
    tasks: Vec<JoinHandle<()>>,
}

impl ForwarderHandle {
    pub fn new(url: String, tasks: Vec<JoinHandle<()>>) -> Self {
        Self { url, tasks }
    }

    /// Waits until every worker has drained a closed buffer; call once. The handles stay here, so a caller
    /// that gives up waiting can still abort the workers.
    pub async fn join(&mut self) {
        for t in &mut self.tasks {
            let _ = t.await;
        }
    }

    pub fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
