//! Gorilla XOR chunks in Prometheus's layout.
//!
//! A chunk is a 2-byte big-endian sample count followed by a bit stream, written MSB first:
//! - sample 0: timestamp as a zigzag varint, value as its raw 64 bits;
//! - sample 1: timestamp delta as a uvarint, value XOR-encoded against sample 0;
//! - sample n ≥ 2: timestamp delta-of-delta in Prometheus's buckets (`0` for 0, `10` + 14
//!   bits, `110` + 17 bits, `1110` + 20 bits, `1111` + 64 bits), value XOR-encoded.
//!
//! XOR encoding: `0` when the value's bits equal the previous ones; `10` + the meaningful
//! bits when they fit the previous leading/trailing-zero window; otherwise `11`, 5 bits of
//! leading zeros (capped at 31), 6 bits of significant-bit count (64 written as 0), then the
//! significant bits. Values are handled as bit patterns, so every NaN payload (including the
//! stale marker), ±Inf and -0.0 round-trip exactly.
//!
//! Invariants: timestamps are appended in strictly increasing order by the head (the codec
//! itself only needs them to be representable with wrapping arithmetic); the count in the
//! header is what a reader trusts, trailing padding bits are zero.

use fedwatch_model::Sample;

/// Samples per chunk before the head cuts a new one (Prometheus's figure).
pub const MAX_SAMPLES_PER_CHUNK: usize = 120;

/// Why chunk bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk is {len} bytes, shorter than its 2-byte header")]
    TooShort { len: usize },
    #[error("chunk ends inside sample {index} of {count}")]
    Truncated { index: usize, count: usize },
    #[error("chunk sample {index}: invalid varint")]
    BadVarint { index: usize },
}

/// Writes bits MSB first into a chunk's byte vector; `free` is the number of unused low bits
/// in the last byte. A view over the encoder's fields, so the encoder carries no padding.
struct BitWriter<'a> {
    bytes: &'a mut Vec<u8>,
    free: &'a mut u8,
}

/// Chunks grow by a quarter (at least 16 bytes) rather than doubling: a head holds one open
/// chunk per series, and doubling leaves a quarter of them unused on average.
fn reserve(bytes: &mut Vec<u8>, extra: usize) {
    let need = bytes.len() + extra;
    if need > bytes.capacity() {
        let cap = bytes.capacity();
        let want = (cap + (cap / 4).max(16)).max(need).next_multiple_of(16);
        bytes.reserve_exact(want - bytes.len());
    }
}

impl BitWriter<'_> {
    fn write_bit(&mut self, bit: bool) {
        if *self.free == 0 {
            reserve(self.bytes, 1);
            self.bytes.push(0);
            *self.free = 8;
        }
        *self.free -= 1;
        if bit {
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << *self.free;
        }
    }

    /// Writes the low `n` bits of `value` (n ≤ 64): the last byte's free bits first, then
    /// the rest as whole bytes in one copy (the bytes stay valid after every call, as the
    /// open chunk is read while it grows).
    fn write_bits(&mut self, value: u64, n: u8) {
        if n == 0 {
            return;
        }
        let value = if n >= 64 { value } else { value & ((1u64 << n) - 1) };
        let mut n = n;
        let free = *self.free;
        if free > 0 {
            let take = n.min(free);
            let chunk = ((value >> (n - take)) & ((1u64 << take) - 1)) as u8;
            let last = self.bytes.len() - 1;
            self.bytes[last] |= chunk << (free - take);
            *self.free -= take;
            n -= take;
            if n == 0 {
                return;
            }
        }
        // The `n` bits still to write, left-aligned in a word, then its first whole bytes.
        let aligned = value << (64 - n);
        let len = n.div_ceil(8);
        reserve(self.bytes, usize::from(len));
        self.bytes.extend_from_slice(&aligned.to_be_bytes()[..usize::from(len)]);
        *self.free = len * 8 - n;
    }

    fn write_uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.write_bits((v as u8 | 0x80) as u64, 8);
            v >>= 7;
        }
        self.write_bits(v, 8);
    }
}

