// Multi-head scaled-dot-product attention for many events with a few tokens each (the ETN: 12-16 tokens,
// 4 heads of 4 dimensions), forward and backward, on the CPU. PyTorch's fused CPU kernel pays a fixed cost per
// (event, head) that dwarfs the arithmetic at these sizes; here events are computed side by side in the lanes
// of vector registers (see kLanes), so every instruction serves several events.
//
// Shapes: q (B, Tq, E), k and v (B, Tk, E), E = heads * D, any strides with the last one 1 (so slices of a
// packed q/k/v projection need no copy). Outputs: out (B, Tq, E) and the softmax probabilities, kept for the
// backward pass in the kernel's own layout (tiles, heads, Tq, Tk, kLanes), or empty if not asked for; the backward returns dq (B, Tq, E),
// dk and dv (B, Tk, E), all contiguous. float32 and float64.
//
// Dropout on the attention weights (as nn.MultiheadAttention(dropout=p) in training): out_i = sum_j m_ij s p_ij v_j
// with the keep mask m and s = 1 / (1 - drop probability). The mask is a counter-based random function of a 64-bit
// seed (drawn by the caller from torch's generator) and of each weight's index n = ((b * heads + h) * Tq + i) * Tk + j
// in the logical (B, heads, Tq, Tk) layout (see keep_of): 31 random bits per weight, compared with
// threshold = round(p 2^31) (weight kept where >= threshold). So it does not depend on the number of threads or of
// lanes, and hzg.models.small_attention.dropout_keep_mask computes the same mask in numpy. The forward
// pass keeps the mask in the sign of the saved probabilities (a dropped weight is saved as -p_ij; a p_ij of 0 needs
// no mask), so the backward pass reads no extra memory.
//
// The same library carries the layer norm of the attention models' scoring (small_layer_norm, below).
//
// Registered as operators of the library TORCH_EXTENSION_NAME (torch.ops.<name>.forward, .backward) with the
// light ATen and torch/library.h headers instead of <torch/extension.h> and pybind11: the build (compile and link)
// takes about 12 s; parsing <torch/extension.h> alone took 27 s.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace {

void check(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, "small_attention: q, k, v must be (B, T, E)");
  TORCH_CHECK(q.size(0) == k.size(0) && k.size(0) == v.size(0), "small_attention: batch sizes differ");
  TORCH_CHECK(k.size(1) == v.size(1), "small_attention: k and v have different numbers of tokens");
  TORCH_CHECK(q.size(2) == k.size(2) && k.size(2) == v.size(2), "small_attention: embedding sizes differ");
  TORCH_CHECK(heads > 0 && q.size(2) % heads == 0, "small_attention: E is not divisible by heads");
  TORCH_CHECK(q.stride(2) == 1 && k.stride(2) == 1 && v.stride(2) == 1, "small_attention: last stride must be 1");
  TORCH_CHECK(q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu(), "small_attention: CPU only");
  TORCH_CHECK(q.scalar_type() == k.scalar_type() && k.scalar_type() == v.scalar_type(),
              "small_attention: q, k, v dtypes differ");
}

// Events are processed in tiles of kLanes, held in GCC vector types with one event per lane: every operation
// of the attention then works on kLanes events at once, with no reduction across lanes. 8 lanes of float fill
// one AVX2 register (build with -mavx2 -mfma); 4 lanes one SSE2 register (the x86-64 baseline).
#ifndef SMALL_ATTENTION_LANES
#define SMALL_ATTENTION_LANES 8
#endif
constexpr int64_t kLanes = SMALL_ATTENTION_LANES;

template <typename T>
struct Lanes;
template <>
struct Lanes<float> {
  typedef float type __attribute__((vector_size(kLanes * sizeof(float))));
  typedef std::int32_t int_type __attribute__((vector_size(kLanes * sizeof(std::int32_t))));
  typedef int_type mask_type;  // what a comparison of two `type`s gives, and what `mask ? a : b` selects with
};
template <>
struct Lanes<double> {
  typedef double type __attribute__((vector_size(kLanes * sizeof(double))));
  typedef std::int64_t mask_type __attribute__((vector_size(kLanes * sizeof(std::int64_t))));
};

template <typename T>
using Vec = typename Lanes<T>::type;

template <typename T>
inline Vec<T> splat(T x) {
  return Vec<T>{} + x;
}

