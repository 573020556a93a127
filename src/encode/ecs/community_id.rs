//! Community ID v1 (the flow hash ECS's `network.community_id` carries), with the SHA-1 and
//! base64 it needs.

use std::net::IpAddr;

/// ICMP type pairs that make a two-way "connection" (request and reply); the counterpart type
/// serves as the destination port. Other ICMP types are one-way.
fn icmp_counterpart(proto: u8, ty: u8) -> Option<u8> {
    let pairs: &[(u8, u8)] = match proto {
        1 => &[(8, 0), (13, 14), (15, 16), (10, 9), (17, 18)],
        58 => &[(128, 129), (133, 134), (135, 136), (130, 131), (144, 145)],
        _ => return None,
    };
    pairs.iter().find_map(|&(a, b)| {
        if ty == a {
            Some(b)
        } else if ty == b {
            Some(a)
        } else {
            None
        }
    })
}

/// The Community ID (version 1) of a flow: `"1:"` and the base64 of the SHA-1 of seed (2 bytes,
/// big endian), the two addresses, protocol, a zero byte and the two ports (2 bytes each,
/// big endian), with the endpoints ordered (smaller address first; for equal addresses the
/// smaller port first) unless the flow is one-way ICMP. ICMP types and codes stand in for the
/// ports. See <https://github.com/corelight/community-id-spec>; this follows `gommunityid`,
/// which upstream uses (ports are always hashed).
pub fn community_id(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    proto: u8,
) -> String {
    let mut out = Vec::with_capacity(30);
    write_community_id(&mut out, seed, src, dst, sport, dport, proto);
    String::from_utf8(out).unwrap_or_default()
}

pub(super) fn write_community_id(
    out: &mut Vec<u8>,
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    mut sport: u16,
    mut dport: u16,
    proto: u8,
) {
    let mut one_way = false;
    if proto == 1 || proto == 58 {
        let (ty, code) = (sport as u8, dport as u8);
        sport = u16::from(ty);
        match icmp_counterpart(proto, ty) {
            Some(c) => dport = u16::from(c),
            None => {
                dport = u16::from(code);
                one_way = true;
            }
        }
    }
    // Addresses as gommunityid writes them: 4 bytes for IPv4 (also IPv4-mapped IPv6),
    // 16 otherwise; IPv4 orders before IPv6.
    fn bytes(ip: IpAddr) -> ([u8; 16], usize) {
        let mut b = [0u8; 16];
        let v4 = match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(a) => a.to_ipv4_mapped(),
        };
        match (v4, ip) {
            (Some(a), _) => {
                b[..4].copy_from_slice(&a.octets());
                (b, 4)
            }
            (None, IpAddr::V6(a)) => (a.octets(), 16),
            (None, IpAddr::V4(_)) => (b, 4),
        }
    }
    let (mut s, mut d) = (bytes(src), bytes(dst));
    let key = |x: &([u8; 16], usize)| (x.1, x.0);
    let ordered = key(&s) < key(&d) || (key(&s) == key(&d) && sport < dport);
    if !one_way && !ordered {
        std::mem::swap(&mut s, &mut d);
        std::mem::swap(&mut sport, &mut dport);
    }
    let mut buf = [0u8; 40];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        buf[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    put(&seed.to_be_bytes());
    put(&s.0[..s.1]);
    put(&d.0[..d.1]);
    put(&[proto, 0]);
    put(&sport.to_be_bytes());
    put(&dport.to_be_bytes());
    out.extend_from_slice(b"1:");
    base64(out, &sha1(&buf[..n]));
}

/// Standard base64 with padding.
fn base64(out: &mut Vec<u8>, data: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((v >> (18 - 6 * i)) & 0x3f) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

/// SHA-1 (FIPS 180-4) of a short message.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut blocks = data.chunks_exact(64);
    for block in &mut blocks {
        sha1_block(&mut h, block);
    }
    let rest = blocks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let len = if rest.len() < 56 { 64 } else { 128 };
    let bits = (data.len() as u64).wrapping_mul(8);
    tail[len - 8..len].copy_from_slice(&bits.to_be_bytes());
    for block in tail[..len].chunks_exact(64) {
        sha1_block(&mut h, block);
    }
    let mut out = [0u8; 20];
    for (o, v) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&v.to_be_bytes());
    }
    out
}

fn sha1_block(h: &mut [u32; 5], block: &[u8]) {
    let mut w = [0u32; 80];
    for (wi, c) in w.iter_mut().zip(block.chunks_exact(4)) {
        *wi = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
    }
    for i in 16..80 {
        w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
    }
    let [mut a, mut b, mut c, mut d, mut e] = *h;
    for (i, wi) in w.iter().enumerate() {
        let (f, k) = match i {
            0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
            20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
            40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
            _ => (b ^ c ^ d, 0xCA62_C1D6),
        };
        let t = a
            .rotate_left(5)
            .wrapping_add(f)
            .wrapping_add(e)
            .wrapping_add(k)
            .wrapping_add(*wi);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = t;
    }
    for (x, v) in h.iter_mut().zip([a, b, c, d, e]) {
        *x = x.wrapping_add(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_and_base64_known_answers() {
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        let b64 = |d: &[u8]| {
            let mut o = Vec::new();
            base64(&mut o, d);
            String::from_utf8(o).unwrap()
        };
        assert_eq!(b64(b"f"), "Zg==");
        assert_eq!(b64(b"fo"), "Zm8=");
        assert_eq!(b64(b"foo"), "Zm9v");
        assert_eq!(b64(b"foobar"), "Zm9vYmFy");
    }
}
