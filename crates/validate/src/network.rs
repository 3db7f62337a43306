//! The cluster's network ranges (`spec.network`, defaults resolved) checked against each other,
//! the provider's reserved ranges, the cluster's size and its IP family. Pure. Admission (CEL
//! `isCIDR`) refuses malformed ranges; this refuses well-formed ones that would give a broken
//! cluster, with the field path and what to do.
//!
//! Sizes assume kube-controller-manager's default `--node-cidr-mask-size-ipv4/-ipv6` (kaas sets
//! no other): every node gets a /24 of an IPv4 and a /64 of an IPv6 pod range.
//!
//! Findings a tenant cannot have caused — only provider defaults take part (a cluster without
//! `spec.network`) — are warnings, never errors: a cluster is not refused for its defaults.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use kaas_api::cluster::{IpFamily, NetworkSpec};

use crate::error::{ErrorKind, FieldError, FieldErrors};
use crate::offering::{Network, Pool, Size};

/// Prefix length of the pod block each node gets from an IPv4 pod range.
pub const NODE_MASK_IPV4: u8 = 24;
/// Prefix length of the pod block each node gets from an IPv6 pod range.
pub const NODE_MASK_IPV6: u8 = 64;
/// kube-controller-manager splits a pod range into at most 2^16 node blocks for IPv6 (it refuses
/// to start otherwise): an IPv6 pod range is at most 16 bits shorter than [`NODE_MASK_IPV6`].
pub const MAX_NODE_BLOCK_BITS_IPV6: u8 = 16;
/// Addresses of a node range that are not for nodes: network and broadcast address, gateway,
/// DHCP and router ports, the API server load balancer's address and ports.
pub const RESERVED_NODE_ADDRESSES: u128 = 16;
/// Fewest addresses of a service range (a /24 for IPv4, a /120 for IPv6): one per Service, and
/// clusters run a few dozen Services before the tenant creates any.
pub const MIN_SERVICE_ADDRESSES: u128 = 256;

/// An IP range: an address masked to its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a text is not a CIDR.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a CIDR such as 10.244.0.0/16 or fd00:10:244::/56")]
pub struct CidrError(pub String);

impl FromStr for Cidr {
    type Err = CidrError;

    /// `address/prefix`, IPv4 or IPv6; host bits are masked off (as Go's `net.ParseCIDR`,
    /// which Kubernetes uses, does).
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let err = || CidrError(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(err)?;
        let digits =
            prefix.len() <= 3 && !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit());
        if !digits || (prefix.len() > 1 && prefix.starts_with('0')) {
            return Err(err());
        }
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return Err(err());
        }
        let c = Cidr { addr, prefix };
        Ok(Cidr {
            addr: c.address(c.first()),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// Whether it is an IPv4 range.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn width(&self) -> u8 {
        if self.is_ipv4() { 32 } else { 128 }
    }

    fn host_bits(&self) -> u8 {
        self.width() - self.prefix
    }

    /// Number of addresses (saturating for `::/0`).
    pub fn addresses(&self) -> u128 {
        pow2(self.host_bits())
    }

    fn number(&self) -> u128 {
        match self.addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    /// Address number `n` of this range's family.
    fn address(&self, n: u128) -> IpAddr {
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4((n as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(n.into()),
        }
    }

    fn first(&self) -> u128 {
        let h = self.host_bits();
        if h >= 128 { 0 } else { self.number() >> h << h }
    }

    fn last(&self) -> u128 {
        self.first() | pow2(self.host_bits()).wrapping_sub(1)
    }

    /// Whether the two ranges share an address (ranges of different families never do).
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.is_ipv4() == other.is_ipv4()
            && self.first() <= other.last()
            && other.first() <= self.last()
    }
}

/// 2^bits, saturating at `u128::MAX`.
fn pow2(bits: u8) -> u128 {
    1u128.checked_shl(u32::from(bits)).unwrap_or(u128::MAX)
}

/// The least b with 2^b ≥ n.
fn bits_for(n: u128) -> u8 {
    if n <= 1 {
        0
    } else {
        (128 - (n - 1).leading_zeros()) as u8
    }
}

/// The most nodes a cluster can have at once, which its ranges must hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Nodes {
    /// Control-plane nodes (none where the control plane runs on the management side).
    pub control_plane: u64,
    /// Worker nodes: each pool's `count`, or `maxCount` when autoscaled.
    pub workers: u64,
    /// Extra nodes during rolling updates: one per pool with nodes and one for the control plane
    /// (Cluster API's default `maxSurge` of 1).
    pub surge: u64,
}

