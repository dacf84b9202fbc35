//! What the simulated exchange does with a call to each number, and how fast.

use std::fmt;

use crate::line::Cause;

/// What the PSTN party at the other end hears and says once a call is connected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallAudio {
    /// Plays back what it hears, `delay_frames` 20 ms frames later (at most
    /// [`MAX_ECHO_DELAY_FRAMES`](super::MAX_ECHO_DELAY_FRAMES)).
    Echo { delay_frames: u32 },
    /// A sine of `hz` (up to [`MAX_TONE_HZ`](super::MAX_TONE_HZ)) at about -10 dBm0.
    Tone { hz: u32 },
    /// Nothing: [`Exchange::audio_out`](super::Exchange::audio_out) answers `None`.
    Silence,
}

impl CallAudio {
    /// An echo one frame late, like a loop-back test number.
    pub fn echo() -> CallAudio {
        CallAudio::Echo { delay_frames: 1 }
    }
}

impl fmt::Display for CallAudio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallAudio::Echo { delay_frames } => {
                write!(
                    f,
                    "echoes what it hears ({} ms later)",
                    u64::from(*delay_frames) * 20
                )
            }
            CallAudio::Tone { hz } => write!(f, "plays a {hz} Hz tone"),
            CallAudio::Silence => f.write_str("stays silent"),
        }
    }
}

/// Which congestion a [`Behaviour::Congested`] number reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Congestion {
    /// Cause 42, switching equipment congestion.
    Switching,
    /// Cause 34, no circuit/channel available further on in the network.
    NoCircuit,
}

impl Congestion {
    pub fn cause(self) -> u8 {
        match self {
            Congestion::Switching => Cause::SWITCHING_CONGESTION.0,
            Congestion::NoCircuit => Cause::NO_CIRCUIT.0,
        }
    }
}

/// What happens to a call the gateway places to a number. Times are virtual milliseconds.
///
/// Every call first takes the exchange's [`ExchangeConfig::proceeding_ms`] to be accepted, then
/// a routing delay drawn from the seed in `alert_min_ms..=alert_max_ms` to reach the far end:
/// that is when it rings, is refused, or hears an announcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Proceeding, alerting, and the party answers `after_ms` after the ringing started (unless
    /// the no-answer time runs out first); hangs up itself `hangup_after_ms` after the answer.
    Answer {
        after_ms: u64,
        audio: CallAudio,
        hangup_after_ms: Option<u64>,
    },
    /// Proceeding, alerting, and nobody answers: the exchange ends the call with cause 19 after
    /// its no-answer time, unless the gateway gives up first or the party is made to answer.
    RingOut,
    /// Proceeding, then cause 17 (user busy) when the call reaches the far end.
    Busy,
    /// Proceeding, then cause 1 (unallocated number) when the routing fails.
    Unallocated,
    /// Proceeding, then the congestion's cause when the routing finds no way through.
    Congested { cause: Congestion },
    /// Refused at once, without proceeding: cause 34, no circuit towards the exchange.
    NoCircuit,
    /// Refused at once, without proceeding, with `cause` (1..=127; others become 31).
    Reject { cause: u8 },
    /// Proceeding, then in-band information (progress) with a tone of `hz` standing in for an
    /// intercept announcement, and after `duration_ms` of it the exchange clears with `cause`.
    Announcement {
        hz: u32,
        duration_ms: u64,
        cause: u8,
    },
    /// One of several behaviours, drawn per call from the seed in proportion to the weights.
    /// With no weight above zero the call is treated as [`Behaviour::Unallocated`].
    Weighted(Vec<(u32, Behaviour)>),
}

