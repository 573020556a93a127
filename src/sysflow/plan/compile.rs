//! Compiling a writer schema into a [`DatumPlan`]: names resolved, fields matched by name
//! against the v5 field tables, conversions and skips chosen once.

use std::collections::HashMap;

use apache_avro::schema::{Name, RecordSchema, Schema};

use super::*;
use crate::sysflow::SchemaError;

const SKIP_SLOT: u8 = u8::MAX;

// Field tables of the v5 reader model: (name, type); the slot is the index.
const HEADER_FIELDS: &[(&str, Ty)] = &[
    ("version", Ty::Long),
    ("exporter", Ty::Str),
    ("ip", Ty::Str),
    ("filename", Ty::Str),
];
const CONTAINER_FIELDS: &[(&str, Ty)] = &[
    ("id", Ty::Str),
    ("name", Ty::Str),
    ("image", Ty::Str),
    ("imageid", Ty::Str),
    ("type", Ty::Enum(&CONTAINER_TYPES)),
    ("privileged", Ty::Bool),
    ("podId", Ty::OptStr),
];
const PROCESS_FIELDS: &[(&str, Ty)] = &[
    ("state", Ty::Enum(&OBJECT_STATES)),
    ("oid", Ty::Oid),
    ("poid", Ty::OptOid),
    ("ts", Ty::Long),
    ("exe", Ty::Str),
    ("exeArgs", Ty::Str),
    ("uid", Ty::Int),
    ("userName", Ty::Str),
    ("gid", Ty::Int),
    ("groupName", Ty::Str),
    ("tty", Ty::Bool),
    ("containerId", Ty::OptStr),
    ("entry", Ty::Bool),
    ("cwd", Ty::Str),
    ("env", Ty::StrArray),
];
const FILE_FIELDS: &[(&str, Ty)] = &[
    ("state", Ty::Enum(&OBJECT_STATES)),
    ("oid", Ty::Foid),
    ("ts", Ty::Long),
    ("restype", Ty::Int),
    ("path", Ty::Str),
    ("containerId", Ty::OptStr),
];
const PE_FIELDS: &[(&str, Ty)] = &[
    ("procOID", Ty::Oid),
    ("ts", Ty::Long),
    ("tid", Ty::Long),
    ("opFlags", Ty::Int),
    ("args", Ty::StrArray),
    ("ret", Ty::Int),
];
const NF_FIELDS: &[(&str, Ty)] = &[
    ("procOID", Ty::Oid),
    ("ts", Ty::Long),
    ("tid", Ty::Long),
    ("opFlags", Ty::Int),
    ("endTs", Ty::Long),
    ("sip", Ty::Int),
    ("sport", Ty::Int),
    ("dip", Ty::Int),
    ("dport", Ty::Int),
    ("proto", Ty::Int),
    ("fd", Ty::Int),
    ("numRRecvOps", Ty::Long),
    ("numWSendOps", Ty::Long),
    ("numRRecvBytes", Ty::Long),
    ("numWSendBytes", Ty::Long),
];
const FF_FIELDS: &[(&str, Ty)] = &[
    ("procOID", Ty::Oid),
    ("ts", Ty::Long),
    ("tid", Ty::Long),
    ("opFlags", Ty::Int),
    ("openFlags", Ty::Int),
    ("endTs", Ty::Long),
    ("fileOID", Ty::Foid),
    ("fd", Ty::Int),
    ("numRRecvOps", Ty::Long),
    ("numWSendOps", Ty::Long),
    ("numRRecvBytes", Ty::Long),
    ("numWSendBytes", Ty::Long),
];
const FE_FIELDS: &[(&str, Ty)] = &[
    ("procOID", Ty::Oid),
    ("ts", Ty::Long),
    ("tid", Ty::Long),
    ("opFlags", Ty::Int),
    ("fileOID", Ty::Foid),
    ("ret", Ty::Int),
    ("newFileOID", Ty::OptFoid),
];
const NE_FIELDS: &[(&str, Ty)] = &[
    ("procOID", Ty::Oid),
    ("ts", Ty::Long),
    ("tid", Ty::Long),
    ("opFlags", Ty::Int),
    ("sip", Ty::Int),
    ("sport", Ty::Int),
    ("dip", Ty::Int),
    ("dport", Ty::Int),
    ("proto", Ty::Int),
    ("ret", Ty::Int),
];
const PF_FIELDS: &[(&str, Ty)] = &[
    ("procOID", Ty::Oid),
    ("ts", Ty::Long),
    ("numThreadsCloned", Ty::Long),
    ("opFlags", Ty::Int),
    ("endTs", Ty::Long),
    ("numThreadsExited", Ty::Long),
    ("numCloneErrors", Ty::Long),
];
const POD_FIELDS: &[(&str, Ty)] = &[
    ("ts", Ty::Long),
    ("id", Ty::Str),
    ("name", Ty::Str),
    ("nodeName", Ty::Str),
    ("hostIP", Ty::LongArray),
    ("internalIP", Ty::LongArray),
    ("namespace", Ty::Str),
    ("restartCount", Ty::Long),
    ("labels", Ty::StrMap),
    ("selectors", Ty::StrMap),
    ("services", Ty::Services),
];
const KE_FIELDS: &[(&str, Ty)] = &[
    ("kind", Ty::Enum(&K8S_COMPONENTS)),
    ("action", Ty::Enum(&K8S_ACTIONS)),
    ("ts", Ty::Long),
    ("message", Ty::Str),
];
const SERVICE_FIELDS: &[(&str, Ty)] = &[
    ("name", Ty::Str),
    ("id", Ty::Str),
    ("namespace", Ty::Str),
    ("portList", Ty::Ports),
    ("clusterIP", Ty::LongArray),
];
const PORT_FIELDS: &[(&str, Ty)] = &[
    ("port", Ty::Int),
    ("targetPort", Ty::Int),
    ("nodePort", Ty::Int),
    ("proto", Ty::Str),
];

