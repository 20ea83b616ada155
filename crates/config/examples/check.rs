//! `cargo run --example check -- FILE`: validate a config and print it back as saved YAML.
fn main() {
    let path = std::env::args().nth(1).expect("usage: check FILE");
    match uvs_config::load_file(std::path::Path::new(&path)) {
        Ok(c) => print!("{}", uvs_config::to_yaml(&c)),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
