//! A container's usual level of a figure: an exponentially weighted moving average whose
//! weight follows elapsed time, not sample count.
//!
//! Each sample `x` observed `dt` seconds after the previous one moves the mean by
//! `alpha = 1 - 2^(-dt / half_life)`: a sample's weight halves every `half_life` seconds,
//! whatever the collection interval, and a late sample (a slow collection) weighs as much as
//! the time it stands for. The first sample sets the mean.
//!
//! A spike is a value at least `factor` times the mean and at least `floor` in absolute
//! terms (so an idle container, whose mean is about zero, does not alert on a few bytes),
//! judged only once the baseline has seen `warmup` seconds of samples (until then every
//! sample is learned as it is). A value judged a spike still moves the mean, but clipped to
//! the spike threshold: a burst does not inflate the
//! baseline at once, while a lasting change of level is learned within a few half-lives (at
//! the threshold, the mean grows by `alpha × (factor - 1)` of itself per sample).

/// Time-weighted EWMA of one figure.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Ewma {
    mean: f64,
    observed_secs: f64,
    started: bool,
}

/// How a spike is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeRule {
    /// A spike is at least this many times the baseline.
    pub factor: f64,
    /// ... and at least this much.
    pub floor: f64,
    /// Seconds of samples before any judgement.
    pub warmup_secs: f64,
    /// Half-life of a sample's weight, in seconds.
    pub half_life_secs: f64,
}

/// The judgement of one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    /// The baseline the sample was judged against (before it was folded in).
    pub baseline: f64,
    /// The value a spike starts at: `max(factor × baseline, floor)`.
    pub threshold: f64,
    /// The value reached the threshold after the warm-up.
    pub spike: bool,
}

impl Ewma {
    /// The mean, once a sample has been seen.
    pub fn mean(&self) -> Option<f64> {
        self.started.then_some(self.mean)
    }

    /// Seconds of samples folded in.
    pub fn observed_secs(&self) -> f64 {
        self.observed_secs
    }

    /// Judges `value`, observed `dt_secs` after the previous sample, then folds it in.
    /// `None` for the very first sample (nothing to judge against).
    pub fn observe(&mut self, value: f64, dt_secs: f64, rule: &SpikeRule) -> Option<Judged> {
        let value = if value.is_finite() {
            value.max(0.0)
        } else {
            0.0
        };
        if !self.started {
            self.mean = value;
            self.started = true;
            return None;
        }
        let dt = if dt_secs.is_finite() {
            dt_secs.max(0.0)
        } else {
            0.0
        };
        let threshold = (rule.factor * self.mean).max(rule.floor);
        let judged = Judged {
            baseline: self.mean,
            threshold,
            spike: self.observed_secs >= rule.warmup_secs && value >= threshold,
        };
        let half_life = rule.half_life_secs.max(f64::MIN_POSITIVE);
        let alpha = 1.0 - (-dt / half_life).exp2();
        let folded = if judged.spike { threshold } else { value };
        self.mean += alpha * (folded - self.mean);
        self.observed_secs += dt;
        Some(judged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: SpikeRule = SpikeRule {
        factor: 10.0,
        floor: 100.0,
        warmup_secs: 60.0,
        half_life_secs: 600.0,
    };

    #[test]
    fn weight_halves_every_half_life_whatever_the_interval() {
        // Nothing is a spike under this rule, so every sample is learned unclipped.
        let learn = SpikeRule {
            floor: f64::INFINITY,
            ..RULE
        };
        let mut a = Ewma::default();
        let mut b = Ewma::default();
        a.observe(0.0, 0.0, &learn);
        b.observe(0.0, 0.0, &learn);
        // One sample standing for 600 s, or sixty of 10 s each: half the way to 1000 both.
        a.observe(1000.0, 600.0, &learn);
        for _ in 0..60 {
            b.observe(1000.0, 10.0, &learn);
        }
        assert!((a.mean().unwrap() - 500.0).abs() < 1e-9, "{a:?}");
        assert!((b.mean().unwrap() - 500.0).abs() < 1e-6, "{b:?}");
    }

    #[test]
    fn fifty_times_the_usual_is_a_spike_and_idle_is_never_one() {
        let mut e = Ewma::default();
        for _ in 0..100 {
            let j = e.observe(2_000.0, 10.0, &RULE);
            assert!(!j.is_some_and(|j| j.spike));
        }
        let j = e.observe(100_000.0, 10.0, &RULE).unwrap();
        assert!(j.spike, "{j:?}");
        assert!((j.baseline - 2_000.0).abs() < 1e-6);
        assert_eq!(j.threshold, 20_000.0);
        // The burst moved the baseline only as far as the threshold allows.
        assert!(e.mean().unwrap() < 2_000.0 + 0.02 * 18_000.0);

        let mut idle = Ewma::default();
        for i in 0..1000 {
            // A few bytes now and then: under the floor.
            let v = if i % 7 == 0 { 90.0 } else { 0.0 };
            assert!(!idle.observe(v, 10.0, &RULE).is_some_and(|j| j.spike));
        }
    }

    #[test]
    fn nothing_is_judged_during_the_warm_up() {
        let mut e = Ewma::default();
        e.observe(10.0, 0.0, &RULE);
        for _ in 0..6 {
            assert!(!e.observe(1e9, 10.0, &RULE).unwrap().spike);
        }
        // Learned unclipped during the warm-up: 60 s of a 600 s half-life is 6.7% of the way.
        let mean = e.mean().unwrap();
        assert!(
            (mean - 1e9 * (1.0 - 0.1f64.exp2().recip())).abs() < 1e3,
            "{mean}"
        );
        assert!(e.observe(1e12, 10.0, &RULE).unwrap().spike);
    }

    #[test]
    fn a_lasting_new_level_is_learned() {
        let mut e = Ewma::default();
        for _ in 0..100 {
            e.observe(1_000.0, 10.0, &RULE);
        }
        let spikes = (0..2000)
            .filter(|_| e.observe(50_000.0, 10.0, &RULE).unwrap().spike)
            .count();
        assert!(spikes > 0 && spikes < 200, "{spikes}");
        assert!(!e.observe(50_000.0, 10.0, &RULE).unwrap().spike);
    }

    #[test]
    fn nonsense_values_do_not_poison_the_mean() {
        let mut e = Ewma::default();
        e.observe(f64::NAN, 10.0, &RULE);
        e.observe(f64::INFINITY, f64::NAN, &RULE);
        e.observe(-5.0, -1.0, &RULE);
        assert_eq!(e.mean(), Some(0.0));
    }
}