impl Behaviour {
    /// Answers after `after_ms` of ringing with `audio` and stays until the gateway ends it.
    pub fn answer(after_ms: u64, audio: CallAudio) -> Behaviour {
        Behaviour::Answer {
            after_ms,
            audio,
            hangup_after_ms: None,
        }
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Behaviour::Answer {
                after_ms,
                audio,
                hangup_after_ms,
            } => {
                write!(f, "answers after {after_ms} ms of ringing, {audio}")?;
                if let Some(h) = hangup_after_ms {
                    write!(f, ", hangs up after {h} ms")?;
                }
                Ok(())
            }
            Behaviour::RingOut => {
                f.write_str("rings, never answers (cause 19 when the exchange gives up)")
            }
            Behaviour::Busy => f.write_str("busy (cause 17)"),
            Behaviour::Unallocated => f.write_str("unallocated number (cause 1)"),
            Behaviour::Congested { cause } => write!(f, "congested (cause {})", cause.cause()),
            Behaviour::NoCircuit => f.write_str("no circuit, refused at once (cause 34)"),
            Behaviour::Reject { cause } => {
                write!(f, "rejected at once (cause {})", sanitize_cause(*cause))
            }
            Behaviour::Announcement {
                hz,
                duration_ms,
                cause,
            } => write!(
                f,
                "announcement ({hz} Hz in-band for {duration_ms} ms), then cause {}",
                sanitize_cause(*cause)
            ),
            Behaviour::Weighted(options) => {
                let total: u64 = options.iter().map(|(w, _)| u64::from(*w)).sum();
                if total == 0 {
                    return f.write_str("unallocated number (cause 1)");
                }
                let mut first = true;
                for (weight, behaviour) in options.iter().filter(|(w, _)| *w > 0) {
                    if !first {
                        f.write_str("; or ")?;
                    }
                    first = false;
                    write!(f, "{}%: {behaviour}", u64::from(*weight) * 100 / total)?;
                }
                Ok(())
            }
        }
    }
}

/// A cause as Q.850 allows it (seven bits, zero unused); anything else becomes 31, normal
/// unspecified, rather than a value a Q.931 encoder could not carry.
pub(crate) fn sanitize_cause(cause: u8) -> u8 {
    if (1..=127).contains(&cause) {
        cause
    } else {
        Cause::NORMAL_UNSPECIFIED.0
    }
}

/// A number, or every number starting with a prefix, and what calls to it do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberRule {
    /// Compared with the called number exactly as the gateway sends it (no normalisation).
    pub number: String,
    /// Whether `number` is a prefix. An exact rule beats any prefix; among prefixes the longest
    /// wins; among equals the first listed.
    pub prefix: bool,
    pub behaviour: Behaviour,
}

impl NumberRule {
    pub fn exact(number: &str, behaviour: Behaviour) -> NumberRule {
        NumberRule {
            number: number.to_owned(),
            prefix: false,
            behaviour,
        }
    }

    pub fn prefix(prefix: &str, behaviour: Behaviour) -> NumberRule {
        NumberRule {
            number: prefix.to_owned(),
            prefix: true,
            behaviour,
        }
    }
}

impl fmt::Display for NumberRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let star = if self.prefix { "*" } else { "" };
        write!(f, "{}{star}: {}", self.number, self.behaviour)
    }
}

/// The simulated exchange's subscribers and timing. Plain data, so that a configuration file
/// can fill it; [`Default`] is [`ExchangeConfig::demo`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeConfig {
    pub numbers: Vec<NumberRule>,
    /// What a number no rule matches does.
    pub unknown: Behaviour,
    /// From the gateway's call to the exchange's acceptance (CALL PROCEEDING), or its refusal
    /// for [`Behaviour::NoCircuit`] and [`Behaviour::Reject`].
    pub proceeding_ms: u64,
    /// The routing delay after proceeding (until alerting, a refusal or an announcement) is
    /// drawn per call from the seed in this range.
    pub alert_min_ms: u64,
    pub alert_max_ms: u64,
    /// How long the exchange lets a call ring before it clears it with cause 19 (no answer).
    pub no_answer_ms: u64,
    /// How long a PSTN caller of an inward call waits for the gateway to answer before hanging
    /// up (cause 16).
    pub caller_patience_ms: u64,
    /// What a PSTN party who is a person, not a configured machine, sends once connected: the
    /// caller of an inward call, or a ringing number made to answer by hand.
    pub party_audio: CallAudio,
}

impl Default for ExchangeConfig {
    fn default() -> ExchangeConfig {
        ExchangeConfig::demo()
    }
}

