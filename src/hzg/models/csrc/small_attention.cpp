// Multi-head scaled-dot-product attention for many events with a few tokens each (the ETN: 12-16 tokens,
// 4 heads of 4 dimensions), forward and backward, on the CPU. PyTorch's fused CPU kernel pays a fixed cost per
// (event, head) that dwarfs the arithmetic at these sizes; here events are computed side by side in the lanes
// of vector registers (see kLanes), so every instruction serves several events.
//
// Shapes: q (B, Tq, E), k and v (B, Tk, E), E = heads * D, any strides with the last one 1 (so slices of a
// packed q/k/v projection need no copy). Outputs: out (B, Tq, E) and the softmax probabilities, kept for the
// backward pass in the kernel's own layout (tiles, heads, Tq, Tk, kLanes), or empty if not asked for; the backward returns dq (B, Tq, E),
// dk and dv (B, Tk, E), all contiguous. float32 and float64.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

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
};
template <>
struct Lanes<double> {
  typedef double type __attribute__((vector_size(kLanes * sizeof(double))));
};

template <typename T>
using Vec = typename Lanes<T>::type;

template <typename T>
inline Vec<T> splat(T x) {
  return Vec<T>{} + x;
}

// exp without a library call (Cephes' expf: range reduction by ln 2 and a degree-6 polynomial, about 1 ulp);
// arguments below -87 give exp(-87) ~ 1.6e-38 instead of a denormal. Softmax only calls it on s - max(s) <= 0.
inline Vec<float> exp_of(Vec<float> x) {
  x = x < splat(-87.0f) ? splat(-87.0f) : x;
  x = x > splat(88.0f) ? splat(88.0f) : x;
  const Vec<float> n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
  Vec<float> r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  Vec<float> p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const Lanes<float>::int_type bits = (__builtin_convertvector(n, Lanes<float>::int_type) + 127) << 23;
  Vec<float> two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return p * two_n;
}

inline Vec<double> exp_of(Vec<double> x) {  // float64: for checks (gradcheck), not speed
  for (int64_t l = 0; l < kLanes; ++l) x[l] = std::exp(x[l]);
  return x;
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

// probs: (tiles, heads, Tq, Tk, kLanes), the layout both passes use as it is.
// probs == nullptr: not kept (inference); a per-thread buffer takes them.
template <typename T>
void forward_kernel(const T* q, View qs, const T* k, View ks, const T* v, View vs, T* out, T* probs, int64_t B,
                    int64_t Tq, int64_t Tk, int64_t heads, int64_t D) {
  using V = Vec<T>;
  const int64_t E = heads * D, tiles = (B + kLanes - 1) / kLanes;
  const T scale = T(1) / std::sqrt(T(D));
  at::parallel_for(0, tiles, 8, [&](int64_t t0, int64_t t1) {
    std::vector<V> qt(Tq * D), kt(Tk * D), vt(Tk * D), ot(Tq * D), scratch(probs ? 0 : Tk);
    for (int64_t tile = t0; tile < t1; ++tile) {
      const int64_t b0 = tile * kLanes, lanes = std::min(kLanes, B - b0);
      for (int64_t h = 0; h < heads; ++h) {
        gather(q, qs, b0, lanes, Tq, h * D, D, scale, qt.data());
        gather(k, ks, b0, lanes, Tk, h * D, D, T(1), kt.data());
        gather(v, vs, b0, lanes, Tk, h * D, D, T(1), vt.data());
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
          for (int64_t j = 0; j < Tk; ++j) {
            p[j] *= inv;
            for (int64_t d = 0; d < D; ++d) oi[d] += p[j] * vt[j * D + d];
          }
        }
        scatter(ot.data(), b0, lanes, Tq, E, h * D, D, out);
      }
    }
  });
}

