//! The XDP program loader: loads `bpf/uvs_xdp.c` (compiled by build.rs and
//! embedded) with libbpf, attaches it with a BPF link, and edits its maps.
//!
//! A BPF link (`bpf_link_create(prog, ifindex, BPF_XDP)`) rather than a
//! netlink attach: the link detaches itself when its last fd closes, which
//! the kernel does even when the process is SIGKILLed, so a crash never
//! leaves the interface black-holing VIP traffic into a dead socket
//! (ARCHITECTURE.md, platform facts). Each attach loads its own
//! object, so each interface has its own maps: the XSKMAP is indexed by
//! `rx_queue_index` and two interfaces both have a queue 0.

use std::{
    collections::BTreeMap,
    ffi::CString,
    io,
    net::IpAddr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    ptr::NonNull,
};

use libbpf_sys as bpf;
use uvs_port::fast::{FastLine, FastLine6, FastTable};

use crate::{error::libbpf_error, sys, XskError};

/// The ELF object built from `bpf/uvs_xdp.c`, 8-byte aligned for libelf.
#[repr(C, align(8))]
pub(crate) struct Aligned<T: ?Sized>(pub(crate) T);
static PROGRAM_ELF: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/uvs_xdp.o")));

/// Where the program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic with a logged warning
    /// when the driver refuses it.
    Auto,
    /// Driver mode only (XDP_FLAGS_DRV_MODE): fastest; veth needs peer MTU ≤ 3506.
    Native,
    /// Generic mode (XDP_FLAGS_SKB_MODE): works on any device, after the
    /// kernel has built an skb. Disable TSO/GSO on veth peers (ARCHITECTURE.md, platform facts).
    Generic,
}

/// Packet counters of the program, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Frames handed to the AF_XDP socket.
    pub redirected: u64,
    /// Frames the balancer does not own, given to the kernel.
    pub passed: u64,
    /// Frames the balancer owns that found no socket on their queue and went
    /// to the kernel (the XDP_PASS fallback).
    pub unclaimed: u64,
    /// Frames (IPv4 and IPv6) the kernel fast path rewrote and gave to the kernel to
    /// forward (`workers.kernel_fast_path`, [`FastMap`]).
    pub fast: u64,
    /// Of `fast`, frames the TC program sent on past the kernel's forwarding
    /// ([`XdpProgram::set_fast_routes`]).
    pub fast_sent: u64,
}

// Slots of the `stats` map; keep in step with STAT_* in uvs_xdp.c.
const STAT_REDIRECTED: u32 = 0;
const STAT_PASSED: u32 = 1;
const STAT_UNCLAIMED: u32 = 2;
const STAT_FAST: u32 = 3;
const STAT_FAST_SENT: u32 = 4;
// `settings[0]` bits; SETTING_* in uvs_xdp.c.
const SETTING_REDIRECT_ALL: u32 = 1;
const SETTING_FAST_PATH: u32 = 2;
const SETTING_FAST_SEND: u32 = 4;
const SETTING_FAST_PATH6: u32 = 8;
/// The fast path's TC program (`set_fast_routes`), loaded only where the kernel takes it.
const TC_PROGRAM: &str = "uvs_fast_tc";
/// `max_entries` of the XSKMAP.
const XSKMAP_SLOTS: u32 = 64;

/// Port ranges one firewall-mark prefix carries (`MARK_RANGES` in uvs_xdp.c).
pub const MARK_RANGES: usize = 8;
/// [`MarkRange::protos`] bits (`MARK_*` in uvs_xdp.c).
pub const MARK_TCP: u8 = 1;
pub const MARK_UDP: u8 = 2;
pub const MARK_SCTP: u8 = 4;

/// Destination ports `first..=last` of the protocols in `protos` (`MARK_*` bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MarkRange {
    pub first: u16,
    pub last: u16,
    pub protos: u8,
}

/// A loaded (not necessarily attached) copy of the program and its maps.
pub(crate) struct LoadedObject {
    obj: NonNull<bpf::bpf_object>,
    prog_fd: RawFd,
    xsks: RawFd,
    owned4: RawFd,
    owned6: RawFd,
    reals4: RawFd,
    reals6: RawFd,
    real_ports: RawFd,
    host4: RawFd,
    host6: RawFd,
    marks4: RawFd,
    marks6: RawFd,
    stats: RawFd,
    settings: RawFd,
    fast4: RawFd,
    fast6: RawFd,
    fast_routes: RawFd,
    fast_routes6: RawFd,
    /// `uvs_fast_tc`, the fast path's TC ingress program.
    tc_fd: RawFd,
    ncpus: usize,
    label: String,
}

// SAFETY: the object pointer is only dereferenced by libbpf in `load` and in
// `Drop`, both with exclusive access; every other method is a `bpf()` syscall
// on an fd, which the kernel serialises. Moving it between threads or sharing
// it is therefore sound.
unsafe impl Send for LoadedObject {}
// SAFETY: see `Send`: `&self` methods only issue syscalls on fds.
unsafe impl Sync for LoadedObject {}