impl Nodes {
    /// The nodes of `control_plane_replicas` control-plane nodes (0 for a hosted control plane)
    /// and `pools` (negative counts, which admission refuses, count as 0).
    pub fn new(control_plane_replicas: i32, pools: &[Pool]) -> Self {
        let count = |n: i32| u64::try_from(n).unwrap_or(0);
        let control_plane = count(control_plane_replicas);
        let sizes: Vec<u64> = pools
            .iter()
            .map(|p| match p.size {
                Size::Fixed(c) => count(c),
                Size::Autoscale { max, .. } => count(max),
            })
            .collect();
        let surging = sizes.iter().filter(|&&n| n > 0).count() as u64;
        Nodes {
            control_plane,
            workers: sizes.iter().sum(),
            surge: surging + u64::from(control_plane > 0),
        }
    }

    /// All of them.
    pub fn total(&self) -> u128 {
        u128::from(self.control_plane) + u128::from(self.workers) + u128::from(self.surge)
    }
}

impl fmt::Display for Nodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} control-plane, {} worker, {} more during rolling updates",
            self.control_plane, self.workers, self.surge
        )
    }
}

/// Checks the resolved `network` of a cluster whose `spec.network` is `spec` (what the tenant
/// wrote; the rest are defaults) against itself, the provider's `reserved` ranges and `nodes`.
/// Errors go to `errs`, findings about defaults alone to `warnings`.
pub fn check(
    spec: Option<&NetworkSpec>,
    network: &Network,
    nodes: Nodes,
    provider: &str,
    reserved: &[String],
    errs: &mut FieldErrors,
    warnings: &mut Vec<String>,
) {
    let mut out = Findings {
        errs,
        warnings,
        provider,
    };
    let family_given = spec.is_some_and(|s| s.ip_family.is_some());
    let lists = [
        (
            List::Pods,
            &network.pods,
            spec.and_then(|s| s.pods.as_ref()),
        ),
        (
            List::Services,
            &network.services,
            spec.and_then(|s| s.services.as_ref()),
        ),
        (
            List::Nodes,
            &network.nodes,
            spec.and_then(|s| s.nodes.as_ref()),
        ),
    ];
    let mut ranges: Vec<Range> = Vec::new();
    for (list, resolved, given) in lists {
        let given = given.is_some();
        let mut parsed = Vec::new();
        for (index, text) in resolved.iter().enumerate() {
            let path = format!("{}[{index}]", list.path());
            match text.parse::<Cidr>() {
                Ok(cidr) => parsed.push(Range {
                    list,
                    path,
                    text,
                    cidr,
                    given,
                }),
                Err(e) => out.report(given, ErrorKind::Invalid, path, e.to_string()),
            }
        }
        if resolved.is_empty() && list != List::Nodes {
            out.report(
                true,
                ErrorKind::Required,
                list.path(),
                "at least one range is required (one per IP family)".into(),
            );
        } else if parsed.len() == resolved.len() {
            check_families(list, &parsed, network.ip_family, family_given, &mut out);
        }
        ranges.extend(parsed);
    }
    check_overlaps(&ranges, &mut out);
    check_reserved(&ranges, reserved, &mut out);
    for r in &ranges {
        check_size(r, nodes, &mut out);
    }
}

/// A list of `spec.network`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    Pods,
    Services,
    Nodes,
}

impl List {
    fn path(self) -> String {
        let field = match self {
            List::Pods => "pods",
            List::Services => "services",
            List::Nodes => "nodes",
        };
        format!("spec.network.{field}")
    }
}

/// One range of a list, with where it comes from.
struct Range<'a> {
    list: List,
    path: String,
    text: &'a str,
    cidr: Cidr,
    /// Written by the tenant (not a default).
    given: bool,
}

impl Range<'_> {
    /// The range for messages: as written, marked when it is a default.
    fn shown(&self) -> String {
        if self.given {
            self.text.to_string()
        } else {
            format!("{} (default)", self.text)
        }
    }
}

struct Findings<'a> {
    errs: &'a mut FieldErrors,
    warnings: &'a mut Vec<String>,
    provider: &'a str,
}

impl Findings<'_> {
    /// An error when a value the tenant wrote takes part (`tenant`), otherwise a warning about
    /// the provider's defaults.
    fn report(&mut self, tenant: bool, kind: ErrorKind, path: String, message: String) {
        if tenant {
            self.errs.push(FieldError::new(kind, path, message));
        } else {
            self.warnings.push(format!(
                "{path}: {message} (defaults of provider {:?}; set spec.network to choose other ranges)",
                self.provider
            ));
        }
    }
}

fn family_name(v4: bool) -> &'static str {
    if v4 { "IPv4" } else { "IPv6" }
}

