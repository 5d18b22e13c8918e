//! Data parallelism for one request: a slice is cut into as many contiguous parts as there
//! are CPUs (but no part smaller than a minimum), the parts are mapped on rayon's pool, and
//! the results are joined in order. Small inputs stay on the caller's thread, so the cost is
//! paid only where a request's work (thousands of series) dwarfs handing a part over. The
//! pool's threads live as long as the process, so their allocator caches stay warm across
//! requests (threads started per request made every query fault in fresh pages).

use rayon::prelude::*;

/// CPUs this process may use (the size of rayon's pool).
pub fn cpus() -> usize {
    rayon::current_num_threads()
}

/// Maps each part of `items` with `f` in parallel and concatenates the results in order;
/// parts hold at least `min_part` items.
pub fn map_parts<T: Sync, R: Send>(items: &[T], min_part: usize, f: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    let parts = cpus().min(items.len() / min_part.max(1)).max(1);
    if parts == 1 {
        return f(items);
    }
    let size = items.len().div_ceil(parts);
    let done: Vec<Vec<R>> = items.par_chunks(size).map(&f).collect();
    let mut out = Vec::with_capacity(done.iter().map(Vec::len).sum());
    for mut part in done {
        out.append(&mut part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_keep_order_and_every_item() {
        for (len, min) in [(0, 1), (1, 1), (7, 1), (1000, 10), (1001, 3), (5, 100)] {
            let items: Vec<usize> = (0..len).collect();
            let out = map_parts(&items, min, |part| part.iter().map(|x| x * 2).collect());
            assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>(), "len {len} min {min}");
        }
    }

    #[test]
    fn small_inputs_stay_on_the_callers_thread() {
        let me = std::thread::current().id();
        let out = map_parts(&[1, 2, 3], 10, |part| part.iter().map(|_| std::thread::current().id()).collect());
        assert!(out.iter().all(|id| *id == me));
    }
}
