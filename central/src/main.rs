// Ingest allocates many small, short-lived strings per series (decoded labels); mimalloc
// cuts the allocator's share of receive CPU (docs/BENCHMARKS.md, remote_write receive).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    fedwatch_tier::main(fedwatch_tier::Tier::Central)
}
