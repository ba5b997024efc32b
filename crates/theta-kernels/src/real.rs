//! The floating-point types the kernels run on, and their SIMD packs.
//!
//! [`Real`] is implemented for `f32` (the fast default) and `f64` (for exactness
//! checks). Each has a [`Pack`] type of 512 bits, `f32x16` and `f64x8` from
//! `wide`, which the element-wise kernels use. With AVX-512 enabled at build
//! time (the workspace builds for the native CPU, see `.cargo/config.toml`) a
//! pack is one register; with AVX2, `wide` runs the same code on two 256-bit
//! halves. [`simd_level`] says which. The 256-bit [`Real::Narrow`] packs
//! (`f32x8`, `f64x4`) are the register-blocked product's unit without
//! AVX-512, and with it on CPUs whose FMA units are 256 bits wide
//! ([`crate::gemm::half_width_fma`]).

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// A scalar the kernels compute in: `f32` or `f64`.
///
/// The arithmetic bounds let generic code read like the maths; the methods
/// give the few transcendental functions the activations and losses need.
pub trait Real:
    faer::traits::RealField
    + Copy
    + Default
    + PartialOrd
    + Debug
    + Display
    + Send
    + Sync
    + Sum
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + crate::lanes::LaneProducts
    + 'static
{
    /// The 512-bit SIMD pack of this scalar.
    type Pack: Pack<Self>;
    /// The 256-bit pack: the register-blocked product's unit on a build
    /// without AVX-512, where a 512-bit pack is two of the 16 registers, and
    /// on a CPU that runs AVX-512 on 256-bit FMA units.
    type Narrow: Pack<Self>;
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;
    /// Machine epsilon.
    const EPSILON: Self;
    /// The smallest positive normal number.
    const MIN_POSITIVE: Self;
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Converts from `f64`, rounding to nearest.
    fn from_f64(x: f64) -> Self;
    /// Converts to `f64` (exact for both types).
    fn to_f64(self) -> f64;
    /// Converts a count, as used for means (`1/N`).
    fn from_usize(n: usize) -> Self {
        Self::from_f64(n as f64)
    }
    /// eˣ.
    fn exp(self) -> Self;
    /// The natural logarithm.
    fn ln(self) -> Self;
    /// The hyperbolic tangent.
    fn tanh(self) -> Self;
    /// The square root.
    fn sqrt(self) -> Self;
    /// The absolute value.
    fn abs(self) -> Self;
    /// The larger of two values (NaN-ignoring, as `f64::max`).
    fn max(self, other: Self) -> Self;
    /// True unless NaN or infinite.
    fn is_finite(self) -> bool;
    /// The side of [`Real::transpose_tile`]'s square tiles: the lanes of
    /// [`Real::Narrow`].
    const TILE: usize;
    /// Transposes one `TILE × TILE` tile in registers: `dst[c·ds + r] =
    /// src[r·ss + c]`, for the source's and the destination's row strides
    /// `ss` and `ds`.
    fn transpose_tile(src: &[Self], ss: usize, dst: &mut [Self], ds: usize);
}

