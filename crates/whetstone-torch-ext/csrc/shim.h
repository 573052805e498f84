// The C ABI convention of whetstone-torch-ext's shims: every entry point runs its body in
// `guarded`, which catches every C++ exception and returns its message as a malloc'd string
// (NULL on success) that Rust frees with wt_free. Nothing unwinds across the boundary.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

namespace wt {

inline char *dup_message(const std::string &msg) {
  char *out = static_cast<char *>(std::malloc(msg.size() + 1));
  if (out != nullptr) std::memcpy(out, msg.c_str(), msg.size() + 1);
  return out;
}

template <typename F>
char *guarded(F &&f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error &e) {
    return dup_message(e.what_without_backtrace());
  } catch (const std::exception &e) {
    return dup_message(e.what());
  } catch (...) {
    return dup_message("unknown C++ exception");
  }
}

// The tensors behind n tch handles (a C array of `at::Tensor *`); a null handle is an error.
inline std::vector<at::Tensor> list(at::Tensor **ts, int64_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n > 0 ? n : 0);
  for (int64_t i = 0; i < n; ++i) {
    if (ts[i] == nullptr) throw std::invalid_argument("null tensor handle");
    out.push_back(*ts[i]);
  }
  return out;
}

}  // namespace wt
