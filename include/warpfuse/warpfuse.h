// warpfuse — the umbrella header: everything a user of the library includes.
// Compiles with a plain C++17 compiler given the CUDA toolkit's include directory.
#pragma once

#include "warpfuse/activation.h"
#include "warpfuse/cross_entropy.h"
#include "warpfuse/cross_entropy_shard.h"
#include "warpfuse/device.h"
#include "warpfuse/dtype.h"
#include "warpfuse/elementwise_loss.h"
#include "warpfuse/error.h"
#include "warpfuse/gemm.h"
#include "warpfuse/linear_cross_entropy.h"
#include "warpfuse/loss.h"
#include "warpfuse/memory.h"
#include "warpfuse/optimizer.h"
#include "warpfuse/row_strategy.h"
#include "warpfuse/softmax.h"
#include "warpfuse/training.h"
#include "warpfuse/version.h"
#include "warpfuse/view.h"
#include "warpfuse/workspace.h"