/// IPv4: only IPv4 ranges; IPv6: only IPv6 ranges; DualStack: one of each. At most one range per
/// family in every list.
fn check_families(
    list: List,
    ranges: &[Range],
    family: IpFamily,
    family_given: bool,
    out: &mut Findings,
) {
    let (want4, want6) = match family {
        IpFamily::IPv4 => (true, false),
        IpFamily::IPv6 => (false, true),
        IpFamily::DualStack => (true, true),
    };
    let family_shown = if family_given {
        format!("ipFamily {family:?}")
    } else {
        format!("ipFamily {family:?} (the default)")
    };
    let list_given = ranges.iter().any(|r| r.given);
    let tenant = list_given || family_given;
    let mut wrong = false;
    for r in ranges {
        let v4 = r.cidr.is_ipv4();
        if (v4 && !want4) || (!v4 && !want6) {
            wrong = true;
            let fix = if family_given && r.given {
                format!("use an {} range", family_name(!v4))
            } else if family_given {
                format!("set {} to an {} range", list.path(), family_name(!v4))
            } else {
                format!(
                    "set spec.network.ipFamily to {} or DualStack",
                    family_name(v4)
                )
            };
            let (path, subject) = if r.given {
                (r.path.clone(), r.text.to_string())
            } else {
                (list.path(), r.shown())
            };
            out.report(
                tenant,
                ErrorKind::Invalid,
                path,
                format!(
                    "{subject} is an {} range; {family_shown} takes {} ranges only: {fix}",
                    family_name(v4),
                    family_name(want4),
                ),
            );
        }
    }
    for (v4, wanted) in [(true, want4), (false, want6)] {
        if !wanted {
            continue;
        }
        let of_family: Vec<&Range> = ranges.iter().filter(|r| r.cidr.is_ipv4() == v4).collect();
        let name = family_name(v4);
        if of_family.len() > 1 {
            let shown: Vec<String> = of_family.iter().map(|r| r.shown()).collect();
            out.report(
                tenant,
                ErrorKind::Invalid,
                list.path(),
                format!(
                    "{} {name} ranges ({}); give one range per IP family",
                    of_family.len(),
                    shown.join(", ")
                ),
            );
        } else if of_family.is_empty() && !wrong && !ranges.is_empty() {
            let shown: Vec<String> = ranges.iter().map(|r| r.shown()).collect();
            out.report(
                tenant,
                ErrorKind::Required,
                list.path(),
                format!(
                    "{family_shown} needs one IPv4 and one IPv6 range; {name} is missing (got {})",
                    shown.join(", ")
                ),
            );
        }
    }
}

/// No two ranges of different lists share an address. The error is on the range the tenant wrote
/// (the first of the two when both are).
fn check_overlaps(ranges: &[Range], out: &mut Findings) {
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            if a.list == b.list || !a.cidr.overlaps(&b.cidr) {
                continue;
            }
            let (subject, other) = if a.given || !b.given { (a, b) } else { (b, a) };
            out.report(
                subject.given,
                ErrorKind::Invalid,
                subject.path.clone(),
                format!(
                    "{} overlaps {} {}: cluster ranges must be disjoint",
                    subject.shown(),
                    other.path,
                    other.shown()
                ),
            );
        }
    }
}

/// No range overlaps one the provider's infrastructure uses.
fn check_reserved(ranges: &[Range], reserved: &[String], out: &mut Findings) {
    let reserved: Vec<(&String, Cidr)> = reserved
        .iter()
        .filter_map(|t| t.parse().ok().map(|c| (t, c)))
        .collect();
    for r in ranges {
        for (text, cidr) in &reserved {
            if r.cidr.overlaps(cidr) {
                out.report(
                    r.given,
                    ErrorKind::Forbidden,
                    r.path.clone(),
                    format!(
                        "{} overlaps {text}, which provider {:?} reserves for its infrastructure: choose a range outside it",
                        r.shown(),
                        out.provider
                    ),
                );
            }
        }
    }
}

