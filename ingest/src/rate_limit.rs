//! Samples per second per tenant (`limits.max_samples_per_second_per_tenant`, `limits.samples_per_second_burst`).
//!
//! One budget per tenant, shared by every metrics receiver (remote write 1.0 and 2.0, OTLP/HTTP, OTLP/gRPC):
//! the binary builds one [`SampleRateLimiter`] and hands the same `Arc` to each. A request is admitted or
//! refused whole, as soon as its sample count is known and before anything of it is registered, logged or
//! buffered, so a refused request leaves nothing behind and may simply be retried. What a request counts:
//! remote write, its samples and native histogram samples; OTLP, the Prometheus samples its points become
//! (see `otlp::metrics::sample_count`). Exemplars and metadata are not counted. A request admitted here
//! that is refused later (bad data, a series limit, a full buffer) has still used its budget.
//!
//! The budget is `governor`'s GCRA (a token bucket without a refill task): it refills continuously at the
//! rate, holds at most the burst, and a refusal says exactly when the request would fit. Replay of the
//! write-ahead log at start-up is not limited: what it holds was admitted once already.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::limits::IngestLimits;
use crate::series::{SeriesRegistry, Tenant};

/// Highest `limits.max_samples_per_second_per_tenant`: the limiter's clock counts nanoseconds.
pub const MAX_RATE: u32 = 1_000_000_000;

/// Keyed by the tenant's registry index: dense, and bounded by `series.max_tenants`.
type Keyed<C> = RateLimiter<u32, HashMapStateStore<u32>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Why a request was refused; the message names the limit, its config key and the tenant (a validated
/// `X-Scope-OrgID`, safe to send back), never anything of the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimited {
    #[error("tenant {tenant:?} exceeds `limits.max_samples_per_second_per_tenant` = {rate} samples/s; retry later")]
    OverBudget { tenant: String, rate: u32, retry_after: Duration },
    /// No wait would let it through: it must be split.
    #[error(
        "tenant {tenant:?}: the request alone has {samples} samples, more than `limits.samples_per_second_burst` = {burst}; send smaller requests"
    )]
    OverBurst { tenant: String, samples: u64, burst: u32, rate: u32 },
}

impl RateLimited {
    /// Whole seconds to wait before retrying (at least 1), for `Retry-After` and `google.rpc.RetryInfo`:
    /// until the request would fit; for a request over the burst, which never fits, the time a whole
    /// burst takes to refill.
    pub fn retry_after_seconds(&self) -> u32 {
        let wait = match self {
            Self::OverBudget { retry_after, .. } => *retry_after,
            Self::OverBurst { burst, rate, .. } => {
                Duration::from_secs_f64(f64::from(*burst) / f64::from((*rate).max(1)))
            }
        };
        let seconds = wait.as_secs().saturating_add(u64::from(wait.subsec_nanos() > 0));
        u32::try_from(seconds).unwrap_or(u32::MAX).max(1)
    }
}

/// The per-tenant sample budgets. Without a rate configured every check passes at no cost.
pub struct SampleRateLimiter<C: Clock = MonotonicClock> {
    limiter: Option<Keyed<C>>,
    rate: u32,
    burst: u32,
}

impl<C: Clock> std::fmt::Debug for SampleRateLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleRateLimiter").field("rate", &self.rate).field("burst", &self.burst).finish()
    }
}

impl SampleRateLimiter {
    /// The limiter `limits` asks for (none when `max_samples_per_second_per_tenant` is 0).
    pub fn new(limits: &IngestLimits) -> Self {
        Self::with_clock(limits, MonotonicClock)
    }

    /// A limiter that admits everything.
    pub fn unlimited() -> Self {
        Self { limiter: None, rate: 0, burst: 0 }
    }
}

impl<C: Clock> SampleRateLimiter<C> {
    /// [`SampleRateLimiter::new`] on a given clock (tests use governor's `FakeRelativeClock`).
    pub fn with_clock(limits: &IngestLimits, clock: C) -> Self {
        let rate = limits.max_samples_per_second_per_tenant.min(MAX_RATE);
        let burst = match limits.samples_per_second_burst {
            0 => rate,
            burst => burst,
        };
        let limiter = NonZeroU32::new(rate).map(|r| {
            let quota = Quota::per_second(r).allow_burst(NonZeroU32::new(burst).unwrap_or(r));
            RateLimiter::new(quota, HashMapStateStore::default(), clock)
        });
        Self { limiter, rate, burst }
    }

    /// Whether a rate is configured.
    pub fn is_enabled(&self) -> bool {
        self.limiter.is_some()
    }

