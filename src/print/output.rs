//! sfprint's record formats: `str` (an aligned table), `json` (the exporter's layout, or the
//! selected columns nested by their dots as sysprint does), `flatjson` (the columns as flat
//! keys) and `csv` (RFC 4180). Each is a [`Sink`] fed one record at a time, so output starts
//! at once and memory does not grow with the trace.

use std::io::{self, Write};

use super::columns::{Cell, Column, Row};
use crate::encode::json::write_str;
use crate::encode::JsonEncoder;
use crate::record::Record;

/// Output format (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Str,
    Json,
    FlatJson,
    Csv,
    Tree,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "str" => Format::Str,
            "json" => Format::Json,
            "flatjson" => Format::FlatJson,
            "csv" => Format::Csv,
            "tree" => Format::Tree,
            _ => return None,
        })
    }
}

/// Receives the records to print, in order.
pub trait Sink {
    fn record(&mut self, rec: &Record, row: &Row) -> io::Result<()>;
    /// Called once after the last record.
    fn finish(&mut self) -> io::Result<()>;
}

/// Appends a cell as JSON.
pub fn write_cell_json(out: &mut Vec<u8>, cell: &Cell<'_>) {
    match cell {
        Cell::Null => out.extend_from_slice(b"null"),
        Cell::Str(s) => write_str(out, s),
        Cell::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Cell::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Cell::List(v) => {
            out.push(b'[');
            for (i, s) in v.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, s);
            }
            out.push(b']');
        }
        Cell::Json(v) => {
            // A Value always serialises.
            let _ = serde_json::to_writer(&mut *out, v);
        }
    }
}

fn cell_value(cell: &Cell<'_>) -> serde_json::Value {
    use serde_json::Value as V;
    match cell {
        Cell::Null => V::Null,
        Cell::Str(s) => V::String(s.to_string()),
        Cell::Int(i) => V::from(*i),
        Cell::Bool(b) => V::Bool(*b),
        Cell::List(v) => V::Array(v.iter().map(|s| V::String(s.to_string())).collect()),
        Cell::Json(v) => v.clone(),
    }
}

/// Text of a cell in a table or CSV field: strings as they are, numbers in decimal,
/// booleans as sysprint writes them (`True`/`False`), lists and maps as JSON.
fn cell_text(cell: &Cell<'_>, out: &mut String) {
    match cell {
        Cell::Null => {}
        Cell::Str(s) => out.push_str(s),
        Cell::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
        Cell::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Cell::List(_) | Cell::Json(_) => {
            let mut v = Vec::new();
            write_cell_json(&mut v, cell);
            out.push_str(&String::from_utf8_lossy(&v));
        }
    }
}

/// JSON lines to a stream, or one JSON array when writing a file (`-w`), as sysprint does.
struct JsonFraming {
    array: bool,
    first: bool,
}

impl JsonFraming {
    fn before(&mut self, out: &mut Vec<u8>) {
        if self.array {
            out.push(if self.first { b'[' } else { b',' });
        }
        self.first = false;
    }
    fn after(&self, out: &mut Vec<u8>) {
        if !self.array {
            out.push(b'\n');
        }
    }
    fn finish(&self, out: &mut impl Write) -> io::Result<()> {
        if self.array {
            out.write_all(if self.first { b"[]\n" } else { b"]\n" })?;
        }
        Ok(())
    }
}

/// Records in the exporter's JSON layout (`-o json` without `-c`).
pub struct ExporterJson<W: Write> {
    out: W,
    enc: JsonEncoder,
    buf: Vec<u8>,
    framing: JsonFraming,
}

impl<W: Write> ExporterJson<W> {
    pub fn new(out: W, array: bool) -> Self {
        ExporterJson {
            out,
            enc: JsonEncoder::new(),
            buf: Vec::with_capacity(1 << 16),
            framing: JsonFraming { array, first: true },
        }
    }
}

