//! The one backoff helper: for what the SDK does not retry itself (a counter
//! that must not count twice, a batch's unprocessed items).

use std::time::Duration;

/// Jittered exponential backoff with a bounded number of waits.
pub(super) struct Backoff {
    waits_left: u32,
    next: Duration,
}

impl Backoff {
    /// At most `waits` waits, the first about `first` long, doubling.
    pub(super) fn new(waits: u32, first: Duration) -> Self {
        Self { waits_left: waits, next: first }
    }

    /// Waits before the next attempt; `false` (without waiting) when no
    /// attempt is left.
    pub(super) async fn wait(&mut self) -> bool {
        if self.waits_left == 0 {
            return false;
        }
        self.waits_left -= 1;
        // Full jitter between half and the whole step.
        let half = self.next / 2;
        let jitter = Duration::from_micros(rand::random::<u64>() % (half.as_micros() as u64 + 1));
        tokio::time::sleep(half + jitter).await;
        self.next *= 2;
        true
    }
}