template <typename T>
void backward_kernel(const T* g, const T* q, View qs, const T* k, View ks, const T* v, View vs, const T* probs,
                     T* dq, T* dk, T* dv, int64_t B, int64_t Tq, int64_t Tk, int64_t heads, int64_t D) {
  using V = Vec<T>;
  const int64_t E = heads * D, tiles = (B + kLanes - 1) / kLanes;
  const T scale = T(1) / std::sqrt(T(D));
  const View gs{Tq * E, E};
  at::parallel_for(0, tiles, 8, [&](int64_t t0, int64_t t1) {
    std::vector<V> qt(Tq * D), kt(Tk * D), vt(Tk * D), gt(Tq * D), dqt(Tq * D), dkt(Tk * D), dvt(Tk * D), ds(Tk);
    for (int64_t tile = t0; tile < t1; ++tile) {
      const int64_t b0 = tile * kLanes, lanes = std::min(kLanes, B - b0);
      for (int64_t h = 0; h < heads; ++h) {
        gather(q, qs, b0, lanes, Tq, h * D, D, scale, qt.data());  // d score / d k = scale q
        gather(k, ks, b0, lanes, Tk, h * D, D, scale, kt.data());  // d score / d q = scale k
        gather(v, vs, b0, lanes, Tk, h * D, D, T(1), vt.data());
        gather(g, gs, b0, lanes, Tq, h * D, D, T(1), gt.data());
        std::fill(dkt.begin(), dkt.end(), splat(T(0)));
        std::fill(dvt.begin(), dvt.end(), splat(T(0)));
        for (int64_t i = 0; i < Tq; ++i) {
          const V* p = reinterpret_cast<const V*>(probs) + (tile * heads + h) * Tq * Tk + i * Tk;
          const V* gi = gt.data() + i * D;
          const V* qi = qt.data() + i * D;
          // dp_j = g_i . v_j (kept in ds), dv_j += p_j g_i, row = sum_j p_j dp_j
          V row = splat(T(0));
          for (int64_t j = 0; j < Tk; ++j) {
            V dp = splat(T(0));
            for (int64_t d = 0; d < D; ++d) {
              dp += gi[d] * vt[j * D + d];
              dvt[j * D + d] += p[j] * gi[d];
            }
            ds[j] = dp;
            row += p[j] * dp;
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
        scatter(dqt.data(), b0, lanes, Tq, E, h * D, D, dq);
        scatter(dkt.data(), b0, lanes, Tk, E, h * D, D, dk);
        scatter(dvt.data(), b0, lanes, Tk, E, h * D, D, dv);
      }
    }
  });
}

}  // namespace

std::vector<at::Tensor> small_attention_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                int64_t heads, bool keep_probs) {
  check(q, k, v, heads);
  const int64_t B = q.size(0), Tq = q.size(1), Tk = k.size(1), E = q.size(2);
  auto out = at::empty({B, Tq, E}, q.options());
  auto probs = keep_probs ? at::empty({(B + kLanes - 1) / kLanes, heads, Tq, Tk, kLanes}, q.options())
                          : at::empty({0}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "small_attention_forward", [&] {
    forward_kernel<scalar_t>(q.data_ptr<scalar_t>(), {q.stride(0), q.stride(1)}, k.data_ptr<scalar_t>(),
                             {k.stride(0), k.stride(1)}, v.data_ptr<scalar_t>(), {v.stride(0), v.stride(1)},
                             out.data_ptr<scalar_t>(), keep_probs ? probs.data_ptr<scalar_t>() : nullptr, B, Tq, Tk,
                             heads, E / heads);
  });
  return {out, probs};
}

std::vector<at::Tensor> small_attention_backward(const at::Tensor& grad, const at::Tensor& q, const at::Tensor& k,
                                                 const at::Tensor& v, const at::Tensor& probs, int64_t heads) {
  check(q, k, v, heads);
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
    backward_kernel<scalar_t>(g.data_ptr<scalar_t>(), q.data_ptr<scalar_t>(), {q.stride(0), q.stride(1)},
                              k.data_ptr<scalar_t>(), {k.stride(0), k.stride(1)}, v.data_ptr<scalar_t>(),
                              {v.stride(0), v.stride(1)}, p.data_ptr<scalar_t>(), dq.data_ptr<scalar_t>(),
                              dk.data_ptr<scalar_t>(), dv.data_ptr<scalar_t>(), B, Tq, Tk, heads, E / heads);
  });
  return {dq, dk, dv};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &small_attention_forward, "small multi-head attention, forward");
  m.def("backward", &small_attention_backward, "small multi-head attention, backward");
}