fn fields_of(kind: Kind) -> &'static [(&'static str, Ty)] {
    match kind {
        Kind::Header => HEADER_FIELDS,
        Kind::Container => CONTAINER_FIELDS,
        Kind::Process => PROCESS_FIELDS,
        Kind::File => FILE_FIELDS,
        Kind::ProcessEvent => PE_FIELDS,
        Kind::NetworkFlow => NF_FIELDS,
        Kind::FileFlow => FF_FIELDS,
        Kind::FileEvent => FE_FIELDS,
        Kind::NetworkEvent => NE_FIELDS,
        Kind::ProcessFlow => PF_FIELDS,
        Kind::Pod => POD_FIELDS,
        Kind::K8sEvent => KE_FIELDS,
    }
}
struct Compiler<'s> {
    names: HashMap<String, &'s Schema>,
}

fn fullname(n: &Name) -> String {
    n.fullname(None)
}

fn collect_names<'s>(s: &'s Schema, out: &mut HashMap<String, &'s Schema>) {
    match s {
        Schema::Record(r) => {
            out.insert(fullname(&r.name), s);
            for f in &r.fields {
                collect_names(&f.schema, out);
            }
        }
        Schema::Enum(e) => {
            out.insert(fullname(&e.name), s);
        }
        Schema::Fixed(f) => {
            out.insert(fullname(&f.name), s);
        }
        Schema::Array(a) => collect_names(&a.items, out),
        Schema::Map(m) => collect_names(&m.types, out),
        Schema::Union(u) => {
            for v in u.variants() {
                collect_names(v, out);
            }
        }
        _ => {}
    }
}

/// The v5 kind of a writer record by its short name (`FileFlow`, ...).
pub fn kind_by_record_name(short: &str) -> Option<Kind> {
    Some(match short {
        "SFHeader" => Kind::Header,
        "Container" => Kind::Container,
        "Process" => Kind::Process,
        "File" => Kind::File,
        "ProcessEvent" => Kind::ProcessEvent,
        "NetworkFlow" => Kind::NetworkFlow,
        "FileFlow" => Kind::FileFlow,
        "FileEvent" => Kind::FileEvent,
        "NetworkEvent" => Kind::NetworkEvent,
        "ProcessFlow" => Kind::ProcessFlow,
        "Pod" => Kind::Pod,
        "K8sEvent" => Kind::K8sEvent,
        _ => return None,
    })
}

/// Op flag bits of the legacy `EventType` enum (CLONE, EXEC, EXIT).
const LEGACY_EVENT_TYPE_FLAGS: [(&str, i32); 3] = [("CLONE", 1), ("EXEC", 2), ("EXIT", 4)];

