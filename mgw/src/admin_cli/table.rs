//! Plain-text output for people: column-aligned tables and `key: value` blocks.
//!
//! Cells are sanitised because much of what is shown comes from phones (User-Agent, Contact):
//! a control character there must not move the cursor or recolour the operator's terminal.

/// A table with a header row; columns are as wide as their widest cell.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| (*h).to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are shown as `-`, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells: Vec<String> = cells.into_iter().map(|c| cell(&c)).collect();
        cells.resize(self.headers.len(), "-".to_string());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The header and rows, two spaces between columns, no trailing blanks, ending in a
    /// newline.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(c));
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(c);
                line.push_str(&" ".repeat(w.saturating_sub(width(c))));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines with the values aligned.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| width(k)).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let line = format!("{k}:{} {}", " ".repeat(w - width(k)), cell(v));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A printable cell: empty becomes `-`, control characters become `?`.
pub fn cell(s: &str) -> String {
    if s.is_empty() {
        return "-".to_string();
    }
    printable(s)
}

/// `s` with control characters replaced by `?`.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Display width, counted in characters: good enough for the ASCII and Latin text mgw shows.
fn width(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut t = Table::new(&["ID", "NAME", "STATE"]);
        assert!(t.is_empty());
        t.row(vec!["1".into(), "shop".into(), "enabled".into()]);
        t.row(vec!["12".into(), "Bäckerei Müller".into(), "".into()]);
        t.row(vec!["3".into()]);
        assert!(!t.is_empty());
        assert_eq!(
            t.render(),
            "ID  NAME             STATE\n\
             1   shop             enabled\n\
             12  Bäckerei Müller  -\n\
             3   -                -\n"
        );
    }

    #[test]
    fn header_only_and_extra_cells() {
        let mut t = Table::new(&["A", "B"]);
        assert_eq!(t.render(), "A  B\n");
        t.row(vec!["x".into(), "y".into(), "dropped".into()]);
        assert_eq!(t.render(), "A  B\nx  y\n");
    }

    #[test]
    fn control_characters_are_neutralised() {
        let mut t = Table::new(&["UA"]);
        t.row(vec!["evil\x1b[2J\nphone\t1".into()]);
        assert_eq!(t.render(), "UA\nevil?[2J?phone?1\n");
        assert_eq!(cell(""), "-");
        assert_eq!(printable(""), "");
        assert_eq!(printable("a\rb"), "a?b");
    }

    #[test]
    fn key_value_blocks() {
        let kv = key_values(&[
            ("id", "3".into()),
            ("main number", "0301".into()),
            ("log-ons", String::new()),
        ]);
        assert_eq!(kv, "id:          3\nmain number: 0301\nlog-ons:     -\n");
        assert_eq!(key_values(&[]), "");
    }
}
