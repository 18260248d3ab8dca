/* Limits, read once at init: from the read-only limits file the device plugin mounts when it
 * exists, else from HAMi's container environment. The file uses the same KEY=VALUE names. */
#include "hook.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hk_config hk_cfg = {.log_level = 1};

bool hk_parse_size(const char *s, uint64_t *out) {
    if (!s) return false;
    while (isspace((unsigned char)*s)) s++;
    if (!isdigit((unsigned char)*s)) return false;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*s); s++) {
        if (v > (UINT64_MAX - 9) / 10) return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    unsigned shift = 0;
    switch (*s) {
    case 'k': case 'K': shift = 10; s++; break;
    case 'm': case 'M': shift = 20; s++; break;
    case 'g': case 'G': shift = 30; s++; break;
    case 't': case 'T': shift = 40; s++; break;
    default: break;
    }
    if (shift && (*s == 'i' || *s == 'I')) s++; /* "1Gi" is a GiB, not HAMi-core's 1 byte */
    if (shift && (*s == 'b' || *s == 'B')) s++;
    while (isspace((unsigned char)*s)) s++;
    if (*s) return false;
    if (shift && v > (UINT64_MAX >> shift)) return false;
    *out = v << shift;
    return true;
}

/* A tiny key/value source: either the parsed file or getenv. */
#define MAX_KV 96
struct kv {
    char key[64];
    char val[448];
};
static struct kv file_kv[MAX_KV];
static int file_n = -1;

static const char *lookup(const char *key) {
    if (file_n < 0) return getenv(key);
    for (int i = 0; i < file_n; i++)
        if (strcmp(file_kv[i].key, key) == 0) return file_kv[i].val;
    return NULL;
}

static bool read_file(const char *path) {
    FILE *f = path ? fopen(path, "re") : NULL;
    if (!f) return false;
    char line[600];
    file_n = 0;
    while (fgets(line, sizeof line, f) && file_n < MAX_KV) {
        char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (*p == '#' || *p == 0) continue;
        char *eq = strchr(p, '=');
        if (!eq) continue;
        *eq = 0;
        char *v = eq + 1;
        size_t vl = strlen(v);
        while (vl && isspace((unsigned char)v[vl - 1])) v[--vl] = 0;
        size_t kl = strlen(p);
        while (kl && isspace((unsigned char)p[kl - 1])) p[--kl] = 0;
        if (kl == 0 || kl >= sizeof file_kv[0].key || vl >= sizeof file_kv[0].val) continue;
        memcpy(file_kv[file_n].key, p, kl + 1);
        memcpy(file_kv[file_n].val, v, vl + 1);
        file_n++;
    }
    fclose(f);
    return true;
}

static bool truthy(const char *v) {
    return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0);
}

static void parse_visible(struct hk_config *c) {
    for (int i = 0; i < HK_MAX_DEVICES; i++) c->cuda_of_nvml[i] = i;
    const char *v = getenv("CUDA_VISIBLE_DEVICES");
    if (!v || !*v) return;
    int map[HK_MAX_DEVICES];
    for (int i = 0; i < HK_MAX_DEVICES; i++) map[i] = -1;
    int pos = 0;
    for (const char *p = v; *p && pos < HK_MAX_DEVICES;) {
        char *end;
        long n = strtol(p, &end, 10);
        if (end == p || n < 0 || n >= HK_MAX_DEVICES) return; /* UUID/MIG form: identity */
        map[n] = pos++;
        p = end;
        if (*p == ',') p++;
        else if (*p) return;
    }
    memcpy(c->cuda_of_nvml, map, sizeof map);
}

void hk_config_load(struct hk_config *c, const char *file_path) {
    const char *lvl = getenv("LIBCUDA_LOG_LEVEL");
    c->log_level = lvl && isdigit((unsigned char)*lvl) ? atoi(lvl) : 1;
    c->from_file = read_file(file_path);
    char key[64];
    uint64_t all = 0;
    const char *v = lookup("CUDA_DEVICE_MEMORY_LIMIT");
    if (v && !hk_parse_size(v, &all)) HK_ERR("invalid CUDA_DEVICE_MEMORY_LIMIT=%s ignored", v);
    uint64_t all_sm = 0;
    v = lookup("CUDA_DEVICE_SM_LIMIT");
    if (v && !hk_parse_size(v, &all_sm)) HK_ERR("invalid CUDA_DEVICE_SM_LIMIT=%s ignored", v);
    for (int i = 0; i < HK_MAX_DEVICES; i++) {
        uint64_t b = all, sm = all_sm;
        snprintf(key, sizeof key, "CUDA_DEVICE_MEMORY_LIMIT_%d", i);
        v = lookup(key);
        if (v && !hk_parse_size(v, &b)) {
            HK_ERR("invalid %s=%s ignored", key, v);
            b = all;
        }
        snprintf(key, sizeof key, "CUDA_DEVICE_SM_LIMIT_%d", i);
        v = lookup(key);
        if (v && !hk_parse_size(v, &sm)) sm = all_sm;
        c->mem_limit[i] = b;
        c->sm_limit[i] = sm > 0 && sm < 100 ? (uint32_t)sm : 0;
        c->any_mem_limit |= b != 0;
        c->any_sm_limit |= c->sm_limit[i] != 0;
    }
    v = lookup("CUDA_DEVICE_MEMORY_SHARED_CACHE");
    snprintf(c->shm_path, sizeof c->shm_path, "%s", v && *v ? v : "/tmp/hami-vgpu.shm");
    v = lookup("CUDA_TASK_PRIORITY");
    c->priority = v && *v ? atoi(v) : 1;
    v = lookup("GPU_CORE_UTILIZATION_POLICY");
    c->policy = !v                          ? HK_POLICY_DEFAULT
                : strcasecmp(v, "force") == 0   ? HK_POLICY_FORCE
                : strcasecmp(v, "disable") == 0 ? HK_POLICY_DISABLE
                                                : HK_POLICY_DEFAULT;
    /* With a limits file, a process cannot switch control off through its own environment. */
    c->disabled = truthy(lookup("CUDA_DISABLE_CONTROL"));
    c->oversubscribe = truthy(lookup("CUDA_OVERSUBSCRIBE"));
    parse_visible(c);
}