// exp without a library call (Cephes' expf: range reduction by ln 2 and a degree-6 polynomial, about 1 ulp);
// arguments below -87 give exp(-87) ~ 1.6e-38 instead of a denormal. Softmax only calls it on s - max(s) <= 0.
template <typename V, typename I>
inline V exp_lanes(V x) {
  x = x < (V{} - 87.0f) ? (V{} - 87.0f) : x;
  x = x > (V{} + 88.0f) ? (V{} + 88.0f) : x;
  const V n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  V r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  V p = V{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const I bits = (__builtin_convertvector(n, I) + 127) << 23;
  V two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return p * two_n;
}

// The softmax's exp: exactly 0 below -87, as std::exp's is below -103. exp_lanes' 1.6e-38 there, divided by
// the row's sum, is a denormal, and every product with a denormal takes the CPU's slow microcode path: a masked
// key (score lowered by 1e5, etn_objects.MaskedAttention) made the object models' attention 10-20x slower.
inline Vec<float> exp_of(Vec<float> x) {
  const Vec<float> e = exp_lanes<Vec<float>, Lanes<float>::int_type>(x);
  return x < (Vec<float>{} - 87.0f) ? Vec<float>{} : e;
}

inline Vec<double> exp_of(Vec<double> x) {  // float64: for checks (gradcheck), not speed
  for (int64_t l = 0; l < kLanes; ++l) x[l] = std::exp(x[l]);
  return x;
}

// Attention dropout: a counter-based generator, a keyed hash of each weight's index n (32 bits) made of two rounds
// of Wellons' "lowbias32" integer hash (about 8 vector instructions each, 32-bit multiplies only), keyed by the two
// halves of the 64-bit seed: x = h(h(n ^ key0) ^ key1). The weight is kept where x >> 1 (31 bits) >= threshold.
typedef std::uint32_t U32 __attribute__((vector_size(kLanes * sizeof(std::uint32_t))));
typedef std::int32_t I32 __attribute__((vector_size(kLanes * sizeof(std::int32_t))));

struct Dropout {
  std::uint32_t key0 = 0, key1 = 0;
  std::int32_t threshold = 0;  // 0: no dropout
  double scale = 1.0;          // 1 / (1 - threshold / 2^31)
};

inline U32 lowbias32(U32 x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// Keep mask of one weight in every lane (all bits set where kept) from the lanes' weight indices n.
template <typename T>
inline typename Lanes<T>::mask_type keep_of(U32 n, const Dropout& drop) {
  const U32 x = lowbias32(lowbias32(n ^ drop.key0) ^ drop.key1);
  const I32 keep = reinterpret_cast<I32>(x >> 1) >= drop.threshold;
  if constexpr (sizeof(T) == sizeof(std::int32_t)) return keep;
  else return __builtin_convertvector(keep, typename Lanes<T>::mask_type);
}

// Weight indices n = ((b * heads + h) * Tq + i) * Tk + 0 of the events b = b0 + l of a tile (< 2^32, checked).
inline U32 index_of(int64_t b0, int64_t per_event, int64_t offset) {
  U32 n;
  for (int64_t l = 0; l < kLanes; ++l) n[l] = static_cast<std::uint32_t>((b0 + l) * per_event + offset);
  return n;
}

struct View {  // a (B, T, E) tensor with strides
  int64_t s0, s1;
};

// tile[t * D + d][l] = factor * x[b0 + l, t, col + d]; a partial tile repeats its last event in unused lanes.
template <typename T>
void gather(const T* x, View xs, int64_t b0, int64_t lanes, int64_t n_tokens, int64_t col, int64_t D, T factor,
            Vec<T>* tile) {
  for (int64_t l = 0; l < kLanes; ++l) {
    const T* xb = x + (b0 + (l < lanes ? l : lanes - 1)) * xs.s0 + col;
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t d = 0; d < D; ++d) tile[t * D + d][l] = factor * xb[t * xs.s1 + d];
  }
}

// x[b0 + l, t, col + d] = tile[t * D + d][l] for the used lanes, x contiguous (B, n_tokens, E).
template <typename T>
void scatter(const Vec<T>* tile, int64_t b0, int64_t lanes, int64_t n_tokens, int64_t E, int64_t col, int64_t D,
             T* x) {
  for (int64_t l = 0; l < lanes; ++l) {
    T* xb = x + (b0 + l) * n_tokens * E + col;
    for (int64_t t = 0; t < n_tokens; ++t)
      for (int64_t d = 0; d < D; ++d) xb[t * E + d] = tile[t * D + d][l];
  }
}

// Head size 4 with 8 float lanes (the ETN's attention in the AVX2 and AVX-512 builds): a token's 4 values of 8
// events are moved between rows and lanes by an 8 x 4 transposition in AVX registers (4 two-row loads and 8
// shuffles, or 8 shuffles and 8 row stores) instead of 32 scalar moves. The same values as gather and scatter.
#if defined(__AVX2__) && SMALL_ATTENTION_LANES == 8
#define SMALL_ATTENTION_TRANSPOSED

void gather_transposed(const float* x, View xs, int64_t b0, int64_t lanes, int64_t n_tokens, int64_t col,
                       float factor, Vec<float>* tile) {
  const float* r[8];
  for (int64_t l = 0; l < 8; ++l) r[l] = x + (b0 + (l < lanes ? l : lanes - 1)) * xs.s0 + col;
  const __m256 f = _mm256_set1_ps(factor);
  for (int64_t t = 0, o = 0; t < n_tokens; ++t, o += xs.s1) {
    // [event k | event k + 4]
    const __m256 a = _mm256_loadu2_m128(r[4] + o, r[0] + o), b = _mm256_loadu2_m128(r[5] + o, r[1] + o),
                 c = _mm256_loadu2_m128(r[6] + o, r[2] + o), d = _mm256_loadu2_m128(r[7] + o, r[3] + o);
    const __m256 ab0 = _mm256_unpacklo_ps(a, b), ab1 = _mm256_unpackhi_ps(a, b), cd0 = _mm256_unpacklo_ps(c, d),
                 cd1 = _mm256_unpackhi_ps(c, d);
    Vec<float>* out = tile + t * 4;
    out[0] = Vec<float>(_mm256_mul_ps(f, _mm256_shuffle_ps(ab0, cd0, _MM_SHUFFLE(1, 0, 1, 0))));
    out[1] = Vec<float>(_mm256_mul_ps(f, _mm256_shuffle_ps(ab0, cd0, _MM_SHUFFLE(3, 2, 3, 2))));
    out[2] = Vec<float>(_mm256_mul_ps(f, _mm256_shuffle_ps(ab1, cd1, _MM_SHUFFLE(1, 0, 1, 0))));
    out[3] = Vec<float>(_mm256_mul_ps(f, _mm256_shuffle_ps(ab1, cd1, _MM_SHUFFLE(3, 2, 3, 2))));
  }
}

void scatter_transposed(const Vec<float>* tile, int64_t b0, int64_t lanes, int64_t n_tokens, int64_t E, int64_t col,
                        float* x) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    const __m256* in = reinterpret_cast<const __m256*>(tile + t * 4);
    const __m256 t0 = _mm256_unpacklo_ps(in[0], in[1]), t1 = _mm256_unpackhi_ps(in[0], in[1]),
                 t2 = _mm256_unpacklo_ps(in[2], in[3]), t3 = _mm256_unpackhi_ps(in[2], in[3]);
    // rows[k] = [event k | event k + 4], 4 values each
    const __m256 rows[4] = {_mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)),
                            _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
                            _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)),
                            _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2))};
    float* xt = x + b0 * n_tokens * E + t * E + col;
    for (int64_t l = 0; l < lanes; ++l)
      _mm_storeu_ps(xt + l * n_tokens * E,
                    l < 4 ? _mm256_castps256_ps128(rows[l]) : _mm256_extractf128_ps(rows[l - 4], 1));
  }
}
#endif

// gather or scatter for head size kD (0: any, given as D)
template <typename T, int kD>
inline void gather_tile(const T* x, View xs, int64_t b0, int64_t lanes, int64_t n_tokens, int64_t col, int64_t D,
                        T factor, Vec<T>* tile) {
#ifdef SMALL_ATTENTION_TRANSPOSED
  if constexpr (kD == 4 && std::is_same_v<T, float>) {
    gather_transposed(x, xs, b0, lanes, n_tokens, col, factor, tile);
    return;
  }
#endif
  gather(x, xs, b0, lanes, n_tokens, col, D, factor, tile);
}

template <typename T, int kD>
inline void scatter_tile(const Vec<T>* tile, int64_t b0, int64_t lanes, int64_t n_tokens, int64_t E, int64_t col,
                         int64_t D, T* x) {
#ifdef SMALL_ATTENTION_TRANSPOSED
  if constexpr (kD == 4 && std::is_same_v<T, float>) {
    scatter_transposed(tile, b0, lanes, n_tokens, E, col, x);
    return;
  }
#endif
  scatter(tile, b0, lanes, n_tokens, E, col, D, x);
}

