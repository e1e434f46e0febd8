// simt — helpers for tests of the emulator's detectors.
#pragma once

#include <string>

#include "simt/simt.h"

namespace simt::testing {

/// Runs `launch` and returns the KernelFault's message ("" if none was thrown).
template <class Launch>
std::string fault_of(Launch&& launch) {
  try {
    launch();
  } catch (const KernelFault& fault) {
    return fault.what();
  }
  return "";
}

}  // namespace simt::testing
