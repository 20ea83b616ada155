//! The document as written: the YAML schema, field for field.
//!
//! Every field is optional here and every enum or address is a string, so that serde only
//! rejects what is structurally wrong (unknown fields, a list where a number belongs) and
//! `validate` can word everything else with the field's position and a suggested fix.
//! The same structs serialise back (`to_yaml`), skipping fields left at `None`.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<RawInterface>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<RawWorkers>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conn_table: Option<RawConnTable>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<RawTimeouts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_nodest_conn: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conn_reuse_mode: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_quiescent_template: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_entry: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<RawAdmin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<RawMetrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<RawSync>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bgp: Option<RawBgp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_lookup: Option<RawClientLookup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marks: Option<Vec<RawMark>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<RawService>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<RawCluster>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<RawMember>,
}

/// Director-less member mode (`crate::model::MemberConfig`).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMember {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub me: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<RawHealthCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_port: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announce: Option<RawAnnounce>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<RawClusterGroup>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAnnounce {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<f64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClusterGroup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vips: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<String>>,
}

/// Connection synchronisation (IPVS's sync daemon).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSync {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syncid: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxlen: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<u64>,
}

/// BGP announcement of the VIPs through BIRD (active/active behind ECMP).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBgp {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdraw_when: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_delay: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMark {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destinations: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<RawPorts>>,
}

/// A port (`80`) or a range (`"8000-8099"`), as iptables' `--dports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawPorts {
    One(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawPorts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawPorts, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawPorts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port or a range of ports (\"8000-8099\")")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawPorts, E> {
                Ok(RawPorts::One(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawPorts, E> {
                Ok(RawPorts::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for RawPorts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RawPorts::One(n) => s.serialize_u64(*n),
            RawPorts::Text(t) => s.serialize_str(t),
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInterface {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queues: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xdp_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zero_copy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<RawRoute>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkers {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cores: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub busy_poll: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spin_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_cache: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_fast_path: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConnTable {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_established: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_syn_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_syn_recv: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_fin_wait: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_time_wait: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_close: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_close_wait: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_last_ack: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_init1: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_init: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_cookie_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_cookie_replied: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_cookie_wait: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_cookie: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_cookie_echoed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_shutdown_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_shutdown_received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_shutdown_ack_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_rejected: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sctp_closed: Option<u64>,
}

impl RawTimeouts {
    /// `(field name, value)` for every field, in schema order.
    pub fn fields(&self) -> [(&'static str, Option<u64>); 23] {
        [
            ("tcp_established", self.tcp_established),
            ("tcp_syn_sent", self.tcp_syn_sent),
            ("tcp_syn_recv", self.tcp_syn_recv),
            ("tcp_fin_wait", self.tcp_fin_wait),
            ("tcp_time_wait", self.tcp_time_wait),
            ("tcp_close", self.tcp_close),
            ("tcp_close_wait", self.tcp_close_wait),
            ("tcp_last_ack", self.tcp_last_ack),
            ("udp", self.udp),
            ("icmp", self.icmp),
            ("sctp", self.sctp),
            ("sctp_init1", self.sctp_init1),
            ("sctp_init", self.sctp_init),
            ("sctp_cookie_sent", self.sctp_cookie_sent),
            ("sctp_cookie_replied", self.sctp_cookie_replied),
            ("sctp_cookie_wait", self.sctp_cookie_wait),
            ("sctp_cookie", self.sctp_cookie),
            ("sctp_cookie_echoed", self.sctp_cookie_echoed),
            ("sctp_shutdown_sent", self.sctp_shutdown_sent),
            ("sctp_shutdown_received", self.sctp_shutdown_received),
            ("sctp_shutdown_ack_sent", self.sctp_shutdown_ack_sent),
            ("sctp_rejected", self.sctp_rejected),
            ("sctp_closed", self.sctp_closed),
        ]
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// The client lookup service (FullNAT real servers asking for their clients).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClientLookup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_key: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler_flags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mh_table_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persistence: Option<RawPersistence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_packet: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syn_proxy: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pools: Option<Vec<RawPool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<RawRule>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_pool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fullnat_pool: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<RawTimeouts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<RawSorryServer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<RawHealthCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sites: Option<Vec<RawSite>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_servers: Option<Vec<RawRealServer>>,
}

/// A pool of a `layer: 7` service: some of its real servers, by address.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPool {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_servers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<RawHealthCheck>,
}

/// A `{name, value}` pair of a header or cookie rule.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNameValue {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A content rule of a `layer: 7` service: one or more conditions (all must hold), one pool.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<RawNameValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie: Option<RawNameValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSite {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPersistence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netmask: Option<Netmask>,
}

/// `netmask:` is a dotted IPv4 mask (`255.255.255.0`) or, for IPv6, a prefix length (`64`),
/// as with ipvsadm `-M`. Kept as text and checked against the VIP's family in `validate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Netmask {
    Length(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for Netmask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Netmask, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Netmask;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a dotted IPv4 netmask or an IPv6 prefix length")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Netmask, E> {
                Ok(Netmask::Length(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Netmask, E> {
                Ok(Netmask::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Netmask {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Netmask::Length(n) => s.serialize_u64(*n),
            Netmask::Text(t) => s.serialize_str(t),
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSorryServer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthCheck {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rise: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fall: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<RawStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_down: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<RawHttpUrl>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// One of an http check's `urls`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpUrl {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<RawStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect_digest: Option<String>,
}

/// An HTTP status (`200`) or codes and ranges (`"200-299 301"`), as keepalived's
/// `status_code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawStatus {
    One(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawStatus, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawStatus;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an HTTP status or statuses and ranges (\"200-299 301\")")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawStatus, E> {
                Ok(RawStatus::One(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawStatus, E> {
                Ok(RawStatus::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for RawStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RawStatus::One(n) => s.serialize_u64(*n),
            RawStatus::Text(t) => s.serialize_str(t),
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRealServer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper_threshold: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_threshold: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tun_port: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tun_csum: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
}
