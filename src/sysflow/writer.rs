//! Writing SysFlow traces (object container files) and raw datums with apache-avro, in schema
//! v5 or v4. Used by the trace generator, the tests and the benchmarks.

use apache_avro::types::Value;
use apache_avro::{Codec as AvroCodec, Schema, Writer};

use super::model::*;

/// Writer schema versions the generator can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaVersion {
    V4,
    V5,
}

impl SchemaVersion {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "4" | "v4" => Some(SchemaVersion::V4),
            "5" | "v5" => Some(SchemaVersion::V5),
            _ => None,
        }
    }
    pub fn number(self) -> i64 {
        match self {
            SchemaVersion::V4 => 4,
            SchemaVersion::V5 => 5,
        }
    }
}

/// The SysFlow writer schema (JSON). v4 is v5 without `Process.cwd` and `Process.env`.
pub fn schema_json(v: SchemaVersion) -> String {
    let proc_extra = match v {
        SchemaVersion::V5 => {
            r#",{"name":"cwd","type":"string"},{"name":"env","type":{"type":"array","items":"string"}}"#
        }
        SchemaVersion::V4 => "",
    };
    let version = v.number();
    format!(
        r#"{{"type":"record","name":"SysFlow","namespace":"sysflow","fields":[{{"name":"rec","type":[
{{"type":"record","name":"SFHeader","namespace":"sysflow.entity","fields":[{{"name":"version","type":"long","default":{version}}},{{"name":"exporter","type":"string"}},{{"name":"ip","type":"string","default":"NA"}},{{"name":"filename","type":"string"}}]}},
{{"type":"record","name":"Container","namespace":"sysflow.entity","fields":[{{"name":"id","type":"string"}},{{"name":"name","type":"string"}},{{"name":"image","type":"string"}},{{"name":"imageid","type":"string"}},{{"name":"type","type":{{"type":"enum","name":"ContainerType","namespace":"sysflow.type","symbols":["CT_DOCKER","CT_LXC","CT_LIBVIRT_LXC","CT_MESOS","CT_RKT","CT_CUSTOM","CT_CRI","CT_CONTAINERD","CT_CRIO","CT_BPM"]}}}},{{"name":"privileged","type":"boolean"}},{{"name":"podId","type":["null","string"]}}]}},
{{"type":"record","name":"Process","namespace":"sysflow.entity","fields":[{{"name":"state","type":{{"type":"enum","name":"SFObjectState","namespace":"sysflow.type","symbols":["CREATED","MODIFIED","REUP"]}}}},{{"name":"oid","type":{{"type":"record","name":"OID","namespace":"sysflow.type","fields":[{{"name":"createTS","type":"long"}},{{"name":"hpid","type":"long"}}]}}}},{{"name":"poid","type":["null","sysflow.type.OID"]}},{{"name":"ts","type":"long"}},{{"name":"exe","type":"string"}},{{"name":"exeArgs","type":"string"}},{{"name":"uid","type":"int"}},{{"name":"userName","type":"string"}},{{"name":"gid","type":"int"}},{{"name":"groupName","type":"string"}},{{"name":"tty","type":"boolean"}},{{"name":"containerId","type":["null","string"]}},{{"name":"entry","type":"boolean","default":false}}{proc_extra}]}},
{{"type":"record","name":"File","namespace":"sysflow.entity","fields":[{{"name":"state","type":"sysflow.type.SFObjectState"}},{{"name":"oid","type":{{"type":"fixed","name":"FOID","namespace":"sysflow.type","size":20}}}},{{"name":"ts","type":"long"}},{{"name":"restype","type":"int"}},{{"name":"path","type":"string"}},{{"name":"containerId","type":["null","string"]}}]}},
{{"type":"record","name":"ProcessEvent","namespace":"sysflow.event","fields":[{{"name":"procOID","type":"sysflow.type.OID"}},{{"name":"ts","type":"long"}},{{"name":"tid","type":"long"}},{{"name":"opFlags","type":"int"}},{{"name":"args","type":{{"type":"array","items":"string"}}}},{{"name":"ret","type":"int"}}]}},
{{"type":"record","name":"NetworkFlow","namespace":"sysflow.flow","fields":[{{"name":"procOID","type":"sysflow.type.OID"}},{{"name":"ts","type":"long"}},{{"name":"tid","type":"long"}},{{"name":"opFlags","type":"int"}},{{"name":"endTs","type":"long"}},{{"name":"sip","type":"int"}},{{"name":"sport","type":"int"}},{{"name":"dip","type":"int"}},{{"name":"dport","type":"int"}},{{"name":"proto","type":"int"}},{{"name":"fd","type":"int"}},{{"name":"numRRecvOps","type":"long"}},{{"name":"numWSendOps","type":"long"}},{{"name":"numRRecvBytes","type":"long"}},{{"name":"numWSendBytes","type":"long"}}]}},
{{"type":"record","name":"FileFlow","namespace":"sysflow.flow","fields":[{{"name":"procOID","type":"sysflow.type.OID"}},{{"name":"ts","type":"long"}},{{"name":"tid","type":"long"}},{{"name":"opFlags","type":"int"}},{{"name":"openFlags","type":"int"}},{{"name":"endTs","type":"long"}},{{"name":"fileOID","type":"sysflow.type.FOID"}},{{"name":"fd","type":"int"}},{{"name":"numRRecvOps","type":"long"}},{{"name":"numWSendOps","type":"long"}},{{"name":"numRRecvBytes","type":"long"}},{{"name":"numWSendBytes","type":"long"}}]}},
{{"type":"record","name":"FileEvent","namespace":"sysflow.event","fields":[{{"name":"procOID","type":"sysflow.type.OID"}},{{"name":"ts","type":"long"}},{{"name":"tid","type":"long"}},{{"name":"opFlags","type":"int"}},{{"name":"fileOID","type":"sysflow.type.FOID"}},{{"name":"ret","type":"int"}},{{"name":"newFileOID","type":["null","sysflow.type.FOID"]}}]}},
{{"type":"record","name":"NetworkEvent","namespace":"sysflow.event","fields":[{{"name":"procOID","type":"sysflow.type.OID"}},{{"name":"ts","type":"long"}},{{"name":"tid","type":"long"}},{{"name":"opFlags","type":"int"}},{{"name":"sip","type":"int"}},{{"name":"sport","type":"int"}},{{"name":"dip","type":"int"}},{{"name":"dport","type":"int"}},{{"name":"proto","type":"int"}},{{"name":"ret","type":"int"}}]}},
{{"type":"record","name":"ProcessFlow","namespace":"sysflow.flow","fields":[{{"name":"procOID","type":"sysflow.type.OID"}},{{"name":"ts","type":"long"}},{{"name":"numThreadsCloned","type":"long"}},{{"name":"opFlags","type":"int"}},{{"name":"endTs","type":"long"}},{{"name":"numThreadsExited","type":"long"}},{{"name":"numCloneErrors","type":"long"}}]}},
{{"type":"record","name":"Pod","namespace":"sysflow.entity","fields":[{{"name":"ts","type":"long"}},{{"name":"id","type":"string"}},{{"name":"name","type":"string"}},{{"name":"nodeName","type":"string"}},{{"name":"hostIP","type":{{"type":"array","items":"long"}}}},{{"name":"internalIP","type":{{"type":"array","items":"long"}}}},{{"name":"namespace","type":"string"}},{{"name":"restartCount","type":"long"}},{{"name":"labels","type":{{"type":"map","values":"string"}}}},{{"name":"selectors","type":{{"type":"map","values":"string"}}}},{{"name":"services","type":{{"type":"array","items":{{"type":"record","name":"Service","fields":[{{"name":"name","type":"string"}},{{"name":"id","type":"string"}},{{"name":"namespace","type":"string"}},{{"name":"portList","type":{{"type":"array","items":{{"type":"record","name":"Port","fields":[{{"name":"port","type":"int"}},{{"name":"targetPort","type":"int"}},{{"name":"nodePort","type":"int"}},{{"name":"proto","type":"string"}}]}}}}}},{{"name":"clusterIP","type":{{"type":"array","items":"long"}}}}]}}}}}}]}},
{{"type":"record","name":"K8sEvent","namespace":"sysflow.event","fields":[{{"name":"kind","type":{{"type":"enum","name":"K8sComponent","namespace":"sysflow.type","symbols":["K8S_NODES","K8S_NAMESPACES","K8S_PODS","K8S_REPLICATIONCONTROLLERS","K8S_SERVICES","K8S_EVENTS","K8S_REPLICASETS","K8S_DAEMONSETS","K8S_DEPLOYMENTS","K8S_UNKNOWN"]}}}},{{"name":"action","type":{{"type":"enum","name":"K8sAction","namespace":"sysflow.type","symbols":["K8S_COMPONENT_ADDED","K8S_COMPONENT_MODIFIED","K8S_COMPONENT_DELETED","K8S_COMPONENT_ERROR","K8S_COMPONENT_NONEXISTENT","K8S_COMPONENT_UNKNOWN"]}}}},{{"name":"ts","type":"long"}},{{"name":"message","type":"string"}}]}}
]}}]}}"#
    )
}

