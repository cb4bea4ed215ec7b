/*
 * canopy/errors.h: every error code libcanopy returns, from one table.
 *
 * Functions return 0 (or a non-negative count) on success and a negative
 * CN_E* code on failure. CN_ERRNO_MAP is the only list of codes: it
 * generates the constants below and the text of cn_strerror() and
 * cn_err_name(), so a new code is one new line here.
 *
 * Where a POSIX errno fits, the code is that errno negated, so a system
 * call's failure can be returned as -errno without translation. canopy's
 * own codes start at -4000 and never collide with errno values.
 */
#ifndef CANOPY_ERRORS_H
#define CANOPY_ERRORS_H

#include <errno.h>

#include "canopy/defs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, value, message) */
#define CN_ERRNO_MAP(XX)                                                                           \
    /* errno values that fit */                                                                    \
    XX(EINVAL, -EINVAL, "invalid argument")                                                        \
    XX(ENOMEM, -ENOMEM, "out of memory")                                                           \
    XX(EAGAIN, -EAGAIN, "resource temporarily unavailable")                                        \
    XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                                         \
    XX(ECANCELED, -ECANCELED, "cancelled")                                                         \
    XX(EMSGSIZE, -EMSGSIZE, "frame is larger than the maximum frame size")                         \
    XX(ERANGE, -ERANGE, "value is out of range for its field")                                     \
    XX(ENOENT, -ENOENT, "no such entry")                                                           \
    XX(EPIPE, -EPIPE, "the connection is closed")                                                  \
    XX(EACCES, -EACCES, "permission denied")                                                       \
    XX(EIO, -EIO, "input/output error")                                                            \
    XX(ENAMETOOLONG, -ENAMETOOLONG, "path is too long")                                            \
    XX(ECONNREFUSED, -ECONNREFUSED, "nothing is listening (the tree has exited)")                  \
    XX(EBUSY, -EBUSY, "busy: another operation of this kind is in progress")                       \
    XX(EMFILE, -EMFILE, "too many open files (the process's RLIMIT_NOFILE)")                       \
    XX(EEXIST, -EEXIST, "already exists")                                                          \
    XX(ENOEXEC, -ENOEXEC, "not a program this system can run")                                     \
    /* canopy's own runtime codes */                                                               \
    XX(EDEAD, -4001, "the actor or context is dead")                                               \
    XX(EOVERRUN, -4002, "stream buffer overrun")                                                   \
    XX(EREMOTE, -4003, "the remote side raised an error")                                          \
    XX(EPROTO, -4004, "protocol error")                                                            \
    XX(EVERSION, -4005, "protocol version mismatch")                                               \
    XX(EOF, -4006, "end of stream")                                                                \
    XX(EAMBIGUOUS, -4007, "more than one match")                                                   \
    /* wire codec: why a frame was refused (each one distinct, see docs/protocol.md) */            \
    XX(ETRUNC, -4010, "frame ends inside its msgpack message")                                     \
    XX(EBADMSGPACK, -4011, "frame is not valid msgpack")                                           \
    XX(ETRAILING, -4012, "frame has bytes after its message")                                      \
    XX(EBADTYPE, -4013, "a message field has the wrong msgpack type")                              \
    XX(EMISSING, -4014, "a message is missing a required field")                                   \
    XX(EUNKNOWNMSG, -4015, "unknown message type")

enum cn_errno {
#define CN__ERR_ENUM(name, value, msg) CN_##name = (value),
    CN_ERRNO_MAP(CN__ERR_ENUM)
#undef CN__ERR_ENUM
};

/*
 * cn_strerror: a short, human sentence for `err` (no trailing newline).
 * cn_err_name: the code's name, such as "CN_ETIMEDOUT".
 * Both accept any int, return static strings and are safe from any thread.
 * A code outside the table gives "unknown error" / "CN_EUNKNOWN"; 0 gives
 * "success" / "CN_OK".
 */
CN_EXTERN const char *cn_strerror(int err);
CN_EXTERN const char *cn_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif /* CANOPY_ERRORS_H */