/// Reads bits MSB first, a big-endian 64-bit word at a time: any read of up to 56 bits is
/// one load and two shifts (the word starts at the current byte, so at most 7 of its bits
/// are behind the position). Near the end the word is zero-padded; reads past the end fail.
struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    /// The 8 bytes starting at byte `i`, zero-padded past the end.
    #[inline]
    fn word_at(&self, i: usize) -> u64 {
        let mut w = [0u8; 8];
        match self.bytes.get(i..i + 8) {
            Some(b) => w.copy_from_slice(b),
            None => {
                let rest = self.bytes.get(i..).unwrap_or(&[]);
                w[..rest.len()].copy_from_slice(rest);
            }
        }
        u64::from_be_bytes(w)
    }

    /// The next `n` ≤ 56 bits without consuming them (zero bits past the end).
    #[inline]
    fn peek(&self, n: u8) -> u64 {
        debug_assert!((1..=56).contains(&n));
        (self.word_at(self.pos >> 3) << (self.pos & 7)) >> (64 - n)
    }

    /// Bits left to read.
    #[inline]
    fn left(&self) -> usize {
        (self.bytes.len() * 8).saturating_sub(self.pos)
    }

    #[inline]
    fn read_bits(&mut self, n: u8) -> Option<u64> {
        if n as usize > self.left() {
            return None;
        }
        match n {
            0 => Some(0),
            1..=56 => {
                let out = self.peek(n);
                self.pos += n as usize;
                Some(out)
            }
            _ => {
                let hi = self.peek(n - 32);
                self.pos += (n - 32) as usize;
                let lo = self.peek(32);
                self.pos += 32;
                Some((hi << 32) | lo)
            }
        }
    }

    fn read_uvarint(&mut self) -> Option<u64> {
        let mut out = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.read_bits(8)?;
            if shift == 63 && b > 1 {
                return None;
            }
            out |= (b & 0x7f) << shift;
            if b < 0x80 {
                return Some(out);
            }
        }
        None
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends samples to one chunk, keeping the encoder state between appends.
#[derive(Clone, Debug)]
pub struct ChunkEncoder {
    bytes: Vec<u8>,
    /// Unused low bits in the last byte.
    free: u8,
    count: u16,
    t: i64,
    t_delta: u64,
    v: u64,
    leading: u8,
    trailing: u8,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    fn w(&mut self) -> BitWriter<'_> {
        BitWriter {
            bytes: &mut self.bytes,
            free: &mut self.free,
        }
    }

    /// An empty chunk.
    pub fn new() -> Self {
        ChunkEncoder {
            // The sample count, rewritten on every append; 16 bytes hold the first sample.
            bytes: {
                let mut b = Vec::with_capacity(16);
                b.extend_from_slice(&[0, 0]);
                b
            },
            free: 0,
            count: 0,
            t: 0,
            t_delta: 0,
            v: 0,
            // 0xff marks "no window yet", so the first XOR writes the full form.
            leading: 0xff,
            trailing: 0,
        }
    }

    /// Samples in the chunk.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True before the first sample.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The newest sample's time and value bits; `None` before the first sample.
    pub fn newest(&self) -> Option<(i64, u64)> {
        (self.count > 0).then_some((self.t, self.v))
    }

    /// The oldest sample's time (the varint right after the count); `None` before the first sample.
    pub fn first_t(&self) -> Option<i64> {
        if self.count == 0 {
            return None;
        }
        let mut out = 0u64;
        for (i, b) in self.bytes.iter().skip(2).take(10).enumerate() {
            out |= u64::from(b & 0x7f) << (7 * i);
            if *b < 0x80 {
                break;
            }
        }
        Some(unzigzag(out))
    }

    /// The encoded chunk, readable at any time with [`ChunkIter`].
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Hands over the encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The last byte written (0 when empty): reading it brings the chunk's tail into cache.
    pub fn last_byte(&self) -> u8 {
        self.bytes.last().copied().unwrap_or(0)
    }

    /// Appends a sample; returns false (and appends nothing) when the chunk holds u16::MAX samples.
    pub fn append(&mut self, t: i64, v: f64) -> bool {
        let bits = v.to_bits();
        match self.count {
            u16::MAX => return false,
            0 => {
                self.w().write_uvarint(zigzag(t));
                self.w().write_bits(bits, 64);
            }
            1 => {
                let delta = t.wrapping_sub(self.t) as u64;
                self.w().write_uvarint(delta);
                self.write_xor(bits);
                self.t_delta = delta;
            }
            _ => {
                let delta = t.wrapping_sub(self.t) as u64;
                let dod = delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.w().write_bit(false);
                } else if (-8191..=8192).contains(&dod) {
                    self.w().write_bits(0b10, 2);
                    self.w().write_bits(dod as u64, 14);
                } else if (-65535..=65536).contains(&dod) {
                    self.w().write_bits(0b110, 3);
                    self.w().write_bits(dod as u64, 17);
                } else if (-524287..=524288).contains(&dod) {
                    self.w().write_bits(0b1110, 4);
                    self.w().write_bits(dod as u64, 20);
                } else {
                    self.w().write_bits(0b1111, 4);
                    self.w().write_bits(dod as u64, 64);
                }
                self.write_xor(bits);
                self.t_delta = delta;
            }
        }
        self.t = t;
        self.v = bits;
        self.count += 1;
        self.bytes[..2].copy_from_slice(&self.count.to_be_bytes());
        true
    }

    fn write_xor(&mut self, bits: u64) {
        let x = bits ^ self.v;
        if x == 0 {
            self.w().write_bit(false);
            return;
        }
        self.w().write_bit(true);
        let leading = (x.leading_zeros() as u8).min(31);
        let trailing = x.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            let (bits, n) = (x >> self.trailing, 64 - self.leading - self.trailing);
            let mut w = self.w();
            w.write_bit(false);
            w.write_bits(bits, n);
        } else {
            let sig = 64 - leading - trailing;
            let mut w = self.w();
            w.write_bit(true);
            w.write_bits(leading as u64, 5);
            // 64 significant bits do not fit in 6 bits; 0 stands for 64 (0 itself is impossible).
            w.write_bits((sig & 63) as u64, 6);
            w.write_bits(x >> trailing, sig);
            self.leading = leading;
            self.trailing = trailing;
        }
    }
}