impl<'s> Compiler<'s> {
    fn deref(&self, s: &'s Schema) -> Result<&'s Schema, SchemaError> {
        match s {
            Schema::Ref { name } => {
                let n = fullname(name);
                self.names
                    .get(&n)
                    .copied()
                    .ok_or_else(|| SchemaError::new(format!("unresolved type reference `{n}`")))
            }
            other => Ok(other),
        }
    }

    fn skip(&self, s: &'s Schema) -> Result<Skip, SchemaError> {
        let s = self.deref(s)?;
        Ok(match s {
            Schema::Null => Skip::Null,
            Schema::Boolean => Skip::Bool,
            Schema::Int
            | Schema::Long
            | Schema::Enum(_)
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Skip::Varint,
            Schema::Float => Skip::Float,
            Schema::Double => Skip::Double,
            Schema::Bytes | Schema::String | Schema::Uuid | Schema::BigDecimal => Skip::Bytes,
            Schema::Fixed(f) => Skip::Fixed(f.size),
            Schema::Duration => Skip::Fixed(12),
            Schema::Decimal(d) => self.skip(&d.inner)?,
            Schema::Array(a) => Skip::Array(Box::new(self.skip(&a.items)?)),
            Schema::Map(m) => Skip::Map(Box::new(self.skip(&m.types)?)),
            Schema::Union(u) => Skip::Union(
                u.variants()
                    .iter()
                    .map(|v| self.skip(v))
                    .collect::<Result<_, _>>()?,
            ),
            Schema::Record(r) => Skip::Record(
                r.fields
                    .iter()
                    .map(|f| self.skip(&f.schema))
                    .collect::<Result<_, _>>()?,
            ),
            Schema::Ref { .. } => {
                return Err(SchemaError::new("nested type reference".to_string()));
            }
        })
    }

    fn is_long_like(s: &Schema) -> bool {
        matches!(
            s,
            Schema::Int
                | Schema::Long
                | Schema::TimestampMillis
                | Schema::TimestampMicros
                | Schema::TimestampNanos
                | Schema::LocalTimestampMillis
                | Schema::LocalTimestampMicros
                | Schema::LocalTimestampNanos
                | Schema::Date
                | Schema::TimeMillis
                | Schema::TimeMicros
        )
    }

    /// Compiles the conversion of writer schema `w` into target type `ty`.
    fn conv(&self, w: &'s Schema, ty: Ty, at: &str) -> Result<Conv, SchemaError> {
        let w = self.deref(w)?;
        let mismatch = || {
            SchemaError::new(format!(
                "field `{at}`: writer type {w:?} cannot be read as {ty:?}"
            ))
        };
        match ty {
            Ty::Long => {
                if Self::is_long_like(w) {
                    Ok(Conv::Long)
                } else {
                    Err(mismatch())
                }
            }
            Ty::Int => {
                if matches!(w, Schema::Int) {
                    Ok(Conv::Long)
                } else {
                    Err(mismatch())
                }
            }
            Ty::Bool => match w {
                Schema::Boolean => Ok(Conv::Bool),
                _ => Err(mismatch()),
            },
            Ty::Str => match w {
                Schema::String | Schema::Bytes | Schema::Uuid => Ok(Conv::Str),
                _ => Err(mismatch()),
            },
            Ty::Enum(symbols) => match w {
                Schema::Enum(e) => Ok(Conv::Enum(
                    e.symbols
                        .iter()
                        .map(|s| symbols.iter().position(|t| t == s).map(|i| i as i32))
                        .collect(),
                )),
                Schema::Int | Schema::Long => Ok(Conv::Long),
                _ => Err(mismatch()),
            },
            Ty::Oid => match w {
                Schema::Record(r) => self.oid(r, at),
                _ => Err(mismatch()),
            },
            Ty::Foid => match w {
                Schema::Fixed(f) if f.size == 20 => Ok(Conv::Fixed(20)),
                _ => Err(mismatch()),
            },
            Ty::OptStr | Ty::OptOid | Ty::OptFoid => {
                let inner = match ty {
                    Ty::OptStr => Ty::Str,
                    Ty::OptOid => Ty::Oid,
                    _ => Ty::Foid,
                };
                match w {
                    Schema::Union(u) => Ok(Conv::Opt(
                        u.variants()
                            .iter()
                            .map(|v| match self.deref(v)? {
                                Schema::Null => Ok(None),
                                other => self.conv(other, inner, at).map(Some),
                            })
                            .collect::<Result<_, _>>()?,
                    )),
                    Schema::Null => Ok(Conv::Opt(vec![None])),
                    // A plain (non-union) writer value is read as always present.
                    other => self.conv(other, inner, at),
                }
            }
            Ty::StrArray | Ty::LongArray | Ty::Services | Ty::Ports => match w {
                Schema::Array(a) => {
                    let item = match ty {
                        Ty::StrArray => self.conv(&a.items, Ty::Str, at)?,
                        Ty::LongArray => self.conv(&a.items, Ty::Long, at)?,
                        Ty::Services => self.nested(&a.items, Nested::Service, at)?,
                        _ => self.nested(&a.items, Nested::Port, at)?,
                    };
                    Ok(Conv::Array(Box::new(item)))
                }
                _ => Err(mismatch()),
            },
            Ty::StrMap => match w {
                Schema::Map(m) if matches!(self.deref(&m.types)?, Schema::String) => {
                    Ok(Conv::StrMap)
                }
                _ => Err(mismatch()),
            },
        }
    }

    fn oid(&self, r: &'s RecordSchema, at: &str) -> Result<Conv, SchemaError> {
        let mut fields = Vec::with_capacity(r.fields.len());
        for f in &r.fields {
            let d = self.deref(&f.schema)?;
            let slot = match f.name.as_str() {
                "createTS" => 0,
                "hpid" => 1,
                _ => {
                    fields.push(Err(self.skip(&f.schema)?));
                    continue;
                }
            };
            if !Self::is_long_like(d) {
                return Err(SchemaError::new(format!(
                    "field `{at}.{}` must be a long",
                    f.name
                )));
            }
            fields.push(Ok(slot));
        }
        Ok(Conv::Oid(fields))
    }

    fn nested(&self, w: &'s Schema, nested: Nested, at: &str) -> Result<Conv, SchemaError> {
        let Schema::Record(r) = self.deref(w)? else {
            return Err(SchemaError::new(format!("field `{at}`: expected a record")));
        };
        let table = match nested {
            Nested::Service => SERVICE_FIELDS,
            Nested::Port => PORT_FIELDS,
        };
        let steps = self.steps(r, table, &|_| None)?;
        Ok(Conv::Record(Box::new(RecordPlan { nested, steps })))
    }

    /// Compiles the field steps of writer record `r` against `table`. `special` may map a
    /// writer field to a (slot, conversion) of its own (legacy renames).
    fn steps(
        &self,
        r: &'s RecordSchema,
        table: &[(&str, Ty)],
        special: &dyn Fn(&str) -> Option<(u8, Conv)>,
    ) -> Result<Vec<Step>, SchemaError> {
        let rec = r.name.name.as_str();
        let mut steps = Vec::with_capacity(r.fields.len());
        for f in &r.fields {
            if let Some((slot, conv)) = special(&f.name) {
                steps.push(Step { slot, conv });
                continue;
            }
            match table.iter().position(|(n, _)| *n == f.name) {
                Some(slot) => {
                    let at = format!("{rec}.{}", f.name);
                    let conv = self.conv(&f.schema, table[slot].1, &at)?;
                    steps.push(Step {
                        slot: slot as u8,
                        conv,
                    });
                }
                None => steps.push(Step {
                    slot: SKIP_SLOT,
                    conv: Conv::Skip(self.skip(&f.schema)?),
                }),
            }
        }
        Ok(steps)
    }

    fn branch(&self, v: &'s Schema) -> Result<(Branch, String), SchemaError> {
        let v = self.deref(v)?;
        let Schema::Record(r) = v else {
            return Ok((Branch::Other(self.skip(v)?), format!("{v:?}")));
        };
        let name = fullname(&r.name);
        let short = r.name.name.as_str();
        let Some(mut kind) = kind_by_record_name(short) else {
            return Ok((
                Branch::Unknown {
                    name: name.clone(),
                    skip: self.skip(v)?,
                },
                name,
            ));
        };
        let has = |f: &str| r.lookup.contains_key(f);
        // Legacy pre-v1 files call the process event `ProcessFlow`.
        if kind == Kind::ProcessFlow && (has("args") || has("ret") || has("tid")) {
            kind = Kind::ProcessEvent;
        }
        let table = fields_of(kind);
        let steps = match kind {
            Kind::Process => self.steps(r, table, &|f| {
                (f == "type" && !has("state")).then(|| {
                    // legacy ActionType<CREATED,MODIFIED,REUP> is the object state
                    let e =
                        r.fields.iter().find(|x| x.name == "type").map(|x| {
                            self.conv(&x.schema, Ty::Enum(&OBJECT_STATES), "Process.type")
                        });
                    (0u8, e.and_then(|r| r.ok()).unwrap_or(Conv::Long))
                })
            })?,
            Kind::ProcessEvent => self.steps(r, table, &|f| {
                if f != "type" || has("opFlags") {
                    return None;
                }
                let field = r.fields.iter().find(|x| x.name == "type")?;
                let Ok(Schema::Enum(e)) = self.deref(&field.schema) else {
                    return None;
                };
                let map = e
                    .symbols
                    .iter()
                    .map(|s| {
                        LEGACY_EVENT_TYPE_FLAGS
                            .iter()
                            .find(|(n, _)| n == s)
                            .map(|(_, bit)| *bit)
                    })
                    .collect();
                Some((3u8, Conv::Enum(map)))
            })?,
            _ => self.steps(r, table, &|_| None)?,
        };
        Ok((Branch::Known { kind, steps }, name))
    }
}

impl DatumPlan {
    /// Compiles a writer schema (JSON text, as embedded in a trace) against the v5 model.
    pub fn compile(schema_json: &str) -> Result<DatumPlan, SchemaError> {
        // The schema comes from the input (a trace's header). apache-avro 0.21 panics on some
        // invalid names (`Name::parse` unwraps), so names are checked first, and a panic left
        // anywhere in its parser is turned into an error rather than taking the reader down.
        let json: serde_json::Value = serde_json::from_str(schema_json)
            .map_err(|e| SchemaError::new(format!("invalid Avro schema: not JSON ({e})")))?;
        check_names(&json, 0)?;
        let parsed = std::panic::catch_unwind(|| Schema::parse_str(schema_json));
        let schema = match parsed {
            Ok(r) => r.map_err(|e| SchemaError::new(format!("invalid Avro schema: {e}")))?,
            Err(_) => {
                return Err(SchemaError::new(
                    "invalid Avro schema: the schema parser failed on it".into(),
                ))
            }
        };
        Self::compile_schema(&schema)
    }

