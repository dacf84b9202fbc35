//! The DECT driver's configuration: its base stations, the handsets subscribed to them, and
//! what the simulated person at each handset does. Checked as a whole by
//! [`DectConfig::validate`] before a driver is built, so that the driver itself can index its
//! bases and handsets without further checks.

use std::collections::HashSet;
use std::fmt;

/// Largest clock error a base may be given: DECT requires ±5 ppm of a fixed part, so anything
/// beyond this is a configuration mistake rather than a realistic crystal.
pub const MAX_CLOCK_PPM: i32 = 100;

/// Duplex voice channels one base can carry: 24 slots of a DECT frame, half of them each way.
pub const MAX_CHANNELS: u32 = 12;

/// Longest auto-answer delay accepted (ten minutes): longer would never fire before the
/// switch's own no-answer timer.
pub const MAX_AUTO_ANSWER_MS: u32 = 600_000;

/// Highest tone a simulated handset may play: the top of G.722's 7 kHz audio band. On a
/// narrowband (G.726, 8 kHz) call tones above 4 kHz alias, as they would on real hardware fed
/// with them.
pub const MAX_TONE_HZ: u32 = 7000;

/// One DECT driver: a set of base stations and the handsets subscribed to them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DectConfig {
    /// The driver's name (`[[dect]] name`), used by dial-plan rules.
    pub name: String,
    pub bases: Vec<BaseConfig>,
    pub handsets: Vec<HandsetConfig>,
    /// Seeds the simulation's only randomness: paging delays and the clock offsets of bases
    /// without an explicit `clock_ppm`. The same seed gives the same run.
    pub seed: u64,
}

impl DectConfig {
    /// An empty configuration with seed 0; push bases and handsets, then build the driver.
    pub fn new(name: &str) -> DectConfig {
        DectConfig {
            name: name.to_owned(),
            bases: Vec::new(),
            handsets: Vec::new(),
            seed: 0,
        }
    }

    /// Checks everything the driver relies on; the first problem found is returned.
    pub fn validate(&self) -> Result<(), DectConfigError> {
        if !valid_name(&self.name) {
            return Err(DectConfigError::InvalidName(self.name.clone()));
        }
        if self.bases.is_empty() {
            return Err(DectConfigError::NoBases);
        }
        let mut base_names = HashSet::new();
        let mut rfpis = HashSet::new();
        for base in &self.bases {
            if !valid_name(&base.name) {
                return Err(DectConfigError::InvalidBaseName(base.name.clone()));
            }
            if !base_names.insert(base.name.as_str()) {
                return Err(DectConfigError::DuplicateBase(base.name.clone()));
            }
            let rfpi = parse_rfpi(&base.rfpi).ok_or_else(|| DectConfigError::InvalidRfpi {
                base: base.name.clone(),
                rfpi: base.rfpi.clone(),
            })?;
            if !rfpis.insert(rfpi) {
                return Err(DectConfigError::DuplicateRfpi(base.rfpi.clone()));
            }
            if base.channels == 0 || base.channels > MAX_CHANNELS {
                return Err(DectConfigError::InvalidChannels {
                    base: base.name.clone(),
                    channels: base.channels,
                });
            }
            if let Some(ppm) = base.clock_ppm {
                if !(-MAX_CLOCK_PPM..=MAX_CLOCK_PPM).contains(&ppm) {
                    return Err(DectConfigError::InvalidClockPpm {
                        base: base.name.clone(),
                        ppm,
                    });
                }
            }
        }
        let mut ipuis = HashSet::new();
        let mut numbers = HashSet::new();
        for handset in &self.handsets {
            let ipui = parse_ipui(&handset.ipui)
                .ok_or_else(|| DectConfigError::InvalidIpui(handset.ipui.clone()))?;
            if !ipuis.insert(ipui) {
                return Err(DectConfigError::DuplicateIpui(handset.ipui.clone()));
            }
            if !base_names.contains(handset.base.as_str()) {
                return Err(DectConfigError::UnknownBase {
                    ipui: handset.ipui.clone(),
                    base: handset.base.clone(),
                });
            }
            if !valid_number(&handset.number) {
                return Err(DectConfigError::InvalidNumber {
                    ipui: handset.ipui.clone(),
                    number: handset.number.clone(),
                });
            }
            if !numbers.insert(handset.number.as_str()) {
                return Err(DectConfigError::DuplicateNumber(handset.number.clone()));
            }
            if let Some(ms) = handset.auto_answer {
                if ms > MAX_AUTO_ANSWER_MS {
                    return Err(DectConfigError::InvalidAutoAnswer {
                        ipui: handset.ipui.clone(),
                        ms,
                    });
                }
            }
            if let HandsetAudio::Tone { hz } = handset.audio {
                if hz == 0 || hz > MAX_TONE_HZ {
                    return Err(DectConfigError::InvalidTone {
                        ipui: handset.ipui.clone(),
                        hz,
                    });
                }
            }
        }
        Ok(())
    }
}