// probs: (tiles, heads, Tq, Tk, kLanes), the layout both passes use as it is; with dropout, a dropped weight's
// probability is saved negated. probs == nullptr: not kept (inference); a per-thread buffer takes them.
// kD: the head size D when known at compile time (the ETN's 4: every loop over d unrolled), 0 for any D.
template <typename T, bool Drop, int kD>
void forward_kernel(const T* q, View qs, const T* k, View ks, const T* v, View vs, T* out, T* probs, int64_t B,
                    int64_t Tq, int64_t Tk, int64_t heads, int64_t head_size, const Dropout& drop) {
  using V = Vec<T>;
  const int64_t D = kD ? kD : head_size;
  const V drop_scale = splat(static_cast<T>(drop.scale)), zero = splat(T(0));
  const int64_t E = heads * D, tiles = (B + kLanes - 1) / kLanes;
  const T scale = T(1) / std::sqrt(T(D));
  at::parallel_for(0, tiles, 8, [&](int64_t t0, int64_t t1) {
    std::vector<V> qt(Tq * D), kt(Tk * D), vt(Tk * D), ot(Tq * D), scratch(probs ? 0 : Tk);
    for (int64_t tile = t0; tile < t1; ++tile) {
      const int64_t b0 = tile * kLanes, lanes = std::min(kLanes, B - b0);
      for (int64_t h = 0; h < heads; ++h) {
        gather_tile<T, kD>(q, qs, b0, lanes, Tq, h * D, D, scale, qt.data());
        gather_tile<T, kD>(k, ks, b0, lanes, Tk, h * D, D, T(1), kt.data());
        gather_tile<T, kD>(v, vs, b0, lanes, Tk, h * D, D, T(1), vt.data());
        for (int64_t i = 0; i < Tq; ++i) {
          V* p = probs ? reinterpret_cast<V*>(probs) + (tile * heads + h) * Tq * Tk + i * Tk : scratch.data();
          const V* qi = qt.data() + i * D;
          V mx = splat(-std::numeric_limits<T>::infinity());
          for (int64_t j = 0; j < Tk; ++j) {
            V s = splat(T(0));
            for (int64_t d = 0; d < D; ++d) s += qi[d] * kt[j * D + d];
            p[j] = s;
            mx = s > mx ? s : mx;
          }
          V sum = splat(T(0));
          for (int64_t j = 0; j < Tk; ++j) {
            p[j] = exp_of(p[j] - mx);
            sum += p[j];
          }
          const V inv = T(1) / sum;
          V* oi = ot.data() + i * D;
          for (int64_t d = 0; d < D; ++d) oi[d] = splat(T(0));
          if constexpr (Drop) {
            U32 n = index_of(b0, heads * Tq * Tk, (h * Tq + i) * Tk);
            for (int64_t j = 0; j < Tk; ++j, n += 1U) {
              const auto keep = keep_of<T>(n, drop);
              const V pj = p[j] * inv, used = keep ? pj * drop_scale : zero;
              p[j] = keep ? pj : -pj;
              for (int64_t d = 0; d < D; ++d) oi[d] += used * vt[j * D + d];
            }
          } else {
            for (int64_t j = 0; j < Tk; ++j) {
              p[j] *= inv;
              for (int64_t d = 0; d < D; ++d) oi[d] += p[j] * vt[j * D + d];
            }
          }
        }
        scatter_tile<T, kD>(ot.data(), b0, lanes, Tq, E, h * D, D, out);
      }
    }
  });
}

template <typename T, bool Drop, int kD>
void backward_kernel(const T* g, const T* q, View qs, const T* k, View ks, const T* v, View vs, const T* probs,
                     T* dq, T* dk, T* dv, int64_t B, int64_t Tq, int64_t Tk, int64_t heads, int64_t head_size,
                     const Dropout& drop) {
  using V = Vec<T>;
  const int64_t D = kD ? kD : head_size;
  const V drop_scale = splat(static_cast<T>(drop.scale)), zero = splat(T(0));
  const int64_t E = heads * D, tiles = (B + kLanes - 1) / kLanes;
  const T scale = T(1) / std::sqrt(T(D));
  const View gs{Tq * E, E};
  at::parallel_for(0, tiles, 8, [&](int64_t t0, int64_t t1) {
    std::vector<V> qt(Tq * D), kt(Tk * D), vt(Tk * D), gt(Tq * D), dqt(Tq * D), dkt(Tk * D), dvt(Tk * D), ds(Tk),
        pt(Drop ? Tk : 0);
    for (int64_t tile = t0; tile < t1; ++tile) {
      const int64_t b0 = tile * kLanes, lanes = std::min(kLanes, B - b0);
      for (int64_t h = 0; h < heads; ++h) {
        gather_tile<T, kD>(q, qs, b0, lanes, Tq, h * D, D, scale, qt.data());  // d score / d k = scale q
        gather_tile<T, kD>(k, ks, b0, lanes, Tk, h * D, D, scale, kt.data());  // d score / d q = scale k
        gather_tile<T, kD>(v, vs, b0, lanes, Tk, h * D, D, T(1), vt.data());
        gather_tile<T, kD>(g, gs, b0, lanes, Tq, h * D, D, T(1), gt.data());
        std::fill(dkt.begin(), dkt.end(), splat(T(0)));
        std::fill(dvt.begin(), dvt.end(), splat(T(0)));
        for (int64_t i = 0; i < Tq; ++i) {
          const V* p = reinterpret_cast<const V*>(probs) + (tile * heads + h) * Tq * Tk + i * Tk;
          const V* gi = gt.data() + i * D;
          const V* qi = qt.data() + i * D;
          V row = splat(T(0));
          if constexpr (Drop) {
            // the weight used is u_j = m_j s p_j: dv_j += u_j g_i; dp_j = m_j s (g_i . v_j) (kept in ds)
            for (int64_t j = 0; j < Tk; ++j) {
              const auto keep = p[j] >= zero;  // a dropped weight was saved as -p_j (and -0 needs no mask)
              const V pj = keep ? p[j] : -p[j], factor = keep ? drop_scale : zero, used = pj * factor;
              V dp = splat(T(0));
              for (int64_t d = 0; d < D; ++d) {
                dp += gi[d] * vt[j * D + d];
                dvt[j * D + d] += used * gi[d];
              }
              dp *= factor;
              pt[j] = pj;
              ds[j] = dp;
              row += pj * dp;
            }
            p = pt.data();
          } else {
            // dp_j = g_i . v_j (kept in ds), dv_j += p_j g_i, row = sum_j p_j dp_j
            for (int64_t j = 0; j < Tk; ++j) {
              V dp = splat(T(0));
              for (int64_t d = 0; d < D; ++d) {
                dp += gi[d] * vt[j * D + d];
                dvt[j * D + d] += p[j] * gi[d];
              }
              ds[j] = dp;
              row += p[j] * dp;
            }
          }
          // softmax backward ds_j = p_j (dp_j - row); dq_i = sum_j ds_j scale k_j; dk_j += ds_j scale q_i
          V* dqi = dqt.data() + i * D;
          for (int64_t d = 0; d < D; ++d) dqi[d] = splat(T(0));
          for (int64_t j = 0; j < Tk; ++j) {
            const V dsj = p[j] * (ds[j] - row);
            for (int64_t d = 0; d < D; ++d) {
              dqi[d] += dsj * kt[j * D + d];
              dkt[j * D + d] += dsj * qi[d];
            }
          }
        }
        scatter_tile<T, kD>(dqt.data(), b0, lanes, Tq, E, h * D, D, dq);
        scatter_tile<T, kD>(dkt.data(), b0, lanes, Tk, E, h * D, D, dk);
        scatter_tile<T, kD>(dvt.data(), b0, lanes, Tk, E, h * D, D, dv);
      }
    }
  });
}

