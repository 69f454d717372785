#ifndef MICRO_RUNNER_CSODIUM_SHIM_H
#define MICRO_RUNNER_CSODIUM_SHIM_H
#include <sodium.h>
#endif
