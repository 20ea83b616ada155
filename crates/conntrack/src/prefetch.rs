//! Software prefetch: asks the core to start loading a cache line and returns at once.
//!
//! The burst lookup used to "prefetch" with plain loads (no `unsafe` needed), but a load
//! occupies a reorder-buffer entry until its miss returns, so 32 keys' worth of misses
//! filled the window and the next pass waited; and on insert a load issued before the
//! index CAS (a locked instruction, a full fence on x86) must complete before the CAS does.
//! A prefetch instruction retires immediately and is ordered by nothing, which is what lets
//! the misses overlap with useful work (DPDK's `rte_hash` bulk lookup and VPP prefetch the
//! same way).
//!
//! The second `unsafe` of the crate (besides `hugepage.rs`): `_mm_prefetch` is an intrinsic
//! with a target feature, hence `unsafe` to call, but it never faults, reads nothing into
//! the program and writes nothing — it is a hint, and the pointer comes from a reference.
#![allow(unsafe_code)]

/// Starts loading the cache line holding `x` for one read soon (`_MM_HINT_NTA`: into the
/// first-level cache, kept out of the outer ones where the core allows). For the lines a
/// lookup reads once, at a table far larger than the caches: each would otherwise push a
/// line the next packets need (a class record, a frame, an entry) out of the second
/// level. At 1 000 000 flows the lookup's bucket prefetched so cost 0.6–2.8 ns a packet
/// less in three alternating runs (bench/README.md, "A shorter class replay").
#[inline(always)]
pub fn prefetch_once<T>(x: &T) {
    hint::<true, T>(x);
}

/// Starts loading the cache line holding `x` into all cache levels. No effect on other
/// architectures than x86-64 (where the loads themselves then miss, as before).
#[inline(always)]
pub fn prefetch<T>(x: &T) {
    hint::<false, T>(x);
}

/// The prefetch instruction: `ONCE`, the non-temporal hint, else the all-levels one.
#[inline(always)]
fn hint<const ONCE: bool, T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint with no architectural effect; SSE is part of the x86-64
    // baseline, and `x` is a valid reference (a prefetch of any address would be sound).
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_NTA, _MM_HINT_T0};
        let p = x as *const T as *const i8;
        if ONCE {
            _mm_prefetch::<_MM_HINT_NTA>(p);
        } else {
            _mm_prefetch::<_MM_HINT_T0>(p);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}
