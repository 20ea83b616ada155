//! Missing privileges and a too-low memlock limit give errors that name the
//! fix. One test in its own binary: it lowers the process's RLIMIT_MEMLOCK,
//! which no other test may race with. Capabilities are dropped per thread.

mod common;

use common::*;
use uvs_xsk::{XdpMode, XdpProgram, XskConfig, XskError, XskPort, ZeroCopy};

#[test]
#[ignore = "needs root: network namespaces, AF_XDP and BPF (scripts/test.sh runs it as root)"]
fn missing_privileges_and_memlock_are_explained() {
    require_root();
    let net = TestNet::new("p");
    let a = net.a.clone();
    let t = net.spawn_in(&net.lb, move || {
        let cfg = XskConfig {
            ring_size: 64,
            zero_copy: ZeroCopy::Off,
        };

        // UMEM pages are charged to RLIMIT_MEMLOCK without CAP_IPC_LOCK.
        // 2048-descriptor rings need a 25 MiB UMEM; the limit becomes 1 MiB.
        drop_effective_caps(&[CAP_IPC_LOCK, CAP_SYS_RESOURCE]);
        let low = libc::rlimit {
            rlim_cur: 1 << 20,
            rlim_max: 1 << 20,
        };
        #[allow(unsafe_code)]
        // SAFETY: valid rlimit pointer for the duration of the call.
        let r = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &low) };
        assert_eq!(r, 0);
        let big = XskConfig {
            ring_size: 2048,
            ..cfg.clone()
        };
        let e = XskPort::open(&a, 0, &big).err().expect("memlock refusal");
        assert!(matches!(e, XskError::Memlock { .. }), "{e}");
        assert!(e.to_string().contains("ulimit -l unlimited"), "{e}");

        // No CAP_NET_RAW: socket(AF_XDP) is refused.
        drop_effective_caps(&[CAP_NET_RAW]);
        let e = XskPort::open(&a, 0, &cfg).err().expect("EPERM");
        assert!(matches!(e, XskError::Permission { .. }), "{e}");

        // No CAP_BPF / CAP_SYS_ADMIN / CAP_NET_ADMIN: the program cannot load.
        drop_effective_caps(&[CAP_BPF, CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_PERFMON]);
        let e = XdpProgram::attach(&a, XdpMode::Auto).err().expect("EPERM");
        assert!(matches!(e, XskError::Permission { .. }), "{e}");
        assert!(e.to_string().contains("CAP_BPF"), "{e}");
    });
    t.join().expect("privilege checks");
}
