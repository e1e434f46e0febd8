// warpfuse::ref internals — a small persistent pool for the CPU trainer's work between GEMMs
// (the bf16 GEMM's packing and tiles, the optimizer step). Not a public header.
//
// parallel_for(tasks, fn) runs fn(0) .. fn(tasks - 1) on the calling thread and the pool's
// workers and returns when every task has run. Workers spin for a short while after a job (the
// next one usually follows within microseconds: the step's GEMMs and updates come back to back),
// then sleep on a condition variable. Tasks are claimed in order from one counter, so which thread
// runs a task varies, but a task's work never depends on it: results are the same for any thread
// count. Calls from several threads at once are serialised.
#pragma once

#include <cstdint>

namespace warpfuse::ref::detail {

/// Threads a parallel_for may use, the caller included: set_parallel_threads()'s value, else the
/// OpenBLAS thread count (OPENBLAS_NUM_THREADS or one per core).
int parallel_threads();
/// Caps parallel_for's threads (1: everything on the caller; 0: the default). Workers start on
/// first use. ref::set_blas_threads sets this cap too.
void set_parallel_threads(int threads);

using TaskFunction = void (*)(void* context, int task);
void parallel_for(int tasks, TaskFunction fn, void* context);

/// parallel_for over a callable: fn(task).
template <class F>
void parallel_for(int tasks, const F& fn) {
  parallel_for(
      tasks, [](void* context, int task) { (*static_cast<const F*>(context))(task); },
      const_cast<void*>(static_cast<const void*>(&fn)));
}

}  // namespace warpfuse::ref::detail
