//! A small deterministic random generator for the unit tests' random cases (xorshift64*), one for
//! every module that needs one.

/// xorshift64*; seed with any non-zero value.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`0` for `n == 0`).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        (self.next() % n.max(1) as u64) as u32
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn fraction(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[-1, 1)`.
    pub(crate) fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// A float that is sometimes a zero of either sign, tiny, huge or not finite.
    pub(crate) fn special(&mut self) -> f32 {
        match self.below(40) {
            0 => 0.0,
            1 => -0.0,
            2 => f32::MIN_POSITIVE / 3.0,
            3 => -f32::MIN_POSITIVE / 5.0,
            4 => f32::INFINITY,
            5 => f32::NEG_INFINITY,
            6 => f32::NAN,
            7 => 3.0e38,
            _ => self.unit() * 4.0,
        }
    }
}
