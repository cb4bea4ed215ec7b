/*
 * canopy/defs.h: macros shared by the public headers.
 */
#ifndef CANOPY_DEFS_H
#define CANOPY_DEFS_H

/* Marks a function as part of libcanopy's exported ABI. The library is
 * built with -fvisibility=hidden, so anything without it stays internal to
 * libcanopy.so even when it has external linkage. */
#if defined(__GNUC__)
#define CN_EXTERN __attribute__((visibility("default")))
#else
#define CN_EXTERN
#endif

#endif /* CANOPY_DEFS_H */
