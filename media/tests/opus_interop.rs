//! Interoperability of the Opus codec (`mgw_media::codec::opus`, a pure-Rust port) with the
//! reference C libopus, which is what the phones and gateways at the other end of a call run.
//!
//! libopus is loaded at run time with `dlopen("libopus.so.0")` (Debian package `libopus0`, no
//! headers needed), so this binary builds and links on a machine without it; there the interop
//! tests print that they were skipped and pass. `scripts/install-peers.sh` installs it;
//! `MGW_LIBOPUS=/path/to/libopus.so` compares against another build.
//!
//! Thresholds are the SNRs measured with libopus 1.3.1 (Debian 12) minus 3 dB; see
//! `THRESHOLDS`. A 1 kHz tone through a speech codec at speech bitrates is not transparent,
//! and at 8 and 16 kHz Opus runs SILK, a predictive coder that keeps the pitch and spectrum
//! rather than the waveform, hence about 20 dB there.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::NonNull;
use std::sync::OnceLock;

use mgw_media::codec::opus::{
    OpusConfig, OpusDecoder, OpusEncoder, OpusError, MAX_PACKET_BYTES, PTIMES_MS, SAMPLE_RATES,
};

// ---------------------------------------------------------------------------------------------
// Heap accounting for the measurement test: per thread, so tests running in parallel do not
// count each other's allocations.

struct Counting;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count(bytes: isize, allocations: usize) {
    // try_with: allocations while the thread's locals are being torn down are not counted.
    let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + bytes));
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + allocations));
}

// SAFETY: every method forwards its arguments unchanged to the system allocator, so this
// allocator meets GlobalAlloc's contract exactly when System does; the counting touches only
// const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize, 1);
        // SAFETY: the caller upholds alloc's contract (non-zero size), which System needs.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize, 1);
        // SAFETY: as for alloc.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize), 0);
        // SAFETY: ptr came from this allocator, i.e. from System, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize, 1);
        // SAFETY: ptr came from System with this layout; the caller upholds new_size's rules.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn heap_counters() -> (isize, usize) {
    (LIVE_BYTES.with(Cell::get), ALLOCATIONS.with(Cell::get))
}

// ---------------------------------------------------------------------------------------------
// The reference libopus, through dlopen.

const OPUS_APPLICATION_VOIP: c_int = 2048;
const OPUS_SET_BITRATE_REQUEST: c_int = 4002;
const OPUS_SET_COMPLEXITY_REQUEST: c_int = 4010;
const OPUS_SET_INBAND_FEC_REQUEST: c_int = 4012;
const OPUS_SET_DTX_REQUEST: c_int = 4016;

type EncoderCreate = unsafe extern "C" fn(i32, c_int, c_int, *mut c_int) -> *mut c_void;
type EncoderCtl = unsafe extern "C" fn(*mut c_void, c_int, ...) -> c_int;
type Encode = unsafe extern "C" fn(*mut c_void, *const i16, c_int, *mut u8, i32) -> i32;
type DecoderCreate = unsafe extern "C" fn(i32, c_int, *mut c_int) -> *mut c_void;
type Decode = unsafe extern "C" fn(*mut c_void, *const u8, i32, *mut i16, c_int, c_int) -> c_int;
type Destroy = unsafe extern "C" fn(*mut c_void);
type VersionString = unsafe extern "C" fn() -> *const c_char;

/// The library's entry points. The library is never closed: the pointers stay valid for the
/// life of the process.
struct RefOpus {
    encoder_create: EncoderCreate,
    encoder_ctl: EncoderCtl,
    encode: Encode,
    encoder_destroy: Destroy,
    decoder_create: DecoderCreate,
    decode: Decode,
    decoder_destroy: Destroy,
    version: String,
}

/// Looks `name` up in `handle` and returns it as a function pointer of type `F`.
///
/// # Safety
/// `F` must be an `extern "C"` function pointer type matching the symbol's C prototype.
unsafe fn symbol<F: Copy>(handle: *mut c_void, name: &CStr) -> F {
    // SAFETY: handle is a live dlopen handle and name is NUL-terminated.
    let ptr = unsafe { libc::dlsym(handle, name.as_ptr()) };
    assert!(!ptr.is_null(), "libopus.so.0 has no {name:?}");
    assert_eq!(size_of::<F>(), size_of::<*mut c_void>());
    // SAFETY: ptr is the address of the function `name`, and the caller promises F is its
    // prototype; on the platforms dlsym exists on, function and data pointers have one size.
    unsafe { std::mem::transmute_copy::<*mut c_void, F>(&ptr) }
}

