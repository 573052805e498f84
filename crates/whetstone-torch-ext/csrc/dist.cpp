// whetstone-torch-ext, feature "c10d": libtorch's own distributed engine (c10d) behind a plain
// C ABI: a TCPStore for rendezvous, ProcessGroupGloo for CPU tensors and, when libtorch has
// CUDA, ProcessGroupNCCL for CUDA tensors. The same engine PyTorch DDP runs on.
//
// As in ext.cpp, every function catches every C++ exception and returns its message (NULL on
// success); nothing unwinds into Rust. Stores and groups cross as opaque pointers to heap
// objects holding the intrusive pointers; Rust frees them exactly once.
//
// Gloo's own headers are not in the torch wheel: build.rs points at Debian's libgloo-dev, which
// `cargo xtask setup` fetches. The classes used here hold Gloo types only behind pointers.

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#ifdef WT_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include "shim.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

using wt::guarded;
using wt::list;

struct Store {
  c10::intrusive_ptr<c10d::Store> store;
};

struct Group {
  c10::intrusive_ptr<c10d::Backend> backend;
  int world;
  std::chrono::milliseconds timeout;
};

c10d::ReduceOp reduce_op(int op) {
  switch (op) {
    case 0: return c10d::ReduceOp::SUM;
    case 2: return c10d::ReduceOp::MAX;
    case 3: return c10d::ReduceOp::MIN;
    case 4: return c10d::ReduceOp::PRODUCT;
    default: throw std::invalid_argument("unknown reduce op code " + std::to_string(op));
  }
}

std::chrono::milliseconds ms(int64_t t) { return std::chrono::milliseconds(t); }

// Wait for every work item, keeping the first failure; every item is waited for even after a
// failure, so no work outlives the tensors it writes.
void wait_all(std::vector<c10::intrusive_ptr<c10d::Work>> &works, std::chrono::milliseconds timeout) {
  std::string first;
  for (auto &w : works) {
    try {
      if (!w->wait(timeout)) throw std::runtime_error("the collective did not complete");
    } catch (const c10::Error &e) {
      if (first.empty()) first = e.what_without_backtrace();
    } catch (const std::exception &e) {
      if (first.empty()) first = e.what();
    }
  }
  if (!first.empty()) throw std::runtime_error(first);
}

}  // namespace

extern "C" {

int wt_nccl_compiled() {
#ifdef WT_WITH_NCCL
  return 1;
#else
  return 0;
#endif
}

// A TCPStore at host:port: rank 0 serves it (is_server), the others connect; `world` workers
// are awaited by the server. Retries connecting until `timeout_ms`.
char *wt_store_new(const char *host, int port, int is_server, int world, int64_t timeout_ms, void **out) {
  return guarded([&] {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = is_server != 0;
    opts.numWorkers = static_cast<std::size_t>(world);
    opts.waitWorkers = true;
    opts.timeout = ms(timeout_ms);
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    *out = new Store{store};
  });
}

void wt_store_free(void *s) { delete static_cast<Store *>(s); }

char *wt_store_set(void *s, const char *key, const uint8_t *value, int64_t n) {
  return guarded([&] {
    std::vector<uint8_t> v(value, value + n);
    static_cast<Store *>(s)->store->set(std::string(key), v);
  });
}

// Blocks until `key` is set (up to the store's timeout); the value is malloc'd (free with wt_free).
char *wt_store_get(void *s, const char *key, uint8_t **value, int64_t *n) {
  return guarded([&] {
    auto v = static_cast<Store *>(s)->store->get(std::string(key));
    *n = static_cast<int64_t>(v.size());
    *value = static_cast<uint8_t *>(std::malloc(v.size() > 0 ? v.size() : 1));
    if (*value == nullptr) throw std::bad_alloc();
    if (!v.empty()) std::memcpy(*value, v.data(), v.size());
  });
}

// Whether `key` is set, without waiting.
char *wt_store_check(void *s, const char *key, int *present) {
  return guarded([&] { *present = static_cast<Store *>(s)->store->check({std::string(key)}) ? 1 : 0; });
}

// Atomically add `delta` to the integer under `key`; the new value.
char *wt_store_add(void *s, const char *key, int64_t delta, int64_t *value) {
  return guarded([&] { *value = static_cast<Store *>(s)->store->add(std::string(key), delta); });
}

// A process group over `store`: backend 0 = Gloo (CPU tensors), 1 = NCCL (CUDA tensors). For
// Gloo, `hostname` is the address this rank's transport binds (NULL: the machine's default).
char *wt_group_new(void *s, int rank, int world, int backend, const char *hostname, int64_t timeout_ms, void **out) {
  return guarded([&] {
    auto store = static_cast<Store *>(s)->store;
    c10::intrusive_ptr<c10d::Backend> pg;
    if (backend == 0) {
      auto opts = c10d::ProcessGroupGloo::Options::create(ms(timeout_ms));
      if (hostname != nullptr && hostname[0] != '\0') {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(std::string(hostname)));
      } else {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
    } else if (backend == 1) {
#ifdef WT_WITH_NCCL
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = ms(timeout_ms);
      pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, opts);
#else
      throw std::invalid_argument("NCCL was not compiled in: this libtorch has no CUDA, or nccl.h was not found when whetstone-torch-ext was built");
#endif
    } else {
      throw std::invalid_argument("unknown backend code " + std::to_string(backend));
    }
    *out = new Group{pg, world, ms(timeout_ms)};
  });
}

