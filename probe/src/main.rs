//! A static probe that runs inside a container and reports what it sees as JSON.
fn main() {
    println!("{{}}");
}