fn ref_opus() -> Option<&'static RefOpus> {
    static LIB: OnceLock<Option<RefOpus>> = OnceLock::new();
    LIB.get_or_init(|| {
        // Another build (say a local libopus 1.5) can be compared by path.
        let name = std::env::var("MGW_LIBOPUS").unwrap_or_else(|_| "libopus.so.0".into());
        let name = std::ffi::CString::new(name).expect("MGW_LIBOPUS contains a NUL byte");
        // SAFETY: dlopen takes a NUL-terminated name; loading libopus runs no initialisers
        // with preconditions.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW) };
        if handle.is_null() {
            return None;
        }
        // SAFETY: each type alias above is transcribed from the prototype in opus.h of the
        // same name (opus_int32 = i32, opus_int16 = i16, unsigned char = u8).
        unsafe {
            let version: VersionString = symbol(handle, c"opus_get_version_string");
            Some(RefOpus {
                encoder_create: symbol(handle, c"opus_encoder_create"),
                encoder_ctl: symbol(handle, c"opus_encoder_ctl"),
                encode: symbol(handle, c"opus_encode"),
                encoder_destroy: symbol(handle, c"opus_encoder_destroy"),
                decoder_create: symbol(handle, c"opus_decoder_create"),
                decode: symbol(handle, c"opus_decode"),
                decoder_destroy: symbol(handle, c"opus_decoder_destroy"),
                // The version string is static in the library.
                version: CStr::from_ptr(version()).to_string_lossy().into_owned(),
            })
        }
    })
    .as_ref()
}

fn ref_opus_or_skip(test: &str) -> Option<&'static RefOpus> {
    let lib = ref_opus();
    match lib {
        Some(lib) => println!("{test}: reference {}", lib.version),
        None => println!("{test}: skipped: libopus.so.0 not installed (apt-get install libopus0)"),
    }
    lib
}

struct RefEncoder {
    lib: &'static RefOpus,
    st: NonNull<c_void>,
}

impl RefEncoder {
    /// The same settings `OpusEncoder` uses for `OpusConfig::new(rate)`.
    fn new(lib: &'static RefOpus, config: &OpusConfig) -> Self {
        let mut err: c_int = 0;
        // SAFETY: plain values and a valid out-pointer for the error code.
        let st = unsafe {
            (lib.encoder_create)(
                config.sample_rate as i32,
                1,
                OPUS_APPLICATION_VOIP,
                &mut err,
            )
        };
        let st = NonNull::new(st).unwrap_or_else(|| panic!("opus_encoder_create: {err}"));
        let settings = [
            (OPUS_SET_BITRATE_REQUEST, config.bitrate as c_int),
            (OPUS_SET_COMPLEXITY_REQUEST, c_int::from(config.complexity)),
            (OPUS_SET_INBAND_FEC_REQUEST, c_int::from(config.fec)),
            (OPUS_SET_DTX_REQUEST, c_int::from(config.dtx)),
        ];
        for (request, value) in settings {
            // SAFETY: st is a live encoder; these SET requests take exactly one opus_int32.
            let rc = unsafe { (lib.encoder_ctl)(st.as_ptr(), request, value) };
            assert_eq!(rc, 0, "opus_encoder_ctl({request}, {value})");
        }
        Self { lib, st }
    }

    fn encode(&mut self, pcm: &[i16]) -> Vec<u8> {
        let mut out = vec![0u8; MAX_PACKET_BYTES];
        // SAFETY: st is live; pcm holds frame_size mono samples; out has MAX_PACKET_BYTES.
        let n = unsafe {
            (self.lib.encode)(
                self.st.as_ptr(),
                pcm.as_ptr(),
                pcm.len() as c_int,
                out.as_mut_ptr(),
                MAX_PACKET_BYTES as i32,
            )
        };
        assert!(n > 0, "opus_encode: {n}");
        out.truncate(n as usize);
        out
    }
}

impl Drop for RefEncoder {
    fn drop(&mut self) {
        // SAFETY: st came from opus_encoder_create and is destroyed once.
        unsafe { (self.lib.encoder_destroy)(self.st.as_ptr()) }
    }
}

struct RefDecoder {
    lib: &'static RefOpus,
    st: NonNull<c_void>,
    max_samples: usize,
}