impl<W: Write> Sink for ExporterJson<W> {
    fn record(&mut self, rec: &Record, _row: &Row) -> io::Result<()> {
        self.framing.before(&mut self.buf);
        self.enc.encode(rec, &mut self.buf);
        self.framing.after(&mut self.buf);
        if self.buf.len() >= 1 << 16 {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.framing.finish(&mut self.out)?;
        self.out.flush()
    }
}

/// The selected columns as one JSON object per record: flat keys (`flatjson`), or nested by
/// the dots in their names (`json -c`: `proc.exe` becomes `{"proc": {"exe": ...}}`).
pub struct ColumnsJson<W: Write> {
    out: W,
    cols: Vec<Column>,
    nested: bool,
    buf: Vec<u8>,
    framing: JsonFraming,
}

impl<W: Write> ColumnsJson<W> {
    pub fn new(out: W, cols: Vec<Column>, nested: bool, array: bool) -> Self {
        ColumnsJson {
            out,
            cols,
            nested,
            buf: Vec::with_capacity(1 << 16),
            framing: JsonFraming { array, first: true },
        }
    }
}

impl<W: Write> Sink for ColumnsJson<W> {
    fn record(&mut self, rec: &Record, row: &Row) -> io::Result<()> {
        self.framing.before(&mut self.buf);
        if self.nested {
            let mut root = serde_json::Map::new();
            for c in &self.cols {
                insert_dotted(&mut root, &c.name, cell_value(&c.cell(rec, row)));
            }
            // A Map always serialises.
            let _ = serde_json::to_writer(&mut self.buf, &root);
        } else {
            self.buf.push(b'{');
            for (i, c) in self.cols.iter().enumerate() {
                if i > 0 {
                    self.buf.push(b',');
                }
                write_str(&mut self.buf, &c.name);
                self.buf.push(b':');
                write_cell_json(&mut self.buf, &c.cell(rec, row));
            }
            self.buf.push(b'}');
        }
        self.framing.after(&mut self.buf);
        if self.buf.len() >= 1 << 16 {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.framing.finish(&mut self.out)?;
        self.out.flush()
    }
}

/// Inserts `value` at the dotted `path` (a key that is already a value keeps it).
fn insert_dotted(
    root: &mut serde_json::Map<String, serde_json::Value>,
    path: &str,
    value: serde_json::Value,
) {
    let mut parts = path.split('.').peekable();
    let mut map = root;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            map.insert(p.to_string(), value);
            return;
        }
        let slot = map
            .entry(p.to_string())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        match slot {
            serde_json::Value::Object(m) => map = m,
            _ => return,
        }
    }
}

/// RFC 4180 CSV: a header line of the column names, CRLF line ends, fields quoted when they
/// hold a comma, a quote, CR or LF (quotes doubled).
pub struct Csv<W: Write> {
    out: W,
    cols: Vec<Column>,
    line: String,
    field: String,
    buf: Vec<u8>,
    header_done: bool,
}

impl<W: Write> Csv<W> {
    pub fn new(out: W, cols: Vec<Column>) -> Self {
        Csv {
            out,
            cols,
            line: String::new(),
            field: String::new(),
            buf: Vec::with_capacity(1 << 16),
            header_done: false,
        }
    }

    fn push_field(line: &mut String, f: &str) {
        if f.contains([',', '"', '\r', '\n']) {
            line.push('"');
            line.push_str(&f.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(f);
        }
    }

    fn header(&mut self) {
        if self.header_done {
            return;
        }
        self.header_done = true;
        self.line.clear();
        for (i, c) in self.cols.iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            Self::push_field(&mut self.line, &c.name);
        }
        self.line.push_str("\r\n");
        self.buf.extend_from_slice(self.line.as_bytes());
    }
}

impl<W: Write> Sink for Csv<W> {
    fn record(&mut self, rec: &Record, row: &Row) -> io::Result<()> {
        self.header();
        self.line.clear();
        for (i, c) in self.cols.iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            self.field.clear();
            cell_text(&c.cell(rec, row), &mut self.field);
            Self::push_field(&mut self.line, &self.field);
        }
        self.line.push_str("\r\n");
        self.buf.extend_from_slice(self.line.as_bytes());
        if self.buf.len() >= 1 << 16 {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        self.header();
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.flush()
    }
}

