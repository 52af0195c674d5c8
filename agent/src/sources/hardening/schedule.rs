//! When hardening checks run: an interval, or a time of day, or a weekday, as Wazuh's
//! wodles schedule them (`interval`, `time`, `wday`).
//!
//! - `interval` alone (`30m`, `12h`, `1d`): every interval after the previous run.
//! - `time` (`HH:MM`, UTC): at that time every day; with an `interval`, it must be whole
//!   days (`2d`: every other day at that time).
//! - `wday` (`monday` ... `sunday`, or `mon` ...): on that weekday at `time` (00:00
//!   without one); with an `interval`, it must be whole weeks.
//!
//! Times are UTC: nodes and pods rarely agree on a local zone, and a check that moves with
//! daylight saving would run twice or not at all once a year. A run that was missed (the
//! agent was down or the previous run overran) is not made up: the next one is the next
//! slot after now.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::{OffsetDateTime, Weekday};

/// The schedule as configured (`sources.hardening.schedule`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Time between runs: a number with `s`, `m`, `h`, `d` or `w` (`12h`); a bare number is
    /// seconds. Default `1d` (`1w` with `wday`).
    #[serde(default)]
    pub interval: Option<String>,
    /// Time of day, `HH:MM` in UTC.
    #[serde(default)]
    pub time: Option<String>,
    /// Day of the week (`monday` or `mon` ...).
    #[serde(default)]
    pub wday: Option<String>,
}

const DAY: u64 = 86_400;
const WEEK: u64 = 7 * DAY;
/// The longest interval accepted.
const MAX_INTERVAL_SECS: u64 = 52 * WEEK;

/// A parsed schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    interval: Duration,
    time: Option<(u8, u8)>,
    wday: Option<Weekday>,
}

/// Parses `12h`, `30m`, `1d`, `45` (seconds).
pub fn parse_interval(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a number followed by s, m, h, d or w"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => DAY,
        "w" => WEEK,
        _ => return Err(format!("{text:?}: the unit must be s, m, h, d or w")),
    };
    // A year at most: beyond it a check that never runs is what was meant by `disabled`,
    // and the date arithmetic of the next run stays in range.
    let secs = n
        .checked_mul(unit)
        .filter(|s| (1..=MAX_INTERVAL_SECS).contains(s))
        .ok_or_else(|| format!("{text:?} must be more than zero and at most 52w"))?;
    Ok(Duration::from_secs(secs))
}

fn parse_time(text: &str) -> Result<(u8, u8), String> {
    let bad = || format!("{text:?} is not a time of day HH:MM");
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let h: u8 = h.parse().map_err(|_| bad())?;
    let m: u8 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok((h, m))
}

fn parse_wday(text: &str) -> Result<Weekday, String> {
    let t = text.trim().to_ascii_lowercase();
    let days = [
        ("monday", Weekday::Monday),
        ("tuesday", Weekday::Tuesday),
        ("wednesday", Weekday::Wednesday),
        ("thursday", Weekday::Thursday),
        ("friday", Weekday::Friday),
        ("saturday", Weekday::Saturday),
        ("sunday", Weekday::Sunday),
    ];
    days.iter()
        .find(|(name, _)| t == *name || (t.len() == 3 && name.starts_with(t.as_str())))
        .map(|(_, d)| *d)
        .ok_or_else(|| format!("{text:?} is not a weekday (monday ... sunday)"))
}

