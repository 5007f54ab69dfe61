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

    /// A handle with no workers (a placeholder while another is being joined).
    pub fn empty(url: String) -> Self {
        Self { url, tasks: Vec::new() }
    }

    /// Waits until every worker has drained a closed buffer.
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }

    pub fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