void wt_group_free(void *g) { delete static_cast<Group *>(g); }

// All-reduce each of the n tensors in place (op: 0 sum, 2 max, 3 min, 4 product). All are
// issued before any is waited for, so the backend can pipeline them.
char *wt_allreduce(void *g, at::Tensor **ts, int64_t n, int op) {
  return guarded([&] {
    auto grp = static_cast<Group *>(g);
    auto tensors = list(ts, n);
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    works.reserve(tensors.size());
    for (auto &t : tensors) {
      std::vector<at::Tensor> one{t};
      c10d::AllreduceOptions o;
      o.reduceOp = reduce_op(op);
      o.timeout = grp->timeout;
      works.push_back(grp->backend->allreduce(one, o));
    }
    wait_all(works, grp->timeout);
  });
}

// Broadcast each of the n tensors in place from `root`.
char *wt_broadcast(void *g, at::Tensor **ts, int64_t n, int root) {
  return guarded([&] {
    auto grp = static_cast<Group *>(g);
    auto tensors = list(ts, n);
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto &t : tensors) {
      std::vector<at::Tensor> one{t};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      o.rootTensor = 0;
      o.timeout = grp->timeout;
      works.push_back(grp->backend->broadcast(one, o));
    }
    wait_all(works, grp->timeout);
  });
}

// Gather `input` from every rank into `outputs` (world tensors shaped like it, in rank order).
char *wt_allgather(void *g, at::Tensor *input, at::Tensor **outputs, int64_t n) {
  return guarded([&] {
    auto grp = static_cast<Group *>(g);
    if (input == nullptr) throw std::invalid_argument("null tensor handle");
    if (n != grp->world) throw std::invalid_argument("all_gather needs one output per rank");
    std::vector<std::vector<at::Tensor>> out{list(outputs, n)};
    std::vector<at::Tensor> in{*input};
    c10d::AllgatherOptions o;
    o.timeout = grp->timeout;
    std::vector<c10::intrusive_ptr<c10d::Work>> works{grp->backend->allgather(out, in, o)};
    wait_all(works, grp->timeout);
  });
}

char *wt_barrier(void *g) {
  return guarded([&] {
    auto grp = static_cast<Group *>(g);
    c10d::BarrierOptions o;
    o.timeout = grp->timeout;
    std::vector<c10::intrusive_ptr<c10d::Work>> works{grp->backend->barrier(o)};
    wait_all(works, grp->timeout);
  });
}

}  // extern "C"
