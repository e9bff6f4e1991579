//! Who is at the other end: CIDR sets and the rule that picks the client
//! address of a request.
//!
//! The rule (used by IP rate limiting, and meant for anything else that
//! keys on the client, such as a per-IP connection limit):
//!
//! * the client is the TCP peer, unless the peer is a **trusted proxy**
//!   (`--trusted-proxy CIDR`, repeatable);
//! * when the peer is trusted, `X-Forwarded-For` is read from the right
//!   (the entry the nearest proxy appended) to the left, skipping entries
//!   that are themselves trusted proxies; the first untrusted entry is the
//!   client. If every entry is trusted, the leftmost one is. An entry that
//!   is not an IP address stops the walk: the client is then the last
//!   address that was reached (a trusted proxy), because anything further
//!   left was written by someone we do not trust;
//! * with no trusted proxies configured, `X-Forwarded-For` is never read, so
//!   a client cannot choose its own address by sending the header.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, what a dual-stack listener
//! reports for IPv4 peers) are treated as the IPv4 address everywhere.
//!
//! Pure functions over `std::net` types; no I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address block such as `10.0.0.0/8` or `fd00::/8`. A bare address is
/// a block of one (`/32` or `/128`). Host bits below the prefix are ignored
/// (`10.1.2.3/8` is `10.0.0.0/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CidrError(pub String);

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not an address or CIDR block (e.g. 10.0.0.0/8, ::1): {:?}",
            self.0
        )
    }
}

impl std::error::Error for CidrError {}

fn mask_v4(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(ip);
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    Ipv4Addr::from(bits & mask)
}

fn mask_v6(ip: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(ip);
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    };
    Ipv6Addr::from(bits & mask)
}

impl Cidr {
    /// The block of `prefix` leading bits of `addr` (`None` if `prefix` is
    /// longer than the address).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let network = match canonical(addr) {
            IpAddr::V4(v4) if prefix <= 32 => IpAddr::V4(mask_v4(v4, prefix)),
            IpAddr::V6(v6) if prefix <= 128 => IpAddr::V6(mask_v6(v6, prefix)),
            _ => return None,
        };
        Some(Cidr { network, prefix })
    }

    /// Whether `ip` lies in the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_v4(ip, self.prefix) == net,
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_v6(ip, self.prefix) == net,
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CidrError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3 {
                    return Err(err());
                }
                (a, Some(p.parse::<u8>().map_err(|_| err())?))
            }
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let addr = canonical(addr);
        let full = if addr.is_ipv4() { 32 } else { 128 };
        Cidr::new(addr, prefix.unwrap_or(full)).ok_or_else(err)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The set of proxies whose `X-Forwarded-For` is believed. Empty by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(blocks: Vec<Cidr>) -> Self {
        TrustedProxies(blocks)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn blocks(&self) -> &[Cidr] {
        &self.0
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; every other address unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `::1`,
/// `[::1]` or `[::1]:5678` (surrounding spaces allowed).
pub fn parse_forwarded_hop(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = e.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        return if port_ok {
            inside
                .parse::<Ipv6Addr>()
                .ok()
                .map(|v6| canonical(v6.into()))
        } else {
            None
        };
    }
    let (host, port) = e.rsplit_once(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The client address of a request that arrived from `peer` with these
/// `X-Forwarded-For` field values (in the order received; several fields
/// are one comma-separated list). See the module docs for the rule.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let mut client = canonical(peer);
    if trusted.is_empty() || !trusted.contains(client) {
        return client;
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    for hop in hops.iter().rev() {
        if !trusted.contains(client) {
            break;
        }
        match parse_forwarded_hop(hop) {
            Some(ip) => client = ip,
            None => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "127.0.0.1".parse::<Cidr>().unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!("fd00::/8".parse::<Cidr>().unwrap().to_string(), "fd00::/8");
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        assert_eq!(
            "::ffff:10.0.0.1/32".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.1/32",
            "mapped addresses are IPv4"
        );
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0.0/0008",
            " 10.0.0.0/8",
            "[::1]/128",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cidr_membership() {
        let c: Cidr = "192.168.0.0/16".parse().unwrap();
        assert!(c.contains(ip("192.168.200.1")));
        assert!(c.contains(ip("::ffff:192.168.1.1")));
        assert!(!c.contains(ip("192.169.0.1")));
        assert!(!c.contains(ip("::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        assert!(!all.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
    }

    #[test]
    fn hops() {
        assert_eq!(parse_forwarded_hop(" 1.2.3.4 "), Some(ip("1.2.3.4")));
        assert_eq!(parse_forwarded_hop("1.2.3.4:80"), Some(ip("1.2.3.4")));
        assert_eq!(parse_forwarded_hop("[::1]:80"), Some(ip("::1")));
        assert_eq!(parse_forwarded_hop("[::1]"), Some(ip("::1")));
        assert_eq!(parse_forwarded_hop("2001:db8::7"), Some(ip("2001:db8::7")));
        assert_eq!(parse_forwarded_hop("::ffff:1.2.3.4"), Some(ip("1.2.3.4")));
        for bad in [
            "unknown",
            "",
            "1.2.3.4:",
            "[::1]x",
            "[::1]:",
            "1.2.3.4:x",
            "_hidden",
        ] {
            assert_eq!(parse_forwarded_hop(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn untrusted_peers_cannot_choose_their_address() {
        let none = TrustedProxies::default();
        assert_eq!(
            client_ip(ip("203.0.113.9"), ["1.1.1.1"], &none),
            ip("203.0.113.9")
        );
        let lan = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), ["1.1.1.1"], &lan),
            ip("203.0.113.9"),
            "a peer outside the trusted set is the client, whatever it forwards"
        );
        assert_eq!(
            client_ip(ip("::ffff:203.0.113.9"), [], &none),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn trusted_chains_are_walked_from_the_right() {
        let t = proxies(&["10.0.0.0/8", "127.0.0.1"]);
        // client -> 10.0.0.5 -> 127.0.0.1 (us)
        assert_eq!(
            client_ip(ip("127.0.0.1"), ["198.51.100.7, 10.0.0.5"], &t),
            ip("198.51.100.7")
        );
        // A client-supplied spoof on the left stays on the left.
        assert_eq!(
            client_ip(ip("127.0.0.1"), ["6.6.6.6, 198.51.100.7, 10.0.0.5"], &t),
            ip("198.51.100.7")
        );
        // Several header fields are one list.
        assert_eq!(
            client_ip(ip("127.0.0.1"), ["6.6.6.6", "198.51.100.7", "10.0.0.5"], &t),
            ip("198.51.100.7")
        );
        // All trusted: the leftmost.
        assert_eq!(
            client_ip(ip("127.0.0.1"), ["10.9.9.9, 10.0.0.5"], &t),
            ip("10.9.9.9")
        );
        // Garbage stops the walk at the last trusted hop reached.
        assert_eq!(
            client_ip(ip("127.0.0.1"), ["198.51.100.7, junk, 10.0.0.5"], &t),
            ip("10.0.0.5")
        );
        // No header: the proxy itself.
        assert_eq!(client_ip(ip("127.0.0.1"), [], &t), ip("127.0.0.1"));
        assert_eq!(client_ip(ip("127.0.0.1"), [" , "], &t), ip("127.0.0.1"));
    }
}