// f(std::integral_constant<int, kD>) with kD = D for the head sizes the kernels are compiled for, the ETN's 4
// and 5 (the object models' masked attention, 4 + 1), else kD = 0 (any D).
template <typename F>
void with_compiled_head_size(int64_t D, F&& f) {
  if (D == 4) f(std::integral_constant<int, 4>{});
  else if (D == 5) f(std::integral_constant<int, 5>{});
  else f(std::integral_constant<int, 0>{});
}

}  // namespace

Dropout make_dropout(int64_t seed, int64_t threshold) {
  TORCH_CHECK(threshold >= 0 && threshold < (int64_t(1) << 31), "small_attention: dropout threshold not in [0, 2^31)");
  Dropout drop;
  drop.key0 = static_cast<std::uint32_t>(static_cast<std::uint64_t>(seed));
  drop.key1 = static_cast<std::uint32_t>(static_cast<std::uint64_t>(seed) >> 32);
  drop.threshold = static_cast<std::int32_t>(threshold);
  drop.scale = 1.0 / (1.0 - static_cast<double>(threshold) / 2147483648.0);
  return drop;
}

// seed, threshold: attention dropout (see the top of this file); threshold 0 switches it off.
std::vector<at::Tensor> small_attention_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                int64_t heads, bool keep_probs, int64_t seed, int64_t threshold) {
  check(q, k, v, heads);
  const Dropout drop = make_dropout(seed, threshold);
  const int64_t B = q.size(0), Tq = q.size(1), Tk = k.size(1), E = q.size(2);
  TORCH_CHECK(!threshold || B * heads * Tq * Tk <= (int64_t(1) << 32),
              "small_attention: attention dropout needs at most 2^32 attention weights per call");
  auto out = at::empty({B, Tq, E}, q.options());
  auto probs = keep_probs ? at::empty({(B + kLanes - 1) / kLanes, heads, Tq, Tk, kLanes}, q.options())
                          : at::empty({0}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "small_attention_forward", [&] {
    auto run = [&](auto kernel) {
      kernel(q.data_ptr<scalar_t>(), View{q.stride(0), q.stride(1)}, k.data_ptr<scalar_t>(),
             View{k.stride(0), k.stride(1)}, v.data_ptr<scalar_t>(), View{v.stride(0), v.stride(1)},
             out.data_ptr<scalar_t>(), keep_probs ? probs.data_ptr<scalar_t>() : nullptr, B, Tq, Tk, heads, E / heads,
             drop);
    };
    with_compiled_head_size(E / heads, [&](auto head_size) {
      constexpr int kD = decltype(head_size)::value;
      if (drop.threshold) run(forward_kernel<scalar_t, true, kD>);
      else run(forward_kernel<scalar_t, false, kD>);
    });
  });
  return {out, probs};
}

// threshold: the forward pass's (the mask itself is in the saved probabilities).
std::vector<at::Tensor> small_attention_backward(const at::Tensor& grad, const at::Tensor& q, const at::Tensor& k,
                                                 const at::Tensor& v, const at::Tensor& probs, int64_t heads,
                                                 int64_t threshold) {
  check(q, k, v, heads);
  const Dropout drop = make_dropout(0, threshold);
  const int64_t B = q.size(0), Tq = q.size(1), Tk = k.size(1), E = q.size(2);
  auto g = grad.contiguous();
  auto p = probs.contiguous();
  TORCH_CHECK(g.sizes() == q.sizes(), "small_attention: gradient shape differs from q");
  TORCH_CHECK(p.numel() == (B + kLanes - 1) / kLanes * kLanes * heads * Tq * Tk,
              "small_attention: probabilities do not come from the forward pass of these inputs");
  auto dq = at::empty({B, Tq, E}, q.options());
  auto dk = at::empty({B, Tk, E}, q.options());
  auto dv = at::empty({B, Tk, E}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "small_attention_backward", [&] {
    auto run = [&](auto kernel) {
      kernel(g.data_ptr<scalar_t>(), q.data_ptr<scalar_t>(), View{q.stride(0), q.stride(1)}, k.data_ptr<scalar_t>(),
             View{k.stride(0), k.stride(1)}, v.data_ptr<scalar_t>(), View{v.stride(0), v.stride(1)},
             p.data_ptr<scalar_t>(), dq.data_ptr<scalar_t>(), dk.data_ptr<scalar_t>(), dv.data_ptr<scalar_t>(), B, Tq,
             Tk, heads, E / heads, drop);
    };
    with_compiled_head_size(E / heads, [&](auto head_size) {
      constexpr int kD = decltype(head_size)::value;
      if (drop.threshold) run(backward_kernel<scalar_t, true, kD>);
      else run(backward_kernel<scalar_t, false, kD>);
    });
  });
  return {dq, dk, dv};
}

