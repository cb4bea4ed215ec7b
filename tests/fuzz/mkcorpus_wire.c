/*
 * mkcorpus_wire.c: writes the seed corpus for fuzz_wire into a directory:
 * one valid frame of every message type, a stream of all of them, and a
 * few malformed frames. Run by `make fuzz-corpus`; the output is checked in
 * under tests/fuzz/corpus/wire/. Each file starts with fuzz_wire's mode
 * byte (0: feed all at once; 3: three bytes a read).
 */
#include <stdio.h>
#include <string.h>

#include "wire/wire.h"

static int write_seed(const char *dir, const char *name, int mode, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    fputc(mode, f);
    fwrite(p, 1, n, f);
    return fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: mkcorpus_wire DIR\n");
        return 2;
    }
    msgpack_sbuffer all, one;
    msgpack_sbuffer_init(&all);
    msgpack_sbuffer_init(&one);
    msgpack_object args[2] = {{.type = MSGPACK_OBJECT_POSITIVE_INTEGER},
                              {.type = MSGPACK_OBJECT_STR}};
    args[0].via.u64 = 7;
    args[1].via.str.ptr = "arg";
    args[1].via.str.size = 3;
    msgpack_object arr = {.type = MSGPACK_OBJECT_ARRAY};
    arr.via.array.size = 2;
    arr.via.array.ptr = args;

    for (uint32_t t = 1; t < CN_MSG_MAX_; t++) {
        cn_wire_hdr_t h = {t, 3, 4, 5};
        one.size = 0;
        size_t n;
        if (cn_wire_fields(t, &n) != NULL) {
            union {
                char b[sizeof(((cn_wire_msg_t *)0)->u)];
                cn_wire_cmd_t cmd;
            } u;
            memset(&u, 0, sizeof(u));
            const cn_wire_field_t *f = cn_wire_fields(t, &n);
            for (size_t i = 0; i < n; i++) {
                char *dst = u.b + f[i].offset;
                if (f[i].kind == CN_WIRE_KIND_STR || f[i].kind == CN_WIRE_KIND_BYTES)
                    *(cn_wire_str_t *)dst = (cn_wire_str_t){"root/sup/worker-3", 17};
                else if (f[i].kind == CN_WIRE_KIND_ANY)
                    *(msgpack_object *)dst = arr;
                else
                    *(uint64_t *)dst = 1;
            }
            cn_wire_pack_typed(&one, &h, &u, 0);
        } else {
            cn_wire_pack(&one, &h, &arr, 0);
        }
        msgpack_sbuffer_write(&all, one.data, one.size);
        char name[64];
        snprintf(name, sizeof(name), "type-%02u-%s", t, cn_wire_type_name(t));
        if (write_seed(argv[1], name, 0, one.data, one.size) < 0)
            return 1;
    }
    static const char bad_len[] = {(char)0xff, 0, 0, 0, (char)0x95};
    static const char bad_c1[] = {0, 0, 0, 6, (char)0x95, 9, 1, 2, 3, (char)0xc1};
    static const char bad_arr32[] = {0,          0,          0,          6,          (char)0xdd,
                                     (char)0xff, (char)0xff, (char)0xff, (char)0xff, 1};
    if (write_seed(argv[1], "stream-all-types", 3, all.data, all.size) < 0 ||
        write_seed(argv[1], "bad-oversize", 0, bad_len, sizeof(bad_len)) < 0 ||
        write_seed(argv[1], "bad-c1", 0, bad_c1, sizeof(bad_c1)) < 0 ||
        write_seed(argv[1], "bad-array32-claim", 1, bad_arr32, sizeof(bad_arr32)) < 0)
        return 1;
    msgpack_sbuffer_destroy(&all);
    msgpack_sbuffer_destroy(&one);
    return 0;
}
