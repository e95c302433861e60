//! Output: aligned plain-text tables for people, JSON for scripts.
//!
//! Every command result is a serde type that also knows how to lay itself out as a [`Table`]
//! ([`Render`]). `-o json` prints the serde form (pretty, one document per invocation); `-o
//! table` prints the table. Column widths count display cells, so Chinese text (two cells per
//! character) stays aligned.

use std::fmt::Write as _;

use serde::Serialize;
use unicode_width::UnicodeWidthStr;

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns.
    #[default]
    Table,
    /// Pretty-printed JSON.
    Json,
}

/// A result that can be printed as a table.
pub trait Render: Serialize {
    /// The table form.
    fn table(&self) -> Table;
}

/// Prints `value` to stdout in the chosen format.
pub fn emit<T: Render>(format: OutputFormat, value: &T) -> anyhow::Result<()> {
    let text = match format {
        OutputFormat::Json => serde_json::to_string_pretty(value)? + "\n",
        OutputFormat::Table => value.table().render(),
    };
    print!("{text}");
    Ok(())
}

/// Rows of cells under a header row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers (printed in upper case).
    pub fn new(headers: &[&str]) -> Table {
        let headers = headers.iter().map(|h| h.to_uppercase()).collect();
        Table {
            headers,
            rows: Vec::new(),
        }
    }

    /// A two-column FIELD / VALUE table.
    pub fn key_value() -> Table {
        Table::new(&["field", "value"])
    }

    /// Appends a row; missing cells print empty, extra cells are kept.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Appends a FIELD / VALUE row.
    pub fn pair(&mut self, field: &str, value: impl Into<String>) {
        self.row([field.to_owned(), value.into()]);
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True without data rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text: columns two spaces apart, no trailing spaces, one line per row.
    pub fn render(&self) -> String {
        let widths = self.widths();
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let cell = cell.replace(['\n', '\t'], " ");
                let pad = widths[i].saturating_sub(cell.width());
                let _ = write!(line, "{cell}{:pad$}  ", "");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    fn widths(&self) -> Vec<usize> {
        let columns = std::iter::once(&self.headers)
            .chain(&self.rows)
            .map(Vec::len)
            .max();
        let mut widths = vec![0; columns.unwrap_or(0)];
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.width());
            }
        }
        widths
    }
}

/// `"-"` for an empty string, the string otherwise.
pub fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_by_display_width() {
        let mut t = Table::new(&["name", "id"]);
        t.row(["王芳", "1"]);
        t.row(["Li", "22"]);
        let want = "NAME  ID\n王芳  1\nLi    22\n";
        assert_eq!(t.render(), want);
    }

    #[test]
    fn ragged_rows_and_newlines() {
        let cases: [(Vec<&str>, &str); 3] = [
            (vec!["a"], "A  B\na\n"),
            (vec!["x\ny", "z"], "A    B\nx y  z\n"),
            (vec!["", "b", "c"], "A  B  \n   b  c\n"),
        ];
        for (row, want) in cases {
            let mut t = Table::new(&["a", "b"]);
            t.row(row.clone());
            let got = t.render();
            let want: String = want
                .lines()
                .map(|l| l.trim_end().to_owned() + "\n")
                .collect();
            assert_eq!(got, want, "{row:?}");
        }
    }
}