impl RefDecoder {
    fn new(lib: &'static RefOpus, rate: u32) -> Self {
        let mut err: c_int = 0;
        // SAFETY: plain values and a valid out-pointer for the error code.
        let st = unsafe { (lib.decoder_create)(rate as i32, 1, &mut err) };
        let st = NonNull::new(st).unwrap_or_else(|| panic!("opus_decoder_create: {err}"));
        Self {
            lib,
            st,
            max_samples: rate as usize * 120 / 1000,
        }
    }

    /// Samples, or libopus's negative error code.
    fn decode(&mut self, packet: &[u8]) -> Result<Vec<i16>, c_int> {
        let mut out = vec![0i16; self.max_samples];
        // SAFETY: st is live; packet is readable for its length (NULL with length 0 asks
        // for concealment, as our decoder's empty packet does); out holds max_samples.
        let n = unsafe {
            (self.lib.decode)(
                self.st.as_ptr(),
                if packet.is_empty() {
                    std::ptr::null()
                } else {
                    packet.as_ptr()
                },
                packet.len() as i32,
                out.as_mut_ptr(),
                self.max_samples as c_int,
                0,
            )
        };
        if n < 0 {
            return Err(n);
        }
        out.truncate(n as usize);
        Ok(out)
    }
}

impl Drop for RefDecoder {
    fn drop(&mut self) {
        // SAFETY: st came from opus_decoder_create and is destroyed once.
        unsafe { (self.lib.decoder_destroy)(self.st.as_ptr()) }
    }
}

// ---------------------------------------------------------------------------------------------
// Signals and measures.

fn tone(rate: u32, hz: f64, seconds: f64) -> Vec<i16> {
    let n = (f64::from(rate) * seconds) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            (0.5 * 32767.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
        })
        .collect()
}

/// SNR of `y` against `x` at the best delay within two periods of the 1 kHz tone (a steady
/// tone lines up modulo its period), after 100 ms of codec warm-up.
fn aligned_snr_db(x: &[i16], y: &[i16], rate: u32) -> f64 {
    let skip = rate as usize / 10;
    (0..rate as usize / 500)
        .map(|d| {
            let n = x.len().min(y.len().saturating_sub(d));
            let (mut s, mut e) = (0.0f64, 0.0f64);
            for i in skip..n {
                let a = f64::from(x[i]);
                let b = f64::from(y[i + d]);
                s += a * a;
                e += (a - b) * (a - b);
            }
            10.0 * (s / e.max(1e-9)).log10()
        })
        .fold(f64::NEG_INFINITY, f64::max)
}

