//! Plain-text output for people: aligned tables, counts with thousands
//! separators, money, sizes. Hand-written: a table crate would cost more
//! binary than these lines do.

use std::fmt::Write as _;

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: flush left.
    Left,
    /// Numbers: flush right, so digits line up.
    Right,
}

/// A line of a table.
enum Line {
    /// One cell per column.
    Cells(Vec<String>),
    /// A rule across the table (before a totals row).
    Rule,
}

/// An aligned table, its header in capitals, columns two spaces apart.
pub struct Table {
    /// Header text and alignment of each column.
    columns: Vec<(String, Align)>,
    /// The lines below the header.
    lines: Vec<Line>,
}

impl Table {
    /// A table with these columns.
    pub fn new(columns: Vec<(String, Align)>) -> Table {
        Table {
            columns,
            lines: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, extra cells are dropped.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.columns.len(), String::new());
        self.lines.push(Line::Cells(cells));
    }

    /// Adds a rule across the table.
    pub fn rule(&mut self) {
        self.lines.push(Line::Rule);
    }

    /// The table as text, each line ending in a newline.
    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.columns.iter().map(|(h, _)| width(h)).collect();
        for line in &self.lines {
            if let Line::Cells(cells) = line {
                for (w, cell) in widths.iter_mut().zip(cells) {
                    *w = (*w).max(width(cell));
                }
            }
        }
        let put = |out: &mut String, cells: &mut dyn Iterator<Item = (&str, Align)>| {
            let mut line = String::new();
            for (i, ((cell, align), w)) in cells.zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let _ = match align {
                    Align::Left => write!(line, "{cell:<w$}"),
                    Align::Right => write!(line, "{cell:>w$}"),
                };
            }
            out.push_str(line.trim_end());
            out.push('\n');
        };
        let mut out = String::new();
        put(
            &mut out,
            &mut self.columns.iter().map(|(h, a)| (h.as_str(), *a)),
        );
        for line in &self.lines {
            match line {
                Line::Cells(cells) => put(
                    &mut out,
                    &mut cells
                        .iter()
                        .zip(&self.columns)
                        .map(|(c, (_, a))| (c.as_str(), *a)),
                ),
                Line::Rule => {
                    let total = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
                    out.push_str(&"-".repeat(total));
                    out.push('\n');
                }
            }
        }
        out
    }
}

/// `1234567` as `1,234,567`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let sign = if n < 0 { "-" } else { "" };
    format!("{sign}{}", group_digits(&digits))
}

/// Commas every three digits of a run of digits.
fn group_digits(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// US dollars: `$12.34`, `$1,234.50`; amounts under a cent keep two
/// significant digits (`$0.0021`), down to the billionth the API rounds to.
pub fn money(usd: f64) -> String {
    let abs = usd.abs();
    let decimals = if abs == 0.0 || abs >= 0.01 {
        2
    } else {
        // libm's, as in the rollups' buckets: the daemon links no libm.
        ((-libm::log10(abs)).ceil() as usize + 1).min(9)
    };
    let text = format!("{abs:.decimals$}");
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let sign = if usd < 0.0 && text.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        "-"
    } else {
        ""
    };
    format!("{sign}${}.{fraction}", group_digits(whole))
}

/// A size in bytes for people: `4.0 KiB`, `512.0 MiB`.
pub fn bytes(n: u64) -> String {
    bytesize::ByteSize(n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(-12_345), "-12,345");
    }

    #[test]
    fn money_has_cents_and_more_digits_when_tiny() {
        assert_eq!(money(0.0), "$0.00");
        assert_eq!(money(12.345), "$12.35");
        assert_eq!(money(1234.5), "$1,234.50");
        assert_eq!(money(0.0021), "$0.0021");
        assert_eq!(money(0.000034), "$0.000034");
        assert_eq!(money(0.000000001), "$0.000000001");
        assert_eq!(money(-0.5), "-$0.50");
    }

    #[test]
    fn columns_line_up_and_rules_span_the_table() {
        let mut t = Table::new(vec![
            ("MODEL".into(), Align::Left),
            ("CALLS".into(), Align::Right),
        ]);
        t.row(vec!["claude-sonnet-4-5".into(), count(1200)]);
        t.row(vec!["gpt-4o".into(), count(3)]);
        t.rule();
        t.row(vec!["TOTAL".into(), count(1203)]);
        assert_eq!(
            t.render(),
            "MODEL              CALLS\n\
             claude-sonnet-4-5  1,200\n\
             gpt-4o                 3\n\
             ------------------------\n\
             TOTAL              1,203\n"
        );
    }
}