impl ExchangeConfig {
    /// No numbers (everything is unallocated) and the usual timing: proceeding after 10 ms,
    /// ringing 100 to 600 ms later, no answer after 180 s, callers patient for 60 s, people
    /// heard as an echo.
    pub fn empty() -> ExchangeConfig {
        ExchangeConfig {
            numbers: Vec::new(),
            unknown: Behaviour::Unallocated,
            proceeding_ms: 10,
            alert_min_ms: 100,
            alert_max_ms: 600,
            no_answer_ms: 180_000,
            caller_patience_ms: 60_000,
            party_audio: CallAudio::echo(),
        }
    }

    /// The demonstration exchange, one number per behaviour:
    ///
    /// | Number        | What a call to it does                                               |
    /// |---------------|----------------------------------------------------------------------|
    /// | `5551000`     | rings 1 s, answers, echoes what it hears 20 ms later                 |
    /// | `5551001`     | busy (cause 17)                                                      |
    /// | `5551002`     | rings and never answers; the exchange gives up after 180 s (cause 19)|
    /// | `5551003`     | unallocated number (cause 1)                                         |
    /// | `5551004`     | rings 1 s, answers with a 1000 Hz tone                               |
    /// | `5551005`     | congestion (cause 42)                                                |
    /// | `0300000000`  | rings 3 s, answers, echoes what it hears 20 ms later                 |
    /// | `0301000000`  | rings 3 s, answers with a 1004 Hz test tone                          |
    /// | `0302000000`  | busy (cause 17)                                                      |
    /// | `0303000000`  | rings and never answers; the exchange gives up after 180 s (cause 19)|
    /// | `0304000000`  | switching equipment congestion (cause 42)                            |
    /// | `0305000000`  | no circuit, refused at once (cause 34)                               |
    /// | `0306000000`  | intercept announcement: 950 Hz in-band for 8 s, then cause 1         |
    /// | `0307000000`  | rings 1 s, answers in silence, hangs up after 10 s (cause 16)        |
    /// | `0308000000`  | call rejected at once (cause 21)                                     |
    /// | `0309…`       | any number starting 0309: 3 in 4 answer and echo, 1 in 4 busy        |
    /// | `110`, `112`, `911`, `999` | the emergency desk: rings 1 s, answers, echoes          |
    /// | anything else | unallocated number (cause 1)                                         |
    pub fn demo() -> ExchangeConfig {
        let echo = Behaviour::answer(3000, CallAudio::echo());
        ExchangeConfig {
            // The gateway's documented test numbers first (docs/drivers.md, the start
            // message), answering after one ring.
            numbers: vec![
                NumberRule::exact("5551000", Behaviour::answer(1000, CallAudio::echo())),
                NumberRule::exact("5551001", Behaviour::Busy),
                NumberRule::exact("5551002", Behaviour::RingOut),
                NumberRule::exact("5551003", Behaviour::Unallocated),
                NumberRule::exact(
                    "5551004",
                    Behaviour::answer(1000, CallAudio::Tone { hz: 1000 }),
                ),
                NumberRule::exact(
                    "5551005",
                    Behaviour::Congested {
                        cause: Congestion::Switching,
                    },
                ),
                NumberRule::exact("0300000000", echo.clone()),
                NumberRule::exact(
                    "0301000000",
                    Behaviour::answer(3000, CallAudio::Tone { hz: 1004 }),
                ),
                NumberRule::exact("0302000000", Behaviour::Busy),
                NumberRule::exact("0303000000", Behaviour::RingOut),
                NumberRule::exact(
                    "0304000000",
                    Behaviour::Congested {
                        cause: Congestion::Switching,
                    },
                ),
                NumberRule::exact("0305000000", Behaviour::NoCircuit),
                NumberRule::exact(
                    "0306000000",
                    Behaviour::Announcement {
                        hz: 950,
                        duration_ms: 8000,
                        cause: Cause::UNALLOCATED.0,
                    },
                ),
                NumberRule::exact(
                    "0307000000",
                    Behaviour::Answer {
                        after_ms: 1000,
                        audio: CallAudio::Silence,
                        hangup_after_ms: Some(10_000),
                    },
                ),
                NumberRule::exact(
                    "0308000000",
                    Behaviour::Reject {
                        cause: Cause::CALL_REJECTED.0,
                    },
                ),
                NumberRule::prefix(
                    "0309",
                    Behaviour::Weighted(vec![(3, echo), (1, Behaviour::Busy)]),
                ),
                // Emergency numbers as a gateway's `[emergency] trunk` sends them.
                NumberRule::exact("110", Behaviour::answer(1000, CallAudio::echo())),
                NumberRule::exact("112", Behaviour::answer(1000, CallAudio::echo())),
                NumberRule::exact("911", Behaviour::answer(1000, CallAudio::echo())),
                NumberRule::exact("999", Behaviour::answer(1000, CallAudio::echo())),
            ],
            ..ExchangeConfig::empty()
        }
    }

