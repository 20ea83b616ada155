//! Routes libbpf's messages — including the verifier log when a load fails —
//! to the `log` crate (target `libbpf`), so they land with uvsd's other logs
//! instead of on raw stderr. x86_64 only: there libbpf's `va_list` argument
//! is a pointer to one `__va_list_tag` that `vsnprintf` accepts as is; other
//! targets keep libbpf's default printer.

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::{
        ffi::CStr,
        os::raw::{c_char, c_int},
        sync::Once,
    };

    use libbpf_sys as bpf;

    extern "C" {
        /// C99 `vsnprintf`, declared with the `va_list` type libbpf-sys uses.
        fn vsnprintf(
            buf: *mut c_char,
            size: usize,
            fmt: *const c_char,
            ap: *mut bpf::__va_list_tag,
        ) -> c_int;
    }

    /// Verifier logs run to tens of KiB; longer messages are truncated.
    const MAX_MESSAGE: usize = 64 * 1024;

    unsafe extern "C" fn forward(
        level: bpf::libbpf_print_level,
        fmt: *const c_char,
        ap: *mut bpf::__va_list_tag,
    ) -> c_int {
        if level == bpf::LIBBPF_DEBUG && !log::log_enabled!(target: "libbpf", log::Level::Debug) {
            return 0;
        }
        let mut buf = vec![0 as c_char; MAX_MESSAGE];
        // SAFETY: libbpf passes a printf format and its matching va_list,
        // consumed exactly once here; `buf` has room for MAX_MESSAGE bytes
        // and vsnprintf always NUL-terminates within them.
        let n = unsafe { vsnprintf(buf.as_mut_ptr(), buf.len(), fmt, ap) };
        if n < 0 {
            return n;
        }
        // SAFETY: vsnprintf NUL-terminated the buffer.
        let msg = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
        let msg = msg.trim_end();
        match level {
            bpf::LIBBPF_WARN => log::warn!(target: "libbpf", "{msg}"),
            bpf::LIBBPF_INFO => log::info!(target: "libbpf", "{msg}"),
            _ => log::debug!(target: "libbpf", "{msg}"),
        }
        n
    }

    pub(crate) fn route_to_log() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            // SAFETY: `forward` matches libbpf_print_fn_t and is 'static.
            unsafe { bpf::libbpf_set_print(Some(forward)) };
        });
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use imp::route_to_log;

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn route_to_log() {}
