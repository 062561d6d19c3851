fn main() -> std::process::ExitCode {
    snaptastic::main(Vec::new())
}
