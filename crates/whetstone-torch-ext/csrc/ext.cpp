// whetstone-torch-ext: the libtorch entry points tch does not bind, behind a plain C ABI.
//
// Every function catches every C++ exception and returns it as a malloc'd message (NULL on
// success) that Rust frees with wt_free; nothing unwinds across the boundary. Tensors arrive as
// tch's own handles (torch-sys's `tensor` is a `torch::Tensor *`, i.e. an `at::Tensor *`).
// One translation unit, few includes: it compiles in a few seconds.

#include <ATen/autocast_mode.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/_fused_sgd.h>

#include "shim.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <vector>

namespace {

using wt::guarded;
using wt::list;

c10::DeviceType device_type(int code) {
  switch (code) {
    case 0: return at::kCPU;
    case 1: return at::kCUDA;
    default: throw std::invalid_argument("unknown device type code " + std::to_string(code));
  }
}

at::ScalarType scalar_type(int code) {
  switch (code) {
    case 5: return at::kHalf;
    case 6: return at::kFloat;
    case 15: return at::kBFloat16;
    default: throw std::invalid_argument("autocast dtype must be Half, Float or BFloat16 (code " + std::to_string(code) + ")");
  }
}

std::optional<at::Tensor> optional(at::Tensor *t) {
  if (t == nullptr) return std::nullopt;
  return *t;
}

}  // namespace

extern "C" {

void wt_free(char *msg) { std::free(msg); }

// The autocast switch and dtype of one device type on the calling thread.
char *wt_autocast_get(int device, int *enabled, int *dtype) {
  return guarded([&] {
    auto d = device_type(device);
    *enabled = at::autocast::is_autocast_enabled(d) ? 1 : 0;
    *dtype = static_cast<int>(at::autocast::get_autocast_dtype(d));
  });
}

char *wt_autocast_set(int device, int enabled, int dtype) {
  return guarded([&] {
    auto d = device_type(device);
    auto t = scalar_type(dtype);
    at::autocast::set_autocast_dtype(d, t);
    at::autocast::set_autocast_enabled(d, enabled != 0);
  });
}

// Nesting as torch.autocast.__enter__/__exit__ count it: the cast cache is cleared when the
// outermost region ends.
char *wt_autocast_enter(int *depth) {
  return guarded([&] { *depth = at::autocast::increment_nesting(); });
}

char *wt_autocast_exit(int *depth) {
  return guarded([&] {
    *depth = at::autocast::decrement_nesting();
    if (*depth == 0) at::autocast::clear_cache();
  });
}

// at::_fused_adam_ / at::_fused_adamw_ (decoupled != 0) over n tensors. max_exp_avg_sqs has n
// entries when amsgrad, else none. The kernels read state_steps, they do not increment them.
char *wt_fused_adam(int decoupled, at::Tensor **params, at::Tensor **grads, at::Tensor **exp_avgs,
                    at::Tensor **exp_avg_sqs, at::Tensor **max_exp_avg_sqs, int64_t n_max,
                    at::Tensor **state_steps, int64_t n, double lr, double beta1, double beta2,
                    double weight_decay, double eps, int amsgrad, int maximize,
                    at::Tensor *grad_scale, at::Tensor *found_inf) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    auto p = list(params, n), g = list(grads, n), m = list(exp_avgs, n), v = list(exp_avg_sqs, n);
    auto vm = list(max_exp_avg_sqs, n_max), s = list(state_steps, n);
    if (decoupled != 0) {
      at::_fused_adamw_(p, g, m, v, vm, s, lr, beta1, beta2, weight_decay, eps, amsgrad != 0,
                        maximize != 0, optional(grad_scale), optional(found_inf));
    } else {
      at::_fused_adam_(p, g, m, v, vm, s, lr, beta1, beta2, weight_decay, eps, amsgrad != 0,
                       maximize != 0, optional(grad_scale), optional(found_inf));
    }
  });
}

// at::_fused_sgd_ over n tensors; momentum_buffers has n entries when momentum != 0, else none.
char *wt_fused_sgd(at::Tensor **params, at::Tensor **grads, at::Tensor **momentum_buffers,
                   int64_t n_buf, int64_t n, double weight_decay, double momentum, double lr,
                   double dampening, int nesterov, int maximize, int is_first_step,
                   at::Tensor *grad_scale, at::Tensor *found_inf) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    auto p = list(params, n), g = list(grads, n), b = list(momentum_buffers, n_buf);
    at::_fused_sgd_(p, g, b, weight_decay, momentum, lr, dampening, nesterov != 0, maximize != 0,
                    is_first_step != 0, optional(grad_scale), optional(found_inf));
  });
}

}  // extern "C"