impl LoadedObject {
    /// Opens and loads the embedded object; `label` names it in errors.
    pub(crate) fn load(label: &str, reuse: &[(&str, RawFd)]) -> Result<Self, XskError> {
        let (obj, prog_fd) =
            open_and_load(&PROGRAM_ELF.0, "uvs_xdp", label, Some(TC_PROGRAM), reuse)?;
        let mut this = LoadedObject {
            obj,
            prog_fd,
            xsks: -1,
            owned4: -1,
            owned6: -1,
            reals4: -1,
            reals6: -1,
            real_ports: -1,
            host4: -1,
            host6: -1,
            marks4: -1,
            marks6: -1,
            stats: -1,
            settings: -1,
            fast4: -1,
            fast6: -1,
            fast_routes: -1,
            fast_routes6: -1,
            tc_fd: -1,
            ncpus: 0,
            label: label.to_string(),
        };
        this.xsks = this.map_fd("xsks")?;
        this.owned4 = this.map_fd("owned4")?;
        this.owned6 = this.map_fd("owned6")?;
        this.reals4 = this.map_fd("reals4")?;
        this.reals6 = this.map_fd("reals6")?;
        this.real_ports = this.map_fd("real_ports")?;
        this.host4 = this.map_fd("host4")?;
        this.host6 = this.map_fd("host6")?;
        this.marks4 = this.map_fd("marks4")?;
        this.marks6 = this.map_fd("marks6")?;
        this.stats = this.map_fd("stats")?;
        this.settings = this.map_fd("settings")?;
        this.fast4 = this.map_fd("fast4")?;
        this.fast6 = this.map_fd("fast6")?;
        this.fast_routes = this.map_fd("fast_routes")?;
        this.fast_routes6 = this.map_fd("fast_routes6")?;
        // Negative when the kernel refused it (see `open_and_load`).
        this.tc_fd = program_fd(this.obj, TC_PROGRAM)?;
        this.ncpus = possible_cpus()?;
        Ok(this)
    }

    fn map_fd(&self, name: &str) -> Result<RawFd, XskError> {
        map_fd(self.obj, name)
    }

    fn update<K, V>(
        &self,
        fd: RawFd,
        key: &K,
        value: &V,
        op: &'static str,
    ) -> Result<(), XskError> {
        // SAFETY: key and value point at live values of the map's key and
        // value sizes (the callers pass the types declared in uvs_xdp.c).
        let ret = unsafe {
            bpf::bpf_map_update_elem(
                fd,
                (key as *const K).cast(),
                (value as *const V).cast(),
                bpf::BPF_ANY.into(),
            )
        };
        if ret != 0 {
            return Err(XskError::os(op, &self.label, libbpf_error(ret.into())));
        }
        Ok(())
    }

