//! Interfaces, workers, tables, timeouts, admin and metrics.

use super::{case, check};

#[test]
fn global_errors() {
    let cases = [
        case(
            "interfaces: []\nservices: []\n",
            "[]",
            "interfaces",
            "at least one interface is needed",
            Some("interfaces:"),
        )
        .whole(),
        case(
            "services: []\n",
            "services",
            "interfaces",
            "at least one interface is needed",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-a-very-long-name\n",
            "uvs-a-very-long-name",
            "interfaces[0].name",
            "interface name 'uvs-a-very-long-name' is 20 bytes long; Linux allows at most 15",
            Some("IFNAMSIZ"),
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs/0\n",
            "uvs/0",
            "interfaces[0].name",
            "is not a valid Linux interface name",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n  - name: uvs-lb0\n",
            "uvs-lb0",
            "interfaces[1].name",
            "interface 'uvs-lb0' is already listed at line 2",
            None,
        )
        .whole()
        .nth(1),
        case(
            "interfaces:\n  - queues: 2\n",
            "queues",
            "interfaces[0].name",
            "the interface has no `name`",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    queues: 0\n",
            "queues: |0",
            "interfaces[0].queues",
            "queue count 0 is out of range 1..=1024",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    ring_size: 3000\n",
            "ring_size: |3000",
            "interfaces[0].ring_size",
            "ring size 3000 is not a power of two",
            Some("use 4096"),
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    ring_size: 32\n",
            "ring_size: |32",
            "interfaces[0].ring_size",
            "ring size 32 is out of range 64..=16384",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    xdp_mode: nativ\n",
            "nativ",
            "interfaces[0].xdp_mode",
            "unknown xdp_mode 'nativ'",
            Some("did you mean 'native'?"),
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    networks: [198.18.0.1/24]\n",
            "198.18.0.1/24",
            "interfaces[0].networks[0]",
            "'198.18.0.1/24' is not a valid prefix: host bits are set past the length",
            Some("did you mean 198.18.0.0/24?"),
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    networks: [198.18.0.0]\n",
            "198.18.0.0",
            "interfaces[0].networks[0]",
            "missing '/length'",
            Some("198.18.0.0/32"),
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    local: [198.18.5.3]\n    networks: [198.18.0.0/24]\n",
            "198.18.5.3",
            "interfaces[0].local[0]",
            "local address 198.18.5.3 is not inside any of this interface's networks",
            Some("networks"),
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    local: [198.18.0.3]\n    networks: [198.18.0.0/24]\n  - name: uvs-lb1\n    local: [198.18.0.3]\n    networks: [198.18.0.0/24]\n",
            "198.18.0.3",
            "interfaces[1].local[0]",
            "local address 198.18.0.3 is already listed at line 3",
            None,
        )
        .whole()
        .nth(1),
        case(
            "interfaces:\n  - name: uvs-lb0\n    networks: [198.18.0.0/24]\n    routes:\n      - { prefix: 0.0.0.0/0, via: 198.18.9.1 }\n",
            "198.18.9.1",
            "interfaces[0].routes[0].via",
            "next hop 198.18.9.1 is not inside any of this interface's networks",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    networks: [198.18.0.0/24]\n    routes:\n      - { prefix: \"::/0\", via: 198.18.0.1 }\n",
            "198.18.0.1",
            "interfaces[0].routes[0].via",
            "next hop 198.18.0.1 is not of the same address family as ::/0",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\nworkers:\n  count: 2\n  cores: [1]\n",
            "[1]",
            "workers.cores",
            "1 cores listed for 2 workers",
            None,
        )
        .whole(),
        // uvs resolves a next hop's MAC from a local address of its family.
        case(
            "interfaces:\n  - name: uvs-lb0\n    local: [\"2001:2::3\"]\n    networks: [198.18.0.0/24, \"2001:2::/64\"]\n    routes:\n      - { prefix: 0.0.0.0/0, via: 198.18.0.254 }\n",
            "198.18.0.254",
            "interfaces[0].routes[0].via",
            "next hop 198.18.0.254: this interface has no `local` IPv4 address",
            Some("add to its `local` an IPv4 address"),
        )
        .whole(),
        // Each worker serves its queue of every interface (uvsd refused to start, after
        // --check-config had passed the file).
        case(
            "interfaces:\n  - name: uvs-lb0\nworkers:\n  count: 2\n",
            "2",
            "workers.count",
            "2 workers but interface 'uvs-lb0' has queues: 1",
            Some("queues: 2"),
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\n    queues: 2\n  - name: uvs-lb1\nworkers:\n  cores: [0, 1]\n",
            "uvs-lb1",
            "interfaces[1].queues",
            "interface 'uvs-lb1' has queues: 1, but there are 2 workers",
            Some("queues: 2"),
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\nworkers:\n  cores: [1, 1]\n",
            "1, |1]",
            "workers.cores[1]",
            "core 1 is listed twice",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\nconn_table:\n  capacity: 268435457\n",
            "268435457",
            "conn_table.capacity",
            "capacity 268435457 is out of range 1..=268435456",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\ntimeouts:\n  udp: 0\n",
            "udp: |0",
            "timeouts.udp",
            "timeout 0 is out of range",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\ntimeouts:\n  sctp_shutdown_sent: 0\n",
            "sctp_shutdown_sent: |0",
            "timeouts.sctp_shutdown_sent",
            "timeout 0 is out of range",
            Some("seconds"),
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\ntimeouts:\n  sctp_cookie_echoed: 2147484\n",
            "2147484",
            "timeouts.sctp_cookie_echoed",
            "timeout 2147484 is out of range",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\ntimeouts:\n  sctp_shutdown: 5\n",
            "sctp_shutdown",
            "timeouts.sctp_shutdown",
            "unknown field 'sctp_shutdown'",
            Some("sctp_shutdown_sent"),
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\nadmin:\n  socket: run/uvs.sock\n",
            "run/uvs.sock",
            "admin.socket",
            "admin socket path 'run/uvs.sock' is not absolute",
            None,
        )
        .whole(),
        case(
            "interfaces:\n  - name: uvs-lb0\nmetrics:\n  listen: \"::1:9100\"\n",
            "\"::1:9100\"",
            "metrics.listen",
            "'::1:9100' is not an address:port",
            Some("[::1]:9100"),
        )
        .whole(),
    ];
    for c in &cases {
        check(c);
    }
}