    pub fn compile_schema(schema: &Schema) -> Result<DatumPlan, SchemaError> {
        let mut names = HashMap::new();
        collect_names(schema, &mut names);
        let c = Compiler { names };
        let mut branch_names = Vec::new();
        let compile_union = |u: &apache_avro::schema::UnionSchema,
                             names_out: &mut Vec<String>|
         -> Result<Vec<Branch>, SchemaError> {
            let mut out = Vec::new();
            for v in u.variants() {
                let (b, n) = c.branch(v)?;
                names_out.push(n);
                out.push(b);
            }
            Ok(out)
        };
        let top = match c.deref(schema)? {
            Schema::Record(r) => {
                let mut top = Vec::new();
                let mut found = false;
                for f in &r.fields {
                    let fs = c.deref(&f.schema)?;
                    if let (false, Schema::Union(u)) = (found, fs) {
                        found = true;
                        top.push(TopField::Rec(compile_union(u, &mut branch_names)?));
                    } else {
                        top.push(TopField::Skip(c.skip(&f.schema)?));
                    }
                }
                if !found {
                    return Err(SchemaError::new(format!(
                        "record `{}` has no union field of SysFlow records",
                        fullname(&r.name)
                    )));
                }
                top
            }
            Schema::Union(u) => vec![TopField::Rec(compile_union(u, &mut branch_names)?)],
            other => {
                return Err(SchemaError::new(format!(
                    "top-level schema must be the SysFlow record, found {other:?}"
                )))
            }
        };
        Ok(DatumPlan { top, branch_names })
    }

    /// Writer record names of the union branches.
    pub fn branch_names(&self) -> &[String] {
        &self.branch_names
    }
}

/// Every `name` in an Avro schema is a (dotted) identifier, and the nesting is bounded: what
/// the schema parser may assume about a schema that came from the input.
fn check_names(v: &serde_json::Value, depth: usize) -> Result<(), SchemaError> {
    if depth > 64 {
        return Err(SchemaError::new(
            "invalid Avro schema: nested more than 64 levels".into(),
        ));
    }
    let ident = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                let mut c = part.chars();
                c.next()
                    .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
                    && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            })
    };
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if k == "name" || k == "namespace" {
                    if let serde_json::Value::String(n) = x {
                        if !(ident(n) || (k == "namespace" && n.is_empty())) {
                            return Err(SchemaError::new(format!(
                                "invalid Avro schema: `{n}` is not a valid {k}"
                            )));
                        }
                    }
                }
                check_names(x, depth + 1)?;
            }
            Ok(())
        }
        serde_json::Value::Array(a) => a.iter().try_for_each(|x| check_names(x, depth + 1)),
        _ => Ok(()),
    }
}
