//! The collector's live stream: one Avro binary datum per packet (the `SysFlow` union: branch
//! index, then the record), no container header and no schema. The schema comes from the
//! stream itself: the first packet of a connection is an `SFHeader` whose first field is the
//! schema `version`, and the rest of the connection is decoded with that version's writer
//! schema (a new header switches it).

use std::sync::Arc;

use super::cursor::Cursor;
use super::plan::{DatumPlan, Decoded};
use super::writer::{schema_json, SchemaVersion};
use super::DecodeError;

/// The writer schemas a stream may announce, compiled once.
#[derive(Debug, Clone)]
pub struct StreamSchemas {
    plans: Vec<(i64, Arc<DatumPlan>)>,
}

impl StreamSchemas {
    /// Schema versions 4 and 5 (the collector's since 0.4).
    pub fn builtin() -> Result<Self, super::SchemaError> {
        let mut plans = Vec::new();
        for v in [SchemaVersion::V4, SchemaVersion::V5] {
            plans.push((v.number(), Arc::new(DatumPlan::compile(&schema_json(v))?)));
        }
        Ok(StreamSchemas { plans })
    }

    /// The plan for header `version`, if this build knows it.
    pub fn plan(&self, version: i64) -> Option<Arc<DatumPlan>> {
        self.plans
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, p)| p.clone())
    }

    /// The versions known, for messages.
    pub fn versions(&self) -> Vec<i64> {
        self.plans.iter().map(|(v, _)| *v).collect()
    }
}

/// If `packet` is an `SFHeader` datum (union branch 0 in every known schema), its `version`.
/// `None` for any other record; an error for a header whose version cannot be read.
pub fn header_version(packet: &[u8]) -> Option<Result<i64, DecodeError>> {
    let mut c = Cursor::new(packet);
    match c.long() {
        Ok(0) => Some(c.long()),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    }
}

/// Decodes `packet` as exactly one datum: bytes left over mean the packet is not what the
/// schema says, so nothing of it is used (upstream pushed such half-decoded records on).
pub fn decode_packet(plan: &DatumPlan, packet: &[u8]) -> Result<Decoded, DecodeError> {
    decode_packet_limited(plan, packet, super::cursor::DEFAULT_RECORD_LIMIT)
}

/// [`decode_packet`], the datum taking at most `limit` bytes once decoded.
pub fn decode_packet_limited(
    plan: &DatumPlan,
    packet: &[u8],
    limit: usize,
) -> Result<Decoded, DecodeError> {
    let mut c = Cursor::with_limit(packet, limit);
    let d = plan.decode(&mut c)?;
    if !c.is_empty() {
        return Err(DecodeError::Trailing(c.remaining()));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysflow::model::{Header, SysFlow};
    use crate::sysflow::writer::{encode_datum, schema};

    #[test]
    fn the_header_announces_the_version_and_every_datum_decodes_alone() {
        let schemas = StreamSchemas::builtin().unwrap();
        assert_eq!(schemas.versions(), vec![4, 5]);
        for v in [SchemaVersion::V4, SchemaVersion::V5] {
            let h = SysFlow::Header(Box::new(Header {
                version: v.number(),
                exporter: "node-1".into(),
                ip: "10.0.0.1".into(),
                filename: String::new(),
            }));
            let bytes = encode_datum(&schema(v).unwrap(), &h, v).unwrap();
            assert_eq!(header_version(&bytes), Some(Ok(v.number())));
            let plan = schemas.plan(v.number()).unwrap();
            match decode_packet(&plan, &bytes).unwrap() {
                Decoded::Record(SysFlow::Header(got)) => assert_eq!(got.exporter, "node-1"),
                other => panic!("{other:?}"),
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(
                decode_packet(&plan, &longer).unwrap_err(),
                DecodeError::Trailing(1)
            );
            assert!(decode_packet(&plan, &bytes[..bytes.len() - 1]).is_err());
        }
        assert!(schemas.plan(3).is_none());
        assert_eq!(header_version(&[2, 0]), None, "branch 1 is not a header");
        assert!(header_version(&[0xff]).unwrap().is_err());
    }
}
