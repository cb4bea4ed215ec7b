/*
 * json.c: msgpack objects as JSON, for --json output.
 *
 * msgpack-c can print objects, but not as JSON. Maps with non-string keys
 * get their keys printed as JSON strings; bin becomes a string of its
 * bytes (escaped); ext becomes null. A snapshot's table ({cols, rows},
 * docs/protocol.md) prints as the array of objects it stands for, so
 * --json keeps one object per context or thread. Output is compact
 * unless `indent`.
 */
#include <stdio.h>
#include <string.h>

#include "ui.h"

void json_str(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\u%04x", c);
            else
                fputc(c, f); /* UTF-8 passes through */
        }
    }
    fputc('"', f);
}

void json_cstr(FILE *f, const char *s)
{
    if (s == NULL)
        fputs("null", f);
    else
        json_str(f, s, strlen(s));
}

static void newline(FILE *f, int indent, int depth)
{
    if (!indent)
        return;
    fputc('\n', f);
    for (int i = 0; i < depth * indent; i++)
        fputc(' ', f);
}

static void obj(FILE *f, const msgpack_object *o, int indent, int depth);

/* A table, printed as its rows' objects; 0 if o is not one (or memory
 * ran out: it then prints as the map it is). */
static int table(FILE *f, const msgpack_object *o, int indent, int depth)
{
    if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size != 2 || !cn_msgpack_get(o, "cols"))
        return 0;
    msgpack_zone z;
    msgpack_object rows;
    if (!msgpack_zone_init(&z, 4096))
        return 0;
    int rc = cn_msgpack_table(o, &z, &rows);
    if (rc == 1)
        obj(f, &rows, indent, depth);
    msgpack_zone_destroy(&z);
    return rc == 1;
}

static void obj(FILE *f, const msgpack_object *o, int indent, int depth)
{
    if (table(f, o, indent, depth))
        return;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        fputs("null", f);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        fputs(o->via.boolean ? "true" : "false", f);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        fprintf(f, "%llu", (unsigned long long)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        fprintf(f, "%lld", (long long)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        fprintf(f, "%.17g", o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        json_str(f, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        json_str(f, o->via.bin.ptr, o->via.bin.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', f);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                fputc(',', f);
            newline(f, indent, depth + 1);
            obj(f, &o->via.array.ptr[i], indent, depth + 1);
        }
        if (o->via.array.size)
            newline(f, indent, depth);
        fputc(']', f);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', f);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (i)
                fputc(',', f);
            newline(f, indent, depth + 1);
            if (kv->key.type == MSGPACK_OBJECT_STR) {
                json_str(f, kv->key.via.str.ptr, kv->key.via.str.size);
            } else {
                fputc('"', f);
                msgpack_object_print(f, kv->key);
                fputc('"', f);
            }
            fputs(indent ? ": " : ":", f);
            obj(f, &kv->val, indent, depth + 1);
        }
        if (o->via.map.size)
            newline(f, indent, depth);
        fputc('}', f);
        break;
    default:
        fputs("null", f);
        break;
    }
}

void json_obj(FILE *f, const msgpack_object *o, int indent)
{
    obj(f, o, indent, 0);
}
