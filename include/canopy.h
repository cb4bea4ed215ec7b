/*
 * canopy.h: the public API of libcanopy.
 *
 * This umbrella header is what programs include. The runtime API (start-up,
 * spawn, calls, contexts, streams) arrives with the runtime; today it holds
 * the error codes and the version.
 */
#ifndef CANOPY_H
#define CANOPY_H

#include "canopy/errors.h"
#include "canopy/version.h"

#endif /* CANOPY_H */