    /// The behaviour of calls to `called`.
    pub fn lookup(&self, called: &str) -> &Behaviour {
        if let Some(rule) = self
            .numbers
            .iter()
            .find(|r| !r.prefix && r.number == called)
        {
            return &rule.behaviour;
        }
        let mut best: Option<&NumberRule> = None;
        for rule in self
            .numbers
            .iter()
            .filter(|r| r.prefix && called.starts_with(r.number.as_str()))
        {
            // Strictly longer only: the first listed of equally long prefixes stays.
            if best.is_none_or(|b| rule.number.len() > b.number.len()) {
                best = Some(rule);
            }
        }
        best.map_or(&self.unknown, |r| &r.behaviour)
    }

    /// One line per number, for a start message or a status page.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.numbers.iter().map(|r| r.to_string()).collect();
        lines.push(format!("anything else: {}", self.unknown));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_beats_prefix_and_longest_prefix_wins() {
        let config = ExchangeConfig {
            numbers: vec![
                NumberRule::prefix("03", Behaviour::Busy),
                NumberRule::prefix("0301", Behaviour::RingOut),
                NumberRule::prefix("0301", Behaviour::NoCircuit),
                NumberRule::exact("0301555", Behaviour::Reject { cause: 21 }),
                NumberRule::prefix("030155", Behaviour::Unallocated),
            ],
            ..ExchangeConfig::empty()
        };
        assert_eq!(config.lookup("0301555"), &Behaviour::Reject { cause: 21 });
        assert_eq!(config.lookup("0301556"), &Behaviour::Unallocated);
        assert_eq!(config.lookup("03019"), &Behaviour::RingOut);
        assert_eq!(config.lookup("0399"), &Behaviour::Busy);
        assert_eq!(config.lookup("0499"), &Behaviour::Unallocated);
        assert_eq!(config.lookup(""), &Behaviour::Unallocated);
    }

    #[test]
    fn demo_numbers() {
        let demo = ExchangeConfig::default();
        assert_eq!(demo, ExchangeConfig::demo());
        assert!(matches!(
            demo.lookup("0300000000"),
            Behaviour::Answer {
                audio: CallAudio::Echo { delay_frames: 1 },
                ..
            }
        ));
        assert_eq!(demo.lookup("0302000000"), &Behaviour::Busy);
        assert!(matches!(demo.lookup("0309123"), Behaviour::Weighted(_)));
        assert_eq!(demo.lookup("0310000000"), &Behaviour::Unallocated);
        let lines = demo.describe();
        assert_eq!(lines.len(), demo.numbers.len() + 1);
        assert!(lines[0].starts_with("5551000: answers after 1000 ms"));
        assert!(lines[6].starts_with("0300000000: answers after 3000 ms"));
        assert!(lines[15].starts_with("0309*: 75%: answers"));
        assert!(lines[17].starts_with("112: answers after 1000 ms"));
    }

    #[test]
    fn causes_outside_q850_become_31() {
        assert_eq!(sanitize_cause(0), 31);
        assert_eq!(sanitize_cause(128), 31);
        assert_eq!(sanitize_cause(255), 31);
        assert_eq!(sanitize_cause(17), 17);
    }
}