// Layer norm over the last dimension, for scoring (no backward): y = (x - mean) / sqrt(var + eps) * weight + bias
// per row of x (rows, n), var the biased variance, as torch.nn.functional.layer_norm; the same to float rounding
// (the sums' order differs). PyTorch's CPU kernel pays a fixed cost per row that dominates at the ETN's n = 16 (the
// ETN's scoring spent a fifth of its time there); here a row is two passes over n values in registers, vectorised
// by the compiler, and rows are split over torch's intra-op threads.
namespace {

// Rows r0..r1 of x (rows of n values); mean and rstd (1 / std) of each row kept where they are not null (training).
template <typename T, int64_t N>
void layer_norm_rows(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t n_dyn, int64_t r0,
                     int64_t r1, T eps) {
  const int64_t n = N > 0 ? N : n_dyn;
  const T inv_n = T(1) / static_cast<T>(n);
  for (int64_t r = r0; r < r1; ++r) {
    const T* p = x + r * n;
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; ++j) sum += p[j];
    const T mu = sum * inv_n;
    T ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < n; ++j) ss += (p[j] - mu) * (p[j] - mu);
    const T rs = T(1) / std::sqrt(ss * inv_n + eps);
    if (mean) {
      mean[r] = mu;
      rstd[r] = rs;
    }
    T* q = y + r * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) q[j] = (p[j] - mu) * rs * w[j] + b[j];
  }
}

void check_norm(const at::Tensor& x, const at::Tensor& weight, const char* what) {
  TORCH_CHECK(x.dim() >= 1 && x.device().is_cpu(), what, ": x must be a CPU tensor");
  const int64_t n = x.size(-1);
  TORCH_CHECK(n > 0 && weight.numel() == n && weight.is_contiguous() && weight.scalar_type() == x.scalar_type(),
              what, ": weight and bias must be contiguous, of x's dtype, one value per element of the last dimension");
}

// [y, mean, rstd] of the layer norm of x's rows; mean and rstd (one per row) only with `stats` (else empty).
std::vector<at::Tensor> layer_norm_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                                           double eps, bool stats, const char* what) {
  check_norm(input, weight, what);
  check_norm(input, bias, what);
  auto x = input.contiguous();
  const int64_t n = x.size(-1), rows = x.numel() / n;
  auto y = at::empty(x.sizes(), x.options());
  auto mean = at::empty({stats ? rows : 0}, x.options()), rstd = at::empty({stats ? rows : 0}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "layer_norm_forward", [&] {
    const scalar_t *xp = x.data_ptr<scalar_t>(), *wp = weight.data_ptr<scalar_t>(), *bp = bias.data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    scalar_t *mp = stats ? mean.data_ptr<scalar_t>() : nullptr, *sp = stats ? rstd.data_ptr<scalar_t>() : nullptr;
    const auto e = static_cast<scalar_t>(eps);
    at::parallel_for(0, rows, 2048, [&](int64_t r0, int64_t r1) {
      if (n == 16) layer_norm_rows<scalar_t, 16>(xp, wp, bp, yp, mp, sp, n, r0, r1, e);
      else layer_norm_rows<scalar_t, 0>(xp, wp, bp, yp, mp, sp, n, r0, r1, e);
    });
  });
  return {y, mean, rstd};
}

}  // namespace

at::Tensor small_layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  TORCH_CHECK(x.dim() >= 1 && x.is_contiguous() && x.device().is_cpu(), "layer_norm: x must be a contiguous CPU tensor");
  return layer_norm_forward(x, weight, bias, eps, false, "layer_norm")[0];
}

// ---- The attention models' training path (autograd functions in hzg.learn.models.fused and .dropout) ----
//
// dropout(x, seed, threshold) -> x m s: the residual dropout, with the attention dropout's keyed hash (keep_of) of
// each element's row-major index n in x and s = 1 / (1 - threshold / 2^31). Its backward is the same call on the
// gradient (same seed): no mask is stored, and no random number is drawn per element.
//
// layer_norm_train(x, weight, bias, eps) -> [y, mean, rstd] and layer_norm_backward(grad, x, weight, mean, rstd)
// -> [dx, dweight, dbias]: layer norm over the last dimension, as torch.nn.functional.layer_norm, to float rounding.
// The weight and bias gradients are summed per block of kNormBlock rows, then over the blocks in order: the same
// bits whatever the number of threads.

at::Tensor hashed_dropout(const at::Tensor& input, int64_t seed, int64_t threshold) {
  TORCH_CHECK(input.device().is_cpu(), "dropout: CPU only");
  TORCH_CHECK(input.numel() <= (int64_t(1) << 32), "dropout: at most 2^32 elements per call");
  const Dropout drop = make_dropout(seed, threshold);
  auto x = input.contiguous();
  auto y = at::empty(x.sizes(), x.options());
  const int64_t n = x.numel();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "hashed_dropout", [&] {
    using V = Vec<scalar_t>;
    const V scale = splat(static_cast<scalar_t>(drop.scale)), zero = splat(scalar_t(0));
    U32 lane;
    for (int64_t l = 0; l < kLanes; ++l) lane[l] = static_cast<std::uint32_t>(l);
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    // kLanes elements at a time; full vectors are loaded and stored directly (a copy of variable size in the
    // loop kept the vector in memory and ran 3x slower), the last, partial one through a zero-padded copy
    auto masked = [&](int64_t i, V xv) {
      return keep_of<scalar_t>(lane + static_cast<std::uint32_t>(i), drop) ? xv * scale : zero;
    };
    at::parallel_for(0, (n + kLanes - 1) / kLanes, (int64_t(1) << 14) / kLanes, [&](int64_t c0, int64_t c1) {
      const int64_t end = std::min(n, c1 * kLanes);
      int64_t i = c0 * kLanes;
      for (; i + kLanes <= end; i += kLanes) {
        V xv;
        std::memcpy(&xv, xp + i, sizeof xv);
        const V yv = masked(i, xv);
        std::memcpy(yp + i, &yv, sizeof yv);
      }
      if (i < end) {
        V xv = zero;
        std::memcpy(&xv, xp + i, (end - i) * sizeof(scalar_t));
        const V yv = masked(i, xv);
        std::memcpy(yp + i, &yv, (end - i) * sizeof(scalar_t));
      }
    });
  });
  return y;
}