    /// Deletes `key`; a missing key is not an error (removal is idempotent).
    fn delete<K>(&self, fd: RawFd, key: &K, op: &'static str) -> Result<(), XskError> {
        // SAFETY: key points at a live value of the map's key size.
        let ret = unsafe { bpf::bpf_map_delete_elem(fd, (key as *const K).cast()) };
        if ret != 0 {
            let e = libbpf_error(ret.into());
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(XskError::os(op, &self.label, e));
            }
        }
        Ok(())
    }

    fn set_addr(
        &self,
        fds: (RawFd, RawFd),
        addr: IpAddr,
        present: bool,
        op: &'static str,
    ) -> Result<(), XskError> {
        // Keys are the address bytes in network order, as they sit in the
        // packet, so the program compares them without byte swapping.
        match (addr, present) {
            (IpAddr::V4(a), true) => self.update(fds.0, &a.octets(), &1u8, op),
            (IpAddr::V6(a), true) => self.update(fds.1, &a.octets(), &1u8, op),
            (IpAddr::V4(a), false) => self.delete(fds.0, &a.octets(), op),
            (IpAddr::V6(a), false) => self.delete(fds.1, &a.octets(), op),
        }
    }

    /// Adds or removes a `real_ports` entry (the program's `struct real_port_key`).
    fn set_real_port(
        &self,
        addr: IpAddr,
        proto: u8,
        port: u16,
        present: bool,
    ) -> Result<(), XskError> {
        // addr[16], port (network order), proto, v6: 20 bytes, no padding.
        let mut key = [0u8; 20];
        match addr {
            IpAddr::V4(a) => key[..4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => {
                key[..16].copy_from_slice(&a.octets());
                key[19] = 1;
            }
        }
        key[16..18].copy_from_slice(&port.to_be_bytes());
        key[18] = proto;
        if present {
            self.update(
                self.real_ports,
                &key,
                &1u8,
                "add a real server's service port",
            )
        } else {
            self.delete(self.real_ports, &key, "remove a real server's service port")
        }
    }

    /// Adds (with its match) or removes a firewall mark's destination prefix, the program's
    /// `struct mark_key4/6` → `struct mark_match`.
    fn set_mark(
        &self,
        prefix: IpAddr,
        len: u8,
        ranges: Option<&[MarkRange]>,
    ) -> Result<(), XskError> {
        // struct mark_match: nranges, 3 pad, MARK_RANGES × {first, last (host order),
        // protos, 3 pad}.
        let value = ranges.map(|ranges| {
            let mut v = [0u8; 4 + MARK_RANGES * 8];
            v[0] = ranges.len().min(MARK_RANGES) as u8;
            for (i, r) in ranges.iter().take(MARK_RANGES).enumerate() {
                let o = 4 + i * 8;
                v[o..o + 2].copy_from_slice(&r.first.to_ne_bytes());
                v[o + 2..o + 4].copy_from_slice(&r.last.to_ne_bytes());
                v[o + 4] = r.protos;
            }
            v
        });
        let (op_add, op_del) = (
            "add a firewall mark prefix",
            "remove a firewall mark prefix",
        );
        match prefix {
            IpAddr::V4(a) => {
                // struct mark_key4: prefixlen (host order), addr[4].
                let mut key = [0u8; 8];
                key[..4].copy_from_slice(&u32::from(len.min(32)).to_ne_bytes());
                key[4..].copy_from_slice(&a.octets());
                match &value {
                    Some(v) => self.update(self.marks4, &key, v, op_add),
                    None => self.delete(self.marks4, &key, op_del),
                }
            }
            IpAddr::V6(a) => {
                let mut key = [0u8; 20];
                key[..4].copy_from_slice(&u32::from(len.min(128)).to_ne_bytes());
                key[4..].copy_from_slice(&a.octets());
                match &value {
                    Some(v) => self.update(self.marks6, &key, v, op_add),
                    None => self.delete(self.marks6, &key, op_del),
                }
            }
        }
    }

    fn counters(&self) -> Result<XdpCounters, XskError> {
        let read = |slot: u32| -> Result<u64, XskError> {
            // Per-CPU values come back as one 8-byte slot per possible CPU.
            let mut values = vec![0u64; self.ncpus];
            // SAFETY: `values` has room for ncpus u64 values, the per-CPU
            // layout of a u64 PERCPU_ARRAY lookup.
            let ret = unsafe {
                bpf::bpf_map_lookup_elem(
                    self.stats,
                    (&slot as *const u32).cast(),
                    values.as_mut_ptr().cast(),
                )
            };
            if ret != 0 {
                return Err(XskError::os(
                    "read XDP counters",
                    &self.label,
                    libbpf_error(ret.into()),
                ));
            }
            Ok(values.iter().sum())
        };
        Ok(XdpCounters {
            redirected: read(STAT_REDIRECTED)?,
            passed: read(STAT_PASSED)?,
            unclaimed: read(STAT_UNCLAIMED)?,
            fast: read(STAT_FAST)?,
            fast_sent: read(STAT_FAST_SENT)?,
        })
    }

    /// Turns the `settings[0]` bits `bit` on or off, the others kept.
    fn set_setting(&self, bit: u32, on: bool, op: &'static str) -> Result<(), XskError> {
        let mut flags = 0u32;
        // SAFETY: key and value are live u32s, the map's key and value types.
        let ret = unsafe {
            bpf::bpf_map_lookup_elem(
                self.settings,
                (&0u32 as *const u32).cast(),
                (&mut flags as *mut u32).cast(),
            )
        };
        if ret != 0 {
            return Err(XskError::os(op, &self.label, libbpf_error(ret.into())));
        }
        let flags = if on { flags | bit } else { flags & !bit };
        self.update(self.settings, &0u32, &flags, op)
    }

    /// Maps the kernel fast path's tables (`fast4` and `fast6`) into this process.
    pub(crate) fn map_fast(&self) -> Result<FastMap, XskError> {
        let v4 = self.map_table(self.fast4, FAST_BYTES)?;
        let v6 = match self.map_table(self.fast6, FAST6_BYTES) {
            Ok(v6) => v6,
            Err(e) => {
                // SAFETY: the mapping just made, of FAST_BYTES, unmapped once.
                unsafe { libc::munmap(v4.as_ptr(), FAST_BYTES) };
                return Err(e);
            }
        };
        Ok(FastMap {
            ptr: v4.cast(),
            ptr6: v6.cast(),
        })
    }

    /// A shared mapping of `len` bytes of the BPF_F_MMAPABLE array `fd`.
    fn map_table(&self, fd: RawFd, len: usize) -> Result<NonNull<libc::c_void>, XskError> {
        // SAFETY: a shared mapping of the map's fd, of its whole value area (an array
        // map made with BPF_F_MMAPABLE maps its values from offset 0); the kernel keeps
        // the map alive while the mapping exists, whatever happens to the fd.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(XskError::os(
                "map the fast path's table",
                &self.label,
                io::Error::last_os_error(),
            ));
        }
        Ok(NonNull::new(ptr).expect("mmap returned a mapping"))
    }

    /// Runs the program once on `frame` with BPF_PROG_TEST_RUN and returns
    /// the XDP action. For tests of the classification rules.
    #[cfg(test)]
    pub(crate) fn test_run(&self, frame: &[u8]) -> io::Result<u32> {
        self.test_run_out(frame).map(|(act, _)| act)
    }

    /// [`test_run`](Self::test_run), with the frame as the program left it.
    #[cfg(test)]
    pub(crate) fn test_run_out(&self, frame: &[u8]) -> io::Result<(u32, Vec<u8>)> {
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = bpf::bpf_test_run_opts {
            sz: std::mem::size_of::<bpf::bpf_test_run_opts>() as _,
            data_in: frame.as_ptr().cast(),
            data_size_in: frame.len() as u32,
            data_out: out.as_mut_ptr().cast(),
            data_size_out: out.len() as u32,
            repeat: 1,
            ..Default::default()
        };
        // SAFETY: `opts` points at buffers that outlive the call, sized as stated.
        let ret = unsafe { bpf::bpf_prog_test_run_opts(self.prog_fd, &mut opts) };
        if ret != 0 {
            return Err(libbpf_error(ret.into()));
        }
        out.truncate(opts.data_size_out as usize);
        Ok((opts.retval, out))
    }
}