/// sysprint's `str` table: a `Rec #` column, then each column at its width scaled to the
/// terminal (sysprint's factor, at most 1.25); a longer value keeps its end, after `..`.
pub struct Table<W: Write> {
    out: W,
    cols: Vec<Column>,
    widths: Vec<usize>,
    buf: String,
    field: String,
    header_done: bool,
}

impl<W: Write> Table<W> {
    pub fn new(out: W, cols: Vec<Column>, term_width: usize) -> Self {
        let total: usize = cols.iter().map(|c| c.width).sum::<usize>().max(1);
        let pad = cols.len() * 6 + 10;
        let factor = ((term_width.saturating_sub(pad)) as f64 / total as f64).min(1.25);
        let mut widths = vec![6usize];
        for c in &cols {
            let scaled = (factor * c.width as f64) as usize;
            widths.push(if scaled > 8 { scaled } else { c.width }.max(2));
        }
        Table {
            out,
            cols,
            widths,
            buf: String::new(),
            field: String::new(),
            header_done: false,
        }
    }

    fn push_cell(buf: &mut String, text: &str, w: usize) {
        let chars = text.chars().count();
        buf.push_str("| ");
        if chars > w {
            let keep = w.saturating_sub(2);
            buf.push_str("..");
            buf.extend(text.chars().skip(chars - keep));
        } else {
            buf.push_str(text);
            buf.extend(std::iter::repeat_n(' ', w - chars));
        }
        buf.push(' ');
    }

    fn header(&mut self) {
        if self.header_done {
            return;
        }
        self.header_done = true;
        Self::push_cell(&mut self.buf, "Rec #", self.widths[0]);
        for (c, w) in self.cols.iter().zip(&self.widths[1..]) {
            Self::push_cell(&mut self.buf, &c.header, *w);
        }
        self.buf.push_str("|\n");
        for w in &self.widths {
            self.buf.push('|');
            self.buf.extend(std::iter::repeat_n('-', w + 2));
        }
        self.buf.push_str("|\n");
    }
}

impl<W: Write> Sink for Table<W> {
    fn record(&mut self, rec: &Record, row: &Row) -> io::Result<()> {
        self.header();
        Self::push_cell(
            &mut self.buf,
            itoa::Buffer::new().format(row.idx),
            self.widths[0],
        );
        for (c, w) in self.cols.iter().zip(&self.widths[1..]) {
            self.field.clear();
            cell_text(&c.cell(rec, row), &mut self.field);
            // One line per record: line breaks inside a value are shown escaped.
            let text = self.field.replace('\n', "\\n");
            Self::push_cell(&mut self.buf, &text, *w);
        }
        self.buf.push_str("|\n");
        if self.buf.len() >= 1 << 16 {
            self.out.write_all(self.buf.as_bytes())?;
            self.buf.clear();
        }
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        self.header();
        self.out.write_all(self.buf.as_bytes())?;
        self.buf.clear();
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_as_rfc_4180() {
        let mut line = String::new();
        Csv::<Vec<u8>>::push_field(&mut line, "a,\"b\"\nc");
        assert_eq!(line, "\"a,\"\"b\"\"\nc\"");
        line.clear();
        Csv::<Vec<u8>>::push_field(&mut line, "plain");
        assert_eq!(line, "plain");
    }

    #[test]
    fn dotted_keys_nest() {
        let mut m = serde_json::Map::new();
        insert_dotted(&mut m, "proc.exe", "x".into());
        insert_dotted(&mut m, "proc.pid", 3.into());
        insert_dotted(&mut m, "ts_uts", 1.into());
        assert_eq!(
            serde_json::Value::Object(m).to_string(),
            r#"{"proc":{"exe":"x","pid":3},"ts_uts":1}"#
        );
    }

    #[test]
    fn table_cells_keep_the_end_of_long_values() {
        let mut b = String::new();
        Table::<Vec<u8>>::push_cell(&mut b, "/usr/local/bin/python", 10);
        assert_eq!(b, "| ..n/python ");
        b.clear();
        Table::<Vec<u8>>::push_cell(&mut b, "ab", 4);
        assert_eq!(b, "| ab   ");
    }
}