    /// Takes `samples` from `tenant`'s budget, or refuses the request (taking nothing) when they do not fit.
    /// `registry` names the tenant in the refusal.
    pub fn check(&self, registry: &SeriesRegistry, tenant: Tenant, samples: u64) -> Result<(), RateLimited> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        let Some(n) = NonZeroU32::new(u32::try_from(samples).unwrap_or(u32::MAX)) else { return Ok(()) };
        let name = || registry.tenant_name(tenant.index()).map_or_else(String::new, |t| t.to_string());
        match limiter.check_key_n(&tenant.index(), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(RateLimited::OverBudget {
                tenant: name(),
                rate: self.rate,
                retry_after: not_until.wait_time_from(limiter.clock().now()),
            }),
            Err(_insufficient) => {
                Err(RateLimited::OverBurst { tenant: name(), samples, burst: self.burst, rate: self.rate })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;
    use crate::series::SeriesRegistryConfig;

    fn limits(rate: u32, burst: u32) -> IngestLimits {
        IngestLimits {
            max_samples_per_second_per_tenant: rate,
            samples_per_second_burst: burst,
            ..IngestLimits::default()
        }
    }

    fn setup(rate: u32, burst: u32) -> (SampleRateLimiter<FakeRelativeClock>, FakeRelativeClock, SeriesRegistry) {
        let clock = FakeRelativeClock::default();
        let limiter = SampleRateLimiter::with_clock(&limits(rate, burst), clock.clone());
        (limiter, clock, SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous"))
    }

    #[test]
    fn a_budget_is_spent_and_refused_whole() {
        let (limiter, _clock, reg) = setup(100, 0);
        let t = reg.tenant("team-a").unwrap();
        limiter.check(&reg, t, 60).unwrap();
        let refused = limiter.check(&reg, t, 60).unwrap_err();
        assert!(matches!(refused, RateLimited::OverBudget { rate: 100, .. }), "{refused:?}");
        assert_eq!(
            refused.to_string(),
            "tenant \"team-a\" exceeds `limits.max_samples_per_second_per_tenant` = 100 samples/s; retry later"
        );
        // The refused request took nothing: the 40 left still fit.
        limiter.check(&reg, t, 40).unwrap();
        assert!(limiter.check(&reg, t, 1).is_err());
        // Empty requests (metadata only) are free.
        limiter.check(&reg, t, 0).unwrap();
    }

    #[test]
    fn the_budget_refills_at_the_rate_and_says_when() {
        let (limiter, clock, reg) = setup(100, 0);
        let t = reg.default_tenant();
        limiter.check(&reg, t, 100).unwrap();
        let RateLimited::OverBudget { retry_after, .. } = limiter.check(&reg, t, 50).unwrap_err() else {
            panic!("over budget")
        };
        assert_eq!(retry_after, Duration::from_millis(500), "50 samples at 100/s");
        assert_eq!(limiter.check(&reg, t, 50).unwrap_err().retry_after_seconds(), 1, "rounded up to whole seconds");
        clock.advance(Duration::from_millis(499));
        assert!(limiter.check(&reg, t, 50).is_err());
        clock.advance(Duration::from_millis(1));
        limiter.check(&reg, t, 50).unwrap();
        // Idle for long: the budget holds one burst, no more.
        clock.advance(Duration::from_secs(60));
        limiter.check(&reg, t, 100).unwrap();
        let e = limiter.check(&reg, t, 30).unwrap_err();
        assert!(matches!(e, RateLimited::OverBudget { retry_after, .. } if retry_after == Duration::from_millis(300)));
        // A wait of several seconds is told as such.
        let (slow, _clock, reg) = setup(10, 100);
        slow.check(&reg, t, 100).unwrap();
        assert_eq!(slow.check(&reg, t, 25).unwrap_err().retry_after_seconds(), 3, "2.5 s, rounded up");
    }

    #[test]
    fn tenants_have_budgets_of_their_own() {
        let (limiter, _clock, reg) = setup(10, 0);
        let (a, b) = (reg.tenant("team-a").unwrap(), reg.tenant("team-b").unwrap());
        limiter.check(&reg, a, 10).unwrap();
        assert!(limiter.check(&reg, a, 1).is_err());
        limiter.check(&reg, b, 10).unwrap();
        limiter.check(&reg, reg.default_tenant(), 10).unwrap();
    }

    #[test]
    fn the_burst_is_the_capacity_and_a_larger_request_never_passes() {
        let (limiter, clock, reg) = setup(10, 50);
        let t = reg.tenant("team-a").unwrap();
        limiter.check(&reg, t, 50).unwrap();
        assert!(matches!(limiter.check(&reg, t, 1), Err(RateLimited::OverBudget { .. })));
        clock.advance(Duration::from_secs(5));
        limiter.check(&reg, t, 50).unwrap();
        clock.advance(Duration::from_secs(3600));
        let e = limiter.check(&reg, t, 51).unwrap_err();
        assert_eq!(e, RateLimited::OverBurst { tenant: "team-a".into(), samples: 51, burst: 50, rate: 10 });
        assert_eq!(
            e.to_string(),
            "tenant \"team-a\": the request alone has 51 samples, more than `limits.samples_per_second_burst` = 50; \
             send smaller requests"
        );
        assert_eq!(e.retry_after_seconds(), 5, "a whole burst's refill");
        assert!(matches!(limiter.check(&reg, t, u64::MAX), Err(RateLimited::OverBurst { samples: u64::MAX, .. })));
        // The refusals took nothing.
        limiter.check(&reg, t, 50).unwrap();
        // Burst 0 is one second's worth.
        let (one_second, _clock, reg) = setup(10, 0);
        assert!(matches!(one_second.check(&reg, t, 11), Err(RateLimited::OverBurst { burst: 10, .. })));
    }

    #[test]
    fn no_rate_no_limit() {
        let reg = SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous");
        for limiter in [SampleRateLimiter::new(&IngestLimits::default()), SampleRateLimiter::unlimited()] {
            assert!(!limiter.is_enabled());
            limiter.check(&reg, reg.default_tenant(), u64::MAX).unwrap();
        }
        assert!(SampleRateLimiter::new(&limits(1, 0)).is_enabled());
    }

    #[test]
    fn the_keys_are_validated() {
        assert!(limits(MAX_RATE, 0).validate().is_ok());
        let e = limits(MAX_RATE + 1, 0).validate().unwrap_err();
        assert!(e.contains("limits.max_samples_per_second_per_tenant"), "{e}");
        let e = limits(0, 10).validate().unwrap_err();
        assert!(e.contains("limits.samples_per_second_burst"), "{e}");
        assert_eq!(limits(7, 0).samples_burst(), 7);
        assert_eq!(limits(7, 3).samples_burst(), 3);
    }
}
