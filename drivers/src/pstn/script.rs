//! Scripted scenarios: what PSTN parties do, and when, for tests and demonstrations.

use std::fmt;

/// What a PSTN party does in a script step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptAction {
    /// `from` dials `to`, a number of the gateway: an inward call.
    DialIn { from: String, to: String },
    /// The party (a number, or an exchange call id in decimal) answers its ringing call.
    Answer { party: String },
    /// The party (a number, or an exchange call id in decimal) hangs up.
    Hangup { party: String },
}

/// One step: `action` at `at_ms` after the script's start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptStep {
    pub at_ms: u64,
    pub action: ScriptAction,
}

/// A scenario the exchange plays through its timeouts
/// ([`Exchange::with_script`](super::Exchange::with_script)). Steps run in time order, those at
/// the same time in the order given.
///
/// Its text form ([`Script::parse`], [`Display`](fmt::Display)) is one step a line, `#` starting
/// a comment:
///
/// ```text
/// 0      dial   0301234567 0401
/// 4000   hangup 0301234567
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    pub steps: Vec<ScriptStep>,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    pub fn dial_in(mut self, at_ms: u64, from: &str, to: &str) -> Script {
        self.steps.push(ScriptStep {
            at_ms,
            action: ScriptAction::DialIn {
                from: from.to_owned(),
                to: to.to_owned(),
            },
        });
        self
    }

    pub fn answer(mut self, at_ms: u64, party: &str) -> Script {
        self.steps.push(ScriptStep {
            at_ms,
            action: ScriptAction::Answer {
                party: party.to_owned(),
            },
        });
        self
    }

    pub fn hangup(mut self, at_ms: u64, party: &str) -> Script {
        self.steps.push(ScriptStep {
            at_ms,
            action: ScriptAction::Hangup {
                party: party.to_owned(),
            },
        });
        self
    }

    /// Reads the text form: `<at_ms> dial <from> <to>`, `<at_ms> answer <party>`,
    /// `<at_ms> hangup <party>`. The error names the first bad line.
    pub fn parse(text: &str) -> Result<Script, String> {
        let mut script = Script::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| format!("script line {}: {why}: {line:?}", index + 1);
            let words: Vec<&str> = line.split_whitespace().collect();
            let (at, verb, args) = match words.as_slice() {
                [at, verb, args @ ..] => (at, verb, args),
                _ => return Err(bad("expected a time and an action")),
            };
            let at_ms: u64 = at
                .parse()
                .map_err(|_| bad("the time is not a whole number of milliseconds"))?;
            script = match (verb.to_ascii_lowercase().as_str(), args) {
                ("dial", [from, to]) => script.dial_in(at_ms, from, to),
                ("answer", [party]) => script.answer(at_ms, party),
                ("hangup", [party]) => script.hangup(at_ms, party),
                ("dial", _) => return Err(bad("dial takes a caller and a called number")),
                ("answer" | "hangup", _) => return Err(bad("expected one party")),
                _ => return Err(bad("unknown action (dial, answer, hangup)")),
            };
        }
        Ok(script)
    }
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for step in &self.steps {
            match &step.action {
                ScriptAction::DialIn { from, to } => {
                    writeln!(f, "{} dial {from} {to}", step.at_ms)?
                }
                ScriptAction::Answer { party } => writeln!(f, "{} answer {party}", step.at_ms)?,
                ScriptAction::Hangup { party } => writeln!(f, "{} hangup {party}", step.at_ms)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print_round_trip() {
        let text = "# a caller rings in and gives up\n\
                    0 dial 0301234567 0401\n\
                    \n\
                    2500   ANSWER 0301234567 # by hand\n\
                    4000 hangup 2147483649\n";
        let script = Script::parse(text).expect("parses");
        assert_eq!(
            script,
            Script::new()
                .dial_in(0, "0301234567", "0401")
                .answer(2500, "0301234567")
                .hangup(4000, "2147483649")
        );
        assert_eq!(Script::parse(&script.to_string()), Ok(script));
    }

    #[test]
    fn parse_errors_name_the_line() {
        for (text, line) in [
            ("0 dial 1", 1),
            ("\nx dial 1 2", 2),
            ("0 answer", 1),
            ("0 ring 1", 1),
            ("0", 1),
            ("-5 hangup 1", 1),
            ("0 hangup 1 2", 1),
        ] {
            let err = Script::parse(text).expect_err(text);
            assert!(err.starts_with(&format!("script line {line}:")), "{err}");
        }
        assert_eq!(Script::parse(""), Ok(Script::new()));
    }
}