namespace {

constexpr int64_t kNormBlock = 512;  // rows per partial sum of the weight and bias gradients

// out[j] = the sum over the blocks k = 0, 1, ... (in that order, in double) of partial[k * stride + j], j < width:
// the per-block partial sums of a gradient reduced to the same bits whatever the number of threads
template <typename T>
void sum_blocks(const T* partial, int64_t blocks, int64_t stride, int64_t width, T* out) {
  for (int64_t j = 0; j < width; ++j) {
    double sum = 0;
    for (int64_t k = 0; k < blocks; ++k) sum += partial[k * stride + j];
    out[j] = static_cast<T>(sum);
  }
}

// dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = grad w, xhat = (x - mean) rstd; the block's sums of
// grad xhat and grad into dw, db (n values each).
template <typename T, int64_t N>
void layer_norm_backward_rows(const T* grad, const T* x, const T* w, const T* mean, const T* rstd, T* dx, T* dw,
                              T* db, int64_t n_dyn, int64_t r0, int64_t r1) {
  const int64_t n = N > 0 ? N : n_dyn;
  const T inv_n = T(1) / static_cast<T>(n);
  for (int64_t j = 0; j < n; ++j) dw[j] = db[j] = T(0);
  for (int64_t r = r0; r < r1; ++r) {
    const T *gr = grad + r * n, *xr = x + r * n;
    const T mu = mean[r], rs = rstd[r];
    T sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t j = 0; j < n; ++j) {
      const T xhat = (xr[j] - mu) * rs, g = gr[j] * w[j];
      sg += g;
      sgx += g * xhat;
      dw[j] += gr[j] * xhat;
      db[j] += gr[j];
    }
    const T mg = sg * inv_n, mgx = sgx * inv_n;
    T* d = dx + r * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) d[j] = rs * (gr[j] * w[j] - mg - (xr[j] - mu) * rs * mgx);
  }
}

}  // namespace

std::vector<at::Tensor> layer_norm_train(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                                         double eps) {
  return layer_norm_forward(input, weight, bias, eps, true, "layer_norm_train");
}

std::vector<at::Tensor> layer_norm_backward(const at::Tensor& grad_in, const at::Tensor& input,
                                            const at::Tensor& weight, const at::Tensor& mean, const at::Tensor& rstd) {
  check_norm(input, weight, "layer_norm_backward");
  auto x = input.contiguous(), grad = grad_in.contiguous();
  const int64_t n = x.size(-1), rows = x.numel() / n, blocks = (rows + kNormBlock - 1) / kNormBlock;
  TORCH_CHECK(grad.sizes() == x.sizes(), "layer_norm_backward: gradient shape differs from x");
  TORCH_CHECK(mean.numel() == rows && rstd.numel() == rows && mean.is_contiguous() && rstd.is_contiguous(),
              "layer_norm_backward: mean and rstd do not come from the forward pass of x");
  auto dx = at::empty(x.sizes(), x.options());
  auto partial = at::empty({blocks, 2, n}, x.options());
  auto dweight = at::empty({n}, x.options()), dbias = at::empty({n}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "layer_norm_backward", [&] {
    const scalar_t *gp = grad.data_ptr<scalar_t>(), *xp = x.data_ptr<scalar_t>(), *wp = weight.data_ptr<scalar_t>(),
                   *mp = mean.data_ptr<scalar_t>(), *sp = rstd.data_ptr<scalar_t>();
    scalar_t *dp = dx.data_ptr<scalar_t>(), *pp = partial.data_ptr<scalar_t>();
    at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t r0 = k * kNormBlock, r1 = std::min(rows, r0 + kNormBlock);
        scalar_t *dw = pp + k * 2 * n, *db = dw + n;
        if (n == 16) layer_norm_backward_rows<scalar_t, 16>(gp, xp, wp, mp, sp, dp, dw, db, n, r0, r1);
        else layer_norm_backward_rows<scalar_t, 0>(gp, xp, wp, mp, sp, dp, dw, db, n, r0, r1);
      }
    });
    sum_blocks(pp, blocks, 2 * n, n, dweight.data_ptr<scalar_t>());
    sum_blocks(pp + n, blocks, 2 * n, n, dbias.data_ptr<scalar_t>());
  });
  return {dx, dweight, dbias};
}

// dominance_sums(by_rank, g) -> out (n, c): out[p] = sum of g[q] over the places q < p whose rank is below p's,
// by_rank the places listed by increasing rank (a permutation of 0..n-1), g (n, c). The 2-D dominance sums of the
// distance correlation's pair sums (hzg.learn.pairsums.dominance_sums, whose merge sort of tensor operations is
// the fallback): a Fenwick tree over the ranks, filled in the places' order, O(n log n c) and sequential (the
// same bits whatever the number of threads).
at::Tensor dominance_sums(const at::Tensor& by_rank, const at::Tensor& weights) {
  TORCH_CHECK(by_rank.dim() == 1 && by_rank.scalar_type() == at::kLong && by_rank.device().is_cpu(),
              "dominance_sums: by_rank must be a 1-D int64 CPU tensor");
  TORCH_CHECK(weights.dim() == 2 && weights.size(0) == by_rank.size(0) && weights.device().is_cpu(),
              "dominance_sums: g must be a (n, c) CPU tensor with n = len(by_rank)");
  auto order = by_rank.contiguous();
  auto g = weights.contiguous();
  const int64_t n = g.size(0), c = g.size(1);
  const int64_t* op = order.data_ptr<int64_t>();
  std::vector<int64_t> rank(n, -1);
  for (int64_t r = 0; r < n; ++r) {
    const int64_t p = op[r];
    TORCH_CHECK(p >= 0 && p < n && rank[p] < 0, "dominance_sums: by_rank is not a permutation of 0..n-1");
    rank[p] = r;
  }
  auto out = at::empty({n, c}, g.options());
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "dominance_sums", [&] {
    const scalar_t* gp = g.data_ptr<scalar_t>();
    scalar_t* outp = out.data_ptr<scalar_t>();
    std::vector<scalar_t> tree((n + 1) * c, scalar_t(0));  // node i holds the sum over ranks (i - lowbit(i), i]
    for (int64_t p = 0; p < n; ++p) {
      scalar_t* o = outp + p * c;
      for (int64_t k = 0; k < c; ++k) o[k] = scalar_t(0);
      for (int64_t i = rank[p]; i > 0; i -= i & -i)  // ranks 0 .. rank[p] - 1 (tree nodes 1 .. rank[p])
        for (int64_t k = 0; k < c; ++k) o[k] += tree[i * c + k];
      for (int64_t i = rank[p] + 1; i <= n; i += i & -i)
        for (int64_t k = 0; k < c; ++k) tree[i * c + k] += gp[p * c + k];
    }
  });
  return out;
}

// ---- The feed-forward networks' GELU in training (hzg.learn.models.fused._ChunkedFeedForward) ----
//
// gelu_bias_(h, bias) -> h: h <- gelu(h + bias) in place, h a contiguous (rows, n) product x W^T without its bias.
// gelu_bias_backward_(h, bias, grad) -> dbias: with z = h + bias, h <- gelu(z) and grad <- grad * gelu'(z) in place,
// dbias = the column sums of the new grad (summed per block of kNormBlock rows, then over the blocks in order: the
// same bits whatever the number of threads). One pass over the layer where PyTorch's addmm, gelu, gelu_backward and
// sum make four; erf and the normal density share one exp. gelu(z) = z Phi(z), gelu'(z) = Phi(z) + z phi(z) with
// Phi(z) = (1 + erf(z / sqrt 2)) / 2: the exact (erf) GELU of nn.GELU(), with erf from Abramowitz and Stegun 7.1.26
// (absolute error below 1.5e-7), the formula of PyTorch's own vectorised CPU erf.

