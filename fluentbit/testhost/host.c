/*
 * host.c - a stand-in for Fluent Bit's Go input proxy, for testing tlstap.so.
 *
 * It does what Fluent Bit does with a Go input plugin (src/flb_plugin_proxy.c
 * and src/proxy/go/go.c): dlopen the .so, call FLBPluginRegister with a
 * proxy definition, FLBPluginInit with a plugin context whose API table
 * answers FLBPluginConfigKey lookups (here from the command line), then
 * FLBPluginInputCallback on a timer; every returned buffer is handed to
 * FLBPluginInputCleanupCallback when exported (free() otherwise), and
 * FLBPluginExit at the end.
 *
 * Every buffer is decoded with msgpack-c and checked: a sequence of
 * [EventTime(ext type 0, 8 bytes), map with str keys] records and nothing
 * else. Each record is printed as one JSON line on stdout:
 *   {"time":{"sec":S,"nsec":N},"record":{...}}
 * (str -> JSON string, bin -> {"$bin":"<hex>"}, other ext -> {"$ext":T,"hex":"..."}).
 * Diagnostics and a final "host: summary ..." line go to stderr.
 *
 * usage: host [-i interval_ms] [-n iterations] [-w warmup] [-q] plugin.so [key value]...
 *   -i  milliseconds between callbacks (default 1000, Fluent Bit's period)
 *   -n  number of callbacks; 0 = until SIGINT/SIGTERM (default 0)
 *   -w  callback after which the memory baseline is taken (default n/10, max 1000)
 *   -q  do not print records (still decoded and checked)
 * Properties are looked up case-insensitively, as Fluent Bit does.
 *
 * exit status: 0 ok, 1 usage/load error, 2 FLBPluginInit failed,
 *              3 malformed records, 4 FLBPluginExit failed, 5 register failed.
 *
 * build: gcc -O2 -Wall -Wextra -o host host.c -ldl -lmsgpackc
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <msgpack.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Fluent Bit's values (include/fluent-bit/flb_plugin_proxy.h). */
#define FLB_ERROR 0
#define FLB_OK 1
#define FLB_PROXY_INPUT_PLUGIN 1
#define FLB_PROXY_GOLANG 11

/* struct flb_plugin_proxy_def: filled by FLBPluginRegister. */
struct proxy_def {
    int type;
    int proxy;
    int flags;
    char *name;
    char *description;
    int event_type;
};

/* struct flb_api: the Go side calls input_get_property through it. */
struct flb_api {
    char *(*output_get_property)(char *, void *);
    char *(*input_get_property)(char *, void *);
    void *(*output_get_cmt_instance)(void *);
    void *(*input_get_cmt_instance)(void *);
    void (*log_print)(int, const char *, int, const char *, ...);
    int (*input_log_check)(void *, int);
    int (*output_log_check)(void *, int);
};

struct proxy_context {
    void *remote_context;
};

/* struct flbgo_input_plugin (src/proxy/go/go.h): FLBPluginInit receives a
 * pointer to it; the Go side reads api and i_ins. */
struct go_input_plugin {
    char *name;
    struct flb_api *api;
    void *i_ins;
    struct proxy_context *context;

    int (*cb_init)(void *);
    int (*cb_collect)(void **, size_t *);
    int (*cb_cleanup)(void *);
    int (*cb_exit)(void);
};

/* The "input instance": properties from argv. */
struct instance {
    int n;
    char **keys;
    char **values;
};

static char *get_property(char *key, void *ins_ptr)
{
    struct instance *ins = ins_ptr;
    for (int i = 0; i < ins->n; i++) {
        if (strcasecmp(ins->keys[i], key) == 0) {
            return ins->values[i];
        }
    }
    return NULL; /* Fluent Bit returns NULL for an unset property */
}

static char *no_output_property(char *key, void *ins)
{
    (void) key;
    (void) ins;
    return NULL;
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void) sig;
    stop = 1;
}

