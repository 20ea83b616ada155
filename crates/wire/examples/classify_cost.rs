//! Per-packet cost of the fast path, as ratios against copying the frame (style rule 14: one
//! run, ours vs a baseline). `cargo run --release -p uvs-wire --example classify_cost`.

use std::hint::black_box;
use std::time::Instant;

use uvs_wire::{
    checksum, classify, set_dst_addr, set_dst_port, set_src_addr, Classified, Ipv4Packet, TcpPacket,
};

/// 64-byte-class IPv4 TCP SYN frame with valid checksums.
fn frame() -> Vec<u8> {
    let mut f = vec![
        2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00, // Ethernet
        0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 2, 198, 18, 100, 1, // IPv4
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0, // TCP
        0, 0, 0, 0, 0, 0,
    ];
    Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
    let pseudo = checksum::pseudo_header_v4(&[198, 18, 0, 2], &[198, 18, 100, 1], 6, 20);
    TcpPacket::new_unchecked(&mut f[34..54]).fill_checksum(pseudo);
    f
}

fn time<F: FnMut()>(iters: u64, mut f: F) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

fn main() {
    let f = frame();
    let mut buf = f.clone();
    let n = 20_000_000;
    let copy = time(n, || {
        buf.copy_from_slice(black_box(&f));
        black_box(&buf);
    });
    let cls = time(n, || {
        black_box(classify(black_box(&f)).ok());
    });
    let rs = [198, 18, 1, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let nat = time(n, || {
        buf.copy_from_slice(black_box(&f));
        if let Ok(Classified::Ip(mut p)) = classify(&buf) {
            set_dst_addr(&mut buf, &mut p, &rs);
            set_dst_port(&mut buf, &mut p, 8080);
            set_src_addr(&mut buf, &mut p, black_box(&rs));
        }
        black_box(&buf);
    });
    println!("copy 60 B frame      {copy:6.2} ns/packet (baseline)");
    println!(
        "classify             {cls:6.2} ns/packet ({:.1}x copy)",
        cls / copy
    );
    println!(
        "copy+classify+3 NAT  {nat:6.2} ns/packet ({:.1}x copy)",
        nat / copy
    );
}