/// What an encoder needs besides its bytes to go on appending to a chunk (written into WAL
/// checkpoints, so a replayed head continues its open chunks without re-encoding them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncoderState {
    /// Newest sample's time.
    pub t: i64,
    /// Newest time delta.
    pub t_delta: u64,
    /// Newest value's bits.
    pub v: u64,
    /// XOR window: leading zeros (`0xff` before the first window) and trailing zeros.
    pub leading: u8,
    pub trailing: u8,
    /// Unused low bits in the last byte (0..=7).
    pub free: u8,
}

impl ChunkEncoder {
    /// The state to store next to [`ChunkEncoder::bytes`] for [`ChunkEncoder::resume`].
    pub fn state(&self) -> EncoderState {
        EncoderState {
            t: self.t,
            t_delta: self.t_delta,
            v: self.v,
            leading: self.leading,
            trailing: self.trailing,
            free: self.free,
        }
    }

    /// An encoder continuing a non-empty chunk from its bytes and state; the state is checked
    /// so that damaged input is an error here rather than a panic on the next append.
    pub fn resume(bytes: Vec<u8>, st: EncoderState) -> Result<ChunkEncoder, String> {
        if bytes.len() < 3 {
            return Err(format!("open chunk is {} bytes, a non-empty chunk has at least 3", bytes.len()));
        }
        let count = u16::from_be_bytes([bytes[0], bytes[1]]);
        if count == 0 {
            return Err("open chunk announces 0 samples".into());
        }
        if st.free > 7 {
            return Err(format!("open chunk has {} free bits in its last byte, at most 7", st.free));
        }
        let window_ok = st.leading == 0xff || (st.leading <= 31 && st.trailing <= 63 && st.leading + st.trailing <= 63);
        if !window_ok {
            return Err(format!(
                "open chunk XOR window leading {} trailing {} is impossible",
                st.leading, st.trailing
            ));
        }
        // Room for the rest of a full chunk at the rate so far, in one step (read back exactly
        // sized, the chunk would otherwise grow a quarter at a time through a replay's tail).
        let mut bytes = bytes;
        let rest = MAX_SAMPLES_PER_CHUNK.saturating_sub(usize::from(count));
        if rest > 0 {
            let per_sample = bytes.len().saturating_sub(16).div_ceil(usize::from(count.max(2) - 1));
            bytes.reserve_exact((rest * per_sample.max(1)).min(4096));
        }
        Ok(ChunkEncoder {
            bytes,
            free: st.free,
            count,
            t: st.t,
            t_delta: st.t_delta,
            v: st.v,
            leading: st.leading,
            trailing: st.trailing,
        })
    }
}