/* ---- JSON output ---- */

static void put_json_string(FILE *f, const char *p, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) p[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                fprintf(f, "\\u%04x", c);
            } else {
                fputc(c, f);
            }
        }
    }
    fputc('"', f);
}

static void put_hex(FILE *f, const char *p, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%02x", (unsigned char) p[i]);
    }
    fputc('"', f);
}

static void put_json(FILE *f, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        fputs("null", f);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        fputs(o->via.boolean ? "true" : "false", f);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        fprintf(f, "%llu", (unsigned long long) o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        fprintf(f, "%lld", (long long) o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (isfinite(o->via.f64)) {
            fprintf(f, "%.17g", o->via.f64);
        } else {
            fputs("null", f);
        }
        break;
    case MSGPACK_OBJECT_STR:
        put_json_string(f, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        fputs("{\"$bin\":", f);
        put_hex(f, o->via.bin.ptr, o->via.bin.size);
        fputc('}', f);
        break;
    case MSGPACK_OBJECT_EXT:
        fprintf(f, "{\"$ext\":%d,\"hex\":", o->via.ext.type);
        put_hex(f, o->via.ext.ptr, o->via.ext.size);
        fputc('}', f);
        break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', f);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i) {
                fputc(',', f);
            }
            put_json(f, &o->via.array.ptr[i]);
        }
        fputc(']', f);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', f);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (i) {
                fputc(',', f);
            }
            if (kv->key.type == MSGPACK_OBJECT_STR) {
                put_json_string(f, kv->key.via.str.ptr, kv->key.via.str.size);
            } else {
                fputs("\"?\"", f);
            }
            fputc(':', f);
            put_json(f, &kv->val);
        }
        fputc('}', f);
        break;
    default:
        fputs("null", f);
    }
}

/* ---- record checks ---- */

/* check_record verifies one Fluent Bit record: [EventTime, map<str, any>]. */
static const char *check_record(const msgpack_object *o, uint32_t *sec, uint32_t *nsec)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2) {
        return "record is not a 2-element array";
    }
    const msgpack_object *t = &o->via.array.ptr[0];
    const msgpack_object *m = &o->via.array.ptr[1];
    if (t->type != MSGPACK_OBJECT_EXT || t->via.ext.type != 0 || t->via.ext.size != 8) {
        return "record time is not an EventTime (ext type 0, 8 bytes)";
    }
    const unsigned char *p = (const unsigned char *) t->via.ext.ptr;
    *sec = (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
    *nsec = (uint32_t) p[4] << 24 | (uint32_t) p[5] << 16 | (uint32_t) p[6] << 8 | p[7];
    if (*nsec >= 1000000000u) {
        return "EventTime nanoseconds out of range";
    }
    if (m->type != MSGPACK_OBJECT_MAP) {
        return "record body is not a map";
    }
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        if (m->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR) {
            return "record map has a key that is not a str";
        }
    }
    return NULL;
}

/* decode_buffer checks and prints every record of one callback's buffer.
 * Returns the number of records, or -1 on malformed data. */
static long decode_buffer(const char *buf, size_t len, int quiet)
{
    msgpack_unpacked u;
    size_t off = 0;
    long n = 0;
    msgpack_unpacked_init(&u);
    while (off < len) {
        msgpack_unpack_return r = msgpack_unpack_next(&u, buf, len, &off);
        if (r != MSGPACK_UNPACK_SUCCESS && r != MSGPACK_UNPACK_EXTRA_BYTES) {
            fprintf(stderr, "host: malformed msgpack at offset %zu of %zu (unpack status %d)\n", off, len, (int) r);
            msgpack_unpacked_destroy(&u);
            return -1;
        }
        uint32_t sec, nsec;
        const char *why = check_record(&u.data, &sec, &nsec);
        if (why != NULL) {
            fprintf(stderr, "host: record %ld: %s\n", n, why);
            msgpack_unpacked_destroy(&u);
            return -1;
        }
        if (!quiet) {
            fprintf(stdout, "{\"time\":{\"sec\":%u,\"nsec\":%u},\"record\":", sec, nsec);
            put_json(stdout, &u.data.via.array.ptr[1]);
            fputs("}\n", stdout);
        }
        n++;
    }
    msgpack_unpacked_destroy(&u);
    return n;
}