/// Pods: a node block for every node; services: [`MIN_SERVICE_ADDRESSES`]; nodes: an address for
/// every node and [`RESERVED_NODE_ADDRESSES`].
fn check_size(r: &Range, nodes: Nodes, out: &mut Findings) {
    let v4 = r.cidr.is_ipv4();
    let width = r.cidr.width();
    let prefix = r.cidr.prefix();
    let message = match r.list {
        List::Pods => {
            let mask = if v4 { NODE_MASK_IPV4 } else { NODE_MASK_IPV6 };
            let min_prefix = if v4 { 0 } else { mask - MAX_NODE_BLOCK_BITS_IPV6 };
            let blocks = pow2(mask.saturating_sub(prefix));
            let need = nodes.total().max(1);
            let suggestion = || match mask.checked_sub(bits_for(need)) {
                Some(p) if p >= min_prefix => format!("use a /{p} or larger"),
                _ => format!("no {} pod range can hold that many nodes", family_name(v4)),
            };
            if prefix > mask {
                Some(format!(
                    "{} is smaller than the /{mask} each node gets; the cluster can have {} nodes at once ({nodes}): {}",
                    r.shown(),
                    nodes.total(),
                    suggestion()
                ))
            } else if prefix < min_prefix {
                Some(format!(
                    "{} is larger than a /{min_prefix}: kube-controller-manager splits an IPv6 pod range into at most 2^{MAX_NODE_BLOCK_BITS_IPV6} blocks of /{mask}",
                    r.shown()
                ))
            } else if blocks < need {
                Some(format!(
                    "{} holds {blocks} blocks of /{mask}, one per node; the cluster can have {} nodes at once ({nodes}): {}",
                    r.shown(),
                    nodes.total(),
                    suggestion()
                ))
            } else {
                None
            }
        }
        List::Services => (r.cidr.addresses() < MIN_SERVICE_ADDRESSES).then(|| {
            format!(
                "{} has {} addresses; a service range needs at least {MIN_SERVICE_ADDRESSES}: use a /{} or larger",
                r.shown(),
                r.cidr.addresses(),
                width - bits_for(MIN_SERVICE_ADDRESSES)
            )
        }),
        List::Nodes => {
            let need = nodes.total() + RESERVED_NODE_ADDRESSES;
            (r.cidr.addresses() < need).then(|| {
                format!(
                    "{} has {} addresses; the cluster can have {} nodes at once ({nodes}) and the network reserves {RESERVED_NODE_ADDRESSES}: use a /{} or larger",
                    r.shown(),
                    r.cidr.addresses(),
                    nodes.total(),
                    width.saturating_sub(bits_for(need))
                )
            })
        }
    };
    if let Some(message) = message {
        out.report(r.given, ErrorKind::Invalid, r.path.clone(), message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_with_host_bits_masked_off() {
        assert_eq!(cidr("10.96.0.1/12").to_string(), "10.96.0.0/12");
        assert_eq!(cidr("fd00:10::1/64").to_string(), "fd00:10::/64");
        assert_eq!(cidr("0.0.0.0/0").addresses(), 1 << 32);
        assert_eq!(cidr("::/0").addresses(), u128::MAX);
        assert_eq!(cidr("10.0.0.7/32").addresses(), 1);
        assert!(cidr("::1/128").overlaps(&cidr("::/0")));
    }

    #[test]
    fn malformed_cidrs_are_refused() {
        for s in [
            "",
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/08",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "fe80::1%eth0/64",
            " 10.0.0.0/8",
            "10.0.0.0/1000",
        ] {
            assert!(s.parse::<Cidr>().is_err(), "{s:?}");
        }
    }

    #[test]
    fn adjacent_ranges_do_not_overlap_and_nested_ones_do() {
        assert!(!cidr("10.96.0.0/16").overlaps(&cidr("10.97.0.0/16")));
        assert!(!cidr("10.95.255.255/32").overlaps(&cidr("10.96.0.0/16")));
        assert!(cidr("10.96.0.0/16").overlaps(&cidr("10.96.0.0/12")));
        assert!(cidr("10.96.0.0/12").overlaps(&cidr("10.100.1.0/24")));
        assert!(!cidr("10.0.0.0/8").overlaps(&cidr("::ffff:10.0.0.0/104")));
        assert!(!cidr("fd00::/64").overlaps(&cidr("fd00:0:0:1::/64")));
    }

    #[test]
    fn bits_for_is_the_ceiling_of_log2() {
        assert_eq!(
            [0, 1, 2, 3, 4, 5, 256, 257].map(bits_for),
            [0, 0, 1, 2, 2, 3, 8, 9]
        );
        assert_eq!(bits_for(u128::MAX), 128);
    }

    #[test]
    fn nodes_count_the_control_plane_every_pool_at_its_largest_and_the_surge() {
        let pool = |size| Pool {
            name: "p".into(),
            flavor: "f".into(),
            size,
            zones: vec![],
            labels: Default::default(),
            taints: vec![],
            offered: None,
        };
        let n = Nodes::new(
            3,
            &[
                pool(Size::Fixed(4)),
                pool(Size::Autoscale { min: 1, max: 9 }),
                pool(Size::Fixed(-5)),
            ],
        );
        assert_eq!(
            n,
            Nodes {
                control_plane: 3,
                workers: 13,
                surge: 3
            }
        );
        assert_eq!(n.total(), 19);
        assert_eq!(Nodes::new(0, &[]).total(), 0);
    }
}
