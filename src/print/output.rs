//! sfprint's record formats: `str` (an aligned table), `json` (the exporter's layout, or the
//! selected columns nested by their dots as sysprint does), `flatjson` (the columns as flat
//! keys) and `csv` (RFC 4180). Each is a [`Sink`] fed one record at a time, so output starts
//! at once and memory does not grow with the trace.

use super::columns::{Cell, Column, Ctx, Row};
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

/// Formats records into bytes. Formatting is per record, so batches can be formatted on
/// several threads and written in order ([`super::parallel`]); each thread gets its own
/// formatter from [`RecordFormat::fresh`].
pub trait RecordFormat: Send {
    /// Appends `rec` (the `row.idx`-th record printed) to `out`.
    fn record(&mut self, rec: &Record, row: &Row, out: &mut Vec<u8>);
    /// A formatter with the same settings (and empty caches) for another thread.
    fn fresh(&self) -> Box<dyn RecordFormat>;
    /// Bytes before the first record (a CSV header, a table header, `[`).
    fn start(&self, out: &mut Vec<u8>);
    /// Bytes after the last record; `any`: whether there was one.
    fn end(&self, any: bool, out: &mut Vec<u8>);
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
        Cell::Text(t) if t.plain() => {
            out.push(b'"');
            t.write(out);
            out.push(b'"');
        }
        Cell::Text(t) => {
            let mut v = Vec::new();
            t.write(&mut v);
            write_str(out, &String::from_utf8_lossy(&v));
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
        Cell::Text(t) => {
            let mut v = Vec::new();
            t.write(&mut v);
            V::String(String::from_utf8_lossy(&v).into_owned())
        }
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
        Cell::Text(t) => {
            let mut v = Vec::new();
            t.write(&mut v);
            out.push_str(&String::from_utf8_lossy(&v));
        }
    }
}

/// Whether a field holds `,`, `"`, CR or LF. Short fields (most of them) are scanned in
/// place; longer ones (command lines, environments) with `memchr`'s vector search, which
/// the plain loop does not compile to.
fn needs_quotes(s: &[u8]) -> bool {
    if s.len() < 16 {
        return s.iter().any(|&b| matches!(b, b',' | b'"' | b'\r' | b'\n'));
    }
    memchr::memchr3(b',', b'"', b'\n', s).is_some() || memchr::memchr(b'\r', s).is_some()
}

/// Appends `s`; short slices byte by byte (cheaper than a `memcpy` call, and most CSV
/// fields are short or empty).
#[inline]
fn put(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() < 16 {
        for &b in s {
            out.push(b);
        }
    } else {
        out.extend_from_slice(s);
    }
}

/// Appends `s` as one CSV field (quoted when RFC 4180 needs it).
fn csv_str(out: &mut Vec<u8>, s: &[u8]) {
    if s.is_empty() {
        return;
    }
    if needs_quotes(s) {
        out.push(b'"');
        let mut rest = s;
        while let Some(i) = memchr::memchr(b'"', rest) {
            out.extend_from_slice(&rest[..=i]);
            out.push(b'"');
            rest = &rest[i + 1..];
        }
        out.extend_from_slice(rest);
        out.push(b'"');
    } else {
        put(out, s);
    }
}

/// Appends a cell as one CSV field: as in the table (see [`cell_text`]), written in place.
/// Takes the cell by value so each arm drops only what its variant owns (an out-of-line
/// drop of every cell cost several per cent of a CSV run).
#[inline]
fn csv_cell(out: &mut Vec<u8>, cell: Cell<'_>, scratch: &mut Vec<u8>) {
    match cell {
        Cell::Null => {}
        Cell::Str(s) => csv_str(out, s.as_bytes()),
        Cell::Int(i) => put(out, itoa::Buffer::new().format(i).as_bytes()),
        Cell::Bool(b) => put(out, if b { b"True" } else { b"False" }),
        Cell::Text(t) if t.plain() => t.write(out),
        Cell::Text(t) => {
            scratch.clear();
            t.write(scratch);
            csv_str(out, scratch);
        }
        cell @ (Cell::List(_) | Cell::Json(_)) => {
            scratch.clear();
            write_cell_json(scratch, &cell);
            csv_str(out, scratch);
        }
    }
}