/// Decodes a chunk's samples in order.
pub struct ChunkIter<'a> {
    r: BitReader<'a>,
    count: usize,
    index: usize,
    t: i64,
    t_delta: u64,
    v: u64,
    leading: u8,
    trailing: u8,
    failed: bool,
}

impl<'a> ChunkIter<'a> {
    /// Reads the header; samples are decoded lazily and a truncated body shows up as an `Err` item.
    pub fn new(bytes: &'a [u8]) -> Result<Self, ChunkError> {
        if bytes.len() < 2 {
            return Err(ChunkError::TooShort { len: bytes.len() });
        }
        let count = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
        Ok(ChunkIter {
            r: BitReader { bytes, pos: 16 },
            count,
            index: 0,
            t: 0,
            t_delta: 0,
            v: 0,
            leading: 0,
            trailing: 0,
            failed: false,
        })
    }

    /// Samples the header announces.
    pub fn sample_count(&self) -> usize {
        self.count
    }

    fn decode_next(&mut self) -> Result<Sample, ChunkError> {
        let (index, count) = (self.index, self.count);
        let trunc = || ChunkError::Truncated { index, count };
        match index {
            0 => {
                let t = self.r.read_uvarint().ok_or(ChunkError::BadVarint { index })?;
                self.t = unzigzag(t);
                self.v = self.r.read_bits(64).ok_or_else(trunc)?;
            }
            1 => {
                self.t_delta = self.r.read_uvarint().ok_or(ChunkError::BadVarint { index })?;
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_xor().ok_or_else(trunc)?;
            }
            _ => {
                // The bucket prefix is up to four ones ended by a zero: count them in one peek.
                let ones = (self.r.peek(4) << 60).leading_ones().min(4) as usize;
                let prefix = if ones == 4 { 4 } else { ones + 1 };
                if prefix > self.r.left() {
                    return Err(trunc());
                }
                self.r.pos += prefix;
                let dod = match ones {
                    0 => 0,
                    4 => self.r.read_bits(64).ok_or_else(trunc)? as i64,
                    _ => {
                        let width = [0u8, 14, 17, 20][ones];
                        let raw = self.r.read_bits(width).ok_or_else(trunc)? as i64;
                        // Sign-extend: the bucket's range is (-2^(w-1), 2^(w-1)].
                        if raw > 1 << (width - 1) { raw - (1 << width) } else { raw }
                    }
                };
                self.t_delta = self.t_delta.wrapping_add(dod as u64);
                self.t = self.t.wrapping_add(self.t_delta as i64);
                self.read_xor().ok_or_else(trunc)?;
            }
        }
        Ok(Sample {
            t: self.t,
            v: f64::from_bits(self.v),
        })
    }

