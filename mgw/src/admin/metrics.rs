//! Prometheus text exposition (format 0.0.4) for `GET /metrics`.
//!
//! Subsystems plug in a [`MetricsSource`]; each renders its own families into
//! the shared buffer on every scrape, so counters stay where they are updated
//! (atomics in the engine, the registrar ...) and nothing is copied between
//! scrapes.

use std::fmt::Write as _;

/// Something that appends metric families to a scrape.
pub trait MetricsSource: Send + Sync {
    fn render(&self, out: &mut String);
}

impl<F: Fn(&mut String) + Send + Sync> MetricsSource for F {
    fn render(&self, out: &mut String) {
        self(out)
    }
}

/// `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes the `# HELP` and `# TYPE` lines of a family. `kind` is `counter`,
/// `gauge`, `histogram`, `summary` or `untyped`.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one sample line, `name{l1="v1",...} value`, escaping label values.
pub fn sample(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    value: impl std::fmt::Display,
) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(out, "{k}=\"{v}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// A whole single-sample counter family.
pub fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    sample(out, name, &[], value);
}

/// A whole single-sample gauge family.
pub fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, "gauge", help);
    sample(out, name, &[], value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_format() {
        let mut out = String::new();
        counter(&mut out, "mgw_x_total", "X events.", 3);
        family(&mut out, "mgw_y", "gauge", "Y\nnow");
        sample(&mut out, "mgw_y", &[("a", "q\"\\\n"), ("b", "2")], 1.5);
        assert_eq!(
            out,
            "# HELP mgw_x_total X events.\n# TYPE mgw_x_total counter\nmgw_x_total 3\n\
             # HELP mgw_y Y\\nnow\n# TYPE mgw_y gauge\nmgw_y{a=\"q\\\"\\\\\\n\",b=\"2\"} 1.5\n"
        );
        let src = |o: &mut String| gauge(o, "mgw_z", "Z.", 7);
        let mut out = String::new();
        MetricsSource::render(&src, &mut out);
        assert!(out.ends_with("mgw_z 7\n"));
    }
}