impl Schedule {
    /// The schedule of `c`; the message says which part is wrong.
    pub fn parse(c: &ScheduleConfig) -> Result<Schedule, String> {
        let time = c
            .time
            .as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|e| format!("time: {e}"))?;
        let wday = c
            .wday
            .as_deref()
            .map(parse_wday)
            .transpose()
            .map_err(|e| format!("wday: {e}"))?;
        let unit = if wday.is_some() { WEEK } else { DAY };
        let interval = match c.interval.as_deref() {
            Some(i) => parse_interval(i).map_err(|e| format!("interval: {e}"))?,
            None => Duration::from_secs(unit),
        };
        if (time.is_some() || wday.is_some()) && interval.as_secs() % unit != 0 {
            let what = if wday.is_some() {
                "weeks (with wday)"
            } else {
                "days (with time)"
            };
            return Err(format!("interval: must be whole {what}"));
        }
        Ok(Schedule {
            interval,
            time: time.or(wday.map(|_| (0, 0))),
            wday,
        })
    }

    /// The next run strictly after `now`, given the previous scheduled run (`None` before
    /// the first).
    pub fn next(&self, now: OffsetDateTime, previous: Option<OffsetDateTime>) -> OffsetDateTime {
        let Some((h, m)) = self.time else {
            // Interval only: from the previous run, or from now.
            let base = previous.unwrap_or(now);
            let mut next = base + self.interval;
            while next <= now {
                next += self.interval;
            }
            return next;
        };
        if let Some(p) = previous {
            let mut next = p + self.interval;
            while next <= now {
                next += self.interval;
            }
            return next;
        }
        // The first slot: today's (or the weekday's) time, else the next day (week).
        let day_start = now.replace_time(time::Time::MIDNIGHT);
        let at = day_start + Duration::from_secs(u64::from(h) * 3600 + u64::from(m) * 60);
        let mut next = at;
        if let Some(w) = self.wday {
            let ahead = (7 + i64::from(w.number_days_from_monday())
                - i64::from(now.weekday().number_days_from_monday()))
                % 7;
            next = at + time::Duration::days(ahead);
        }
        while next <= now {
            next += if self.wday.is_some() {
                time::Duration::days(7)
            } else {
                time::Duration::days(1)
            };
        }
        next
    }

    /// Once a day from the previous run: the default.
    pub fn daily() -> Schedule {
        Schedule {
            interval: Duration::from_secs(DAY),
            time: None,
            wday: None,
        }
    }

    /// The period between runs.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn sched(i: Option<&str>, t: Option<&str>, w: Option<&str>) -> Result<Schedule, String> {
        Schedule::parse(&ScheduleConfig {
            interval: i.map(str::to_owned),
            time: t.map(str::to_owned),
            wday: w.map(str::to_owned),
        })
    }

    #[test]
    fn intervals_parse_like_wazuh() {
        assert_eq!(parse_interval("45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_interval("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_interval("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_interval("1d").unwrap(), Duration::from_secs(DAY));
        assert_eq!(parse_interval("2w").unwrap(), Duration::from_secs(2 * WEEK));
        assert_eq!(
            parse_interval("52w").unwrap(),
            Duration::from_secs(52 * WEEK)
        );
        for bad in [
            "",
            "0",
            "5x",
            "h",
            "-1h",
            "99999999999999999999w",
            "1.5h",
            "53w",
            "100000000d",
        ] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_interval_counts_from_the_previous_run() {
        let s = sched(Some("12h"), None, None).unwrap();
        let now = datetime!(2026-03-02 10:00 UTC);
        assert_eq!(s.next(now, None), datetime!(2026-03-02 22:00 UTC));
        // A missed slot is skipped, not made up.
        let prev = datetime!(2026-03-01 09:00 UTC);
        assert_eq!(s.next(now, Some(prev)), datetime!(2026-03-02 21:00 UTC));
    }

    #[test]
    fn a_time_of_day_runs_today_or_tomorrow() {
        let s = sched(None, Some("03:30"), None).unwrap();
        assert_eq!(
            s.next(datetime!(2026-03-02 01:00 UTC), None),
            datetime!(2026-03-02 03:30 UTC)
        );
        assert_eq!(
            s.next(datetime!(2026-03-02 03:30 UTC), None),
            datetime!(2026-03-03 03:30 UTC)
        );
        let every_other = sched(Some("2d"), Some("03:30"), None).unwrap();
        assert_eq!(
            every_other.next(
                datetime!(2026-03-03 04:00 UTC),
                Some(datetime!(2026-03-02 03:30 UTC))
            ),
            datetime!(2026-03-04 03:30 UTC)
        );
        assert!(sched(Some("36h"), Some("03:30"), None).is_err());
    }

    #[test]
    fn a_weekday_runs_on_that_day() {
        // 2026-03-02 is a Monday.
        let s = sched(None, Some("22:00"), Some("wednesday")).unwrap();
        assert_eq!(
            s.next(datetime!(2026-03-02 10:00 UTC), None),
            datetime!(2026-03-04 22:00 UTC)
        );
        let mon = sched(None, None, Some("mon")).unwrap();
        assert_eq!(
            mon.next(datetime!(2026-03-02 10:00 UTC), None),
            datetime!(2026-03-09 00:00 UTC)
        );
        assert!(sched(Some("1d"), None, Some("mon")).is_err());
        assert!(sched(None, None, Some("someday")).is_err());
        assert!(sched(None, Some("25:00"), None).is_err());
        assert!(sched(None, Some("noon"), None).is_err());
    }
}