    fn read_xor(&mut self) -> Option<()> {
        // `0`: same value; `10`: reuse the window; `11`: a new window follows.
        let control = self.r.peek(2);
        if control < 2 {
            if self.r.left() < 1 {
                return None;
            }
            self.r.pos += 1;
            return Some(());
        }
        if self.r.left() < 2 {
            return None;
        }
        self.r.pos += 2;
        if control == 3 {
            self.leading = self.r.read_bits(5)? as u8;
            let sig = match self.r.read_bits(6)? as u8 {
                0 => 64,
                n => n,
            };
            self.trailing = 64u8.checked_sub(self.leading + sig)?;
        }
        let sig = 64 - self.leading - self.trailing;
        let bits = self.r.read_bits(sig)?;
        self.v ^= bits << self.trailing;
        Some(())
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = Result<Sample, ChunkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.index >= self.count {
            return None;
        }
        let out = self.decode_next();
        self.index += 1;
        self.failed = out.is_err();
        Some(out)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.count.saturating_sub(self.index);
        (0, Some(left))
    }
}

/// Encodes samples into one chunk (no limit of 120 applied: callers cut).
pub fn encode(samples: &[Sample]) -> Vec<u8> {
    let mut e = ChunkEncoder::new();
    for s in samples {
        e.append(s.t, s.v);
    }
    e.into_bytes()
}

/// Decodes every sample of a chunk.
pub fn decode(bytes: &[u8]) -> Result<Vec<Sample>, ChunkError> {
    let mut out = Vec::new();
    decode_range_into(bytes, i64::MIN, i64::MAX, &mut out)?;
    Ok(out)
}

