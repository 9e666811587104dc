//! governor rate limiters driven by a time that the caller passes in.

use std::{cell::Cell, num::NonZeroU32, time::Instant};

use governor::{
    Quota, RateLimiter,
    clock::Clock,
    middleware::NoOpMiddleware,
    state::{InMemoryState, NotKeyed},
};

/// A governor clock that reads the `now` last handed to it, so limiters run on the driver's
/// (possibly simulated) time instead of the system clock.
#[derive(Debug)]
pub(crate) struct PassedClock(Cell<Instant>);

impl Clock for PassedClock {
    type Instant = Instant;

    fn now(&self) -> Instant {
        self.0.get()
    }
}

/// One GCRA limiter (one peer, one channel, one direction).
#[derive(Debug)]
pub(crate) struct Limiter {
    inner: RateLimiter<NotKeyed, InMemoryState, PassedClock, NoOpMiddleware<Instant>>,
}

impl Limiter {
    pub(crate) fn new(quota: Quota, now: Instant) -> Self {
        Self {
            inner: RateLimiter::direct_with_clock(quota, PassedClock(Cell::new(now))),
        }
    }

    /// Takes one cell at `now`; on refusal returns the earliest instant at which one is free
    /// (nothing is taken then).
    pub(crate) fn check(&self, now: Instant) -> Result<(), Instant> {
        self.inner.clock().0.set(now);
        self.inner.check().map_err(|not| not.earliest_possible())
    }
}

/// `quota` made `factor` times faster and `factor` times burstier: the threshold beyond which
/// an inbound peer is disconnected instead of slowed down.
pub(crate) fn scaled(quota: Quota, factor: NonZeroU32) -> Quota {
    let burst = quota.burst_size().saturating_mul(factor);
    match Quota::with_period(quota.replenish_interval() / factor.get()) {
        Some(q) => q.allow_burst(burst),
        // The interval rounded to zero: no rate bound beyond the (already huge) original one.
        None => quota.allow_burst(burst),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn limiter_follows_passed_time() {
        let t0 = Instant::now();
        let q = Quota::per_second(NonZeroU32::new(2).unwrap());
        let l = Limiter::new(q, t0);
        assert!(l.check(t0).is_ok());
        assert!(l.check(t0).is_ok());
        let until = l.check(t0).unwrap_err();
        assert_eq!(until, t0 + Duration::from_millis(500));
        assert!(l.check(until - Duration::from_millis(1)).is_err());
        assert!(l.check(until).is_ok());
    }

    #[test]
    fn scaled_quota() {
        let q = Quota::per_second(NonZeroU32::new(10).unwrap());
        let s = scaled(q, NonZeroU32::new(4).unwrap());
        assert_eq!(s.burst_size().get(), 40);
        assert_eq!(s.replenish_interval(), Duration::from_millis(25));
    }
}
