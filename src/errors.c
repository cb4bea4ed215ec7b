/*
 * errors.c: text for the error codes in include/canopy/errors.h.
 *
 * Both lookups are generated from CN_ERRNO_MAP; nothing here lists a code by
 * hand. Invariant: every function returns a static string, never NULL, for
 * any input, because callers print the result straight into log lines.
 */
#include "canopy/errors.h"
#include "canopy/version.h"

const char *cn_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define CN__ERR_MSG(name, value, msg)                                                              \
    case CN_##name:                                                                                \
        return msg;
        CN_ERRNO_MAP(CN__ERR_MSG)
#undef CN__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *cn_err_name(int err)
{
    switch (err) {
    case 0:
        return "CN_OK";
#define CN__ERR_NAME(name, value, msg)                                                             \
    case CN_##name:                                                                                \
        return "CN_" #name;
        CN_ERRNO_MAP(CN__ERR_NAME)
#undef CN__ERR_NAME
    default:
        return "CN_EUNKNOWN";
    }
}

const char *cn_version_string(void)
{
    return CN_VERSION_STRING;
}