/// Opens `elf`, loads it into the kernel and finds its program `prog`: the steps every uvs
/// XDP object (the balancer's and the member filter, `crate::member`) goes through. On
/// success the caller owns the object and closes it with `bpf_object__close`. A program
/// named in `optional` that the kernel refuses (an older kernel without one of its
/// helpers) is left out, with a warning, and the object loaded without it; its fd is then
/// negative.
pub(crate) fn open_and_load(
    elf: &'static [u8],
    prog: &str,
    label: &str,
    optional: Option<&str>,
    reuse: &[(&str, RawFd)],
) -> Result<(NonNull<bpf::bpf_object>, RawFd), XskError> {
    crate::libbpf_log::route_to_log();
    sys::raise_memlock();
    let obj = match load_object(elf, prog, label, None, reuse) {
        Err(XskError::ProgramLoad(e)) if optional.is_some() => {
            let left_out = optional.unwrap_or_default();
            let obj = load_object(elf, prog, label, optional, reuse)?;
            log::warn!("{label}: {left_out} left out, the kernel refused it: {e}");
            obj
        }
        other => other?,
    };
    match program_fd(obj, prog) {
        Ok(fd) => Ok((obj, fd)),
        Err(e) => {
            // SAFETY: `obj` came from a successful load, is closed once here and never
            // used after.
            unsafe { bpf::bpf_object__close(obj.as_ptr()) };
            Err(e)
        }
    }
}

/// Opens `elf` and loads it, without the program `skip` if one is named, its maps named in
/// `reuse` being those maps (by fd) instead of new ones.
fn load_object(
    elf: &'static [u8],
    prog: &str,
    label: &str,
    skip: Option<&str>,
    reuse: &[(&str, RawFd)],
) -> Result<NonNull<bpf::bpf_object>, XskError> {
    let name = CString::new(prog).expect("program names have no NUL");
    let opts = bpf::bpf_object_open_opts {
        sz: std::mem::size_of::<bpf::bpf_object_open_opts>() as _,
        object_name: name.as_ptr(),
        ..Default::default()
    };
    // SAFETY: the buffer is a 'static ELF image and `opts` (with `name`)
    // outlives the call; libbpf copies what it keeps.
    let raw = unsafe { bpf::bpf_object__open_mem(elf.as_ptr().cast(), elf.len() as _, &opts) };
    let obj = NonNull::new(raw).ok_or_else(|| XskError::ProgramLoad(io::Error::last_os_error()))?;
    let close = |e: XskError| {
        // SAFETY: `obj` came from a successful open, is closed once here and never used
        // after.
        unsafe { bpf::bpf_object__close(obj.as_ptr()) };
        Err(e)
    };
    for &(map, fd) in reuse {
        let c = CString::new(map).expect("map names have no NUL");
        // SAFETY: `obj` is open, not loaded; the name is a valid C string.
        let m = unsafe { bpf::bpf_object__find_map_by_name(obj.as_ptr(), c.as_ptr()) };
        // SAFETY: `m` (when not null) belongs to the open object, not loaded; libbpf dups
        // `fd` and takes that map's definition for this one. A map of another shape is
        // then refused by the verifier at the load (where the program reads it).
        let ret = if m.is_null() {
            -libc::ENOENT
        } else {
            unsafe { bpf::bpf_map__reuse_fd(m, fd) }
        };
        if ret != 0 {
            return close(XskError::ProgramLoad(io::Error::other(format!(
                "cannot take over the map {map}: {}",
                libbpf_error(ret.into())
            ))));
        }
    }
    if let Some(skip) = skip {
        let c = CString::new(skip).expect("program names have no NUL");
        // SAFETY: `obj` is open, not loaded; the name is a valid C string.
        let p = unsafe { bpf::bpf_object__find_program_by_name(obj.as_ptr(), c.as_ptr()) };
        // SAFETY: `p` (when not null) belongs to the open object.
        if !p.is_null() && unsafe { bpf::bpf_program__set_autoload(p, false) } != 0 {
            return close(XskError::ProgramLoad(io::Error::other(format!(
                "cannot leave {skip} out"
            ))));
        }
    }
    // SAFETY: `obj` came from a successful open and is not shared yet.
    let ret = unsafe { bpf::bpf_object__load(obj.as_ptr()) };
    if ret != 0 {
        let e = libbpf_error(ret.into());
        log::debug!("{label}: loading {prog} failed");
        return close(match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => XskError::Permission {
                op: "load the XDP program",
            },
            _ => XskError::ProgramLoad(e),
        });
    }
    Ok(obj)
}