namespace {

// The GELU kernels' float vectors: 16 lanes where the build targets AVX-512 (a zmm register), else kLanes.
#ifdef __AVX512F__
constexpr int64_t kGeluLanes = 16;
#else
constexpr int64_t kGeluLanes = kLanes;
#endif
// the widths the GELU kernels take: whole registers of 16, 8 or 4 lanes (fused.GELU_WIDTH_MULTIPLE)
constexpr int64_t kGeluWidthMultiple = 16;
typedef float GeluVec __attribute__((vector_size(kGeluLanes * sizeof(float))));
typedef std::int32_t GeluInt __attribute__((vector_size(kGeluLanes * sizeof(std::int32_t))));

template <typename T>
struct GeluLanes {  // float: GeluVec; float64 (checks): Vec<double>
  typedef Vec<T> type;
  static constexpr int64_t n = kLanes;
};
template <>
struct GeluLanes<float> {
  typedef GeluVec type;
  static constexpr int64_t n = kGeluLanes;
};

constexpr double kSqrtHalf = 0.70710678118654752440, kInvSqrt2Pi = 0.39894228040143267794;

// (Phi(z), phi(z)) of kGeluLanes values
inline void normal_cdf_pdf(GeluVec z, GeluVec& cdf, GeluVec& pdf) {
  const GeluVec zero = GeluVec{}, one = zero + 1.0f;
  const GeluVec x = z * static_cast<float>(kSqrtHalf);
  const GeluVec ax = x < zero ? -x : x;
  const GeluVec e = exp_lanes<GeluVec, GeluInt>(-(x * x));  // exp(-z^2 / 2)
  const GeluVec t = one / (ax * 0.3275911f + 1.0f);
  GeluVec poly = t * 1.061405429f - 1.453152027f;
  poly = poly * t + 1.421413741f;
  poly = poly * t - 0.284496736f;
  poly = poly * t + 0.254829592f;
  const GeluVec erf_abs = one - poly * t * e;
  const GeluVec erf = x < zero ? -erf_abs : erf_abs;
  cdf = (erf + 1.0f) * 0.5f;
  pdf = e * static_cast<float>(kInvSqrt2Pi);
}

inline void normal_cdf_pdf(Vec<double> z, Vec<double>& cdf, Vec<double>& pdf) {  // float64: checks, not speed
  for (int64_t l = 0; l < kLanes; ++l) {
    cdf[l] = 0.5 * (1.0 + std::erf(z[l] * kSqrtHalf));
    pdf[l] = kInvSqrt2Pi * std::exp(-0.5 * z[l] * z[l]);
  }
}

template <typename T>
inline typename GeluLanes<T>::type load(const T* p) {
  typename GeluLanes<T>::type v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename V, typename T>
inline void store(T* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

// rows r0..r1 of h (rows, n), n a multiple of kGeluWidthMultiple; with Grad also grad <- grad gelu'(z) and db += its column sums
template <typename T, bool Grad>
void gelu_bias_rows(T* h, const T* bias, T* grad, T* db, int64_t n, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    T* hr = h + r * n;
    T* gr = Grad ? grad + r * n : nullptr;
    for (int64_t j = 0; j < n; j += GeluLanes<T>::n) {
      const auto z = load(hr + j) + load(bias + j);
      decltype(z + z) cdf, pdf;
      normal_cdf_pdf(z, cdf, pdf);
      store(hr + j, z * cdf);
      if constexpr (Grad) {
        const auto g = load(gr + j) * (cdf + z * pdf);
        store(gr + j, g);
        store(db + j, load(db + j) + g);
      }
    }
  }
}

void check_gelu(const at::Tensor& h, const at::Tensor& bias, const char* what) {
  TORCH_CHECK(h.dim() == 2 && h.is_contiguous() && h.device().is_cpu(), what, ": h must be a contiguous (rows, n) CPU tensor");
  TORCH_CHECK(h.size(1) % kGeluWidthMultiple == 0, what, ": n must be a multiple of ", kGeluWidthMultiple);
  TORCH_CHECK(bias.dim() == 1 && bias.numel() == h.size(1) && bias.is_contiguous() && bias.scalar_type() == h.scalar_type(),
              what, ": bias must be contiguous, of h's dtype, one value per column");
}

}  // namespace

at::Tensor gelu_bias_(const at::Tensor& h, const at::Tensor& bias) {
  check_gelu(h, bias, "gelu_bias_");
  const int64_t rows = h.size(0), n = h.size(1);
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "gelu_bias_", [&] {
    scalar_t* hp = h.data_ptr<scalar_t>();
    const scalar_t* bp = bias.data_ptr<scalar_t>();
    at::parallel_for(0, rows, 256, [&](int64_t r0, int64_t r1) {
      gelu_bias_rows<scalar_t, false>(hp, bp, nullptr, nullptr, n, r0, r1);
    });
  });
  return h;
}

at::Tensor gelu_bias_backward_(const at::Tensor& h, const at::Tensor& bias, const at::Tensor& grad) {
  check_gelu(h, bias, "gelu_bias_backward_");
  TORCH_CHECK(grad.sizes() == h.sizes() && grad.is_contiguous() && grad.scalar_type() == h.scalar_type(),
              "gelu_bias_backward_: grad must be contiguous, of h's shape and dtype");
  const int64_t rows = h.size(0), n = h.size(1), blocks = (rows + kNormBlock - 1) / kNormBlock;
  auto partial = at::empty({blocks, n}, h.options());
  auto dbias = at::empty({n}, h.options());
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "gelu_bias_backward_", [&] {
    scalar_t *hp = h.data_ptr<scalar_t>(), *gp = grad.data_ptr<scalar_t>(), *pp = partial.data_ptr<scalar_t>();
    const scalar_t* bp = bias.data_ptr<scalar_t>();
    at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        std::fill(pp + k * n, pp + (k + 1) * n, scalar_t(0));
        gelu_bias_rows<scalar_t, true>(hp, bp, gp, pp + k * n, n, k * kNormBlock, std::min(rows, (k + 1) * kNormBlock));
      }
    });
    sum_blocks(pp, blocks, n, n, dbias.data_ptr<scalar_t>());
  });
  return dbias;
}

