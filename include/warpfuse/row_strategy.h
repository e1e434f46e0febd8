// warpfuse — how a row-wise op (softmax, log-softmax, their backwards, cross-entropy) maps its
// rows onto the GPU: the strategies of the row engine, shared by every such op.
#pragma once

#include <cstdint>

namespace warpfuse {

/// `automatic` (the default) picks by row length, dtype and op, see the ops' *_strategy_for
/// queries. The others force one, for benchmarks and tests; a forced strategy that cannot hold
/// the row throws warpfuse::Unsupported.
enum class RowStrategy {
  automatic,
  warp,     ///< 1..32 lanes per row, the row in registers: rows up to kRowWarpMaxCols
  block,    ///< a block per row, the row cached in shared memory: rows that fit on chip
  online,   ///< a block per row, one pass for max and sum (online normaliser), any row length
  cluster,  ///< a thread-block cluster (2..16 blocks) per row, the row cached across their shared
            ///< memory: rows up to 16 blocks' shared memory, on compute capability >= 9.0
};

/// "automatic", "warp", "block", "online" or "cluster".
const char* to_string(RowStrategy strategy);

/// The longest row the warp strategy holds: 32 lanes x 32 fp32 values in registers.
constexpr std::int64_t kRowWarpMaxCols = 1024;

}  // namespace warpfuse