/// One base station (a DECT fixed part with one radio).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseConfig {
    /// Unique among the driver's bases; the unit name of faults and `SimCommand::Unit`.
    pub name: String,
    /// The Radio Fixed Part Identity it broadcasts: 40 bits, 10 hex digits.
    pub rfpi: String,
    /// Simultaneous voice calls it carries (1..=12).
    pub channels: u32,
    /// Whether it supports wideband (CAT-iq) G.722 calls.
    pub wideband: bool,
    /// Its clock's error in parts per million (±100); `None` draws one in ±50 from the seed.
    pub clock_ppm: Option<i32>,
}

impl BaseConfig {
    pub fn new(name: &str, rfpi: &str, channels: u32, wideband: bool) -> BaseConfig {
        BaseConfig {
            name: name.to_owned(),
            rfpi: rfpi.to_owned(),
            channels,
            wideband,
            clock_ppm: None,
        }
    }
}

/// One handset, subscribed to one base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandsetConfig {
    /// Its IPUI-N: 10 hex digits, optionally written `IPUI-` followed by them.
    pub ipui: String,
    /// The base it is subscribed to (a `BaseConfig::name`).
    pub base: String,
    /// The extension it serves: digits, unique in the driver.
    pub number: String,
    /// Display name, sent as the calling party's name of its calls.
    pub name: String,
    /// Whether it supports wideband G.722; a call is wideband only if its base does too.
    pub wideband: bool,
    /// Answer by itself this many milliseconds after it starts ringing.
    pub auto_answer: Option<u32>,
    /// What the simulated person at the handset says during a call.
    pub audio: HandsetAudio,
}

impl HandsetConfig {
    /// A wideband handset that does not answer by itself and echoes what it hears.
    pub fn new(ipui: &str, base: &str, number: &str, name: &str) -> HandsetConfig {
        HandsetConfig {
            ipui: ipui.to_owned(),
            base: base.to_owned(),
            number: number.to_owned(),
            name: name.to_owned(),
            wideband: true,
            auto_answer: None,
            audio: HandsetAudio::Echo,
        }
    }
}

/// The audio the simulated person at a handset produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandsetAudio {
    /// Sends back what the handset hears (decoded and encoded again, no extra delay).
    Echo,
    /// A steady sine at `hz` (1..=7000).
    Tone {
        hz: u32,
    },
    Silence,
}

/// What is wrong with a [`DectConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DectConfigError {
    /// The driver's name is empty or has characters other than letters, digits, `-`, `_`.
    InvalidName(String),
    NoBases,
    InvalidBaseName(String),
    DuplicateBase(String),
    InvalidRfpi {
        base: String,
        rfpi: String,
    },
    DuplicateRfpi(String),
    InvalidChannels {
        base: String,
        channels: u32,
    },
    InvalidClockPpm {
        base: String,
        ppm: i32,
    },
    InvalidIpui(String),
    DuplicateIpui(String),
    /// A handset subscribed to a base the configuration does not have.
    UnknownBase {
        ipui: String,
        base: String,
    },
    InvalidNumber {
        ipui: String,
        number: String,
    },
    DuplicateNumber(String),
    InvalidAutoAnswer {
        ipui: String,
        ms: u32,
    },
    InvalidTone {
        ipui: String,
        hz: u32,
    },
}

