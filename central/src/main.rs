// Ingest allocates many small, short-lived strings per series (decoded labels); mimalloc
// cuts the allocator's share of receive CPU (docs/BENCHMARKS.md, remote_write receive).
// It is built without transparent huge pages (feature `no_thp`): with them, every 2 MiB a
// purged arena range was faulted back in was zeroed and counted whole in RSS, ~40 % of the
// edge's peak RSS and ~6 % of its CPU (docs/BENCHMARKS.md, side by side).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    fedwatch_tier::main(fedwatch_tier::Tier::Central)
}
