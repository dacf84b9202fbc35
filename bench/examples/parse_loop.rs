//! Runs the parser over the corpus in a loop, for profilers: `perf record cargo run --release
//! -p mgw-bench --example parse_loop -- typed 200000`.
use mgw_core::sip::Message;
fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "typed".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let corpus = mgw_bench::sip_corpus();
    let mut sink = 0usize;
    for _ in 0..n {
        for (_, b) in &corpus {
            let Ok(m) = Message::parse(b) else { continue };
            sink += m.header_count();
            if mode == "typed" {
                sink += m.top_via().map_or(0, |v| v.host.len())
                    + m.from().map_or(0, |f| f.uri.host.len())
                    + m.to().map_or(0, |t| t.uri.host.len())
                    + m.cseq().map_or(0, |c| c.seq as usize)
                    + m.call_id().map_or(0, str::len);
            }
        }
    }
    println!("{sink}");
}
