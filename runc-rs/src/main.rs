fn main() {
    eprintln!("runc-rs: not implemented yet");
    std::process::exit(1);
}