// The ETN's feature embedding (hzg.learn.models.etn.FeatureEmbedding), whose per-feature products come out as
// (features, B, d): gelu_tokens(t, bias) -> y (B, features, d) with y[b, f] = gelu(t[f, b] + bias[f]), the bias, the
// transposition to token order and the GELU in one pass; gelu_tokens_backward(t, bias, grad) -> [dz, dbias] with
// dz[f, b] = grad[b, f] gelu'(t[f, b] + bias[f]) in t's layout and dbias[f] = sum over b of dz[f, b] (per block of
// kNormBlock events, then over the blocks in order). t and grad contiguous, d a multiple of kGeluWidthMultiple.

namespace {

template <typename T, bool Grad>
void gelu_tokens_rows(const T* t, const T* bias, const T* grad, T* y, T* dz, T* db, int64_t F, int64_t B, int64_t d,
                      int64_t b0, int64_t b1) {
  for (int64_t f = 0; f < F; ++f) {
    const T* bf = bias + f * d;
    for (int64_t b = b0; b < b1; ++b) {
      const T* tr = t + (f * B + b) * d;
      for (int64_t j = 0; j < d; j += GeluLanes<T>::n) {
        const auto z = load(tr + j) + load(bf + j);
        decltype(z + z) cdf, pdf;
        normal_cdf_pdf(z, cdf, pdf);
        if constexpr (Grad) {
          const auto g = load(grad + (b * F + f) * d + j) * (cdf + z * pdf);
          store(dz + (f * B + b) * d + j, g);
          store(db + f * d + j, load(db + f * d + j) + g);
        } else {
          store(y + (b * F + f) * d + j, z * cdf);
        }
      }
    }
  }
}

void check_tokens(const at::Tensor& t, const at::Tensor& bias, const char* what) {
  TORCH_CHECK(t.dim() == 3 && t.is_contiguous() && t.device().is_cpu(), what, ": t must be a contiguous (features, B, d) CPU tensor");
  TORCH_CHECK(t.size(2) % kGeluWidthMultiple == 0, what, ": d must be a multiple of ", kGeluWidthMultiple);
  TORCH_CHECK(bias.dim() == 2 && bias.size(0) == t.size(0) && bias.size(1) == t.size(2) && bias.is_contiguous() &&
                  bias.scalar_type() == t.scalar_type(),
              what, ": bias must be a contiguous (features, d) tensor of t's dtype");
}

}  // namespace

at::Tensor gelu_tokens(const at::Tensor& t, const at::Tensor& bias) {
  check_tokens(t, bias, "gelu_tokens");
  const int64_t F = t.size(0), B = t.size(1), d = t.size(2);
  auto y = at::empty({B, F, d}, t.options());
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "gelu_tokens", [&] {
    const scalar_t *tp = t.data_ptr<scalar_t>(), *bp = bias.data_ptr<scalar_t>();
    scalar_t* yp = y.data_ptr<scalar_t>();
    at::parallel_for(0, B, 256, [&](int64_t b0, int64_t b1) {
      gelu_tokens_rows<scalar_t, false>(tp, bp, nullptr, yp, nullptr, nullptr, F, B, d, b0, b1);
    });
  });
  return y;
}

std::vector<at::Tensor> gelu_tokens_backward(const at::Tensor& t, const at::Tensor& bias, const at::Tensor& grad_in) {
  check_tokens(t, bias, "gelu_tokens_backward");
  const int64_t F = t.size(0), B = t.size(1), d = t.size(2), blocks = (B + kNormBlock - 1) / kNormBlock;
  auto grad = grad_in.contiguous();
  TORCH_CHECK(grad.dim() == 3 && grad.size(0) == B && grad.size(1) == F && grad.size(2) == d &&
                  grad.scalar_type() == t.scalar_type(),
              "gelu_tokens_backward: grad must be (B, features, d) of t's dtype");
  auto dz = at::empty(t.sizes(), t.options());
  auto partial = at::empty({blocks, F, d}, t.options());
  auto dbias = at::empty({F, d}, t.options());
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "gelu_tokens_backward", [&] {
    const scalar_t *tp = t.data_ptr<scalar_t>(), *bp = bias.data_ptr<scalar_t>(), *gp = grad.data_ptr<scalar_t>();
    scalar_t *zp = dz.data_ptr<scalar_t>(), *pp = partial.data_ptr<scalar_t>();
    at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
      for (int64_t k = k0; k < k1; ++k) {
        scalar_t* part = pp + k * F * d;
        std::fill(part, part + F * d, scalar_t(0));
        gelu_tokens_rows<scalar_t, true>(tp, bp, gp, nullptr, zp, part, F, B, d, k * kNormBlock,
                                         std::min(B, (k + 1) * kNormBlock));
      }
    });
    sum_blocks(pp, blocks, F * d, F * d, dbias.data_ptr<scalar_t>());
  });
  return {dz, dbias};
}

// forward(q, k, v, heads, keep_probs, seed, threshold) -> [out, probs];
// backward(grad, q, k, v, probs, heads, threshold) -> [dq, dk, dv]; layer_norm(x, weight, bias, eps) -> y;
// dropout(x, seed, threshold) -> y; layer_norm_train(x, weight, bias, eps) ->
// [y, mean, rstd]; layer_norm_backward(grad, x, weight, mean, rstd) -> [dx, dweight, dbias];
// dominance_sums(by_rank, g) -> out; gelu_bias_(h, bias) -> h; gelu_bias_backward_(h, bias, grad) -> dbias;
// gelu_tokens(t, bias) -> y; gelu_tokens_backward(t, bias, grad) -> [dz, dbias]
// (through a second macro, so that TORCH_EXTENSION_NAME is expanded before TORCH_LIBRARY pastes it)
#define SMALL_ATTENTION_LIBRARY(ns, m) TORCH_LIBRARY(ns, m)
SMALL_ATTENTION_LIBRARY(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &small_attention_forward);
  m.def("backward", &small_attention_backward);
  m.def("layer_norm", &small_layer_norm);
  m.def("dropout", &hashed_dropout);
  m.def("layer_norm_train", &layer_norm_train);
  m.def("layer_norm_backward", &layer_norm_backward);
  m.def("dominance_sums", &dominance_sums);
  m.def("gelu_bias_(Tensor(a!) h, Tensor bias) -> Tensor(a!)", &gelu_bias_);
  m.def("gelu_bias_backward_(Tensor(a!) h, Tensor bias, Tensor(b!) grad) -> Tensor", &gelu_bias_backward_);
  m.def("gelu_tokens", &gelu_tokens);
  m.def("gelu_tokens_backward", &gelu_tokens_backward);
}