impl fmt::Display for DectConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DectConfigError::InvalidName(name) => write!(
                f,
                "DECT driver name {name:?}: must be letters, digits, '-' or '_'"
            ),
            DectConfigError::NoBases => write!(f, "DECT driver without base stations"),
            DectConfigError::InvalidBaseName(name) => write!(
                f,
                "DECT base name {name:?}: must be letters, digits, '-' or '_'"
            ),
            DectConfigError::DuplicateBase(name) => write!(f, "DECT base {name:?} defined twice"),
            DectConfigError::InvalidRfpi { base, rfpi } => {
                write!(f, "DECT base {base:?}: RFPI {rfpi:?} is not 10 hex digits")
            }
            DectConfigError::DuplicateRfpi(rfpi) => {
                write!(f, "DECT RFPI {rfpi:?} used by two bases")
            }
            DectConfigError::InvalidChannels { base, channels } => write!(
                f,
                "DECT base {base:?}: {channels} voice channels, must be 1..={MAX_CHANNELS}"
            ),
            DectConfigError::InvalidClockPpm { base, ppm } => write!(
                f,
                "DECT base {base:?}: clock error {ppm} ppm, must be within ±{MAX_CLOCK_PPM}"
            ),
            DectConfigError::InvalidIpui(ipui) => write!(
                f,
                "DECT handset IPUI {ipui:?}: must be 10 hex digits, optionally after 'IPUI-'"
            ),
            DectConfigError::DuplicateIpui(ipui) => {
                write!(f, "DECT handset IPUI {ipui:?} subscribed twice")
            }
            DectConfigError::UnknownBase { ipui, base } => write!(
                f,
                "DECT handset {ipui:?} is subscribed to unknown base {base:?}"
            ),
            DectConfigError::InvalidNumber { ipui, number } => write!(
                f,
                "DECT handset {ipui:?}: number {number:?} must be 1 to 32 digits"
            ),
            DectConfigError::DuplicateNumber(number) => {
                write!(f, "DECT number {number:?} given to two handsets")
            }
            DectConfigError::InvalidAutoAnswer { ipui, ms } => write!(
                f,
                "DECT handset {ipui:?}: auto-answer after {ms} ms, at most {MAX_AUTO_ANSWER_MS}"
            ),
            DectConfigError::InvalidTone { ipui, hz } => write!(
                f,
                "DECT handset {ipui:?}: tone of {hz} Hz, must be 1..={MAX_TONE_HZ}"
            ),
        }
    }
}

impl std::error::Error for DectConfigError {}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub(crate) fn valid_number(number: &str) -> bool {
    !number.is_empty() && number.len() <= 32 && number.bytes().all(|b| b.is_ascii_digit())
}

