/* A fake libcndev.so for the Cambricon plugin's CNDev backend, written from the documented
 * signatures of Cambricon's CNDev API (cndev.h, API version 6): the calls the plugin makes, with
 * the documented structures, return codes and units (memory in MB, sMLU sizes in bytes).
 *
 * The MLUs are configured by environment variables, read at cndevInit():
 *   FAKE_CNDEV_CARDS         MLUs (default 2)
 *   FAKE_CNDEV_MODEL         card name (default MLU370-X8)
 *   FAKE_CNDEV_MEMORY_MB     memory per MLU in MB (default 24576)
 *   FAKE_CNDEV_INIT_FAIL     1: cndevInit fails (no driver)
 *   FAKE_CNDEV_SMLU_LIMIT    sMLU instances per MLU (default 16); more is INSUFFICIENT_SPACE
 *   FAKE_CNDEV_HEALTH_FILE   a file holding the index of an unhealthy MLU (-1: none), read at
 *                            every health query
 * Handle of MLU i: 100 + i; UUID: "0000000<i>-fake-...". Profiles are made per (quota, bytes) and
 * reused; instance handles count from 5000.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
#define CNDEV_UUID_SIZE 37
#define NAME_SIZE 100
#define MAX_CARDS 16
#define MAX_PROFILES 128
#define MAX_INSTANCES 1024

typedef enum {
    CNDEV_SUCCESS = 0,
    CNDEV_ERROR_NO_DRIVER = 1,
    CNDEV_ERROR_UNINITIALIZED = 4,
    CNDEV_ERROR_INVALID_ARGUMENT = 5,
    CNDEV_ERROR_INVALID_DEVICE_ID = 6,
    CNDEV_ERROR_INSUFFICIENT_SPACE = 9,
    CNDEV_ERROR_NOT_FOUND = 14,
} cndevRet_t;

typedef int32_t cndevDevice_t;
typedef int32_t cndevMluInstance_t;

typedef struct { int32_t version; uint32_t number; } cndevCardInfo_t;
typedef struct { int32_t version; uint8_t uuid[CNDEV_UUID_SIZE]; uint64_t ncsUUID64; } cndevUUID_t;
typedef struct {
    int64_t physicalMemoryTotal, physicalMemoryUsed, reservedMemory, virtualMemoryTotal,
        virtualMemoryUsed;
    uint64_t globalMemory;
    uint64_t reserved[16];
} cndevMemoryInfoV2_t;
typedef struct { int32_t version; int32_t health; int32_t deviceState; int32_t driverState; } cndevCardHealthState_t;
typedef struct { int32_t version; int32_t nodeId; } cndevNUMANodeId_t;
typedef struct { int32_t version; uint32_t mluQuota; uint64_t memorySize; } cndevSMluSet_t;
typedef struct {
    int32_t version, profileId, instanceId;
    uint8_t uuid[CNDEV_UUID_SIZE];
    int32_t domain, bus, device, function;
    char profileName[NAME_SIZE], instanceName[NAME_SIZE], devNodeName[NAME_SIZE];
    uint32_t mluQuota[2];
    uint64_t memorySize[2];
    uint32_t reserved[128];
} cndevSMluInfo_t;
typedef struct { int32_t version; int32_t count; int32_t profileId[MAX_PROFILES]; } cndevSMluProfileIdInfo_t;
typedef struct {
    int32_t version, profileId;
    char name[NAME_SIZE];
    uint32_t totalCapacity, remainCapacity;
    uint32_t mluQuota[2];
    uint64_t memorySize[2];
} cndevSMluProfileInfo_t;

struct profile { int id; uint32_t quota; uint64_t bytes; };
struct instance { int handle, card, profile, id, live; };

static int inited, cards = 2, limit = 16, next_profile = 1, next_instance = 5000;
static int64_t memory_mb = 24576;
static char model[NAME_SIZE] = "MLU370-X8";
static struct profile profiles[MAX_CARDS][MAX_PROFILES];
static int nprofiles[MAX_CARDS];
static struct instance instances[MAX_INSTANCES];
static int ninstances;

static int env_int(const char *name, int dflt) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static int card_of(cndevDevice_t handle) {
    int card = handle - 100;
    return card >= 0 && card < cards ? card : -1;
}

EXPORT cndevRet_t cndevInit(int32_t reserved) {
    (void)reserved;
    if (env_int("FAKE_CNDEV_INIT_FAIL", 0)) return CNDEV_ERROR_NO_DRIVER;
    cards = env_int("FAKE_CNDEV_CARDS", 2);
    if (cards > MAX_CARDS) cards = MAX_CARDS;
    limit = env_int("FAKE_CNDEV_SMLU_LIMIT", 16);
    memory_mb = env_int("FAKE_CNDEV_MEMORY_MB", 24576);
    const char *m = getenv("FAKE_CNDEV_MODEL");
    if (m && *m) snprintf(model, sizeof model, "%s", m);
    inited = 1;
    return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevRelease(void) { inited = 0; return CNDEV_SUCCESS; }

EXPORT const char *cndevGetErrorString(cndevRet_t ret) {
    switch (ret) {
    case CNDEV_SUCCESS: return "success";
    case CNDEV_ERROR_NO_DRIVER: return "no driver";
    case CNDEV_ERROR_UNINITIALIZED: return "not initialized";
    case CNDEV_ERROR_INVALID_ARGUMENT: return "invalid argument";
    case CNDEV_ERROR_INVALID_DEVICE_ID: return "invalid device id";
    case CNDEV_ERROR_INSUFFICIENT_SPACE: return "insufficient space";
    case CNDEV_ERROR_NOT_FOUND: return "not found";
    default: return "unknown error";
    }
}

EXPORT cndevRet_t cndevGetDeviceCount(cndevCardInfo_t *info) {
    if (!inited) return CNDEV_ERROR_UNINITIALIZED;
    if (!info) return CNDEV_ERROR_INVALID_ARGUMENT;
    info->number = (uint32_t)cards;
    return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevGetDeviceHandleByIndex(int32_t index, cndevDevice_t *handle) {
    if (!inited) return CNDEV_ERROR_UNINITIALIZED;
    if (!handle || index < 0 || index >= cards) return CNDEV_ERROR_INVALID_DEVICE_ID;
    *handle = 100 + index;
    return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevGetUUID(cndevUUID_t *info, cndevDevice_t device) {
    int card = card_of(device);
    if (!inited) return CNDEV_ERROR_UNINITIALIZED;
    if (!info || card < 0) return CNDEV_ERROR_INVALID_DEVICE_ID;
    unsigned c = (unsigned)card & 0xffffu;
    snprintf((char *)info->uuid, CNDEV_UUID_SIZE, "%08u-fake-4000-8000-%012u", c, c);
    info->ncsUUID64 = 0;
    return CNDEV_SUCCESS;
}

EXPORT const char *cndevGetCardNameStringByDevId(cndevDevice_t device) {
    return card_of(device) < 0 ? "Unknown" : model;
}

EXPORT cndevRet_t cndevGetMemoryUsageV2(cndevMemoryInfoV2_t *info, cndevDevice_t device) {
    if (!inited) return CNDEV_ERROR_UNINITIALIZED;
    if (!info || card_of(device) < 0) return CNDEV_ERROR_INVALID_DEVICE_ID;
    memset(info, 0, sizeof *info);
    info->physicalMemoryTotal = memory_mb;
    info->virtualMemoryTotal = memory_mb;
    return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevGetCardHealthState(cndevCardHealthState_t *state, cndevDevice_t device) {
    int card = card_of(device), bad = -1;
    if (!inited) return CNDEV_ERROR_UNINITIALIZED;
    if (!state || card < 0) return CNDEV_ERROR_INVALID_DEVICE_ID;
    const char *path = getenv("FAKE_CNDEV_HEALTH_FILE");
    if (path && *path) {
        FILE *f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%d", &bad) != 1) bad = -1;
            fclose(f);
        }
    }
    state->health = card == bad ? 0 : 1;
    state->deviceState = card == bad ? 0 : 1; /* CNDEV_HEALTH_STATE_DEVICE_GOOD */
    state->driverState = 4;                   /* CNDEV_HEALTH_STATE_DRIVER_RUNNING */
    return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevGetNUMANodeIdByDevId(cndevNUMANodeId_t *numa, cndevDevice_t device) {
    int card = card_of(device);
    if (!inited) return CNDEV_ERROR_UNINITIALIZED;
    if (!numa || card < 0) return CNDEV_ERROR_INVALID_DEVICE_ID;
    numa->nodeId = card >= cards / 2 && cards > 1 ? 1 : 0;
    return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevGetSMluProfileIdInfo(cndevSMluProfileIdInfo_t *info, cndevDevice_t device) {
    int card = card_of(device);
    if (!inited) return CNDEV_ERROR_UNINITIALIZED;
    if (!info || card < 0) return CNDEV_ERROR_INVALID_DEVICE_ID;
    info->count = nprofiles[card];
    for (int i = 0; i < nprofiles[card]; i++) info->profileId[i] = profiles[card][i].id;
    return CNDEV_SUCCESS;
}

static struct profile *find_profile(int card, int id) {
    for (int i = 0; i < nprofiles[card]; i++)
        if (profiles[card][i].id == id) return &profiles[card][i];
    return NULL;
}

static int live_on(int card) {
    int n = 0;
    for (int i = 0; i < ninstances; i++) n += instances[i].live && instances[i].card == card;
    return n;
}

EXPORT cndevRet_t cndevGetSMluProfileInfo(cndevSMluProfileInfo_t *info, int32_t profile,
                                          cndevDevice_t device) {
    int card = card_of(device);
    if (!inited) return CNDEV_ERROR_UNINITIALIZED;
    if (!info || card < 0) return CNDEV_ERROR_INVALID_DEVICE_ID;
    struct profile *p = find_profile(card, profile);
    if (!p) return CNDEV_ERROR_NOT_FOUND;
    info->profileId = p->id;
    snprintf(info->name, NAME_SIZE, "%um.%llugb", p->quota, (unsigned long long)(p->bytes >> 30));
    info->totalCapacity = (uint32_t)limit;
    info->remainCapacity = (uint32_t)(limit - live_on(card));
    info->mluQuota[0] = p->quota;
    info->memorySize[0] = p->bytes;
    return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevCreateSMluProfileInfo(cndevSMluSet_t *set, int32_t *profile_id,
                                             cndevDevice_t device) {
    int card = card_of(device);
    if (!inited) return CNDEV_ERROR_UNINITIALIZED;
    if (!set || !profile_id || card < 0) return CNDEV_ERROR_INVALID_DEVICE_ID;
    if (set->mluQuota == 0 || set->mluQuota > 100 || set->memorySize == 0 ||
        set->memorySize > (uint64_t)memory_mb << 20)
        return CNDEV_ERROR_INVALID_ARGUMENT;
    if (nprofiles[card] >= MAX_PROFILES) return CNDEV_ERROR_INSUFFICIENT_SPACE;
    struct profile *p = &profiles[card][nprofiles[card]++];
    p->id = next_profile++;
    p->quota = set->mluQuota;
    p->bytes = set->memorySize;
    *profile_id = p->id;
    return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevCreateSMluInstanceByProfileId(cndevMluInstance_t *handle, uint32_t profile,
                                                     cndevDevice_t device, char *name) {
    (void)name;
    int card = card_of(device);
    if (!inited) return CNDEV_ERROR_UNINITIALIZED;
    if (!handle || card < 0) return CNDEV_ERROR_INVALID_DEVICE_ID;
    if (!find_profile(card, (int)profile)) return CNDEV_ERROR_NOT_FOUND;
    if (live_on(card) >= limit || ninstances >= MAX_INSTANCES) return CNDEV_ERROR_INSUFFICIENT_SPACE;
    struct instance *in = &instances[ninstances++];
    in->handle = next_instance++;
    in->card = card;
    in->profile = (int)profile;
    in->id = ninstances;
    in->live = 1;
    *handle = in->handle;
    return CNDEV_SUCCESS;
}

static struct instance *find_instance(cndevMluInstance_t handle) {
    for (int i = 0; i < ninstances; i++)
        if (instances[i].handle == handle && instances[i].live) return &instances[i];
    return NULL;
}

EXPORT cndevRet_t cndevGetSMluInstanceInfo(cndevSMluInfo_t *info, cndevMluInstance_t handle) {
    if (!inited) return CNDEV_ERROR_UNINITIALIZED;
    struct instance *in = find_instance(handle);
    if (!info) return CNDEV_ERROR_INVALID_ARGUMENT;
    if (!in) return CNDEV_ERROR_NOT_FOUND;
    struct profile *p = find_profile(in->card, in->profile);
    info->profileId = in->profile;
    info->instanceId = in->id;
    snprintf((char *)info->uuid, CNDEV_UUID_SIZE, "%08u-smlu-4000-8000-%012u",
             (unsigned)in->card & 0xffffu, (unsigned)in->id & 0xffffu);
    snprintf(info->profileName, NAME_SIZE, "%um.%llugb", p ? p->quota : 0,
             (unsigned long long)(p ? p->bytes >> 30 : 0));
    snprintf(info->devNodeName, NAME_SIZE, "/dev/cambricon-smlu%d/smlu%d", in->card, in->id);
    info->mluQuota[0] = p ? p->quota : 0;
    info->memorySize[0] = p ? p->bytes : 0;
    return CNDEV_SUCCESS;
}

EXPORT cndevRet_t cndevDestroySMluInstanceByHandle(cndevMluInstance_t handle) {
    if (!inited) return CNDEV_ERROR_UNINITIALIZED;
    struct instance *in = find_instance(handle);
    if (!in) return CNDEV_ERROR_NOT_FOUND;
    in->live = 0;
    return CNDEV_SUCCESS;
}