/// JSON lines to a stream, or one JSON array when writing a file (`-w`), as sysprint does.
#[derive(Debug, Clone, Copy)]
struct JsonFraming {
    array: bool,
}

impl JsonFraming {
    fn before(&self, row: &Row, out: &mut Vec<u8>) {
        if self.array && row.idx > 0 {
            out.push(b',');
        }
    }
    fn after(&self, out: &mut Vec<u8>) {
        if !self.array {
            out.push(b'\n');
        }
    }
    fn start(&self, out: &mut Vec<u8>) {
        if self.array {
            out.push(b'[');
        }
    }
    fn end(&self, out: &mut Vec<u8>) {
        if self.array {
            out.extend_from_slice(b"]\n");
        }
    }
}

/// Records in the exporter's JSON layout (`-o json` without `-c`).
pub struct ExporterJson {
    enc: JsonEncoder,
    framing: JsonFraming,
}

impl ExporterJson {
    pub fn new(array: bool) -> Self {
        ExporterJson {
            enc: JsonEncoder::new(),
            framing: JsonFraming { array },
        }
    }
}

impl RecordFormat for ExporterJson {
    fn record(&mut self, rec: &Record, row: &Row, out: &mut Vec<u8>) {
        self.framing.before(row, out);
        self.enc.encode(rec, out);
        self.framing.after(out);
    }
    fn fresh(&self) -> Box<dyn RecordFormat> {
        Box::new(ExporterJson::new(self.framing.array))
    }
    fn start(&self, out: &mut Vec<u8>) {
        self.framing.start(out);
    }
    fn end(&self, _any: bool, out: &mut Vec<u8>) {
        self.framing.end(out);
    }
}

/// The selected columns as one JSON object per record: flat keys (`flatjson`), or nested by
/// the dots in their names (`json -c`: `proc.exe` becomes `{"proc": {"exe": ...}}`).
#[derive(Clone)]
pub struct ColumnsJson {
    cols: Vec<Column>,
    nested: bool,
    framing: JsonFraming,
}

impl ColumnsJson {
    pub fn new(cols: Vec<Column>, nested: bool, array: bool) -> Self {
        ColumnsJson {
            cols,
            nested,
            framing: JsonFraming { array },
        }
    }
}

