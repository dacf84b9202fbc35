//! The progress bar on stderr: only for a person watching (stderr is a terminal and not
//! `--json-only`), so scripts reading the JSON line never see control sequences.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::summary::Stats;

/// Redraws at most this often; the loop calls [`Progress::tick`] every turn.
const EVERY_NS: u64 = 200_000_000;

pub struct Progress {
    bar: Option<ProgressBar>,
    last_ns: u64,
    last_offered: u64,
    last_ok: u64,
}

impl Progress {
    pub fn new(count: u64, json_only: bool) -> Progress {
        let bar = (!json_only && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(count), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} offered  {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Progress {
            bar,
            last_ns: 0,
            last_offered: 0,
            last_ok: 0,
        }
    }

    pub fn tick(&mut self, now: u64, s: &Stats, active: u64) {
        let Some(bar) = &self.bar else {
            return;
        };
        let span = now.saturating_sub(self.last_ns);
        if span < EVERY_NS {
            return;
        }
        let per_s = |n: u64| n as f64 * 1e9 / span as f64;
        bar.set_position(s.offered);
        bar.set_message(format!(
            "ok {}  failed {}  retrans {}  in flight {}  {:.0} offered/s  {:.0} ok/s",
            s.ok,
            s.failed,
            s.retransmissions,
            active,
            per_s(s.offered - self.last_offered),
            per_s(s.ok - self.last_ok),
        ));
        self.last_ns = now;
        self.last_offered = s.offered;
        self.last_ok = s.ok;
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