/// The fd of the program `prog` of a loaded object.
pub(crate) fn program_fd(obj: NonNull<bpf::bpf_object>, prog: &str) -> Result<RawFd, XskError> {
    let name = CString::new(prog).expect("program names have no NUL");
    // SAFETY: `obj` is loaded; the name is a valid C string.
    let p = unsafe { bpf::bpf_object__find_program_by_name(obj.as_ptr(), name.as_ptr()) };
    if p.is_null() {
        return Err(XskError::ProgramLoad(io::Error::other(format!(
            "program {prog} missing from the object"
        ))));
    }
    // SAFETY: `p` belongs to the loaded object.
    Ok(unsafe { bpf::bpf_program__fd(p) })
}

/// The fd of the map `name` of a loaded object.
pub(crate) fn map_fd(obj: NonNull<bpf::bpf_object>, name: &str) -> Result<RawFd, XskError> {
    let c = CString::new(name).expect("map names have no NUL");
    // SAFETY: `obj` is loaded; the name is a valid C string.
    let fd = unsafe { bpf::bpf_object__find_map_fd_by_name(obj.as_ptr(), c.as_ptr()) };
    if fd < 0 {
        return Err(XskError::ProgramLoad(io::Error::other(format!(
            "map {name} missing from the object"
        ))));
    }
    Ok(fd)
}

/// CPUs a per-CPU map has a slot for.
pub(crate) fn possible_cpus() -> Result<usize, XskError> {
    // SAFETY: no preconditions; reads /sys/devices/system/cpu/possible.
    let ncpus = unsafe { bpf::libbpf_num_possible_cpus() };
    if ncpus <= 0 {
        return Err(XskError::ProgramLoad(libbpf_error(ncpus.into())));
    }
    Ok(ncpus as usize)
}

impl Drop for LoadedObject {
    fn drop(&mut self) {
        // SAFETY: `obj` came from bpf_object__open_mem and is closed once; this
        // closes the program and map fds, which nothing uses after drop.
        unsafe { bpf::bpf_object__close(self.obj.as_ptr()) };
    }
}

/// The uvs XDP program attached to one interface.
///
/// Steers to the AF_XDP socket of the receiving queue: ARP for owned IPv4
/// addresses; IPv4/IPv6 to owned addresses; packets from real servers to
/// anything but the host's own addresses (replies of NATed flows); IPv6
/// neighbour solicitations/advertisements about owned addresses. Everything
/// else, including other NDP and IPv6 link-local/multicast, passes to the
/// kernel. Detaches on drop (and on process death: it is a BPF link).
pub struct XdpProgram {
    /// `uvs_fast_tc` at the interface's TC ingress, and the keys of `fast_routes`
    /// ([`XdpProgram::set_fast_routes`]).
    tc: std::sync::Mutex<FastSend>,
    // Declared before `object` so the links are closed (detached) first.
    link: OwnedFd,
    object: LoadedObject,
    ifname: String,
    ifindex: u32,
    mode: XdpMode,
}

impl XdpProgram {
    /// Loads a fresh copy of the program and attaches it to `ifname` in the
    /// calling thread's network namespace. `mode()` reports the mode it got.
    pub fn attach(ifname: &str, mode: XdpMode) -> Result<Self, XskError> {
        Self::attach_with(ifname, mode, &[])
    }

    /// [`attach`](Self::attach) to an interface made again (another index), taking over
    /// three maps of `old`, the program of the interface it replaces: its counters, which go
    /// on from where they were ([`Self::counters`]; a counter that went back to 0 would
    /// read as a restart), and the kernel fast path's two tables, whose lines the workers
    /// wrote and whose mappings ([`Self::fast_table`]) stay good. Everything else starts empty,
    /// as with `attach`.
    pub fn attach_in_place_of(
        ifname: &str,
        mode: XdpMode,
        old: &XdpProgram,
    ) -> Result<Self, XskError> {
        let o = &old.object;
        Self::attach_with(
            ifname,
            mode,
            &[("stats", o.stats), ("fast4", o.fast4), ("fast6", o.fast6)],
        )
    }

    fn attach_with(ifname: &str, mode: XdpMode, reuse: &[(&str, RawFd)]) -> Result<Self, XskError> {
        let ifindex = sys::ifindex(ifname)?;
        let object = LoadedObject::load(ifname, reuse)?;
        let (link, got) = match mode {
            XdpMode::Native => (
                link_create(object.prog_fd, ifname, ifindex, XdpMode::Native)?,
                XdpMode::Native,
            ),
            XdpMode::Generic => (
                link_create(object.prog_fd, ifname, ifindex, XdpMode::Generic)?,
                XdpMode::Generic,
            ),
            XdpMode::Auto => match link_create(object.prog_fd, ifname, ifindex, XdpMode::Native) {
                Ok(link) => (link, XdpMode::Native),
                Err(e @ (XskError::ProgramBusy { .. } | XskError::Permission { .. })) => {
                    return Err(e)
                }
                Err(e) => {
                    log::warn!("{ifname}: native XDP refused ({e}); falling back to generic mode");
                    (
                        link_create(object.prog_fd, ifname, ifindex, XdpMode::Generic)?,
                        XdpMode::Generic,
                    )
                }
            },
        };
        log::info!("{ifname}: uvs XDP program attached in {got:?} mode");
        Ok(Self {
            tc: std::sync::Mutex::new(FastSend::default()),
            link,
            object,
            ifname: ifname.to_string(),
            ifindex,
            mode: got,
        })
    }

