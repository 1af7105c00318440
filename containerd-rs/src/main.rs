fn main() {
    eprintln!("containerd-rs: not implemented yet");
    std::process::exit(1);
}