impl RecordFormat for ColumnsJson {
    fn record(&mut self, rec: &Record, row: &Row, out: &mut Vec<u8>) {
        self.framing.before(row, out);
        let x = Ctx::new(rec);
        if self.nested {
            let mut root = serde_json::Map::new();
            for c in &self.cols {
                insert_dotted(&mut root, &c.name, cell_value(&c.cell_in(&x, row)));
            }
            // A Map always serialises.
            let _ = serde_json::to_writer(&mut *out, &root);
        } else {
            out.push(b'{');
            for (i, c) in self.cols.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, &c.name);
                out.push(b':');
                write_cell_json(out, &c.cell_in(&x, row));
            }
            out.push(b'}');
        }
        self.framing.after(out);
    }
    fn fresh(&self) -> Box<dyn RecordFormat> {
        Box::new(self.clone())
    }
    fn start(&self, out: &mut Vec<u8>) {
        self.framing.start(out);
    }
    fn end(&self, _any: bool, out: &mut Vec<u8>) {
        self.framing.end(out);
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
#[derive(Clone)]
pub struct Csv {
    cols: Vec<Column>,
    scratch: Vec<u8>,
}

impl Csv {
    pub fn new(cols: Vec<Column>) -> Self {
        Csv {
            cols,
            scratch: Vec::new(),
        }
    }
}

impl RecordFormat for Csv {
    fn record(&mut self, rec: &Record, row: &Row, out: &mut Vec<u8>) {
        let x = Ctx::new(rec);
        out.reserve(4096);
        for (i, c) in self.cols.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            csv_cell(out, c.cell_in(&x, row), &mut self.scratch);
        }
        out.extend_from_slice(b"\r\n");
    }
    fn fresh(&self) -> Box<dyn RecordFormat> {
        Box::new(self.clone())
    }
    fn start(&self, out: &mut Vec<u8>) {
        for (i, c) in self.cols.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            csv_str(out, c.name.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    fn end(&self, _any: bool, _out: &mut Vec<u8>) {}
}

/// sysprint's `str` table: a `Rec #` column, then each column at its width scaled to the
/// terminal (sysprint's factor, at most 1.25); a longer value keeps its end, after `..`.
#[derive(Clone)]
pub struct Table {
    cols: Vec<Column>,
    widths: Vec<usize>,
    field: String,
}

impl Table {
    pub fn new(cols: Vec<Column>, term_width: usize) -> Self {
        let total: usize = cols.iter().map(|c| c.width).sum::<usize>().max(1);
        let pad = cols.len() * 6 + 10;
        let factor = ((term_width.saturating_sub(pad)) as f64 / total as f64).min(1.25);
        let mut widths = vec![6usize];
        for c in &cols {
            let scaled = (factor * c.width as f64) as usize;
            widths.push(if scaled > 8 { scaled } else { c.width }.max(2));
        }
        Table {
            cols,
            widths,
            field: String::new(),
        }
    }

    fn push_cell(buf: &mut Vec<u8>, text: &str, w: usize) {
        let chars = text.chars().count();
        buf.extend_from_slice(b"| ");
        if chars > w {
            let keep = w.saturating_sub(2);
            buf.extend_from_slice(b"..");
            let from = text
                .char_indices()
                .nth(chars - keep)
                .map_or(text.len(), |(i, _)| i);
            buf.extend_from_slice(&text.as_bytes()[from..]);
        } else {
            buf.extend_from_slice(text.as_bytes());
            buf.extend(std::iter::repeat_n(b' ', w - chars));
        }
        buf.push(b' ');
    }
}

impl RecordFormat for Table {
    fn record(&mut self, rec: &Record, row: &Row, out: &mut Vec<u8>) {
        Self::push_cell(out, itoa::Buffer::new().format(row.idx), self.widths[0]);
        let x = Ctx::new(rec);
        for (c, w) in self.cols.iter().zip(&self.widths[1..]) {
            self.field.clear();
            cell_text(&c.cell_in(&x, row), &mut self.field);
            // One line per record: line breaks inside a value are shown escaped.
            let text = self.field.replace('\n', "\\n");
            Self::push_cell(out, &text, *w);
        }
        out.extend_from_slice(b"|\n");
    }
    fn fresh(&self) -> Box<dyn RecordFormat> {
        Box::new(self.clone())
    }
    fn start(&self, out: &mut Vec<u8>) {
        Self::push_cell(out, "Rec #", self.widths[0]);
        for (c, w) in self.cols.iter().zip(&self.widths[1..]) {
            Self::push_cell(out, &c.header, *w);
        }
        out.extend_from_slice(b"|\n");
        for w in &self.widths {
            out.push(b'|');
            out.extend(std::iter::repeat_n(b'-', w + 2));
        }
        out.extend_from_slice(b"|\n");
    }
    fn end(&self, _any: bool, _out: &mut Vec<u8>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_as_rfc_4180() {
        let mut line = Vec::new();
        csv_str(&mut line, b"a,\"b\"\nc");
        assert_eq!(line, b"\"a,\"\"b\"\"\nc\"");
        line.clear();
        csv_str(&mut line, b"plain");
        assert_eq!(line, b"plain");
        for s in [
            "0123456789abcdef,x",
            "0123456789\"",
            "abcdefgh\r",
            "abc\ndefghijkl",
        ] {
            assert!(needs_quotes(s.as_bytes()), "{s:?}");
        }
        assert!(!needs_quotes(
            b"/usr/local/lib/python2.7/dist-packages/x.py"
        ));
        // Long fields (the vector search) with a CR only, and quotes at both ends.
        assert!(needs_quotes(b"/usr/local/lib/python2.7/dist\r"));
        line.clear();
        csv_str(&mut line, b"\"python -c 'print(1)' --long-argument\"");
        assert_eq!(line, b"\"\"\"python -c 'print(1)' --long-argument\"\"\"");
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
        let mut b = Vec::new();
        Table::push_cell(&mut b, "/usr/local/bin/python", 10);
        assert_eq!(b, b"| ..n/python ");
        b.clear();
        Table::push_cell(&mut b, "ab", 4);
        assert_eq!(b, b"| ab   ");
    }
}