    /// The mode the program actually runs in (`Native` or `Generic`).
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// The interface the program is attached to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Its index (in the namespace it was attached in).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The fd of the BPF link (for diagnostics; closing it detaches).
    pub fn link_fd(&self) -> RawFd {
        self.link.as_raw_fd()
    }

    /// Claims a VIP or one of uvs's own local/FullNAT addresses: traffic to
    /// it (and ARP / NDP about it) goes to the socket.
    pub fn add_owned(&self, addr: IpAddr) -> Result<(), XskError> {
        let o = &self.object;
        o.set_addr((o.owned4, o.owned6), addr, true, "add an owned address")
    }

    /// Gives an owned address back to the kernel.
    pub fn remove_owned(&self, addr: IpAddr) -> Result<(), XskError> {
        let o = &self.object;
        o.set_addr((o.owned4, o.owned6), addr, false, "remove an owned address")
    }

    /// Declares a real server: its packets to non-host addresses are
    /// replies of balanced flows and go to the socket.
    pub fn add_real(&self, addr: IpAddr) -> Result<(), XskError> {
        let o = &self.object;
        o.set_addr((o.reals4, o.reals6), addr, true, "add a real server")
    }

    /// Forgets a real server.
    pub fn remove_real(&self, addr: IpAddr) -> Result<(), XskError> {
        let o = &self.object;
        o.set_addr((o.reals4, o.reals6), addr, false, "remove a real server")
    }

    /// Declares a service a real server serves: its packets from `port` (0: any port, for
    /// a port-0 service) of protocol `proto` are replies of balanced flows. Packets from
    /// other ports are the server's own traffic and go to the kernel.
    pub fn add_real_port(&self, addr: IpAddr, proto: u8, port: u16) -> Result<(), XskError> {
        self.object.set_real_port(addr, proto, port, true)
    }

    /// Forgets a service port of a real server.
    pub fn remove_real_port(&self, addr: IpAddr, proto: u8, port: u16) -> Result<(), XskError> {
        self.object.set_real_port(addr, proto, port, false)
    }

    /// Declares one of the kernel's own addresses on this box: real-server
    /// traffic to it (health-check replies, ssh) stays with the kernel.
    pub fn add_host(&self, addr: IpAddr) -> Result<(), XskError> {
        let o = &self.object;
        o.set_addr((o.host4, o.host6), addr, true, "add a host address")
    }

    /// Forgets a host address.
    pub fn remove_host(&self, addr: IpAddr) -> Result<(), XskError> {
        let o = &self.object;
        o.set_addr((o.host4, o.host6), addr, false, "remove a host address")
    }

    /// Claims a firewall mark's destination prefix: packets to it (not to a host address)
    /// whose protocol and destination port fall in one of `ranges` (at most
    /// [`MARK_RANGES`]) go to the socket. Replaces what the prefix had.
    pub fn add_mark(&self, prefix: IpAddr, len: u8, ranges: &[MarkRange]) -> Result<(), XskError> {
        self.object.set_mark(prefix, len, Some(ranges))
    }

    /// Gives a firewall mark's destination prefix back to the kernel.
    pub fn remove_mark(&self, prefix: IpAddr, len: u8) -> Result<(), XskError> {
        self.object.set_mark(prefix, len, None)
    }

    /// Puts an AF_XDP socket's fd into the XSKMAP at `queue`, so frames the
    /// program claims on that receive queue reach it.
    pub fn register_socket(&self, queue: u32, fd: RawFd) -> Result<(), XskError> {
        if queue >= XSKMAP_SLOTS {
            return Err(XskError::QueueBeyondMap(queue));
        }
        let fd = fd as u32;
        self.object
            .update(self.object.xsks, &queue, &fd, "register the AF_XDP socket")
    }

    /// Empties the XSKMAP slot of `queue`: claimed frames fall back to the kernel.
    pub fn unregister_socket(&self, queue: u32) -> Result<(), XskError> {
        if queue >= XSKMAP_SLOTS {
            return Err(XskError::QueueBeyondMap(queue));
        }
        self.object
            .delete(self.object.xsks, &queue, "unregister the AF_XDP socket")
    }

    /// Baseline mode: every frame goes to the socket (the l2fwd ceiling).
    /// Never for the balancer itself: the host would become unreachable.
    pub fn set_redirect_all(&self, on: bool) -> Result<(), XskError> {
        self.object
            .set_setting(SETTING_REDIRECT_ALL, on, "set redirect-all")
    }

    /// Turns the kernel fast path on or off: frames of the flows in [`Self::fast_table`]
    /// are rewritten here and forwarded by the kernel (`workers.kernel_fast_path`).
    pub fn set_fast_path(&self, on: bool) -> Result<(), XskError> {
        self.object
            .set_setting(SETTING_FAST_PATH, on, "set the kernel fast path")
    }