fn parse_hex40(text: &str) -> Option<u64> {
    if text.len() != 10 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// The 40-bit RFPI of its 10 hex digits.
pub(crate) fn parse_rfpi(text: &str) -> Option<u64> {
    parse_hex40(text.trim())
}

/// The 40-bit IPUI-N of `IPUI-` and 10 hex digits, or the digits alone (any case), so that
/// both spellings of one handset compare equal.
pub(crate) fn parse_ipui(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = match text.get(..5) {
        Some(prefix) if prefix.eq_ignore_ascii_case("IPUI-") => text.get(5..)?,
        _ => text,
    };
    parse_hex40(digits)
}

/// The canonical spelling of an IPUI, for status and messages.
pub(crate) fn format_ipui(ipui: u64) -> String {
    format!("IPUI-{ipui:010X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DectConfig {
        let mut c = DectConfig::new("dect1");
        c.bases
            .push(BaseConfig::new("base1", "0012345678", 4, true));
        c.bases
            .push(BaseConfig::new("base2", "00123456AB", 8, false));
        c.handsets.push(HandsetConfig::new(
            "IPUI-00A1B2C3D4",
            "base1",
            "300",
            "Alice",
        ));
        c.handsets
            .push(HandsetConfig::new("00a1b2c3d5", "base2", "301", "Bob"));
        c
    }

    #[test]
    fn a_good_configuration_passes() {
        assert_eq!(config().validate(), Ok(()));
    }

    #[test]
    fn ipui_spellings_compare_equal() {
        assert_eq!(parse_ipui("IPUI-00A1B2C3D4"), parse_ipui("00a1b2c3d4"));
        assert_eq!(parse_ipui("ipui-00a1b2c3d4"), Some(0x00_A1B2_C3D4));
        assert_eq!(parse_ipui("IPUI-00A1B2C3D"), None);
        assert_eq!(parse_ipui("IPUI-00A1B2C3DG"), None);
        assert_eq!(parse_ipui("IPU"), None);
        assert_eq!(parse_ipui("ééééé"), None);
        assert_eq!(format_ipui(0x00_A1B2_C3D4), "IPUI-00A1B2C3D4");
    }

    #[test]
    fn each_problem_is_named() {
        let mut c = config();
        c.handsets[1].base = "base9".into();
        assert_eq!(
            c.validate(),
            Err(DectConfigError::UnknownBase {
                ipui: "00a1b2c3d5".into(),
                base: "base9".into()
            })
        );

        let mut c = config();
        c.handsets[1].ipui = "IPUI-00a1b2c3d4".into();
        assert_eq!(
            c.validate(),
            Err(DectConfigError::DuplicateIpui("IPUI-00a1b2c3d4".into()))
        );

        let mut c = config();
        c.handsets[1].number = "300".into();
        assert_eq!(
            c.validate(),
            Err(DectConfigError::DuplicateNumber("300".into()))
        );

        let mut c = config();
        c.handsets[1].number = "30a".into();
        assert!(matches!(
            c.validate(),
            Err(DectConfigError::InvalidNumber { .. })
        ));

        let mut c = config();
        c.bases[1].name = "base1".into();
        assert_eq!(
            c.validate(),
            Err(DectConfigError::DuplicateBase("base1".into()))
        );

        let mut c = config();
        c.bases[1].rfpi = "0012345678".into();
        assert_eq!(
            c.validate(),
            Err(DectConfigError::DuplicateRfpi("0012345678".into()))
        );

        let mut c = config();
        c.bases[0].rfpi = "xyz".into();
        assert!(matches!(
            c.validate(),
            Err(DectConfigError::InvalidRfpi { .. })
        ));

        let mut c = config();
        c.bases[0].channels = 0;
        assert!(matches!(
            c.validate(),
            Err(DectConfigError::InvalidChannels { channels: 0, .. })
        ));

        let mut c = config();
        c.bases[0].clock_ppm = Some(-101);
        assert!(matches!(
            c.validate(),
            Err(DectConfigError::InvalidClockPpm { ppm: -101, .. })
        ));

        let mut c = config();
        c.handsets[0].audio = HandsetAudio::Tone { hz: 0 };
        assert!(matches!(
            c.validate(),
            Err(DectConfigError::InvalidTone { hz: 0, .. })
        ));

        let mut c = config();
        c.handsets[0].auto_answer = Some(MAX_AUTO_ANSWER_MS + 1);
        assert!(matches!(
            c.validate(),
            Err(DectConfigError::InvalidAutoAnswer { .. })
        ));

        let mut c = config();
        c.bases.clear();
        assert_eq!(c.validate(), Err(DectConfigError::NoBases));

        let mut c = config();
        c.name = "bad name".into();
        assert!(matches!(c.validate(), Err(DectConfigError::InvalidName(_))));
    }

    #[test]
    fn messages_name_the_culprit() {
        let e = DectConfigError::UnknownBase {
            ipui: "IPUI-00A1B2C3D4".into(),
            base: "base9".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("IPUI-00A1B2C3D4") && text.contains("base9"),
            "{text}"
        );
    }
}