/// The strongest frequency in `y` after warm-up: a 50 Hz sweep, then 1 Hz around the best.
fn dominant_hz(y: &[i16], rate: u32) -> f64 {
    let y = &y[rate as usize / 10..];
    let n = y.len();
    // Hann window, so the sweep's side lobes do not win over a slightly detuned main lobe.
    let w: Vec<f64> = (0..n)
        .map(|i| {
            let h = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
            h * f64::from(y[i])
        })
        .collect();
    let power = |hz: f64| {
        // Goertzel.
        let k = 2.0 * (2.0 * std::f64::consts::PI * hz / f64::from(rate)).cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in &w {
            let s0 = v + k * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - k * s1 * s2
    };
    let best = |candidates: &mut dyn Iterator<Item = f64>| {
        candidates
            .map(|f| (f, power(f)))
            .fold(
                (0.0, f64::NEG_INFINITY),
                |a, b| if b.1 > a.1 { b } else { a },
            )
            .0
    };
    let top = f64::from(rate / 2 - 100);
    let coarse = best(&mut (2..).map(|i| f64::from(i) * 50.0).take_while(|&f| f <= top));
    best(&mut (-25..=25).map(|d| coarse + f64::from(d)))
}

/// Minimum SNRs, 1 kHz tone, default settings per rate: measured with libopus 1.3.1 minus 3 dB.
/// Measured: ropus -> libopus 17.90 / 20.36 / 30.79 dB, libopus -> ropus 19.32 / 20.73 /
/// 32.37 dB at 8 / 16 / 48 kHz.
const THRESHOLDS: [(u32, f64, f64); 3] = [
    // rate, ropus -> libopus, libopus -> ropus
    (8_000, 14.9, 16.3),
    (16_000, 17.3, 17.7),
    (48_000, 27.7, 29.3),
];

fn threshold(rate: u32) -> (f64, f64) {
    THRESHOLDS
        .iter()
        .find(|t| t.0 == rate)
        .map(|t| (t.1, t.2))
        .unwrap_or((f64::INFINITY, f64::INFINITY))
}

// ---------------------------------------------------------------------------------------------

#[test]
fn ropus_encodes_libopus_decodes() {
    let Some(lib) = ref_opus_or_skip("ropus_encodes_libopus_decodes") else {
        return;
    };
    for rate in SAMPLE_RATES {
        let config = OpusConfig::new(rate);
        let mut enc = OpusEncoder::new(config).unwrap();
        let mut theirs = RefDecoder::new(lib, rate);
        let mut ours = OpusDecoder::new(rate).unwrap();
        let x = tone(rate, 1000.0, 1.0);
        let (mut y, mut y_ours) = (Vec::new(), Vec::new());
        let mut pkt = [0u8; MAX_PACKET_BYTES];
        let mut pcm = vec![0i16; ours.max_frame_samples()];
        for frame in x.chunks_exact(enc.frame_samples()) {
            let len = enc.encode(frame, &mut pkt).unwrap();
            let decoded = theirs.decode(&pkt[..len]).unwrap();
            assert_eq!(decoded.len(), frame.len());
            y.extend(decoded);
            let n = ours.decode(Some(&pkt[..len]), &mut pcm).unwrap();
            y_ours.extend_from_slice(&pcm[..n]);
        }
        let snr = aligned_snr_db(&x, &y, rate);
        let hz = dominant_hz(&y, rate);
        // The two decoders on the same packets: how far libopus and the 1.5.2 port differ.
        let differing = y.iter().zip(&y_ours).filter(|(a, b)| a != b).count();
        let max_diff = y
            .iter()
            .zip(&y_ours)
            .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
            .max()
            .unwrap_or(0);
        println!(
            "ropus -> libopus {rate:>5} Hz, {} bit/s: SNR {snr:.2} dB, {hz} Hz; \
             libopus and ropus decoders differ in {differing} of {} samples, by at most {max_diff}",
            config.bitrate,
            y.len()
        );
        assert!(
            (hz - 1000.0).abs() <= 2.0,
            "{rate} Hz: tone came out at {hz} Hz"
        );
        assert!(snr >= threshold(rate).0, "{rate} Hz: SNR {snr:.2} dB");
        // Measured: identical at 8 and 16 kHz, 28 samples 1 apart at 48 kHz (libopus 1.3.1).
        assert!(
            max_diff <= 8,
            "{rate} Hz: decoders differ by up to {max_diff}"
        );
    }
}

#[test]
fn libopus_encodes_ropus_decodes() {
    let Some(lib) = ref_opus_or_skip("libopus_encodes_ropus_decodes") else {
        return;
    };
    for rate in SAMPLE_RATES {
        let config = OpusConfig::new(rate);
        let mut enc = RefEncoder::new(lib, &config);
        let mut dec = OpusDecoder::new(rate).unwrap();
        let x = tone(rate, 1000.0, 1.0);
        let mut y = Vec::new();
        let mut pcm = vec![0i16; dec.max_frame_samples()];
        for frame in x.chunks_exact(config.frame_samples()) {
            let pkt = enc.encode(frame);
            let n = dec.decode(Some(&pkt), &mut pcm).unwrap();
            assert_eq!(n, frame.len());
            y.extend_from_slice(&pcm[..n]);
        }
        let snr = aligned_snr_db(&x, &y, rate);
        let hz = dominant_hz(&y, rate);
        println!(
            "libopus -> ropus {rate:>5} Hz, {} bit/s: SNR {snr:.2} dB, {hz} Hz",
            config.bitrate
        );
        assert!(
            (hz - 1000.0).abs() <= 2.0,
            "{rate} Hz: tone came out at {hz} Hz"
        );
        assert!(snr >= threshold(rate).1, "{rate} Hz: SNR {snr:.2} dB");
    }
}

/// 10, 40 and 60 ms packets (the longer ones carry several SILK or CELT frames) decode in
/// libopus to their full duration, with the tone intact.
#[test]
fn every_ptime_decodes_in_libopus() {
    let Some(lib) = ref_opus_or_skip("every_ptime_decodes_in_libopus") else {
        return;
    };
    for rate in SAMPLE_RATES {
        for ptime in PTIMES_MS {
            let mut enc = OpusEncoder::new(OpusConfig {
                ptime_ms: ptime,
                ..OpusConfig::new(rate)
            })
            .unwrap();
            let mut dec = RefDecoder::new(lib, rate);
            let x = tone(rate, 1000.0, 0.6);
            let mut y = Vec::new();
            let mut pkt = [0u8; MAX_PACKET_BYTES];
            for frame in x.chunks_exact(enc.frame_samples()) {
                let len = enc.encode(frame, &mut pkt).unwrap();
                let decoded = dec.decode(&pkt[..len]).unwrap();
                assert_eq!(decoded.len(), frame.len(), "{rate} Hz {ptime} ms");
                y.extend(decoded);
            }
            let hz = dominant_hz(&y, rate);
            assert!((hz - 1000.0).abs() <= 2.0, "{rate} Hz {ptime} ms: {hz} Hz");
        }
    }
}

/// Packets from the network are untrusted: random bytes, truncated and bit-flipped packets
/// must come back as an error or as samples, never as a panic, and the decoder must keep
/// working. Where libopus is installed, both must also agree on which packets are valid and how
/// many samples they carry.
#[test]
fn malformed_packets_never_panic_the_decoder() {
    let lib = ref_opus();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for rate in SAMPLE_RATES {
        // Valid packets to damage.
        let mut enc = OpusEncoder::new(OpusConfig::new(rate)).unwrap();
        let x = tone(rate, 700.0, 0.2);
        let mut good = Vec::new();
        let mut buf = [0u8; MAX_PACKET_BYTES];
        for frame in x.chunks_exact(enc.frame_samples()) {
            let len = enc.encode(frame, &mut buf).unwrap();
            good.push(buf[..len].to_vec());
        }
        let mut packets: Vec<Vec<u8>> = Vec::new();
        for _ in 0..3000 {
            let len = (rnd() % 300) as usize;
            packets.push((0..len).map(|_| rnd() as u8).collect());
        }
        for p in &good {
            for cut in 0..p.len() {
                packets.push(p[..cut].to_vec());
            }
            for _ in 0..20 {
                let mut q = p.clone();
                let bit = (rnd() % (q.len() as u64 * 8)) as usize;
                q[bit / 8] ^= 1 << (bit % 8);
                packets.push(q);
            }
        }
        // Valid framing with random payloads, for every TOC configuration and frame-count code.
        for toc in 0..=255u8 {
            let len = 1 + (rnd() % 120) as usize;
            let mut p: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            p[0] = toc;
            packets.push(p);
        }

        let mut ours = OpusDecoder::new(rate).unwrap();
        let mut theirs = lib.map(|lib| RefDecoder::new(lib, rate));
        let mut pcm = vec![0i16; ours.max_frame_samples()];
        let (mut accepted, mut rejected, mut disagreements) = (0, 0, 0);
        let quantum = rate as usize / 400; // 2.5 ms, the shortest Opus frame
        for p in &packets {
            let result = ours.decode(Some(p), &mut pcm);
            match result {
                Ok(n) => {
                    assert!(n <= pcm.len() && n % quantum == 0, "{n} samples from {p:?}");
                    accepted += 1;
                }
                Err(OpusError::InvalidPacket) => rejected += 1,
                Err(e) => panic!("{e} for {p:?}"),
            }
            if let Some(theirs) = theirs.as_mut() {
                let reference = theirs.decode(p).map(|s| s.len());
                // An empty packet is a loss, which libopus conceals for the whole buffer it is
                // given and ours for the last packet's duration; only validity is compared.
                let differs = if p.is_empty() {
                    result.is_ok() != reference.is_ok()
                } else {
                    result.ok() != reference.ok()
                };
                if differs {
                    disagreements += 1;
                    if disagreements <= 5 {
                        println!("{rate} Hz: ours {result:?}, libopus {reference:?}: {p:02x?}");
                    }
                }
            }
        }
        // Still decodes after all that.
        let len = enc.encode(&x[..enc.frame_samples()], &mut buf).unwrap();
        assert!(ours.decode(Some(&buf[..len]), &mut pcm).is_ok());
        let compared = match lib {
            Some(_) => format!("{disagreements} disagreements with libopus"),
            None => "libopus not installed, not compared".to_owned(),
        };
        println!(
            "{rate} Hz: {} packets, {accepted} decoded, {rejected} rejected; {compared}",
            packets.len()
        );
        assert_eq!(disagreements, 0);
    }
}

/// State size, heap and time per 20 ms frame, for the module comment of `codec::opus`:
/// `cargo test --release -p mgw-media --test opus_interop -- --ignored --nocapture measure`.
#[test]
#[ignore = "measurement; run in release"]
fn measure_state_heap_and_time() {
    println!(
        "size_of: OpusEncoder {} B, OpusDecoder {} B",
        size_of::<OpusEncoder>(),
        size_of::<OpusDecoder>()
    );
    for rate in SAMPLE_RATES {
        let config = OpusConfig::new(rate);
        let (live0, _) = heap_counters();
        let mut enc = OpusEncoder::new(config).unwrap();
        let (live1, _) = heap_counters();
        let mut dec = OpusDecoder::new(rate).unwrap();
        let (live2, _) = heap_counters();

        // Speech-like load: a few partials with a 4 Hz envelope, plus noise.
        let mut seed = 1u32;
        let x: Vec<i16> = (0..rate as usize * 10)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                let env = 0.6 + 0.4 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
                let v: f64 = [(180.0, 0.4), (450.0, 0.3), (1100.0, 0.2), (2500.0, 0.1)]
                    .iter()
                    .map(|(f, a)| a * (2.0 * std::f64::consts::PI * f * t).sin())
                    .sum();
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = f64::from((seed >> 16) as i16) / 32768.0 * 0.02;
                ((v * env + noise) * 12_000.0) as i16
            })
            .collect();
        let frame = enc.frame_samples();
        let frames = x.len() / frame;
        let mut packets = Vec::with_capacity(frames);
        let mut buf = [0u8; MAX_PACKET_BYTES];
        let (_, a0) = heap_counters();
        for f in x.chunks_exact(frame) {
            let len = enc.encode(f, &mut buf).unwrap();
            packets.push(buf[..len].to_vec());
        }
        let (_, a1) = heap_counters();
        let mut pcm = vec![0i16; dec.max_frame_samples()];
        for p in &packets {
            dec.decode(Some(p), &mut pcm).unwrap();
        }
        let (_, a2) = heap_counters();
        // Best of five passes over the 10 s, against other work on the machine.
        let (mut enc_time, mut dec_time) = (std::time::Duration::MAX, std::time::Duration::MAX);
        for _ in 0..5 {
            let start = std::time::Instant::now();
            for f in x.chunks_exact(frame) {
                std::hint::black_box(enc.encode(f, &mut buf).unwrap());
            }
            enc_time = enc_time.min(start.elapsed() / frames as u32);
            let start = std::time::Instant::now();
            for p in &packets {
                std::hint::black_box(dec.decode(Some(p), &mut pcm).unwrap());
            }
            dec_time = dec_time.min(start.elapsed() / frames as u32);
        }
        let bytes: usize = packets.iter().map(Vec::len).sum();
        println!(
            "{rate:>5} Hz, {} bit/s, complexity {}: encoder heap {} B, decoder heap {} B; \
             encode {enc_time:?}/frame ({:.1} allocations/frame), decode {dec_time:?}/frame \
             ({:.1} allocations/frame); {:.1} B/packet",
            config.bitrate,
            config.complexity,
            live1 - live0,
            live2 - live1,
            // Less the one Vec per packet this loop keeps.
            (a1 - a0 - frames) as f64 / frames as f64,
            (a2 - a1) as f64 / frames as f64,
            bytes as f64 / frames as f64
        );
        for complexity in [0, 5, 10] {
            let mut enc = OpusEncoder::new(OpusConfig {
                complexity,
                ..config
            })
            .unwrap();
            // Which coder the encoder chose (RFC 6716 section 3.1: TOC configs 0-11 SILK,
            // 12-15 hybrid, 16-31 CELT); complexity changes the choice at 48 kHz.
            let mut modes = [0usize; 3];
            for f in x.chunks_exact(frame) {
                let len = enc.encode(f, &mut buf).unwrap();
                modes[match buf[..len].first().map_or(0, |toc| toc >> 3) {
                    0..=11 => 0,
                    12..=15 => 1,
                    _ => 2,
                }] += 1;
            }
            let mut best = std::time::Duration::MAX;
            for _ in 0..5 {
                let start = std::time::Instant::now();
                for f in x.chunks_exact(frame) {
                    std::hint::black_box(enc.encode(f, &mut buf).unwrap());
                }
                best = best.min(start.elapsed() / frames as u32);
            }
            println!(
                "{rate:>5} Hz, complexity {complexity}: encode {best:?}/frame; \
                 SILK/hybrid/CELT packets {modes:?}"
            );
        }
    }
}