    /// Turns the kernel fast path's IPv6 half on or off (with [`Self::set_fast_path`] on):
    /// IPv6 frames of the flows in [`Self::fast_table`] are rewritten here and sent on by the
    /// TC program ([`Self::set_fast_routes`]) or, without a route of uvs's, forwarded by the
    /// kernel, which needs IPv6 forwarding on. Off, IPv6 frames go the usual way whatever
    /// the IPv6 lines say.
    pub fn set_fast_path6(&self, on: bool) -> Result<(), XskError> {
        self.object
            .set_setting(SETTING_FAST_PATH6, on, "set the kernel fast path for IPv6")
    }

    /// Sends the fast path's frames on from this interface's TC ingress by `routes` and
    /// `routes6` (uvs's own IPv4 and IPv6 routes, as the workers route), past the kernel's
    /// IP forwarding (`uvs_fast_tc` in uvs_xdp.c: the TTL or hop limit taken down, the next
    /// hop's MAC from the kernel's neighbours), attaching that program the first time; a
    /// frame whose destination has no route here is forwarded by the kernel. No routes:
    /// every frame is again.
    pub fn set_fast_routes(
        &self,
        routes: &[FastRoute],
        routes6: &[FastRoute6],
    ) -> Result<(), XskError> {
        const OP: &str = "set the fast path's routes";
        let mut tc = self.tc.lock().unwrap_or_else(|e| e.into_inner());
        let any = !routes.is_empty() || !routes6.is_empty();
        if any && self.object.tc_fd < 0 {
            return Err(XskError::ProgramLoad(io::Error::other(format!(
                "{TC_PROGRAM} is not loaded (this kernel refused it)"
            ))));
        }
        if any && tc.link.is_none() {
            let link = bpf_link(self.object.tc_fd, self.ifindex, bpf::BPF_TCX_INGRESS, 0)
                .map_err(|e| XskError::os("attach the fast path's TC program", &self.ifname, e))?;
            tc.link = Some(link);
        }
        // Marking off first, so no frame is marked for a route being changed.
        self.object.set_setting(SETTING_FAST_SEND, false, OP)?;
        let want: BTreeMap<RouteKey, RouteValue> = routes.iter().map(FastRoute::entry).collect();
        for k in tc.keys.iter().filter(|k| !want.contains_key(*k)) {
            self.object.delete(self.object.fast_routes, k, OP)?;
        }
        tc.keys = want.keys().copied().collect();
        for (k, v) in &want {
            self.object.update(self.object.fast_routes, k, v, OP)?;
        }
        let want6: BTreeMap<Route6Key, Route6Value> =
            routes6.iter().map(FastRoute6::entry).collect();
        for k in tc.keys6.iter().filter(|k| !want6.contains_key(*k)) {
            self.object.delete(self.object.fast_routes6, k, OP)?;
        }
        tc.keys6 = want6.keys().copied().collect();
        for (k, v) in &want6 {
            self.object.update(self.object.fast_routes6, k, v, OP)?;
        }
        self.object.set_setting(SETTING_FAST_SEND, any, OP)
    }

    /// The kernel fast path's tables (IPv4 and IPv6) of this interface, mapped into this
    /// process (each call maps them again; every mapping shows the same lines).
    pub fn fast_table(&self) -> Result<FastMap, XskError> {
        self.object.map_fast()
    }

    /// `(redirected, passed)`: frames handed to the socket and frames given
    /// to the kernel (including owned frames no socket was registered for).
    pub fn stats(&self) -> Result<(u64, u64), XskError> {
        let c = self.counters()?;
        Ok((c.redirected, c.passed + c.unclaimed))
    }

    /// All counters, with owned-but-unclaimed frames apart.
    pub fn counters(&self) -> Result<XdpCounters, XskError> {
        self.object.counters()
    }
}

/// One of uvs's IPv4 routes for the fast path's TC program ([`XdpProgram::set_fast_routes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastRoute {
    pub prefix: std::net::Ipv4Addr,
    pub len: u8,
    /// The interface the route leaves by.
    pub ifindex: u32,
    /// The gateway; `None`: the destination is on the link.
    pub via: Option<std::net::Ipv4Addr>,
    /// That interface's MTU: larger frames are left to the kernel.
    pub mtu: u16,
}

/// `struct fast_route_key` (an LPM trie key) and `struct fast_route` in uvs_xdp.c.
type RouteKey = [u32; 2];
type RouteValue = [u32; 3];

impl FastRoute {
    fn entry(&self) -> (RouteKey, RouteValue) {
        let len = self.len.min(32);
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        let addr = u32::from(self.prefix) & mask;
        let via = self.via.map_or(0, |v| u32::from_ne_bytes(v.octets()));
        (
            [u32::from(len), u32::from_ne_bytes(addr.to_be_bytes())],
            [self.ifindex, via, u32::from(self.mtu)],
        )
    }
}

/// One of uvs's IPv6 routes for the fast path's TC program ([`XdpProgram::set_fast_routes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastRoute6 {
    pub prefix: std::net::Ipv6Addr,
    pub len: u8,
    /// The interface the route leaves by.
    pub ifindex: u32,
    /// The gateway; `None`: the destination is on the link.
    pub via: Option<std::net::Ipv6Addr>,
    /// That interface's MTU: larger frames are left to the kernel.
    pub mtu: u16,
}