/// A SIMD pack of [`Pack::LANES`] scalars, as the kernels use it.
pub trait Pack<T>:
    Copy
    + Send
    + Sync
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
{
    /// How many scalars one pack holds.
    const LANES: usize;
    /// All lanes set to `x`.
    fn splat(x: T) -> Self;
    /// Loads the first `LANES` values of `s`. Panics if `s` is shorter.
    fn load(s: &[T]) -> Self;
    /// Stores into the first `LANES` values of `s`. Panics if `s` is shorter.
    fn store(self, s: &mut [T]);
    /// The first `n` lanes from `self`, the others from `other`.
    fn blend_first(self, n: usize, other: Self) -> Self;
    /// `self * a + b`, fused where the target has FMA.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// `x` in the lanes where `self > 0`, else 0 (ReLU's derivative applied to `x`).
    fn positive_select(self, x: Self) -> Self;
    /// Lane-wise maximum.
    fn max(self, other: Self) -> Self;
    /// Lane-wise minimum.
    fn min(self, other: Self) -> Self;
    /// Lane-wise eˣ.
    fn exp(self) -> Self;
    /// Lane-wise eˣ − 1, accurate near 0.
    fn exp_m1(self) -> Self;
    /// Lane-wise absolute value.
    fn abs(self) -> Self;
    /// Lane-wise: 0 where `|self|` is below the smallest normal number
    /// (subnormal values), `self` elsewhere.
    fn flush_subnormal(self) -> Self;
    /// Lane-wise square root (correctly rounded, as the scalar one).
    fn sqrt(self) -> Self;
    /// Lane-wise `|self|` with the sign of `sign`.
    fn with_sign_of(self, sign: Self) -> Self;
    /// The lanes summed in lane order (deterministic, unlike `wide`'s
    /// `reduce_add`, whose order is unspecified).
    fn sum_lanes(self) -> T;
    /// `out[i] ←` the first `lanes` lanes of `packs[i]` summed as a tree
    /// (the lanes above count as 0): lane l plus lane l + L/2 for l < L/2
    /// (L = [`Pack::LANES`]), then the same on the L/2 sums, down to one.
    /// Where a build has a faster way (AVX-512, f32) it gives these bits.
    ///
    /// # Panics
    /// If `out` is shorter than `packs` or `lanes` exceeds `LANES`.
    fn tree_sums(packs: &[Self], lanes: usize, out: &mut [T]);
}

/// One pack's [`Pack::tree_sums`], lane by lane: its definition.
#[inline(always)]
fn tree_sum<T: Copy + Default + Add<Output = T>, const L: usize>(mut a: [T; L], lanes: usize) -> T {
    a[lanes..].fill(T::default());
    let mut width = L / 2;
    while width > 0 {
        for l in 0..width {
            a[l] = a[l] + a[l + width];
        }
        width /= 2;
    }
    a[0]
}