/* ---- memory ---- */

static long rss_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) {
        return -1;
    }
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) {
        resident = -1;
    }
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Bytes currently allocated through malloc in this process (the Go runtime
 * maps its own heap; its C.malloc'd buffers land here). */
static long long malloc_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (long long) mi.uordblks + (long long) mi.hblkhd;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static void *need_symbol(void *dso, const char *name, int required)
{
    dlerror();
    void *s = dlsym(dso, name);
    if (dlerror() != NULL) {
        s = NULL;
    }
    if (s == NULL && required) {
        fprintf(stderr, "host: %s not exported by the plugin\n", name);
        exit(1);
    }
    return s;
}

static void usage(void)
{
    fprintf(stderr, "usage: host [-i interval_ms] [-n iterations] [-w warmup] [-q] plugin.so [key value]...\n");
    exit(1);
}

int main(int argc, char **argv)
{
    long interval_ms = 1000, iterations = 0, warmup = -1;
    int quiet = 0, opt;
    while ((opt = getopt(argc, argv, "i:n:w:q")) != -1) {
        switch (opt) {
        case 'i': interval_ms = atol(optarg); break;
        case 'n': iterations = atol(optarg); break;
        case 'w': warmup = atol(optarg); break;
        case 'q': quiet = 1; break;
        default: usage();
        }
    }
    if (optind >= argc || (argc - optind - 1) % 2 != 0 || interval_ms < 0 || iterations < 0) {
        usage();
    }
    if (warmup < 0) {
        warmup = iterations / 10;
        if (warmup > 1000) {
            warmup = 1000;
        }
    }
    const char *so = argv[optind];
    struct instance ins = {.n = (argc - optind - 1) / 2};
    ins.keys = calloc((size_t) ins.n + 1, sizeof(char *));
    ins.values = calloc((size_t) ins.n + 1, sizeof(char *));
    for (int i = 0; i < ins.n; i++) {
        ins.keys[i] = argv[optind + 1 + 2 * i];
        ins.values[i] = argv[optind + 2 + 2 * i];
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    void *dso = dlopen(so, RTLD_LAZY);
    if (dso == NULL) {
        fprintf(stderr, "host: dlopen %s: %s\n", so, dlerror());
        return 1;
    }
    int (*cb_register)(struct proxy_def *) = need_symbol(dso, "FLBPluginRegister", 1);
    void (*cb_unregister)(struct proxy_def *) = need_symbol(dso, "FLBPluginUnregister", 0);

    struct proxy_def *def = calloc(1, sizeof(*def));
    if (cb_register(def) == -1 || def->type != FLB_PROXY_INPUT_PLUGIN || def->proxy != FLB_PROXY_GOLANG ||
        def->name == NULL) {
        fprintf(stderr, "host: registration failed (type %d proxy %d)\n", def->type, def->proxy);
        return 5;
    }
    fprintf(stderr, "host: registered input '%s' (%s)\n", def->name, def->description ? def->description : "");

    struct flb_api api = {.output_get_property = no_output_property, .input_get_property = get_property};
    struct proxy_context ctx = {0};
    struct go_input_plugin plugin = {
        .name = def->name,
        .api = &api,
        .i_ins = &ins,
        .context = &ctx,
        .cb_init = need_symbol(dso, "FLBPluginInit", 1),
        .cb_collect = need_symbol(dso, "FLBPluginInputCallback", 1),
        .cb_cleanup = need_symbol(dso, "FLBPluginInputCleanupCallback", 0),
        .cb_exit = need_symbol(dso, "FLBPluginExit", 0),
    };
    fprintf(stderr, "host: cleanup callback %s\n", plugin.cb_cleanup ? "exported" : "absent (host frees)");

    if (plugin.cb_init(&plugin) <= 0) {
        fprintf(stderr, "host: FLBPluginInit failed\n");
        return 2;
    }
    fprintf(stderr, "host: init ok\n");

    long callbacks = 0, nonempty = 0, records = 0, max_records = 0, outstanding = 0;
    long long bytes = 0;
    uint64_t cb_total_ns = 0, cb_max_ns = 0;
    long rss_base = rss_kb(), rss_max = 0;
    long long heap_base = malloc_in_use();
    int status = 0;
    uint64_t t_start = now_ns();

    while (!stop && (iterations == 0 || callbacks < iterations)) {
        void *data = NULL;
        size_t len = 0;
        uint64_t t0 = now_ns();
        int ret = plugin.cb_collect(&data, &len);
        uint64_t dt = now_ns() - t0;
        callbacks++;
        cb_total_ns += dt;
        if (dt > cb_max_ns) {
            cb_max_ns = dt;
        }
        if (ret == -1) {
            fprintf(stderr, "host: collect callback returned -1\n");
        }
        /* Fluent Bit: a zero length means "nothing", and nothing is freed. */
        if (len > 0) {
            if (data == NULL) {
                fprintf(stderr, "host: callback returned %zu bytes and a NULL buffer\n", len);
                status = 3;
                break;
            }
            outstanding++;
            long n = decode_buffer(data, len, quiet);
            if (n < 0) {
                status = 3;
            } else {
                records += n;
                if (n > max_records) {
                    max_records = n;
                }
            }
            nonempty++;
            bytes += (long long) len;
            if (plugin.cb_cleanup) {
                plugin.cb_cleanup(data);
            } else {
                free(data);
            }
            outstanding--;
            fflush(stdout);
            if (status) {
                break;
            }
        }
        if (callbacks == warmup) {
            rss_base = rss_kb();
            heap_base = malloc_in_use();
        }
        long r = rss_kb();
        if (callbacks > warmup && r > rss_max) {
            rss_max = r;
        }
        if (callbacks % 1000 == 0) {
            fprintf(stderr, "host: memory callbacks=%ld rss_kb=%ld malloc=%lld records=%ld\n", callbacks, r,
                    malloc_in_use(), records);
        }
        if (interval_ms > 0 && !stop) {
            struct timespec ts = {.tv_sec = interval_ms / 1000, .tv_nsec = (interval_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    double elapsed_s = (double) (now_ns() - t_start) / 1e9;
    long rss_end = rss_kb();
    long long heap_end = malloc_in_use();

    if (plugin.cb_exit && plugin.cb_exit() <= 0) {
        fprintf(stderr, "host: FLBPluginExit failed\n");
        if (!status) {
            status = 4;
        }
    }
    if (cb_unregister) {
        cb_unregister(def);
    }
    fprintf(stderr,
            "host: summary callbacks=%ld nonempty=%ld records=%ld max_records=%ld bytes=%lld "
            "elapsed_s=%.3f cb_avg_us=%.1f cb_max_us=%.1f warmup=%ld rss_kb_base=%ld rss_kb_end=%ld rss_kb_max=%ld "
            "malloc_base=%lld malloc_end=%lld outstanding=%ld status=%d\n",
            callbacks, nonempty, records, max_records, bytes, elapsed_s,
            callbacks ? (double) cb_total_ns / (double) callbacks / 1e3 : 0.0, (double) cb_max_ns / 1e3, warmup,
            rss_base, rss_end, rss_max, heap_base, heap_end, outstanding, status);
    free(def);
    free(ins.keys);
    free(ins.values);
    return status;
}