/// `struct fast_route6_key` (an LPM trie key) and `struct fast_route6` in uvs_xdp.c: the
/// addresses' bytes as they lie in the packet, in native-endian words.
type Route6Key = [u32; 5];
type Route6Value = [u32; 6];

impl FastRoute6 {
    fn entry(&self) -> (Route6Key, Route6Value) {
        let len = self.len.min(128);
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        let words = |a: [u8; 16]| -> [u32; 4] {
            std::array::from_fn(|i| {
                u32::from_ne_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]])
            })
        };
        let addr = words((u128::from(self.prefix) & mask).to_be_bytes());
        let via = self.via.map_or([0; 4], |v| words(v.octets()));
        (
            [u32::from(len), addr[0], addr[1], addr[2], addr[3]],
            [
                self.ifindex,
                via[0],
                via[1],
                via[2],
                via[3],
                u32::from(self.mtu),
            ],
        )
    }
}

/// The fast path's TC program, once attached, and the routes written for it.
#[derive(Default)]
struct FastSend {
    link: Option<OwnedFd>,
    keys: Vec<RouteKey>,
    keys6: Vec<Route6Key>,
}

/// A BPF link of program `prog_fd` to interface `ifindex` (`attach_type`, `flags`): it
/// detaches when its fd closes.
fn bpf_link(
    prog_fd: RawFd,
    ifindex: u32,
    attach_type: bpf::bpf_attach_type,
    flags: u32,
) -> io::Result<OwnedFd> {
    // SAFETY: all-zero is the documented "no options" value of this struct.
    let mut opts: bpf::bpf_link_create_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<bpf::bpf_link_create_opts>() as _;
    opts.flags = flags;
    // SAFETY: the program fd is live (owned by the caller's object) and `opts` outlives
    // the call.
    let ret = unsafe { bpf::bpf_link_create(prog_fd, ifindex as i32, attach_type, &opts) };
    if ret < 0 {
        return Err(libbpf_error(ret.into()));
    }
    // SAFETY: a non-negative return is a fresh fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// Bytes of the `fast4` array: its lines, page-aligned as they are.
const FAST_BYTES: usize = uvs_port::fast::LINES * std::mem::size_of::<FastLine>();
/// Bytes of the `fast6` array.
const FAST6_BYTES: usize = uvs_port::fast::LINES * std::mem::size_of::<FastLine6>();

/// The kernel fast path's tables (`fast4` and `fast6` in uvs_xdp.c) mapped into this
/// process: the lines the workers write and the program reads ([`uvs_port::fast`]).
pub struct FastMap {
    ptr: NonNull<FastLine>,
    ptr6: NonNull<FastLine6>,
}

// SAFETY: the mappings are shared memory that only the lines' atomics touch; they live
// until `Drop`, and the kernel's side of them (the program) uses atomic adds and a
// sequence word.
unsafe impl Send for FastMap {}
// SAFETY: see `Send`: every access through `&self` is atomic.
unsafe impl Sync for FastMap {}

impl FastTable for FastMap {
    fn lines(&self) -> &[FastLine] {
        // SAFETY: the mapping holds LINES lines of `FastLine`'s layout (`struct fast_line`,
        // 64 bytes, checked in uvs-port), zero-filled by the kernel at creation, which is a
        // valid `FastLine`; it stays mapped while `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), uvs_port::fast::LINES) }
    }

    fn lines6(&self) -> &[FastLine6] {
        // SAFETY: as `lines`, for `FastLine6` (`struct fast_line6`, 128 bytes, checked in
        // uvs-port).
        unsafe { std::slice::from_raw_parts(self.ptr6.as_ptr(), uvs_port::fast::LINES) }
    }
}

impl Drop for FastMap {
    fn drop(&mut self) {
        // SAFETY: the mappings made in `map_fast`, of FAST_BYTES and FAST6_BYTES, unmapped
        // once.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), FAST_BYTES);
            libc::munmap(self.ptr6.as_ptr().cast(), FAST6_BYTES);
        }
    }
}

pub(crate) fn link_create(
    prog_fd: RawFd,
    ifname: &str,
    ifindex: u32,
    mode: XdpMode,
) -> Result<OwnedFd, XskError> {
    let flags = match mode {
        XdpMode::Generic => bpf::XDP_FLAGS_SKB_MODE,
        _ => bpf::XDP_FLAGS_DRV_MODE,
    };
    bpf_link(prog_fd, ifindex, bpf::BPF_XDP, flags).map_err(|e| match e.raw_os_error() {
        Some(libc::EBUSY) | Some(libc::EEXIST) => XskError::ProgramBusy {
            ifname: ifname.to_string(),
        },
        Some(libc::ERANGE) => XskError::MtuTooLarge {
            ifname: ifname.to_string(),
        },
        _ => XskError::os(
            if mode == XdpMode::Generic {
                "attach XDP in generic mode"
            } else {
                "attach XDP in native mode"
            },
            ifname,
            e,
        ),
    })
}

#[cfg(test)]
#[path = "program_tests.rs"]
mod tests;
