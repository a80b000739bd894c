//! GitHub-flavoured markdown tables whose columns line up in the source as well as rendered.

use crate::error::{ReportError, Result};

/// A column's alignment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Align {
    /// Left (`:---`), the default.
    #[default]
    Left,
    /// Right (`---:`), for numbers.
    Right,
    /// Centred (`:---:`).
    Center,
}

/// A table: a header row and body rows of text cells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// The column names.
    pub header: Vec<String>,
    /// The body, each row with one cell per column.
    pub rows: Vec<Vec<String>>,
    /// One alignment per column, or empty for all left.
    pub align: Vec<Align>,
}

impl Table {
    /// A table with this header, no rows and every column left-aligned.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            align: Vec::new(),
        }
    }

    /// The table with these column alignments.
    pub fn with_align(mut self, align: Vec<Align>) -> Self {
        self.align = align;
        self
    }

    /// Appends a row.
    pub fn push_row<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) {
        self.rows.push(row.into_iter().map(Into::into).collect());
    }

    /// The table as markdown: every column padded to its widest cell (counted in characters),
    /// `|` in a cell escaped as `\|` and line breaks turned into spaces so the table stays one
    /// row per line. Ends with a line break.
    ///
    /// # Errors
    /// No columns, a row or `align` (unless empty) with another length than the header.
    pub fn to_markdown(&self) -> Result<String> {
        let columns = self.header.len();
        if columns == 0 {
            return Err(ReportError::Empty {
                what: "the table's header",
            });
        }
        if !self.align.is_empty() && self.align.len() != columns {
            return Err(ReportError::LengthMismatch {
                what: "table align".to_owned(),
                expected: columns,
                found: self.align.len(),
            });
        }
        for (i, row) in self.rows.iter().enumerate() {
            if row.len() != columns {
                return Err(ReportError::LengthMismatch {
                    what: format!("table row {i}"),
                    expected: columns,
                    found: row.len(),
                });
            }
        }
        let escape_row = |row: &[String]| row.iter().map(|c| escape(c)).collect::<Vec<_>>();
        let header = escape_row(&self.header);
        let rows: Vec<Vec<String>> = self.rows.iter().map(|r| escape_row(r)).collect();
        let align = |c: usize| self.align.get(c).copied().unwrap_or_default();
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                std::iter::once(&header)
                    .chain(&rows)
                    .map(|row| row[c].chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(3)
            })
            .collect();
        let mut out = String::new();
        let mut line = |cells: Vec<String>| {
            out.push('|');
            for cell in cells {
                out.push(' ');
                out.push_str(&cell);
                out.push_str(" |");
            }
            out.push('\n');
        };
        let padded = |row: &[String]| {
            row.iter()
                .enumerate()
                .map(|(c, cell)| pad(cell, widths[c], align(c)))
                .collect()
        };
        line(padded(&header));
        line(
            (0..columns)
                .map(|c| match align(c) {
                    Align::Left => format!(":{}", "-".repeat(widths[c] - 1)),
                    Align::Right => format!("{}:", "-".repeat(widths[c] - 1)),
                    Align::Center => format!(":{}:", "-".repeat(widths[c] - 2)),
                })
                .collect(),
        );
        for row in &rows {
            line(padded(row));
        }
        Ok(out)
    }
}

/// A cell's text made safe inside a table row.
fn escape(cell: &str) -> String {
    cell.replace('|', "\\|")
        .replace("\r\n", " ")
        .replace(['\n', '\r'], " ")
}

/// `cell` padded with spaces to `width` characters.
fn pad(cell: &str, width: usize, align: Align) -> String {
    let room = width.saturating_sub(cell.chars().count());
    let (before, after) = match align {
        Align::Left => (0, room),
        Align::Right => (room, 0),
        Align::Center => (room / 2, room - room / 2),
    };
    format!("{}{cell}{}", " ".repeat(before), " ".repeat(after))
}