macro_rules! impl_real {
    ($t:ident, $pack:ident, $narrow:ident, $tile:literal) => {
        impl Real for $t {
            type Pack = wide::$pack;
            type Narrow = wide::$narrow;
            const NAME: &'static str = stringify!($t);
            const EPSILON: Self = $t::EPSILON;
            const MIN_POSITIVE: Self = $t::MIN_POSITIVE;
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                $t::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                $t::ln(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                $t::tanh(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                $t::sqrt(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                $t::abs(self)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                $t::max(self, other)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                $t::is_finite(self)
            }
            const TILE: usize = $tile;
            #[inline(always)]
            fn transpose_tile(src: &[Self], ss: usize, dst: &mut [Self], ds: usize) {
                let rows: [wide::$narrow; $tile] =
                    std::array::from_fn(|r| Pack::load(&src[r * ss..][..$tile]));
                for (c, column) in wide::$narrow::transpose(rows).into_iter().enumerate() {
                    column.store(&mut dst[c * ds..][..$tile]);
                }
            }
        }
    };
}

macro_rules! impl_pack {
    ($t:ident, $pack:ident, $lanes:literal, $tree:expr) => {
        impl Pack<$t> for wide::$pack {
            const LANES: usize = $lanes;
            #[inline(always)]
            fn splat(x: $t) -> Self {
                wide::$pack::splat(x)
            }
            #[inline(always)]
            fn load(s: &[$t]) -> Self {
                let a: [$t; $lanes] = s[..$lanes].try_into().expect("slice of LANES values");
                wide::$pack::from(a)
            }
            #[inline(always)]
            fn store(self, s: &mut [$t]) {
                s[..$lanes].copy_from_slice(&self.to_array());
            }
            #[inline(always)]
            fn blend_first(self, n: usize, other: Self) -> Self {
                let mut iota = [0.0; $lanes];
                for (i, x) in iota.iter_mut().enumerate() {
                    *x = i as $t;
                }
                wide::$pack::from(iota).simd_lt(wide::$pack::splat(n as $t)).select(self, other)
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                wide::$pack::mul_add(self, a, b)
            }
            #[inline(always)]
            fn positive_select(self, x: Self) -> Self {
                self.simd_gt(wide::$pack::ZERO).select(x, wide::$pack::ZERO)
            }
            #[inline(always)]
            fn max(self, other: Self) -> Self {
                wide::$pack::max(self, other)
            }
            #[inline(always)]
            fn min(self, other: Self) -> Self {
                wide::$pack::min(self, other)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                wide::$pack::exp(self)
            }
            #[inline(always)]
            fn exp_m1(self) -> Self {
                wide::$pack::exp_m1(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                wide::$pack::abs(self)
            }
            #[inline(always)]
            fn flush_subnormal(self) -> Self {
                let tiny = self.abs().simd_lt(wide::$pack::splat($t::MIN_POSITIVE));
                tiny.select(wide::$pack::ZERO, self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                wide::$pack::sqrt(self)
            }
            #[inline(always)]
            fn with_sign_of(self, sign: Self) -> Self {
                sign.is_sign_negative().select(-self.abs(), self.abs())
            }
            #[inline(always)]
            fn sum_lanes(self) -> $t {
                let mut s = 0.0;
                for x in self.to_array() {
                    s += x;
                }
                s
            }
            fn tree_sums(packs: &[Self], lanes: usize, out: &mut [$t]) {
                $tree(packs, lanes, out)
            }
        }
    };
}

/// [`Pack::tree_sums`] through arrays.
fn tree_sums_by_lane<
    T: Copy + Default + Add<Output = T>,
    P: Copy + Into<[T; L]>,
    const L: usize,
>(
    packs: &[P],
    lanes: usize,
    out: &mut [T],
) {
    assert!(lanes <= L, "tree sums: {lanes} lanes of {L}");
    assert!(out.len() >= packs.len(), "tree sums: {} outputs for {} packs", out.len(), packs.len());
    for (o, &p) in out.iter_mut().zip(packs) {
        *o = tree_sum::<T, L>(p.into(), lanes);
    }
}

/// [`Pack::tree_sums`] for f32x16 with AVX-512: sixteen packs at a time,
/// the tree's four levels as shuffles of whole registers (lane halves
/// first, as the definition), so that sixteen sums take 31 shuffles and 15
/// additions rather than 240 scalar ones.
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
fn tree_sums_f32x16(packs: &[wide::f32x16], lanes: usize, out: &mut [f32]) {
    assert!(lanes <= 16, "tree sums: {lanes} lanes of 16");
    assert!(out.len() >= packs.len(), "tree sums: {} outputs for {} packs", out.len(), packs.len());
    let mask = ((1u32 << lanes) - 1) as u16;
    let mut chunks = packs.chunks_exact(16);
    let mut outs = out[..packs.len()].chunks_exact_mut(16);
    for (chunk, o) in (&mut chunks).zip(&mut outs) {
        let v: [std::arch::x86_64::__m512; 16] = std::array::from_fn(|i| chunk[i].into());
        // SAFETY: this function is compiled only where the build enables
        // AVX-512F for every function (the `cfg` above), so every CPU the
        // binary may run on has the instructions `tree16` is compiled for.
        #[allow(unsafe_code)]
        let sums = unsafe { tree16(mask, v) };
        o.copy_from_slice(&wide::f32x16::from(sums).to_array());
    }
    tree_sums_by_lane::<f32, wide::f32x16, 16>(chunks.remainder(), lanes, outs.into_remainder());
}

/// The sixteen tree sums of [`tree_sums_f32x16`], lane i pack i's, the
/// lanes of `mask` kept and the others 0.
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
#[target_feature(enable = "avx512f")]
fn tree16(mask: u16, v: [std::arch::x86_64::__m512; 16]) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::{
        __m512, _mm512_add_ps, _mm512_maskz_mov_ps, _mm512_permutexvar_ps, _mm512_setr_epi32,
        _mm512_shuffle_f32x4, _mm512_shuffle_ps,
    };
    let v: [__m512; 16] = std::array::from_fn(|i| _mm512_maskz_mov_ps(mask, v[i]));
    // Level 1, lane l + lane l + 8: pack 2i's eight sums, then pack 2i + 1's.
    let w: [__m512; 8] = std::array::from_fn(|i| {
        let (a, b) = (v[2 * i], v[2 * i + 1]);
        _mm512_add_ps(_mm512_shuffle_f32x4::<0x44>(a, b), _mm512_shuffle_f32x4::<0xEE>(a, b))
    });
    // Level 2, + 4: four sums of each of packs 4i … 4i + 3, in that order.
    let u: [__m512; 4] = std::array::from_fn(|i| {
        let (a, b) = (w[2 * i], w[2 * i + 1]);
        _mm512_add_ps(_mm512_shuffle_f32x4::<0x88>(a, b), _mm512_shuffle_f32x4::<0xDD>(a, b))
    });
    // Level 3, + 2: 128-bit block k holds two sums of pack k, then two of
    // pack 4 + k (of 8 + k and 12 + k in the second).
    let s: [__m512; 2] = std::array::from_fn(|i| {
        let (a, b) = (u[2 * i], u[2 * i + 1]);
        _mm512_add_ps(_mm512_shuffle_ps::<0x44>(a, b), _mm512_shuffle_ps::<0xEE>(a, b))
    });
    // Level 4, + 1: block k holds the sums of packs k, 4 + k, 8 + k, 12 + k;
    // pack i's goes back to lane i.
    let (a, b) = (s[0], s[1]);
    let r = _mm512_add_ps(_mm512_shuffle_ps::<0x88>(a, b), _mm512_shuffle_ps::<0xDD>(a, b));
    let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_permutexvar_ps(order, r)
}

impl_real!(f32, f32x16, f32x8, 8);
impl_real!(f64, f64x8, f64x4, 4);
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
impl_pack!(f32, f32x16, 16, tree_sums_f32x16);
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
impl_pack!(f32, f32x16, 16, tree_sums_by_lane::<f32, wide::f32x16, 16>);
impl_pack!(f64, f64x8, 8, tree_sums_by_lane::<f64, wide::f64x8, 8>);
impl_pack!(f32, f32x8, 8, tree_sums_by_lane::<f32, wide::f32x8, 8>);
impl_pack!(f64, f64x4, 4, tree_sums_by_lane::<f64, wide::f64x4, 4>);

/// Which SIMD instructions this build of the kernels uses.
///
/// `wide` chooses at compile time from the enabled target features; this
/// workspace builds for the CPU that compiles it (`target-cpu=native` in
/// `.cargo/config.toml`): AVX-512 where the CPU has it, AVX2 otherwise.
/// With AVX-512 it also says when the small products run in 256-bit packs,
/// which the kernels choose at run time for the CPU's FMA units.
/// Benchmarks print this so that every number says what it was measured with.
pub fn simd_level() -> &'static str {
    if cfg!(target_feature = "avx512f") {
        if crate::gemm::half_width_fma() {
            "avx512f: f32x16 / f64x8 in one 512-bit register; small products in 256-bit packs \
             (this CPU's FMA units are 256 bits wide)"
        } else {
            "avx512f: f32x16 / f64x8 in one 512-bit register"
        }
    } else if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
        "avx2+fma: f32x16 / f64x8 as two 256-bit registers"
    } else if cfg!(target_feature = "sse2") {
        "sse2: f32x16 / f64x8 as four 128-bit registers"
    } else {
        "scalar fallback: f32x16 / f64x8 emulated lane by lane"
    }
}
