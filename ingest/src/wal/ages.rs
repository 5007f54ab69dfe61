//! When log positions were written, coarsely: enough to say how old the oldest undelivered record of a
//! forwarder is. One mark per second at most (the end position reached by then and the time that second's
//! first write became durable), so a day-long outage costs about 2 MB. Records found at start-up are dated
//! by their segment file's modification time, which is at or after their write.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

/// Marks closer than this share one.
const GRANULARITY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(crate) struct WriteAges {
    /// `(end, time)`: positions before `end` (and after the previous mark's end) were durable by `time`;
    /// ends increase.
    marks: Mutex<VecDeque<(u64, SystemTime)>>,
}

impl WriteAges {
    /// Positions up to `end` were durable at `time`.
    pub(crate) fn mark(&self, end: u64, time: SystemTime) {
        let mut marks = self.marks.lock();
        if let Some(last) = marks.back_mut()
            && time.duration_since(last.1).is_ok_and(|d| d < GRANULARITY)
        {
            last.0 = last.0.max(end);
            return;
        }
        if marks.back().is_none_or(|last| end > last.0) {
            marks.push_back((end, time));
        }
    }

    /// When the record at `position` was written: the first mark past it. `None` when nothing is there.
    pub(crate) fn written_at(&self, position: u64) -> Option<SystemTime> {
        let marks = self.marks.lock();
        let i = marks.partition_point(|(end, _)| *end <= position);
        marks.get(i).map(|(_, t)| *t)
    }

    /// Forgets marks for positions everyone is past.
    pub(crate) fn forget_before(&self, position: u64) {
        let mut marks = self.marks.lock();
        while marks.front().is_some_and(|(end, _)| *end <= position) {
            marks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_first_mark_past_a_position_dates_it() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let ages = WriteAges::default();
        ages.mark(100, t0);
        ages.mark(150, t0 + Duration::from_millis(300)); // same second: folded into the first mark
        ages.mark(200, t0 + Duration::from_secs(5));
        assert_eq!(ages.written_at(0), Some(t0));
        assert_eq!(ages.written_at(149), Some(t0));
        assert_eq!(ages.written_at(150), Some(t0 + Duration::from_secs(5)));
        assert_eq!(ages.written_at(200), None);
        ages.forget_before(150);
        assert_eq!(ages.written_at(160), Some(t0 + Duration::from_secs(5)));
        assert_eq!(ages.marks.lock().len(), 1);
    }
}