/// Appends the chunk's samples with `mint <= t <= maxt` to `out`, stopping at the first one
/// after `maxt` (timestamps increase). On an error the samples before it stay appended.
pub fn decode_range_into(bytes: &[u8], mint: i64, maxt: i64, out: &mut Vec<Sample>) -> Result<(), ChunkError> {
    let mut it = ChunkIter::new(bytes)?;
    out.reserve(it.count);
    while it.index < it.count.min(2) {
        let s = it.decode_next()?;
        it.index += 1;
        if s.t > maxt {
            return Ok(());
        }
        if s.t >= mint {
            out.push(s);
        }
    }
    // Samples 2.. are every query's hot loop: the same decoding as `decode_next`, with the
    // state in locals and each field taken from one 64-bit window (≥ 57 valid bits) instead
    // of a bounds-checked read per field. Reads may run into the zero padding past the end;
    // the position is checked after each sample, so a short chunk is still an error.
    let total = bytes.len() * 8;
    let window = |pos: usize| -> u64 {
        let i = pos >> 3;
        let mut w = [0u8; 8];
        match bytes.get(i..i + 8) {
            Some(b) => w.copy_from_slice(b),
            None => {
                let rest = bytes.get(i..).unwrap_or(&[]);
                w[..rest.len()].copy_from_slice(rest);
            }
        }
        u64::from_be_bytes(w) << (pos & 7)
    };
    let (mut pos, mut t, mut dt, mut v) = (it.r.pos, it.t, it.t_delta, it.v);
    let (mut leading, mut trailing) = (it.leading as u32, it.trailing as u32);
    let count = it.count;
    for index in it.index..count {
        let trunc = ChunkError::Truncated { index, count };
        let w = window(pos);
        let ones = w.leading_ones().min(4);
        let dod = match ones {
            0 => {
                pos += 1;
                0
            }
            4 => {
                pos += 4;
                let hi = window(pos) >> 32;
                let lo = window(pos + 32) >> 32;
                pos += 64;
                ((hi << 32) | lo) as i64
            }
            _ => {
                let width = [0u32, 14, 17, 20][ones as usize];
                let raw = ((w << (ones + 1)) >> (64 - width)) as i64;
                pos += (ones + 1 + width) as usize;
                // Sign-extend: the bucket's range is (-2^(w-1), 2^(w-1)].
                if raw > 1 << (width - 1) { raw - (1 << width) } else { raw }
            }
        };
        dt = dt.wrapping_add(dod as u64);
        t = t.wrapping_add(dt as i64);
        let w = window(pos);
        if w >> 63 == 0 {
            pos += 1;
        } else {
            if w >> 62 == 3 {
                leading = ((w >> 57) & 0x1f) as u32;
                let sig = match ((w >> 51) & 0x3f) as u32 {
                    0 => 64,
                    n => n,
                };
                trailing = 64u32.checked_sub(leading + sig).ok_or(trunc.clone())?;
                pos += 13;
            } else {
                pos += 2;
            }
            let sig = 64 - leading - trailing;
            let bits = if sig <= 56 {
                window(pos) >> (64 - sig)
            } else {
                let hi = window(pos) >> (96 - sig);
                let lo = window(pos + (sig - 32) as usize) >> 32;
                (hi << 32) | lo
            };
            pos += sig as usize;
            v ^= bits << trailing;
        }
        if pos > total {
            return Err(trunc);
        }
        if t > maxt {
            break;
        }
        if t >= mint {
            out.push(Sample { t, v: f64::from_bits(v) });
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::type_complexity)]
mod tests {
    use super::*;
    use fedwatch_model::STALE_NAN_BITS;
    use proptest::prelude::*;

    fn same(a: &[Sample], b: &[Sample]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.t == y.t && x.v.to_bits() == y.v.to_bits())
    }

    /// Interesting bit patterns mixed into generated values.
    const SPECIAL: [u64; 9] = [
        STALE_NAN_BITS,
        0x7ff8_0000_0000_0001, // quiet NaN with payload
        0xfff8_0000_0000_0000, // negative NaN
        0x7ff0_0000_0000_0000, // +Inf
        0xfff0_0000_0000_0000, // -Inf
        0x8000_0000_0000_0000, // -0.0
        0,
        1,                     // smallest subnormal
        0x7fef_ffff_ffff_ffff, // f64::MAX
    ];

    fn value() -> impl Strategy<Value = u64> {
        prop_oneof![
            3 => any::<u64>(),
            3 => prop::sample::select(SPECIAL.to_vec()),
            3 => (0u32..1000).prop_map(|n| (n as f64).to_bits()),
        ]
    }

    fn series() -> impl Strategy<Value = Vec<Sample>> {
        (
            any::<i64>(),
            prop::collection::vec((timestamp_step(), value()), 0..=MAX_SAMPLES_PER_CHUNK),
        )
            .prop_map(|(start, steps)| {
                let mut t = start / 2;
                steps
                    .into_iter()
                    .map(|(dt, v)| {
                        t = t.wrapping_add(dt);
                        Sample { t, v: f64::from_bits(v) }
                    })
                    .collect()
            })
    }

    /// Steps that land in every delta-of-delta bucket, bucket edges included.
    fn timestamp_step() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(15_000i64),
            14_990i64..15_010,
            prop::sample::select(vec![1, 8192, 8193, 65536, 65537, 524288, 524289, 1 << 40]),
            1i64..10_000_000,
            1i64..i64::MAX / 4,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn round_trips_every_bit_pattern(samples in series()) {
            let bytes = encode(&samples);
            let back = decode(&bytes).unwrap();
            prop_assert!(same(&samples, &back), "{samples:?} != {back:?}");
        }

        #[test]
        fn truncation_is_an_error_not_a_panic(samples in series(), cut in 0usize..2000) {
            let bytes = encode(&samples);
            let cut = cut.min(bytes.len());
            // Shorter input either errors or (when only padding went) decodes the same samples.
            if let Ok(back) = decode(&bytes[..cut]) {
                prop_assert!(same(&samples, &back));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn a_resumed_encoder_writes_the_same_bytes(samples in series(), split in 1usize..=MAX_SAMPLES_PER_CHUNK) {
            let split = split.min(samples.len());
            prop_assume!(split >= 1);
            let mut first = ChunkEncoder::new();
            for s in &samples[..split] {
                first.append(s.t, s.v);
            }
            let mut resumed = ChunkEncoder::resume(first.bytes().to_vec(), first.state()).unwrap();
            for s in &samples[split..] {
                resumed.append(s.t, s.v);
            }
            prop_assert_eq!(resumed.into_bytes(), encode(&samples));
        }
    }

    #[test]
    fn impossible_encoder_states_are_refused() {
        let mut e = ChunkEncoder::new();
        e.append(1, 1.0);
        e.append(2, 3.0);
        let good = e.state();
        let cases: [(&str, Vec<u8>, EncoderState, &str); 4] = [
            ("too short", vec![0, 1], good, "at least 3"),
            ("zero count", vec![0, 0, 1], good, "0 samples"),
            ("free bits", e.bytes().to_vec(), EncoderState { free: 8, ..good }, "free bits"),
            (
                "window",
                e.bytes().to_vec(),
                EncoderState {
                    leading: 31,
                    trailing: 40,
                    ..good
                },
                "impossible",
            ),
        ];
        for (name, bytes, st, want) in cases {
            let err = ChunkEncoder::resume(bytes, st).unwrap_err();
            assert!(err.contains(want), "{name}: {err}");
        }
        assert!(ChunkEncoder::resume(e.bytes().to_vec(), good).is_ok());
    }

    #[test]
    fn bucket_edges_round_trip() {
        // Delta-of-delta values at each bucket edge, both signs.
        let dods: [i64; 12] = [0, 1, -1, 8192, -8191, 8193, -8192, 65536, -65535, 524288, -524287, 524289];
        let mut t = 1_000_000_000i64;
        let mut delta = 1_000_000i64;
        let mut samples = vec![Sample { t, v: 0.0 }];
        for (i, d) in dods.iter().enumerate() {
            delta += d;
            t += delta;
            samples.push(Sample { t, v: i as f64 });
        }
        assert!(same(&samples, &decode(&encode(&samples)).unwrap()));
    }

    #[test]
    fn layout_matches_prometheus_for_a_known_chunk() {
        // Hand-derived bits: count=3; t0=1000 zigzag varint (0xd0 0x0f); v0=1.0 raw;
        // t1 delta 10 (0x0a); v1 xor 0 ('0'); t2 dod 0 ('0'); v2 xor 0 ('0') then padding.
        let bytes = encode(&[Sample { t: 1000, v: 1.0 }, Sample { t: 1010, v: 1.0 }, Sample { t: 1020, v: 1.0 }]);
        let mut want = vec![0, 3, 0xd0, 0x0f];
        want.extend_from_slice(&1.0f64.to_bits().to_be_bytes());
        want.extend_from_slice(&[0x0a, 0x00]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn typical_shapes_stay_within_their_size_budget() {
        // (shape, timestamp jitter in ms, value step pattern, max bytes/sample): a constant
        // value on a regular grid costs 2 bits a sample plus the ~19-byte first sample; jitter forces the 14-bit bucket.
        let cases: [(&str, i64, fn(i64) -> f64, f64); 3] = [
            ("constant, regular", 0, |_| 0.0, 0.45),
            ("counter, regular", 0, |i| (i % 7) as f64, 2.0),
            ("counter, ±5 ms jitter", 5, |i| (i % 7) as f64, 3.0),
        ];
        for (shape, jitter, step, budget) in cases {
            let mut v = 1000.0;
            let samples: Vec<Sample> = (0..MAX_SAMPLES_PER_CHUNK as i64)
                .map(|i| {
                    v += step(i);
                    let j = if jitter == 0 { 0 } else { i * 37 % (2 * jitter + 1) - jitter };
                    Sample {
                        t: 1_700_000_000_000 + i * 15_000 + j,
                        v,
                    }
                })
                .collect();
            let per_sample = encode(&samples).len() as f64 / samples.len() as f64;
            assert!(per_sample <= budget, "{shape}: {per_sample} bytes/sample > {budget}");
        }
    }

    #[test]
    fn short_input_is_an_error() {
        assert_eq!(decode(&[1]), Err(ChunkError::TooShort { len: 1 }));
        assert!(matches!(decode(&[0, 5, 0x80]), Err(ChunkError::BadVarint { index: 0 })));
    }
}
