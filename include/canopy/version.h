/*
 * canopy/version.h: the library's version and the wire protocol version.
 *
 * CN_VERSION_* follow semantic versioning for the C API. CN_PROTOCOL_VERSION
 * is independent: it changes only when the wire format does, and peers
 * compare it in the HELLO handshake (see docs/protocol.md, "Versioning").
 */
#ifndef CANOPY_VERSION_H
#define CANOPY_VERSION_H

#include "canopy/defs.h"

#define CN_VERSION_MAJOR 0
#define CN_VERSION_MINOR 1
#define CN_VERSION_PATCH 0

#define CN__STR2(x) #x
#define CN__STR(x) CN__STR2(x)
#define CN_VERSION_STRING                                                                          \
    CN__STR(CN_VERSION_MAJOR) "." CN__STR(CN_VERSION_MINOR) "." CN__STR(CN_VERSION_PATCH)

/* Bumped on any incompatible change to framing or message layout. */
#define CN_PROTOCOL_VERSION 5

#ifdef __cplusplus
extern "C" {
#endif

/* The version the library was built as, e.g. "0.1.0". Any thread. */
CN_EXTERN const char *cn_version_string(void);

#ifdef __cplusplus
}
#endif

#endif /* CANOPY_VERSION_H */
