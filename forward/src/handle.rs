//! The running workers of one destination, whatever the backend kind.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::breaker::TargetHealth;

/// The running workers of one destination.
#[derive(Debug)]
pub struct ForwarderHandle {
    pub url: String,
    /// Each URL's breaker and recent history (one, or a primary and its standbys).
    pub targets: Vec<Arc<TargetHealth>>,
    tasks: Vec<JoinHandle<()>>,
}

impl ForwarderHandle {
    pub fn new(url: String, tasks: Vec<JoinHandle<()>>) -> Self {
        Self { url, targets: Vec::new(), tasks }
    }

    pub fn with_targets(mut self, targets: Vec<Arc<TargetHealth>>) -> Self {
        self.targets = targets;
        self
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
