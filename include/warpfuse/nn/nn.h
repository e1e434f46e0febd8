// warpfuse::nn — the Dense-network trainer: everything in one include.
#pragma once

#include "warpfuse/nn/config.h"
#include "warpfuse/nn/data.h"
#include "warpfuse/nn/model.h"