/// Parses the writer schema of `v`.
pub fn schema(v: SchemaVersion) -> Result<Schema, apache_avro::Error> {
    Schema::parse_str(&schema_json(v))
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}
fn opt_s(v: &Option<String>) -> Value {
    match v {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(x) => Value::Union(1, Box::new(s(x))),
    }
}
fn oid(o: &Oid) -> Value {
    Value::Record(vec![
        ("createTS".into(), Value::Long(o.create_ts)),
        ("hpid".into(), Value::Long(o.hpid)),
    ])
}
fn enum_v(i: i32, symbols: &[&str]) -> Value {
    let i = (i.max(0) as usize).min(symbols.len() - 1);
    Value::Enum(i as u32, symbols[i].to_string())
}
fn str_array(v: &[String]) -> Value {
    Value::Array(v.iter().map(|x| s(x)).collect())
}
fn long_array(v: &[i64]) -> Value {
    Value::Array(v.iter().map(|x| Value::Long(*x)).collect())
}
fn str_map(v: &[(String, String)]) -> Value {
    Value::Map(v.iter().map(|(k, x)| (k.clone(), s(x))).collect())
}
fn rec(fields: Vec<(&str, Value)>) -> Value {
    Value::Record(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// Converts a record into the Avro value of the `SysFlow` union for schema `v`.
pub fn to_value(r: &SysFlow, v: SchemaVersion) -> Value {
    let (idx, inner) = match r {
        SysFlow::Header(h) => (
            0,
            rec(vec![
                ("version", Value::Long(h.version)),
                ("exporter", s(&h.exporter)),
                ("ip", s(&h.ip)),
                ("filename", s(&h.filename)),
            ]),
        ),
        SysFlow::Container(c) => (
            1,
            rec(vec![
                ("id", s(&c.id)),
                ("name", s(&c.name)),
                ("image", s(&c.image)),
                ("imageid", s(&c.imageid)),
                ("type", enum_v(c.ctype, &CONTAINER_TYPES)),
                ("privileged", Value::Boolean(c.privileged)),
                ("podId", opt_s(&c.pod_id)),
            ]),
        ),
        SysFlow::Process(p) => {
            let mut f = vec![
                ("state", enum_v(p.state as i32, &OBJECT_STATES)),
                ("oid", oid(&p.oid)),
                (
                    "poid",
                    match &p.poid {
                        None => Value::Union(0, Box::new(Value::Null)),
                        Some(o) => Value::Union(1, Box::new(oid(o))),
                    },
                ),
                ("ts", Value::Long(p.ts)),
                ("exe", s(&p.exe)),
                ("exeArgs", s(&p.exe_args)),
                ("uid", Value::Int(p.uid)),
                ("userName", s(&p.user_name)),
                ("gid", Value::Int(p.gid)),
                ("groupName", s(&p.group_name)),
                ("tty", Value::Boolean(p.tty)),
                ("containerId", opt_s(&p.container_id)),
                ("entry", Value::Boolean(p.entry)),
            ];
            if v == SchemaVersion::V5 {
                f.push(("cwd", s(&p.cwd)));
                f.push(("env", str_array(&p.env)));
            }
            (2, rec(f))
        }
        SysFlow::File(x) => (
            3,
            rec(vec![
                ("state", enum_v(x.state as i32, &OBJECT_STATES)),
                ("oid", Value::Fixed(20, x.oid.to_vec())),
                ("ts", Value::Long(x.ts)),
                ("restype", Value::Int(x.restype)),
                ("path", s(&x.path)),
                ("containerId", opt_s(&x.container_id)),
            ]),
        ),
        SysFlow::ProcessEvent(e) => (
            4,
            rec(vec![
                ("procOID", oid(&e.proc_oid)),
                ("ts", Value::Long(e.ts)),
                ("tid", Value::Long(e.tid)),
                ("opFlags", Value::Int(e.op_flags)),
                ("args", str_array(&e.args)),
                ("ret", Value::Int(e.ret)),
            ]),
        ),
        SysFlow::NetworkFlow(n) => (
            5,
            rec(vec![
                ("procOID", oid(&n.proc_oid)),
                ("ts", Value::Long(n.ts)),
                ("tid", Value::Long(n.tid)),
                ("opFlags", Value::Int(n.op_flags)),
                ("endTs", Value::Long(n.end_ts)),
                ("sip", Value::Int(n.sip)),
                ("sport", Value::Int(n.sport)),
                ("dip", Value::Int(n.dip)),
                ("dport", Value::Int(n.dport)),
                ("proto", Value::Int(n.proto)),
                ("fd", Value::Int(n.fd)),
                ("numRRecvOps", Value::Long(n.num_rrecv_ops)),
                ("numWSendOps", Value::Long(n.num_wsend_ops)),
                ("numRRecvBytes", Value::Long(n.num_rrecv_bytes)),
                ("numWSendBytes", Value::Long(n.num_wsend_bytes)),
            ]),
        ),
        SysFlow::FileFlow(f) => (
            6,
            rec(vec![
                ("procOID", oid(&f.proc_oid)),
                ("ts", Value::Long(f.ts)),
                ("tid", Value::Long(f.tid)),
                ("opFlags", Value::Int(f.op_flags)),
                ("openFlags", Value::Int(f.open_flags)),
                ("endTs", Value::Long(f.end_ts)),
                ("fileOID", Value::Fixed(20, f.file_oid.to_vec())),
                ("fd", Value::Int(f.fd)),
                ("numRRecvOps", Value::Long(f.num_rrecv_ops)),
                ("numWSendOps", Value::Long(f.num_wsend_ops)),
                ("numRRecvBytes", Value::Long(f.num_rrecv_bytes)),
                ("numWSendBytes", Value::Long(f.num_wsend_bytes)),
            ]),
        ),
        SysFlow::FileEvent(f) => (
            7,
            rec(vec![
                ("procOID", oid(&f.proc_oid)),
                ("ts", Value::Long(f.ts)),
                ("tid", Value::Long(f.tid)),
                ("opFlags", Value::Int(f.op_flags)),
                ("fileOID", Value::Fixed(20, f.file_oid.to_vec())),
                ("ret", Value::Int(f.ret)),
                (
                    "newFileOID",
                    match &f.new_file_oid {
                        None => Value::Union(0, Box::new(Value::Null)),
                        Some(o) => Value::Union(1, Box::new(Value::Fixed(20, o.to_vec()))),
                    },
                ),
            ]),
        ),
        SysFlow::NetworkEvent(n) => (
            8,
            rec(vec![
                ("procOID", oid(&n.proc_oid)),
                ("ts", Value::Long(n.ts)),
                ("tid", Value::Long(n.tid)),
                ("opFlags", Value::Int(n.op_flags)),
                ("sip", Value::Int(n.sip)),
                ("sport", Value::Int(n.sport)),
                ("dip", Value::Int(n.dip)),
                ("dport", Value::Int(n.dport)),
                ("proto", Value::Int(n.proto)),
                ("ret", Value::Int(n.ret)),
            ]),
        ),
        SysFlow::ProcessFlow(p) => (
            9,
            rec(vec![
                ("procOID", oid(&p.proc_oid)),
                ("ts", Value::Long(p.ts)),
                ("numThreadsCloned", Value::Long(p.num_threads_cloned)),
                ("opFlags", Value::Int(p.op_flags)),
                ("endTs", Value::Long(p.end_ts)),
                ("numThreadsExited", Value::Long(p.num_threads_exited)),
                ("numCloneErrors", Value::Long(p.num_clone_errors)),
            ]),
        ),
        SysFlow::Pod(p) => (
            10,
            rec(vec![
                ("ts", Value::Long(p.ts)),
                ("id", s(&p.id)),
                ("name", s(&p.name)),
                ("nodeName", s(&p.node_name)),
                ("hostIP", long_array(&p.host_ip)),
                ("internalIP", long_array(&p.internal_ip)),
                ("namespace", s(&p.namespace)),
                ("restartCount", Value::Long(p.restart_count)),
                ("labels", str_map(&p.labels)),
                ("selectors", str_map(&p.selectors)),
                (
                    "services",
                    Value::Array(
                        p.services
                            .iter()
                            .map(|sv| {
                                rec(vec![
                                    ("name", s(&sv.name)),
                                    ("id", s(&sv.id)),
                                    ("namespace", s(&sv.namespace)),
                                    (
                                        "portList",
                                        Value::Array(
                                            sv.port_list
                                                .iter()
                                                .map(|pt| {
                                                    rec(vec![
                                                        ("port", Value::Int(pt.port)),
                                                        ("targetPort", Value::Int(pt.target_port)),
                                                        ("nodePort", Value::Int(pt.node_port)),
                                                        ("proto", s(&pt.proto)),
                                                    ])
                                                })
                                                .collect(),
                                        ),
                                    ),
                                    ("clusterIP", long_array(&sv.cluster_ip)),
                                ])
                            })
                            .collect(),
                    ),
                ),
            ]),
        ),
        SysFlow::K8sEvent(k) => (
            11,
            rec(vec![
                ("kind", enum_v(k.kind, &K8S_COMPONENTS)),
                ("action", enum_v(k.action, &K8S_ACTIONS)),
                ("ts", Value::Long(k.ts)),
                ("message", s(&k.message)),
            ]),
        ),
    };
    rec(vec![("rec", Value::Union(idx, Box::new(inner)))])
}

/// Codec names accepted by the generator.
pub fn avro_codec(name: &str) -> Option<AvroCodec> {
    match name {
        "null" => Some(AvroCodec::Null),
        "deflate" => Some(AvroCodec::Deflate(Default::default())),
        "snappy" => Some(AvroCodec::Snappy),
        "zstd" | "zstandard" => Some(AvroCodec::Zstandard(Default::default())),
        _ => None,
    }
}

/// Writes records as an object container file.
pub struct TraceWriter<'a, W: std::io::Write> {
    inner: Writer<'a, W>,
    version: SchemaVersion,
}

impl<'a, W: std::io::Write> TraceWriter<'a, W> {
    pub fn new(schema: &'a Schema, version: SchemaVersion, codec: AvroCodec, out: W) -> Self {
        TraceWriter {
            inner: Writer::builder()
                .schema(schema)
                .writer(out)
                .codec(codec)
                .block_size(64 * 1024)
                .build(),
            version,
        }
    }
    pub fn append(&mut self, r: &SysFlow) -> Result<(), apache_avro::Error> {
        self.inner.append(to_value(r, self.version)).map(|_| ())
    }
    pub fn finish(mut self) -> Result<W, apache_avro::Error> {
        self.inner.flush()?;
        self.inner.into_inner()
    }
}

/// Encodes one record as a raw Avro datum (no container framing): what the collector sends on
/// the socket.
pub fn encode_datum(
    schema: &Schema,
    r: &SysFlow,
    v: SchemaVersion,
) -> Result<Vec<u8>, apache_avro::Error> {
    apache_avro::to_avro_datum(schema, to_value(r, v))
}

/// Encodes records as raw datums, many times over: the schema is resolved once (apache-avro's
/// `to_avro_datum` resolves it on every call, which made a simulated collector spend most of
/// its time there).
pub struct DatumEncoder {
    inner: apache_avro::GenericSingleObjectWriter,
    version: SchemaVersion,
    out: Vec<u8>,
}

/// Bytes of the single-object encoding header (marker and schema fingerprint) that
/// [`DatumEncoder`] strips.
const SINGLE_OBJECT_HEADER: usize = 10;

impl DatumEncoder {
    pub fn new(schema: &Schema, version: SchemaVersion) -> Result<Self, apache_avro::Error> {
        Ok(DatumEncoder {
            inner: apache_avro::GenericSingleObjectWriter::new_with_capacity(schema, 1024)?,
            version,
            out: Vec::with_capacity(1024),
        })
    }

    /// The datum of `r` (what the collector sends on the socket).
    pub fn encode(&mut self, r: &SysFlow) -> Result<Vec<u8>, apache_avro::Error> {
        self.out.clear();
        self.inner
            .write_value(to_value(r, self.version), &mut self.out)?;
        Ok(self.out[SINGLE_OBJECT_HEADER.min(self.out.len())..].to_vec())
    }
}

#[cfg(test)]
mod datum_tests {
    use super::*;
    use crate::gen::{GenConfig, Generator};

    #[test]
    fn the_reusable_encoder_writes_the_same_datums() {
        let sch = schema(SchemaVersion::V5).unwrap();
        let mut e = DatumEncoder::new(&sch, SchemaVersion::V5).unwrap();
        for r in Generator::new(GenConfig {
            records: 200,
            ..Default::default()
        }) {
            assert_eq!(
                e.encode(&r).unwrap(),
                encode_datum(&sch, &r, SchemaVersion::V5).unwrap()
            );
        }
    }
}

#[cfg(test)]
mod upstream_schema {
    use super::*;

    /// The v5 writer schema is upstream's `SysFlow.avsc`, read in place from the shared
    /// upstream tree: the same Parsing Canonical Form (names, types, field order, symbols;
    /// defaults and logical-type annotations aside, which the form leaves out).
    #[test]
    fn the_v5_writer_schema_is_upstreams_avsc() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/upstream/sf-apis/avro/avsc/SysFlow.avsc"
        );
        let text = std::fs::read_to_string(path).expect("upstream's SysFlow.avsc");
        let upstream = Schema::parse_str(&text).expect("upstream's schema parses");
        let ours = schema(SchemaVersion::V5).expect("our schema parses");
        assert_eq!(ours.canonical_form(), upstream.canonical_form());
        // v4 differs exactly by Process.cwd and Process.env.
        let v4 = schema(SchemaVersion::V4).unwrap().canonical_form();
        assert_ne!(v4, upstream.canonical_form());
        assert!(!v4.contains("\"cwd\""));
    }
}
