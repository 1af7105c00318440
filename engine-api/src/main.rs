fn main() {
    eprintln!("engine-api: not implemented yet");
    std::process::exit(1);
}
